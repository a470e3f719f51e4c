package subscribe

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSharedLookupCoalesces: callers arriving while a look-up runs share
// the next one, so 50 of them cost two look-ups, not 50.
func TestSharedLookupCoalesces(t *testing.T) {
	var calls atomic.Int64
	release := make(chan struct{})
	entered := make(chan struct{}, 10)
	l := newSharedLookup(t.Context(), func(ctx context.Context) (map[int32]int64, error) {
		n := calls.Add(1)
		entered <- struct{}{}
		<-release
		return map[int32]int64{0: n}, nil
	})
	first := make(chan int64, 1)
	go func() {
		m, err := l.get(t.Context())
		if err != nil {
			t.Error(err)
		}
		first <- m[0]
	}()
	<-entered // round 1 is running: everyone below waits for round 2
	const n = 50
	var wg sync.WaitGroup
	got := make([]int64, n)
	for i := range n {
		wg.Go(func() {
			m, err := l.get(t.Context())
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = m[0]
		})
	}
	waitFor(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.next != nil && l.next.waiters == n
	})
	close(release)
	wg.Wait()
	if v := <-first; v != 1 {
		t.Fatalf("first caller got round %d, want 1", v)
	}
	for i, v := range got {
		if v < 2 {
			t.Fatalf("caller %d, who asked while round 1 ran, got round %d", i, v)
		}
	}
	if c := calls.Load(); c != 2 {
		t.Fatalf("%d look-ups for %d callers, want 2", c, n+1)
	}
}

// TestSharedLookupNeverStale: under constant concurrent use, every answer
// comes from a look-up that started after the caller asked.
func TestSharedLookupNeverStale(t *testing.T) {
	var started atomic.Int64
	l := newSharedLookup(t.Context(), func(ctx context.Context) (map[int32]int64, error) {
		n := started.Add(1)
		return map[int32]int64{0: n}, nil
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				before := started.Load()
				m, err := l.get(t.Context())
				if err != nil {
					t.Error(err)
					return
				}
				if m[0] <= before {
					t.Errorf("answered by look-up %d, but %d had already started when asking", m[0], before)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestSharedLookupCallerLeaves: a caller whose context ends stops waiting;
// closing the hub's life ends the look-up itself.
func TestSharedLookupCallerLeaves(t *testing.T) {
	life, end := context.WithCancel(t.Context())
	l := newSharedLookup(life, func(ctx context.Context) (map[int32]int64, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := l.get(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("get with a short deadline: %v, want deadline exceeded", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.get(t.Context())
		done <- err
	}()
	end()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("get after the hub closed: %v, want canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("get still waiting 5s after the hub closed")
	}
	waitFor(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return !l.running
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
