// Package record is the Kafka record format of chat messages, shared by the
// ingest service (which writes it), the subscribe service (which reads it)
// and any other producer that wants to post into the topic.
//
//	key:       the room name (UTF-8); one room is one partition
//	value:     a chat.v1.ChatMessage, protobuf binary, position unset
//	headers:   content-type = application/x-protobuf
//	           message-type = chat.v1.ChatMessage
//	timestamp: the message's server time
//
// Other producers may instead write the value as protobuf JSON with
// content-type = application/json. Without a content-type header the value
// is read as protobuf binary.
package record

import (
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
	"github.com/kafkachat/kafkachat/pkg/message"
)

// Header names and values of the format.
const (
	HeaderContentType = "content-type"
	HeaderMessageType = "message-type"
	ContentTypeProto  = "application/x-protobuf"
	ContentTypeJSON   = "application/json"
)

var messageType = string((&chatv1.ChatMessage{}).ProtoReflect().Descriptor().FullName())

// ErrMalformed is wrapped by every Decode error.
var ErrMalformed = errors.New("malformed chat record")

// Encode turns a message into a record for topic. The message's position is
// not written: Kafka assigns it. The record's partition is left to the
// producer's partitioner, which must hash the key.
func Encode(topic string, m *chatv1.ChatMessage) (*kgo.Record, error) {
	stored := m
	if m.GetPosition() != nil { // rare: the ingest path encodes before Kafka assigns one
		stored = proto.Clone(m).(*chatv1.ChatMessage)
		stored.Position = nil
	}
	value, err := proto.Marshal(stored)
	if err != nil {
		return nil, fmt.Errorf("encoding chat message: %w", err)
	}
	return &kgo.Record{
		Topic: topic,
		Key:   []byte(m.GetRoom()),
		Value: value,
		Headers: []kgo.RecordHeader{
			{Key: HeaderContentType, Value: []byte(ContentTypeProto)},
			{Key: HeaderMessageType, Value: []byte(messageType)},
		},
		Timestamp: m.GetServerTime().AsTime(),
	}, nil
}

// Decode reads a record written in the format above and fills in the
// message's Kafka position. A message without a server time takes the
// record's timestamp; a message without a room takes the key. Records whose
// key is not a valid room, whose room disagrees with the key, or whose
// value does not parse, are rejected with an error wrapping ErrMalformed.
func Decode(r *kgo.Record) (*chatv1.ChatMessage, error) {
	room := string(r.Key)
	if err := message.ValidateRoom("key", room); err != nil {
		return nil, fmt.Errorf("%w at %d/%d: %w", ErrMalformed, r.Partition, r.Offset, err)
	}
	m := &chatv1.ChatMessage{}
	var err error
	switch ct := header(r, HeaderContentType); ct {
	case "", ContentTypeProto:
		err = proto.Unmarshal(r.Value, m)
	case ContentTypeJSON:
		err = protojson.Unmarshal(r.Value, m)
	default:
		err = fmt.Errorf("unsupported content-type %q", ct)
	}
	if err != nil {
		return nil, fmt.Errorf("%w at %d/%d: %w", ErrMalformed, r.Partition, r.Offset, err)
	}
	if mt := header(r, HeaderMessageType); mt != "" && mt != messageType {
		return nil, fmt.Errorf("%w at %d/%d: message-type %q, want %q", ErrMalformed, r.Partition, r.Offset, mt, messageType)
	}
	switch m.Room {
	case "":
		m.Room = room
	case room:
	default:
		return nil, fmt.Errorf("%w at %d/%d: value's room %q differs from key %q", ErrMalformed, r.Partition, r.Offset, m.Room, room)
	}
	if m.ServerTime == nil {
		ts := r.Timestamp
		if ts.IsZero() {
			ts = time.Unix(0, 0)
		}
		m.ServerTime = timestamppb.New(ts)
	}
	m.Position = &chatv1.Position{Partition: r.Partition, Offset: r.Offset}
	return m, nil
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
