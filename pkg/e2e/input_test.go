package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kafkachat/kafkachat/pkg/chatclient"
	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
	"github.com/kafkachat/kafkachat/pkg/testenv"
)

// TestBadSend: every invalid request gets INVALID_ARGUMENT naming the field,
// and nothing reaches Kafka.
func TestBadSend(t *testing.T) {
	st := testenv.StartStack(t, nil)
	ingest := chatv1.NewIngestServiceClient(testenv.Conn(t, st.Ingest.Addr))
	ok := func() *chatv1.SendRequest { return &chatv1.SendRequest{Room: "lobby", User: "alice", Text: "hi"} }
	with := func(f func(r *chatv1.SendRequest)) *chatv1.SendRequest { r := ok(); f(r); return r }
	cases := []struct {
		name  string
		req   *chatv1.SendRequest
		field string
	}{
		{"empty user", with(func(r *chatv1.SendRequest) { r.User = "" }), "user"},
		{"blank user", with(func(r *chatv1.SendRequest) { r.User = " \t\u00a0 " }), "user"},
		{"control character in user", with(func(r *chatv1.SendRequest) { r.User = "ali\x1b[31mce" }), "user"},
		{"newline in user", with(func(r *chatv1.SendRequest) { r.User = "ali\nce" }), "user"},
		{"line separator in user", with(func(r *chatv1.SendRequest) { r.User = "ali\u2028ce" }), "user"},
		{"invalid UTF-8 user", with(func(r *chatv1.SendRequest) { r.User = "al\xffice" }), "user"},
		{"long user", with(func(r *chatv1.SendRequest) { r.User = strings.Repeat("é", 65) }), "user"},
		{"empty text", with(func(r *chatv1.SendRequest) { r.Text = "" }), "text"},
		{"blank text", with(func(r *chatv1.SendRequest) { r.Text = "  \n\t " }), "text"},
		{"text over the limit", with(func(r *chatv1.SendRequest) { r.Text = strings.Repeat("a", 4097) }), "text"},
		{"text over the limit in bytes", with(func(r *chatv1.SendRequest) { r.Text = strings.Repeat("☕", 1366) }), "text"},
		{"invalid UTF-8 text", with(func(r *chatv1.SendRequest) { r.Text = "hi \xc3\x28" }), "text"},
		{"empty room", with(func(r *chatv1.SendRequest) { r.Room = "" }), "room"},
		{"room with space", with(func(r *chatv1.SendRequest) { r.Room = "the lobby" }), "room"},
		{"room with slash", with(func(r *chatv1.SendRequest) { r.Room = "a/b" }), "room"},
		{"room with unicode", with(func(r *chatv1.SendRequest) { r.Room = "café" }), "room"},
		{"long room", with(func(r *chatv1.SendRequest) { r.Room = strings.Repeat("r", 65) }), "room"},
		{"long client id", with(func(r *chatv1.SendRequest) { r.ClientMessageId = strings.Repeat("x", 129) }), "client_message_id"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ingest.Send(ctx, tc.req)
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument {
				t.Fatalf("code %v (%v), want InvalidArgument", st.Code(), err)
			}
			if !strings.Contains(st.Message(), "invalid "+tc.field) {
				t.Fatalf("message %q does not name field %q", st.Message(), tc.field)
			}
			var field string
			for _, d := range st.Details() {
				if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) == 1 {
					field = br.GetFieldViolations()[0].GetField()
				}
			}
			if field != tc.field {
				t.Fatalf("BadRequest detail names %q, want %q", field, tc.field)
			}
		})
	}
	// A request at exactly the limit is fine, so the limit is where the
	// README says it is.
	if _, err := ingest.Send(ctx, with(func(r *chatv1.SendRequest) { r.Text = strings.Repeat("a", 4096) })); err != nil {
		t.Fatalf("text of exactly 4096 bytes: %v", err)
	}
	ends, err := st.Broker.Admin(t).ListEndOffsets(ctx, st.Topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total != 1 {
		t.Fatalf("topic holds %d records, want only the 1 valid one", total)
	}
}

// TestBadSubscribe: invalid subscriptions get INVALID_ARGUMENT.
func TestBadSubscribe(t *testing.T) {
	st := testenv.StartStack(t, nil)
	sub := chatv1.NewSubscribeServiceClient(testenv.Conn(t, st.Subscribe.Addr))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for name, req := range map[string]*chatv1.SubscribeRequest{
		"empty room":         {},
		"bad room":           {Room: "no spaces please"},
		"unknown start enum": {Room: "lobby", Start: &chatv1.SubscribeRequest_Position{Position: 42}},
	} {
		t.Run(name, func(t *testing.T) {
			stream, err := sub.Subscribe(ctx, req)
			if err == nil {
				_, err = stream.Recv()
			}
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
		})
	}
}

// TestUnicodeRoundTrip: valid Unicode comes back byte for byte, from Send's
// answer and from the stream.
func TestUnicodeRoundTrip(t *testing.T) {
	st := testenv.StartStack(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	texts := []string{
		"emoji 👩‍👩‍👧‍👦 🏳️‍🌈 👍🏽",
		"right-to-left: مرحبا بالعالم — שלום עולם",
		"combining: e\u0301 a\u0308 n\u0303 (decomposed, must not be normalised)",
		"precomposed: é ä ñ",
		"CJK 你好，世界 / 日本語 / 한국어",
		"zero-width\u200bspace and \u200djoiner",
		"multi\nline\ttext",
	}
	users := []string{"Zoë", "محمد", "李雷", "e\u0301mile"}
	sub, err := st.Client.Subscribe(ctx, "unicode", chatclient.Latest)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var sent []*chatv1.ChatMessage
	for i, text := range texts {
		m, err := st.Client.Send(ctx, "unicode", users[i%len(users)], text)
		if err != nil {
			t.Fatal(err)
		}
		if m.GetText() != text || m.GetUser() != users[i%len(users)] {
			t.Fatalf("Send answered %q/%q, want %q/%q", m.GetUser(), m.GetText(), users[i%len(users)], text)
		}
		sent = append(sent, m)
	}
	got, err := collect(ctx, sub, len(texts))
	if err != nil {
		t.Fatal(err)
	}
	for i := range sent {
		if !proto.Equal(got[i], sent[i]) {
			t.Fatalf("message %d streamed as %v, sent as %v", i, got[i], sent[i])
		}
	}
}
