package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kafkachat/kafkachat/pkg/procs"
)

// scenarioMemory: resident memory of the subscribe service per idle
// subscriber, each on its own connection, and where it goes: the service's
// pprof listener reports its goroutines, their stacks and its heap.
func scenarioMemory(ctx context.Context, e *env, o Options) (Result, error) {
	res := Result{Scenario: "4. Memory per idle subscriber", Broker: e.name,
		Setup: "The subscribe service runs as its own process (the built binary). 1,000 and then 10,000 idle Subscribe streams, each on its own gRPC connection from the benchmark process; the figure is the growth of the service's resident memory (RSS) divided by the number of streams, read once the RSS has settled. " +
			"Then the service's runtime is asked, through its pprof listener (CHAT_PPROF_ADDR), for its goroutine count and, after a garbage collection, its goroutine stack and heap sizes: the growth of each per stream shows where the memory goes.",
		Details: map[string]any{}}
	dir, err := buildServices(ctx, "./services/subscribe")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	topic, err := e.topic(ctx, 3)
	if err != nil {
		return res, err
	}
	for _, n := range []int{1000, 10000} {
		pprofAddr, err := procs.FreeAddr()
		if err != nil {
			return res, err
		}
		proc, addr, err := e.process(ctx, "subscribe", filepath.Join(dir, "subscribe"), dir,
			"KAFKA_BROKERS="+e.brokers, "CHAT_TOPIC="+topic, "CHAT_PPROF_ADDR="+pprofAddr)
		if err != nil {
			return res, err
		}
		before, err := settledRSS(proc)
		if err != nil {
			return res, err
		}
		rtBefore, err := readRuntime(ctx, pprofAddr)
		if err != nil {
			return res, err
		}
		rcv, err := startReceiversProgress(ctx, o, addr, n)
		if err != nil {
			return res, err
		}
		after, err := settledRSS(proc)
		var rtAfter runtimeStats
		if err == nil {
			rtAfter, err = readRuntime(ctx, pprofAddr)
		}
		rcv.stop()
		_ = proc.Stop(10 * time.Second)
		if err != nil {
			return res, err
		}
		per := func(a, b int64) float64 { return float64(a-b) / float64(n) / 1024 }
		rss := per(after, before)
		res.Figures = append(res.Figures,
			fig(fmt.Sprintf("RSS per idle stream, %d streams", n), "KiB", rss, 0).target("<= 30 KiB", rss <= 30),
			fig(fmt.Sprintf("  goroutines per stream, %d streams", n), "", float64(rtAfter.goroutines-rtBefore.goroutines)/float64(n), 0),
			fig(fmt.Sprintf("  goroutine stacks per stream, %d streams", n), "KiB", per(rtAfter.stack, rtBefore.stack), 0),
			fig(fmt.Sprintf("  heap in use per stream (after a GC), %d streams", n), "KiB", per(rtAfter.heapInuse, rtBefore.heapInuse), 0),
			fig(fmt.Sprintf("  live heap objects per stream (after a GC), %d streams", n), "KiB", per(rtAfter.heapAlloc, rtBefore.heapAlloc), 0))
		res.Details[fmt.Sprintf("rss_before_%d_MiB", n)] = before >> 20
		res.Details[fmt.Sprintf("rss_after_%d_MiB", n)] = after >> 20
	}
	return res, nil
}

func startReceiversProgress(ctx context.Context, o Options, addr string, n int) (*receivers, error) {
	fmt.Fprintf(o.Progress, "  opening %d idle streams...\n", n)
	return startReceivers(ctx, addr, "idle", n)
}

// settledRSS reads the process's RSS until two readings a second apart
// differ by less than 1%, for at most 10 s.
func settledRSS(p *procs.Proc) (int64, error) {
	prev, err := p.RSS()
	if err != nil {
		return 0, err
	}
	for range 10 {
		time.Sleep(time.Second) // letting the process settle before reading it again
		cur, err := p.RSS()
		if err != nil {
			return 0, err
		}
		if d := cur - prev; d < prev/100 && -d < prev/100 {
			return cur, nil
		}
		prev = cur
	}
	return prev, nil
}

// runtimeStats are a process's Go runtime figures, in bytes.
type runtimeStats struct {
	goroutines, stack, heapInuse, heapAlloc int64
}

// readRuntime asks a service's pprof listener for its goroutine count and,
// after a garbage collection (gc=1), the runtime.MemStats that the heap
// profile's text form ends with.
func readRuntime(ctx context.Context, pprofAddr string) (runtimeStats, error) {
	var st runtimeStats
	fields := map[string]*int64{"# Stack": &st.stack, "# HeapInuse": &st.heapInuse, "# HeapAlloc": &st.heapAlloc}
	err := getLines(ctx, "http://"+pprofAddr+"/debug/pprof/heap?debug=1&gc=1", func(line string) {
		name, value, ok := strings.Cut(line, " = ")
		if p := fields[name]; ok && p != nil {
			// "# Stack = inuse / sys": the first number is in use.
			first, _, _ := strings.Cut(value, " ")
			*p, _ = strconv.ParseInt(first, 10, 64)
			delete(fields, name)
		}
	})
	if err == nil && len(fields) > 0 {
		err = fmt.Errorf("heap profile of %s lacks %d MemStats fields", pprofAddr, len(fields))
	}
	if err != nil {
		return st, err
	}
	err = getLines(ctx, "http://"+pprofAddr+"/debug/pprof/goroutine?debug=1", func(line string) {
		if n, ok := strings.CutPrefix(line, "goroutine profile: total "); ok {
			st.goroutines, _ = strconv.ParseInt(n, 10, 64)
		}
	})
	if err == nil && st.goroutines == 0 {
		err = fmt.Errorf("goroutine profile of %s has no total", pprofAddr)
	}
	return st, err
}

func getLines(ctx context.Context, url string, each func(string)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reading %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reading %s: %s", url, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		each(sc.Text())
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}
