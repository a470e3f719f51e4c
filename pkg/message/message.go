// Package message holds the rules every chat message obeys: what the ingest
// service accepts, and how a message is shown to a person.
package message

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
)

// Limits on fields. The text limit is configurable (Limits.MaxTextBytes); it
// must stay well below the gRPC (4 MiB) and Kafka (1 MiB) message limits.
const (
	MaxRoomLen            = 64
	MaxUserRunes          = 64
	MaxClientIDBytes      = 128
	DefaultMaxTextBytes   = 4096
	MaxAllowedTextBytes   = 256 << 10
	TimestampLayout       = "2006-01-02T15:04:05.000Z07:00"
	roomCharactersAllowed = "a-z, A-Z, 0-9, '.', '_' and '-'"
)

// Response header keys the subscribe service sends once a subscription is
// registered: the room's partition, the offset the stream starts at, and a
// resume token for the position just before it. The resume token is sent
// again as a trailer, for the last message sent, however the stream ends.
const (
	HeaderPartition   = "chat-partition"
	HeaderStartOffset = "chat-start-offset"
	HeaderResumeToken = "chat-resume-token"
)

// Limits configures validation.
type Limits struct {
	MaxTextBytes int
}

// FieldError says which request field is wrong and why.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason) }

// ValidateRoom checks a room name: 1-64 characters of a-z, A-Z, 0-9, '.', '_'
// and '-'. Room names are Kafka record keys and appear in logs, so they are
// kept to a small, unambiguous alphabet.
func ValidateRoom(field, room string) error {
	switch {
	case room == "":
		return &FieldError{field, "must not be empty"}
	case len(room) > MaxRoomLen:
		return &FieldError{field, fmt.Sprintf("is %d characters, the limit is %d", len(room), MaxRoomLen)}
	}
	for i := 0; i < len(room); i++ {
		c := room[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return &FieldError{field, fmt.Sprintf("has %q at byte %d; allowed are %s", rune(c), i, roomCharactersAllowed)}
		}
	}
	return nil
}

// ValidateSend checks a SendRequest against the limits. The first problem
// found is returned as a *FieldError.
func ValidateSend(req *chatv1.SendRequest, lim Limits) error {
	if err := ValidateRoom("room", req.GetRoom()); err != nil {
		return err
	}
	if err := validateUser(req.GetUser()); err != nil {
		return err
	}
	if err := validateText(req.GetText(), lim.maxText()); err != nil {
		return err
	}
	return validateClientID(req.GetClientMessageId())
}

func (l Limits) maxText() int {
	if l.MaxTextBytes <= 0 {
		return DefaultMaxTextBytes
	}
	return l.MaxTextBytes
}

func validateUser(user string) error {
	switch {
	case !utf8.ValidString(user):
		return &FieldError{"user", "is not valid UTF-8"}
	case blank(user):
		return &FieldError{"user", "must not be empty or blank"}
	case utf8.RuneCountInString(user) > MaxUserRunes:
		return &FieldError{"user", fmt.Sprintf("is %d characters, the limit is %d", utf8.RuneCountInString(user), MaxUserRunes)}
	}
	if i, r, bad := findControl(user); bad {
		return &FieldError{"user", fmt.Sprintf("has control character %U at byte %d", r, i)}
	}
	for i, r := range user {
		if isBidiControl(r) {
			// A name could otherwise display as someone else's.
			return &FieldError{"user", fmt.Sprintf("has bidirectional control character %U at byte %d", r, i)}
		}
	}
	return nil
}

// blank reports whether s shows nothing: only white space, control and
// invisible format characters (zero-width space, BOM, joiners).
func blank(s string) bool {
	for _, r := range s {
		if !unicode.IsSpace(r) && !unicode.IsControl(r) && !unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return true
}

func isBidiControl(r rune) bool {
	return r == '\u061c' || r == '\u200e' || r == '\u200f' || (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069')
}

func validateText(text string, limit int) error {
	switch {
	case !utf8.ValidString(text):
		return &FieldError{"text", "is not valid UTF-8"}
	case blank(text):
		return &FieldError{"text", "must not be empty or blank"}
	case len(text) > limit:
		return &FieldError{"text", fmt.Sprintf("is %d bytes, the limit is %d", len(text), limit)}
	}
	return nil
}

func validateClientID(id string) error {
	switch {
	case len(id) > MaxClientIDBytes:
		return &FieldError{"client_message_id", fmt.Sprintf("is %d bytes, the limit is %d", len(id), MaxClientIDBytes)}
	case !utf8.ValidString(id):
		return &FieldError{"client_message_id", "is not valid UTF-8"}
	}
	if i, r, bad := findControl(id); bad {
		return &FieldError{"client_message_id", fmt.Sprintf("has control character %U at byte %d", r, i)}
	}
	return nil
}

// findControl reports the first control character, counting the Unicode
// line and paragraph separators too: in a name they would break the
// one-line display.
func findControl(s string) (int, rune, bool) {
	for i, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return i, r, true
		}
	}
	return 0, 0, false
}

// Format renders a message as "[user - timestamp]: text" with the server
// timestamp in UTC, millisecond precision. Control characters other than
// newline and tab are shown escaped so that a message cannot drive the
// reader's terminal.
func Format(m *chatv1.ChatMessage) string {
	ts := "unknown time"
	if t := m.GetServerTime(); t != nil {
		ts = t.AsTime().UTC().Format(TimestampLayout)
	}
	return fmt.Sprintf("[%s - %s]: %s", printable(m.GetUser()), ts, printable(m.GetText()))
}

// FormatTime renders a time the way Format does.
func FormatTime(t time.Time) string { return t.UTC().Format(TimestampLayout) }

func printable(s string) string {
	if _, _, bad := findControl(strings.NewReplacer("\n", "", "\t", "").Replace(s)); !bad {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r != '\n' && r != '\t' && (unicode.IsControl(r) || r == '\u2028' || r == '\u2029') {
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
