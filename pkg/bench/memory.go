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

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
	"github.com/kafkachat/kafkachat/pkg/message"
	"github.com/kafkachat/kafkachat/pkg/procs"
)

// idleSubscribe is the memory baseline: a Subscribe that sends its
// headers and then waits for the client to leave, behind the same server
// plumbing. What an idle stream costs there is grpc-go's floor for one
// stream on its own connection.
type idleSubscribe struct {
	chatv1.UnimplementedSubscribeServiceServer
}

func (idleSubscribe) Subscribe(_ *chatv1.SubscribeRequest, stream grpc.ServerStreamingServer[chatv1.SubscribeResponse]) error {
	if err := stream.SendHeader(metadata.Pairs(message.HeaderResumeToken, "idle")); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

// scenarioMemory: resident memory of the subscribe service per idle
// subscriber, each on its own connection, next to the same streams on a
// handler that does nothing; and where it goes: each process's pprof
// listener reports its goroutines, their stacks and its heap.
func scenarioMemory(ctx context.Context, e *env, o Options) (Result, error) {
	res := Result{Scenario: "4. Memory per idle subscriber", Broker: e.name,
		Setup: "The subscribe service runs as its own process (the built binary). 1,000 and then 10,000 idle Subscribe streams, each on its own gRPC connection from the benchmark process (clients connecting directly), then 10,000 on 100 connections (as an HTTP/2 proxy in front of the service would carry them); the figure is the growth of the service's resident memory (RSS) divided by the number of streams, read once the RSS has settled. " +
			"Then the service's runtime is asked, through its pprof listener (CHAT_PPROF_ADDR), for its goroutine count and, after a garbage collection, its goroutine stack and heap sizes: the growth of each per stream shows where the memory goes.",
		Baseline: "the floor of grpc-go: the same streams on a Subscribe handler that sends its headers and waits (this benchmark binary in serving mode, same server plumbing and keepalive), in its own process, measured the same way.",
		Details:  map[string]any{}}
	dir, err := buildServices(ctx, "./services/subscribe")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	self, err := os.Executable()
	if err != nil {
		return res, err
	}
	topic, err := e.topic(ctx, 3)
	if err != nil {
		return res, err
	}
	for _, c := range []struct{ streams, conns int }{{1000, 1000}, {10000, 10000}, {10000, 100}} {
		label := fmt.Sprintf("%d streams", c.streams)
		if c.conns != c.streams {
			label = fmt.Sprintf("%d streams on %d connections", c.streams, c.conns)
		}
		tag := fmt.Sprintf("%d-on-%d", c.streams, c.conns)
		ours, err := idleMemory(ctx, e, o, c.streams, c.conns, "subscribe-"+tag, filepath.Join(dir, "subscribe"), dir,
			"KAFKA_BROKERS="+e.brokers, "CHAT_TOPIC="+topic)
		if err != nil {
			return res, err
		}
		floor, err := idleMemory(ctx, e, o, c.streams, c.conns, "floor-"+tag, self, dir, ServeEnv+"=idle")
		if err != nil {
			return res, err
		}
		res.Figures = append(res.Figures,
			fig("RSS per idle stream, "+label, "KiB", ours.rss, floor.rss).target("<= 30 KiB", ours.rss <= 30),
			fig("  goroutines per stream, "+label, "", ours.goroutines, floor.goroutines),
			fig("  goroutine stacks per stream, "+label, "KiB", ours.stack, floor.stack),
			fig("  heap in use per stream (after a GC), "+label, "KiB", ours.heapInuse, floor.heapInuse),
			fig("  live heap objects per stream (after a GC), "+label, "KiB", ours.heapAlloc, floor.heapAlloc))
		res.Details["rss_before_"+tag+"_MiB"] = ours.before >> 20
		res.Details["rss_after_"+tag+"_MiB"] = ours.after >> 20
		res.Details["floor_rss_after_"+tag+"_MiB"] = floor.after >> 20
	}
	return res, nil
}

// idleCost is what n idle streams cost a process, per stream (KiB, or a
// count for goroutines).
type idleCost struct {
	rss, goroutines, stack, heapInuse, heapAlloc float64
	before, after                                int64 // RSS in bytes
}

// idleMemory starts bin (name is for profiles), opens n idle streams to
// it on conns connections and reads what they cost.
func idleMemory(ctx context.Context, e *env, o Options, n, conns int, name, bin, dir string, env ...string) (idleCost, error) {
	var c idleCost
	proc, addr, pprofAddr, err := e.profiledProcess(ctx, name, bin, dir, env...)
	if err != nil {
		return c, err
	}
	defer func() { _ = proc.Stop(10 * time.Second) }()
	if c.before, err = settledRSS(proc); err != nil {
		return c, err
	}
	rtBefore, err := readRuntime(ctx, pprofAddr)
	if err != nil {
		return c, err
	}
	fmt.Fprintf(o.Progress, "  %s: opening %d idle streams on %d connections...\n", name, n, conns)
	rcv, err := startReceiversOn(ctx, addr, "idle", n, conns)
	if err != nil {
		return c, err
	}
	defer rcv.stop()
	if c.after, err = settledRSS(proc); err != nil {
		return c, err
	}
	rtAfter, err := readRuntime(ctx, pprofAddr)
	if err != nil {
		return c, err
	}
	if err := e.saveProfiles(ctx, o, pprofAddr, name, "heap", "goroutine"); err != nil {
		return c, err
	}
	per := func(a, b int64) float64 { return float64(a-b) / float64(n) / 1024 }
	c.rss = per(c.after, c.before)
	c.goroutines = float64(rtAfter.goroutines-rtBefore.goroutines) / float64(n)
	c.stack = per(rtAfter.stack, rtBefore.stack)
	c.heapInuse = per(rtAfter.heapInuse, rtBefore.heapInuse)
	c.heapAlloc = per(rtAfter.heapAlloc, rtBefore.heapAlloc)
	return c, nil
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
	body, err := httpGet(ctx, url)
	if err != nil {
		return err
	}
	defer body.Close()
	sc := bufio.NewScanner(body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		each(sc.Text())
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", url, err)
	}
	_, _ = io.Copy(io.Discard, body)
	return nil
}

// httpGet is the body of a successful GET of url; the caller closes it.
func httpGet(ctx context.Context, url string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("reading %s: %s", url, resp.Status)
	}
	return resp.Body, nil
}
