package app

import (
	"os"
	"runtime/debug"
)

// DefaultGCPercent sets the garbage collector's target (what GOGC sets) to
// percent, unless the operator chose one with GOGC.
//
// A service whose live heap is a few MiB but which allocates for every
// request, as ingest does for each Send, collects very often at Go's
// default of 100: at 20,000 Sends/s about sixty times a second, and every
// collection also shrinks the stacks of the goroutines that serve the
// calls, which then grow them again on the next call. A higher target
// trades a few MiB of memory for that CPU.
func DefaultGCPercent(percent int) {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(percent)
	}
}
