package app

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestDefaultGCPercent(t *testing.T) {
	restore, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(restore); debug.SetMemoryLimit(limit) })

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

func TestCgroupMemoryLimit(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	v2, none, v1none := file("v2", "536870912\n"), file("none", "max\n"), file("v1none", "9223372036854771712\n")
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		files []string
		want  int64
		ok    bool
	}{
		{[]string{v2}, 512 << 20, true},
		{[]string{missing, v2}, 512 << 20, true},
		{[]string{none, v2}, 0, false},
		{[]string{v1none}, 0, false},
		{[]string{missing}, 0, false},
	} {
		if got, ok := cgroupMemoryLimit(tc.files); got != tc.want || ok != tc.ok {
			t.Errorf("cgroupMemoryLimit(%v) = %d, %v; want %d, %v", tc.files, got, ok, tc.want, tc.ok)
		}
	}
}
