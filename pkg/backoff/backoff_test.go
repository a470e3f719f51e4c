package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDelayGrowsAndIsCapped(t *testing.T) {
	p := Policy{Initial: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	for attempt, cap := range map[int]time.Duration{1: 10, 2: 20, 3: 40, 4: 80, 5: 80, 30: 80} {
		cap *= time.Millisecond
		for range 200 {
			d := p.Delay(attempt)
			if d < cap/2 || d > cap {
				t.Fatalf("Delay(%d) = %v, want within [%v, %v]", attempt, d, cap/2, cap)
			}
		}
	}
}

func TestRetryStopsOnSuccess(t *testing.T) {
	calls := 0
	err := Retry(context.Background(), Policy{Initial: time.Microsecond, Max: time.Microsecond, Attempts: 5}, func(context.Context) error {
		calls++
		if calls < 3 {
			return errors.New("flaky")
		}
		return nil
	}, nil)
	if err != nil || calls != 3 {
		t.Fatalf("err=%v calls=%d, want nil and 3", err, calls)
	}
}

func TestRetryExhausted(t *testing.T) {
	boom := errors.New("boom")
	var retries []int
	err := Retry(context.Background(), Policy{Initial: time.Microsecond, Max: time.Microsecond, Attempts: 4}, func(context.Context) error {
		return boom
	}, func(attempt int, err error, _ time.Duration) { retries = append(retries, attempt) })
	var ex *ExhaustedError
	if !errors.As(err, &ex) || ex.Attempts != 4 || !errors.Is(err, boom) {
		t.Fatalf("err = %v, want ExhaustedError after 4 attempts wrapping boom", err)
	}
	if len(retries) != 3 {
		t.Fatalf("onRetry called %d times, want 3", len(retries))
	}
}

func TestRetryPermanent(t *testing.T) {
	boom := errors.New("bad input")
	calls := 0
	err := Retry(context.Background(), Policy{Initial: time.Microsecond, Attempts: 10}, func(context.Context) error {
		calls++
		return Permanent(boom)
	}, nil)
	if calls != 1 || err != boom {
		t.Fatalf("calls=%d err=%v, want 1 call returning the unwrapped error", calls, err)
	}
}

func TestRetryHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := Retry(ctx, Policy{Initial: time.Hour, Max: time.Hour}, func(context.Context) error {
		calls++
		cancel()
		return errors.New("down")
	}, nil)
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("err=%v calls=%d, want context.Canceled after 1 call", err, calls)
	}
}
