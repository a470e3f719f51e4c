package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// progress prints a live line for a running measurement.
type progress struct {
	w    io.Writer
	name string
	n    func() int64
	stop chan struct{}
	done chan struct{}
}

func startProgress(w io.Writer, name string, n func() int64) *progress {
	p := &progress{w: w, name: name, n: n, stop: make(chan struct{}), done: make(chan struct{})}
	live := isTerminal(w) // a log file gets the final line only, without escapes
	go func() {
		defer close(p.done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		start, last, lastN := time.Now(), time.Now(), int64(0)
		for {
			select {
			case <-p.stop:
				line := fmt.Sprintf("  %-44s %8d done in %5.1fs\n", p.name, p.n(), time.Since(start).Seconds())
				if live {
					line = "\r\033[K" + line
				}
				_, _ = io.WriteString(p.w, line)
				return
			case now := <-t.C:
				if !live {
					continue
				}
				cur := p.n()
				fmt.Fprintf(p.w, "\r\033[K  %-44s %8d  %9.0f/s", p.name, cur, float64(cur-lastN)/now.Sub(last).Seconds())
				last, lastN = now, cur
			}
		}
	}()
	return p
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (p *progress) end() { close(p.stop); <-p.done }

// closedLoop runs fn from callers goroutines, each calling again as soon
// as its call returns, for d. It returns the completed calls per second,
// their latencies and the first error.
func closedLoop(ctx context.Context, out io.Writer, name string, callers int, d time.Duration, fn func(ctx context.Context, worker, i int) error) (float64, *Latencies, error) {
	var n atomic.Int64
	lat := &Latencies{}
	deadline := time.Now().Add(d)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	p := startProgress(out, name, n.Load)
	var wg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	start := time.Now()
	for w := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			for i := 0; ctx.Err() == nil; i++ {
				t0 := time.Now()
				if err := fn(ctx, w, i); err != nil {
					// A call cut by the end of the measurement is not a failure
					// (gRPC may see the deadline before ctx reports it).
					if ctx.Err() == nil && !time.Now().After(deadline) {
						errOnce.Do(func() { firstErr = err })
					}
					break
				}
				local = append(local, time.Since(t0))
				n.Add(1)
			}
			lat.AddAll(local)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	p.end()
	return float64(n.Load()) / elapsed.Seconds(), lat, firstErr
}

// openLoop calls fn rate times a second for d, each call in its own
// goroutine (so a slow call does not delay the next), and waits for the
// calls to finish.
func openLoop(ctx context.Context, rate int, d time.Duration, fn func(i int)) {
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * interval)
		if due.Sub(start) >= d || ctx.Err() != nil {
			break
		}
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait) // pacing the load generator, not waiting for a result
		}
		wg.Add(1)
		go func() { defer wg.Done(); fn(i) }()
	}
	wg.Wait()
}

// startProgressCount shows how many latencies have been recorded.
func startProgressCount(o Options, name string, l *Latencies) *progress {
	return startProgress(o.Progress, name, func() int64 { return int64(l.Count()) })
}
