package bench

import (
	"slices"
	"sync"
	"time"
)

// Latencies collects durations from many goroutines.
type Latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

// Add records one duration.
func (l *Latencies) Add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// AddAll records many durations.
func (l *Latencies) AddAll(ds []time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, ds...)
	l.mu.Unlock()
}

// Count is the number of durations recorded.
func (l *Latencies) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}

// Summary is a latency distribution in milliseconds.
type Summary struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

// Summary sorts what was recorded and reads the percentiles.
func (l *Latencies) Summary() Summary {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return Summary{}
	}
	slices.Sort(l.d)
	at := func(q float64) float64 {
		i := min(len(l.d)-1, int(q*float64(len(l.d))))
		return ms(l.d[i])
	}
	return Summary{Count: len(l.d), P50: at(0.50), P99: at(0.99), P999: at(0.999), Max: ms(l.d[len(l.d)-1])}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
