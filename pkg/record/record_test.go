package record

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
)

func TestEncodeDecode(t *testing.T) {
	ts := time.Date(2026, 12, 3, 10, 0, 0, 5_000_000, time.UTC)
	m := &chatv1.ChatMessage{ClientMessageId: "id1", Room: "lobby", User: "bob", Text: "e\u0301 👋",
		ServerTime: timestamppb.New(ts), Position: &chatv1.Position{Partition: 9, Offset: 99}}
	r, err := Encode("chat-room", m)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Key) != "lobby" || r.Topic != "chat-room" || !r.Timestamp.Equal(ts) {
		t.Fatalf("record key %q topic %q ts %v", r.Key, r.Topic, r.Timestamp)
	}
	if header(r, HeaderContentType) != ContentTypeProto || header(r, HeaderMessageType) != "chat.v1.ChatMessage" {
		t.Fatalf("headers %v", r.Headers)
	}
	if m.Position == nil {
		t.Fatal("Encode changed its argument")
	}
	var stored chatv1.ChatMessage
	if err := proto.Unmarshal(r.Value, &stored); err != nil || stored.Position != nil {
		t.Fatalf("stored value %v (err %v) must not carry a position", &stored, err)
	}
	r.Partition, r.Offset = 2, 41
	got, err := Decode(r)
	if err != nil {
		t.Fatal(err)
	}
	want := proto.Clone(m).(*chatv1.ChatMessage)
	want.Position = &chatv1.Position{Partition: 2, Offset: 41}
	if !proto.Equal(got, want) {
		t.Fatalf("Decode = %v, want %v", got, want)
	}
}

func TestDecodeOtherProducers(t *testing.T) {
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// JSON without room or time: room from the key, time from the record.
	r := &kgo.Record{Key: []byte("lobby"), Value: []byte(`{"user":"carol","text":"hi"}`), Timestamp: ts,
		Headers: []kgo.RecordHeader{{Key: HeaderContentType, Value: []byte(ContentTypeJSON)}}}
	m, err := Decode(r)
	if err != nil {
		t.Fatal(err)
	}
	if m.Room != "lobby" || m.User != "carol" || !m.ServerTime.AsTime().Equal(ts) {
		t.Fatalf("decoded %v", m)
	}
	// Protobuf without headers at all.
	value, _ := proto.Marshal(&chatv1.ChatMessage{User: "dave", Text: "yo"})
	if m, err := Decode(&kgo.Record{Key: []byte("lobby"), Value: value}); err != nil || m.User != "dave" {
		t.Fatalf("headerless protobuf: %v %v", m, err)
	}
}

func TestDecodeMalformed(t *testing.T) {
	value, _ := proto.Marshal(&chatv1.ChatMessage{Room: "other", User: "x", Text: "y"})
	for name, r := range map[string]*kgo.Record{
		"bad key":          {Key: []byte("no spaces"), Value: nil},
		"nil key":          {Value: nil},
		"garbage":          {Key: []byte("lobby"), Value: []byte{0xff, 0xff, 0xff}},
		"room mismatch":    {Key: []byte("lobby"), Value: value},
		"bad json":         {Key: []byte("lobby"), Value: []byte("{"), Headers: []kgo.RecordHeader{{Key: HeaderContentType, Value: []byte(ContentTypeJSON)}}},
		"unknown type":     {Key: []byte("lobby"), Value: []byte("x"), Headers: []kgo.RecordHeader{{Key: HeaderContentType, Value: []byte("text/plain")}}},
		"wrong proto type": {Key: []byte("lobby"), Value: nil, Headers: []kgo.RecordHeader{{Key: HeaderMessageType, Value: []byte("other.Msg")}}},
	} {
		if _, err := Decode(r); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}
