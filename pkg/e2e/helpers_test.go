package e2e

import (
	"context"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
	"github.com/kafkachat/kafkachat/pkg/testenv"
	"github.com/kafkachat/kafkachat/pkg/token"

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

// rawSubscribeErr opens a stream and returns how it ends (nil when the
// service registered it and it was still open).
func rawSubscribeErr(ctx context.Context, addr string, t *testing.T, req *chatv1.SubscribeRequest) error {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := chatv1.NewSubscribeServiceClient(testenv.Conn(t, addr)).Subscribe(ctx, req)
	if err != nil {
		return err
	}
	md, err := stream.Header()
	if err != nil {
		return err
	}
	if len(md.Get("chat-resume-token")) == 1 {
		return nil
	}
	_, err = stream.Recv()
	return err
}

// roomInOtherPartition returns a room whose partition (of 3) is not p.
func roomInOtherPartition(p int32) string {
	for i := 0; ; i++ {
		if r := fmt.Sprintf("room-%d", i); kafka.PartitionFor(r, 3) != p {
			return r
		}
	}
}

// roomInSamePartition returns another room in the same partition (of 3).
func roomInSamePartition(room string) string {
	p := kafka.PartitionFor(room, 3)
	for i := 0; ; i++ {
		if r := fmt.Sprintf("%s-neighbour-%d", room, i); kafka.PartitionFor(r, 3) == p {
			return r
		}
	}
}

// offsetsAt is a kadm.Offsets holding one offset.
func offsetsAt(topic string, partition int32, offset int64) kadm.Offsets {
	o := kadm.Offsets{}
	o.Add(kadm.Offset{Topic: topic, Partition: partition, At: offset, LeaderEpoch: -1})
	return o
}

// testTokenWithoutID is the token a broker without topic IDs would give.
func testTokenWithoutID(partition int32, offset int64) string {
	return token.Token{Partition: partition, Offset: offset}.Encode()
}

// recreateTopic deletes the stack's topic and creates it again (a new
// incarnation with a new topic ID).
func recreateTopic(t *testing.T, ctx context.Context, st *testenv.Stack) {
	t.Helper()
	adm := st.Broker.Admin(t)
	if _, err := adm.DeleteTopic(ctx, st.Topic); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "topic recreated", func() (bool, error) {
		_, err := adm.CreateTopic(ctx, 3, 1, nil, st.Topic)
		return err == nil, nil
	})
}

// stuckSubscriber subscribes to room latest from a client that never
// reads. It uses a small static flow-control window, so the server's sends
// block after about 64 KiB instead of being absorbed by a window grown
// through bandwidth estimation.
func stuckSubscriber(t *testing.T, ctx context.Context, addr, room string) grpc.ServerStreamingClient[chatv1.SubscribeResponse] {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	stream, err := chatv1.NewSubscribeServiceClient(conn).Subscribe(ctx, &chatv1.SubscribeRequest{Room: room})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil {
		t.Fatal(err)
	}
	return stream
}
