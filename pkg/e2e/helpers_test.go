package e2e

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc"

	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
	"github.com/kafkachat/kafkachat/pkg/testenv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkachat/kafkachat/pkg/kafka"
	"github.com/kafkachat/kafkachat/pkg/record"
)

func kgoPartitioner() kgo.Opt { return kgo.RecordPartitioner(kafka.Partitioner()) }

// recordSpec is a record as another producer might write it.
type recordSpec struct {
	value       string
	contentType string
}

func (r *recordSpec) record(topic, room string) *kgo.Record {
	rec := &kgo.Record{Topic: topic, Key: []byte(room), Value: []byte(r.value)}
	if r.contentType != "" {
		rec.Headers = []kgo.RecordHeader{{Key: record.HeaderContentType, Value: []byte(r.contentType)}}
	}
	return rec
}

// errorsUnwrap unwraps the client library's wrapping to reach the status.
func errorsUnwrap(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}

// rawSubscribe opens a Subscribe stream without the client library (which
// would resume by itself), to see exactly how the service ends it.
func rawSubscribe(t *testing.T, ctx context.Context, addr string, req *chatv1.SubscribeRequest) grpc.ServerStreamingClient[chatv1.SubscribeResponse] {
	t.Helper()
	stream, err := chatv1.NewSubscribeServiceClient(testenv.Conn(t, addr)).Subscribe(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil {
		t.Fatal(err)
	}
	return stream
}
