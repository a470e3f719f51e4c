package app

import (
	"os"
	"runtime/debug"
	"testing"
)

func TestDefaultGCPercent(t *testing.T) {
	restore := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(restore) })

	t.Setenv("GOGC", "100")
	DefaultGCPercent(250)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("with GOGC set, the target became %d; want the operator's 100", got)
	}

	os.Unsetenv("GOGC") // t.Setenv restores it after the test
	DefaultGCPercent(250)
	if got := debug.SetGCPercent(100); got != 250 {
		t.Fatalf("without GOGC, the target is %d; want 250", got)
	}
}
