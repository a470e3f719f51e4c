package message

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
)

func TestValidateSend(t *testing.T) {
	valid := func() *chatv1.SendRequest {
		return &chatv1.SendRequest{Room: "lobby-1_a.b", User: "Zoë 👋", Text: "hello\nworld", ClientMessageId: "abc-123"}
	}
	if err := ValidateSend(valid(), Limits{}); err != nil {
		t.Fatalf("valid request rejected: %v", err)
	}
	cases := []struct {
		name   string
		mutate func(*chatv1.SendRequest)
		limits Limits
		field  string
		reason string
	}{
		{"empty room", func(r *chatv1.SendRequest) { r.Room = "" }, Limits{}, "room", "must not be empty"},
		{"room char", func(r *chatv1.SendRequest) { r.Room = "a b" }, Limits{}, "room", `' ' at byte 1`},
		{"room length", func(r *chatv1.SendRequest) { r.Room = strings.Repeat("a", 65) }, Limits{}, "room", "limit is 64"},
		{"blank user", func(r *chatv1.SendRequest) { r.User = "\u3000" }, Limits{}, "user", "blank"},
		{"user control", func(r *chatv1.SendRequest) { r.User = "a\x00b" }, Limits{}, "user", "U+0000 at byte 1"},
		{"user bad utf8", func(r *chatv1.SendRequest) { r.User = "\xc0" }, Limits{}, "user", "UTF-8"},
		{"user runes", func(r *chatv1.SendRequest) { r.User = strings.Repeat("ß", 65) }, Limits{}, "user", "65 characters"},
		{"blank text", func(r *chatv1.SendRequest) { r.Text = "\n\n" }, Limits{}, "text", "blank"},
		{"invisible text", func(r *chatv1.SendRequest) { r.Text = "\x00\u200b" }, Limits{}, "text", "blank"},
		{"invisible user", func(r *chatv1.SendRequest) { r.User = "\ufeff\u200b" }, Limits{}, "user", "blank"},
		{"bidi override in user", func(r *chatv1.SendRequest) { r.User = "bob\u202eecila" }, Limits{}, "user", "U+202E"},
		{"text limit", func(r *chatv1.SendRequest) { r.Text = "12345" }, Limits{MaxTextBytes: 4}, "text", "5 bytes, the limit is 4"},
		{"text bad utf8", func(r *chatv1.SendRequest) { r.Text = "ok\xed\xa0\x80" }, Limits{}, "text", "UTF-8"},
		{"client id", func(r *chatv1.SendRequest) { r.ClientMessageId = "a\tb" }, Limits{}, "client_message_id", "control"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := valid()
			tc.mutate(r)
			err := ValidateSend(r, tc.limits)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !strings.Contains(fe.Reason, tc.reason) {
				t.Fatalf("got %v, want field %s with %q", err, tc.field, tc.reason)
			}
		})
	}
}

func TestDefaultTextLimit(t *testing.T) {
	r := &chatv1.SendRequest{Room: "r", User: "u", Text: strings.Repeat("x", DefaultMaxTextBytes)}
	if err := ValidateSend(r, Limits{}); err != nil {
		t.Fatalf("text at the default limit: %v", err)
	}
	r.Text += "x"
	if err := ValidateSend(r, Limits{}); err == nil {
		t.Fatal("text over the default limit accepted")
	}
}

func TestFormat(t *testing.T) {
	ts := time.Date(2026, 12, 3, 16, 40, 1, 123_456_789, time.FixedZone("CET", 3600))
	m := &chatv1.ChatMessage{User: "alice", Text: "hi ☕", ServerTime: timestamppb.New(ts)}
	if got, want := Format(m), "[alice - 2026-12-03T15:40:01.123Z]: hi ☕"; got != want {
		t.Fatalf("Format = %q, want %q", got, want)
	}
	m.Text = "evil \x1b[2J clear\nsecond line"
	if got, want := Format(m), "[alice - 2026-12-03T15:40:01.123Z]: evil \\u001b[2J clear\nsecond line"; got != want {
		t.Fatalf("Format = %q, want %q", got, want)
	}
	m.ServerTime = nil
	if got := Format(m); !strings.HasPrefix(got, "[alice - unknown time]") {
		t.Fatalf("Format without time = %q", got)
	}
}
