package demo

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kafkachat/kafkachat/pkg/bot"
)

// TestDemo runs the demo as `make demo` does (separate processes, the
// embedded broker unless KAFKA_BROKERS is set), with short pauses, and
// checks the transcript.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs five binaries")
	}
	var out bytes.Buffer
	start := time.Now().Add(-time.Second)
	cfg := Config{Brokers: os.Getenv("KAFKA_BROKERS"), MinDelay: 0, MaxDelay: 20 * time.Millisecond, Timeout: 4 * time.Minute}
	if err := Run(context.Background(), cfg, &out); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	line := regexp.MustCompile(`^\[(alice|bob) - (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\]: (.*)$`)
	var transcript []bot.Line
	for _, l := range strings.Split(out.String(), "\n") {
		if m := line.FindStringSubmatch(l); m != nil {
			transcript = append(transcript, bot.Line{Speaker: m[1], Text: m[3]})
			// Timestamps are the server's "now", not a fixed or client time.
			ts, err := time.Parse(time.RFC3339Nano, m[2])
			if err != nil || ts.Before(start) || ts.After(time.Now().Add(time.Second)) {
				t.Fatalf("timestamp %s is not within the run (%v)", m[2], err)
			}
		}
	}
	if len(transcript) != len(bot.Conversation) {
		t.Fatalf("transcript has %d lines, want %d:\n%s", len(transcript), len(bot.Conversation), out.String())
	}
	for i := range transcript {
		if transcript[i] != bot.Conversation[i] {
			t.Fatalf("line %d is %v, want %v", i, transcript[i], bot.Conversation[i])
		}
	}
	if !strings.Contains(out.String(), "conversation over: 10 messages in offset order") {
		t.Fatalf("no closing line:\n%s", out.String())
	}
}
