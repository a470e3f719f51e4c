// Package backoff retries operations with capped exponential backoff and full
// jitter, so that many clients retrying at once spread out instead of
// hammering a recovering server in lockstep.
package backoff

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Policy says how long to wait between tries and how many tries to make.
type Policy struct {
	// Initial is the cap of the first wait; each later cap doubles.
	Initial time.Duration
	// Max caps every wait.
	Max time.Duration
	// Attempts is the number of tries in all; 0 means try until ctx ends.
	Attempts int
}

// Default suits a client calling a service over the network: about 7 tries
// over roughly 10 seconds at the worst.
var Default = Policy{Initial: 100 * time.Millisecond, Max: 3 * time.Second, Attempts: 7}

// Delay is the wait before try number attempt+1 (attempt counts from 1): a
// random duration in [d/2, d] where d = min(Max, Initial*2^(attempt-1)).
// Half of the cap is kept so a wait is never near zero.
func (p Policy) Delay(attempt int) time.Duration {
	d := p.Initial
	for i := 1; i < attempt && d < p.Max; i++ {
		d *= 2
	}
	if p.Max > 0 && d > p.Max {
		d = p.Max
	}
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// Permanent marks an error that must not be retried.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// ExhaustedError is returned when every try failed.
type ExhaustedError struct {
	Attempts int
	Last     error
}

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("gave up after %d attempts: %v", e.Attempts, e.Last)
}

func (e *ExhaustedError) Unwrap() error { return e.Last }

// Retry calls fn until it succeeds, returns an error wrapped by Permanent,
// the policy's attempts are used up, or ctx ends. onRetry, if not nil, is
// called before each wait with the failed attempt's number, its error and
// the wait. The error returned wraps fn's last error.
func Retry(ctx context.Context, p Policy, fn func(ctx context.Context) error, onRetry func(attempt int, err error, wait time.Duration)) error {
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			return perm.err
		}
		if p.Attempts > 0 && attempt >= p.Attempts {
			return &ExhaustedError{Attempts: attempt, Last: err}
		}
		wait := p.Delay(attempt)
		if onRetry != nil {
			onRetry(attempt, err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last error: %w)", context.Cause(ctx), err)
		case <-t.C:
		}
	}
}
