package app

import (
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// DefaultGCPercent sets the garbage collector's target (what GOGC sets) to
// percent, unless the operator chose one with GOGC.
//
// A service whose live heap is a few MiB but which allocates for every
// request, as ingest does for each Send, collects very often at Go's
// default of 100: at 20,000 Sends/s about sixty times a second, and every
// collection also shrinks the stacks of the goroutines that serve the
// calls, which then grow them again on the next call. A higher target
// trades memory for that CPU: a few MiB while the live heap is small, but
// percent/100+1 times the live heap when it grows (ingest's, while Kafka
// stalls and Sends pile up). So unless GOMEMLIMIT is set, a process under
// a cgroup memory limit (a container) also gets a soft limit at 3/4 of it:
// near the limit Go collects as often as it must, instead of letting the
// higher target carry the heap into the OOM killer.
func DefaultGCPercent(percent int) {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(percent)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		if limit, ok := cgroupMemoryLimit(cgroupFiles); ok {
			debug.SetMemoryLimit(limit / 4 * 3)
		}
	}
}

// cgroupFiles hold the memory limit of this process's cgroup: v2, then v1.
var cgroupFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// cgroupMemoryLimit is the first limit set in files. cgroup v2 writes "max"
// for none; v1 a number near the largest int64 (rounded to a page).
func cgroupMemoryLimit(files []string) (int64, bool) {
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		text := strings.TrimSpace(string(data))
		if text == "max" {
			return 0, false
		}
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil || n <= 0 || n > math.MaxInt64/2 {
			return 0, false
		}
		return n, true
	}
	return 0, false
}
