package subscribe

import (
	"context"
	"sync"
	"time"
)

// lookupTimeout bounds one shared offset look-up; callers with shorter
// deadlines stop waiting for it earlier.
const lookupTimeout = 5 * time.Second

// sharedLookup lets concurrent callers share one Kafka offset look-up.
//
// Every "latest" subscription and every resume asks Kafka for the
// partitions' offsets (a Metadata and a ListOffsets request through kadm).
// When a thousand clients reconnect at once, say after a restart of the
// service, that was a thousand pairs of requests. Here at most one look-up
// runs at a time, and everyone who asks while it runs shares the next one.
//
// A caller is only ever answered by a look-up that started after it asked,
// never by one already in flight: an answer must cover every message
// acknowledged before the caller's request (a "latest" start that Kafka
// reported before the caller asked could replay a message the caller had
// already seen acknowledged, or a log start could miss a deletion).
type sharedLookup struct {
	life context.Context // ends look-ups when the hub closes
	fn   func(context.Context) (map[int32]int64, error)

	mu      sync.Mutex
	next    *lookupRound // callers waiting for the look-up not yet started
	running bool         // a goroutine is running rounds
}

type lookupRound struct {
	done    chan struct{}
	offsets map[int32]int64 // read-only once done is closed
	err     error
	waiters int // callers sharing it, guarded by sharedLookup.mu
}

func newSharedLookup(life context.Context, fn func(context.Context) (map[int32]int64, error)) *sharedLookup {
	return &sharedLookup{life: life, fn: fn}
}

// get returns offsets from a look-up that started after the call, or ctx's
// error if ctx ends first. The map must not be modified.
func (l *sharedLookup) get(ctx context.Context) (map[int32]int64, error) {
	l.mu.Lock()
	if l.next == nil {
		l.next = &lookupRound{done: make(chan struct{})}
	}
	r := l.next
	r.waiters++
	if !l.running {
		l.running = true
		go l.run()
	}
	l.mu.Unlock()
	select {
	case <-r.done:
		return r.offsets, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// run performs rounds until nobody waits. The round is taken out of next
// before its request is sent, so later callers join the following round.
func (l *sharedLookup) run() {
	for {
		l.mu.Lock()
		r := l.next
		l.next = nil
		if r == nil {
			l.running = false
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		ctx, cancel := context.WithTimeout(l.life, lookupTimeout)
		r.offsets, r.err = l.fn(ctx)
		cancel()
		close(r.done)
	}
}
