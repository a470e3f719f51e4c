package bot

import (
	"bytes"
	"testing"
)

// TestObserveTracksTheCurrentRun: a room's history may hold earlier runs of
// the conversation; only the newest run counts, and lines out of sequence
// do not advance it.
func TestObserveTracksTheCurrentRun(t *testing.T) {
	r := newRoomView(&bytes.Buffer{})
	for _, l := range Conversation { // a whole earlier run
		r.observe(l)
	}
	if r.progress != len(Conversation)-1 {
		t.Fatalf("progress %d after a whole run", r.progress)
	}
	r.observe(Conversation[0]) // a new run starts
	if r.progress != 0 {
		t.Fatalf("progress %d after a new opening line, want 0", r.progress)
	}
	r.observe(Conversation[2]) // out of sequence: ignored
	r.observe(Line{"carol", "unrelated"})
	if r.progress != 0 {
		t.Fatalf("progress %d after out-of-sequence lines, want 0", r.progress)
	}
	r.observe(Conversation[1])
	if r.progress != 1 {
		t.Fatalf("progress %d, want 1", r.progress)
	}
}
