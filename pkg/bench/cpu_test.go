package bench

import (
	"net"
	"os"
	"testing"
	"time"
)

func TestListenerPid(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	if got := listenerPid(lis.Addr().String()); got != os.Getpid() {
		t.Errorf("listenerPid(%s) = %d, want this process, %d", lis.Addr(), got, os.Getpid())
	}
	if got := listenerPid("192.0.2.1:9092"); got != 0 {
		t.Errorf("listenerPid of a remote address = %d, want 0", got)
	}
}

func TestSampleCPU(t *testing.T) {
	a, err := sampleCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Spin, sampling, until the process's and the machine's CPU times have
	// moved (they count in ticks of 10 ms).
	var b cpuSample
	for deadline := time.Now().Add(5 * time.Second); ; {
		if b, err = sampleCPU(os.Getpid()); err != nil {
			t.Fatal(err)
		}
		if b.proc > a.proc && b.total > a.total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("process CPU time stayed at %v s for 5 s of spinning", a.proc)
		}
	}
	busy, secs := cpuUse(a, b)
	if busy < 0 || busy > 1+1e-9 || secs <= 0 { // float sums of ticks: allow rounding
		t.Errorf("cpuUse = %v busy, %v s; machine time %v s", busy, secs, b.total-a.total)
	}
}
