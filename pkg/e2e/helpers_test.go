package e2e

import (
	"errors"

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
