package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/kafkachat/kafkachat/pkg/chatclient"
	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
	"github.com/kafkachat/kafkachat/pkg/ingest"
	"github.com/kafkachat/kafkachat/pkg/procs"
	"github.com/kafkachat/kafkachat/pkg/subscribe"
	"github.com/kafkachat/kafkachat/pkg/testenv"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestDeadClientDetected: a client whose host goes silent (no FIN, no RST:
// its packets just stop) is found by the server's keepalive and its
// subscription removed, within keepalive time + timeout.
func TestDeadClientDetected(t *testing.T) {
	st := testenv.StartStack(t, func(_ *ingest.Config, sc *subscribe.Config) {
		sc.KeepaliveTime, sc.KeepalivePing = time.Second, time.Second
	})
	proxy := testenv.NewProxy(t, st.Subscribe.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rawSubscribe(t, ctx, proxy.Addr, &chatv1.SubscribeRequest{Room: "ghost"})
	hub := st.Subscribe.Subscribe.Hub()
	testenv.Eventually(t, "the subscriber registered", func() (bool, error) { return hub.Stats().Subscribers == 1, nil })
	proxy.Freeze()
	start := time.Now()
	testenv.Eventually(t, "dead subscriber removed", func() (bool, error) { return hub.Stats().Subscribers == 0, nil })
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("dead client found after %v; keepalive is 1s + 1s", took)
	}
}

// TestManyStreamsLeaveNoTrace: 200 streams, half of them cut off abruptly
// (their connections dropped) and half cancelled by their clients; the
// hub's registrations and the process's goroutines return to where they
// were.
func TestManyStreamsLeaveNoTrace(t *testing.T) {
	st := testenv.StartStack(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hub := st.Subscribe.Subscribe.Hub()
	sendOK(t, chatv1.NewIngestServiceClient(testenv.Conn(t, st.Ingest.Addr)), "crowd", "warm up")
	// One stream through the same path first: the offset look-ups open
	// Kafka connections that stay for reuse, and they belong in the
	// baseline, not in the count of what the 200 streams left behind.
	earliest := &chatv1.SubscribeRequest_Position{Position: chatv1.StartPosition_START_POSITION_EARLIEST}
	wctx, wcancel := context.WithCancel(ctx)
	rawSubscribe(t, wctx, st.Subscribe.Addr, &chatv1.SubscribeRequest{Room: "crowd-0", Start: earliest})
	testenv.Eventually(t, "warm-up subscriber registered", func() (bool, error) { return hub.Stats().Subscribers == 1, nil })
	wcancel()
	testenv.Eventually(t, "warm-up subscriber gone", func() (bool, error) { return hub.Stats().Subscribers == 0, nil })
	baseline := goroutinesByOrigin()

	proxy := testenv.NewProxy(t, st.Subscribe.Addr)
	var cancels []context.CancelFunc
	var conns []*grpc.ClientConn
	for i := range 200 {
		addr := st.Subscribe.Addr
		if i%2 == 0 {
			addr = proxy.Addr // these are cut off
		}
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
		sctx, scancel := context.WithCancel(ctx)
		cancels = append(cancels, scancel)
		stream, err := chatv1.NewSubscribeServiceClient(conn).Subscribe(sctx, &chatv1.SubscribeRequest{Room: fmt.Sprintf("crowd-%d", i%7), Start: earliest})
		if err == nil {
			_, err = stream.Header()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// Headers go out once the start is fixed; the hub counts the stream
	// a moment later, when it joins the live fan-out.
	testenv.Eventually(t, "200 subscribers registered", func() (bool, error) { return hub.Stats().Subscribers == 200, nil })
	if cut := proxy.CutAll(); cut == 0 {
		t.Fatal("no connection cut")
	}
	for i, c := range cancels {
		if i%2 == 1 {
			c()
		}
	}
	testenv.Eventually(t, "no subscribers left", func() (bool, error) { return hub.Stats().Subscribers == 0, nil })
	for _, c := range cancels {
		c()
	}
	for _, c := range conns {
		c.Close()
	}
	// A few goroutines of slack: the Kafka clients may open or reap a
	// connection of their own at any time.
	deadline := time.Now().Add(testenv.Wait)
	for {
		grown := grownSince(baseline, goroutinesByOrigin())
		if grown.total <= 5 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines more than before the streams, by where they run and who started them:\n%s", grown.total, grown.report)
		}
		<-time.After(20 * time.Millisecond)
	}
}

// goroutinesByOrigin counts the process's goroutines by the function each
// one is in and the function that started it, so a leak names itself.
func goroutinesByOrigin() map[string]int {
	buf := make([]byte, 4<<20)
	dump := string(buf[:runtime.Stack(buf, true)])
	counts := make(map[string]int)
	for _, g := range strings.Split(dump, "\n\n") {
		lines := strings.Split(strings.TrimSpace(g), "\n")
		if len(lines) < 2 {
			continue
		}
		in := funcName(lines[1])
		by := "?"
		for _, l := range lines {
			if rest, ok := strings.CutPrefix(l, "created by "); ok {
				by = funcName(rest)
			}
		}
		counts[in+" <- "+by]++
	}
	return counts
}

// funcName strips the arguments and the "in goroutine N" from a frame line.
func funcName(frame string) string {
	frame, _, _ = strings.Cut(frame, " in goroutine ")
	if i := strings.LastIndex(frame, "("); i > 0 && strings.HasSuffix(frame, ")") {
		frame = frame[:i]
	}
	return frame
}

type growth struct {
	total  int
	report string
}

// grownSince adds up the kinds of goroutine that grew since before and
// names them. Kinds that shrank do not offset the growth: a Kafka client
// reaping an idle connection must not hide a leaked stream.
func grownSince(before, now map[string]int) growth {
	var g growth
	var lines []string
	for k, n := range now {
		if d := n - before[k]; d > 0 {
			g.total += d
			lines = append(lines, fmt.Sprintf("  +%d %s", d, k))
		}
	}
	slices.Sort(lines)
	g.report = strings.Join(lines, "\n")
	return g
}

// TestSubscribeKilledAndRestarted: the subscribe service, running as its
// own process, is SIGKILLed in the middle of a stream and started again;
// the client library resumes from its last token and the reader sees the
// exact sequence.
func TestSubscribeKilledAndRestarted(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the service binary")
	}
	st := testenv.StartStack(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	addr, start := subscribeProcess(t, ctx, st)
	proc := start()
	client := testenv.NewClient(t, st.Ingest.Addr, addr)
	sub, err := client.Subscribe(ctx, "phoenix", chatclient.Earliest)
	if err != nil {
		t.Fatalf("%v\n%s", err, proc.Tail(20))
	}
	defer sub.Close()

	const n = 3000
	senderDone := make(chan error, 1)
	go func() {
		for i := range n {
			if _, err := st.Client.Send(ctx, "phoenix", "alice", fmt.Sprint(i)); err != nil {
				senderDone <- err
				return
			}
		}
		senderDone <- nil
	}()
	var mu sync.Mutex
	var got []string
	for i := range n {
		m, err := sub.Recv()
		if err != nil {
			t.Fatalf("after %d messages: %v", i, err)
		}
		mu.Lock()
		got = append(got, m.GetText())
		mu.Unlock()
		if i == 1000 {
			proc.Kill()
			proc = start()
		}
	}
	if err := <-senderDone; err != nil {
		t.Fatal(err)
	}
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprint(i)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("sequence differs from 0..%d (first difference near %d)", n-1, firstDiff(got, want))
	}
	if sub.Resumes() == 0 {
		t.Fatal("the stream never broke: the kill did not happen")
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestSlowSubscriberAtVolume: a subscriber that never reads sits next to a
// normal one while 50,000 messages of 1 KB flow. The normal one gets all of
// them in order with low latency, the service's heap stays bounded, and the
// slow one is ended with RESOURCE_EXHAUSTED.
func TestSlowSubscriberAtVolume(t *testing.T) {
	if testing.Short() {
		t.Skip("50,000 messages")
	}
	const n, senders = 50000, 8
	st := testenv.StartStack(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// The service runs as its own process so that its memory can be told
	// apart from the broker's and the clients'.
	addr, start := subscribeProcess(t, ctx, st, "CHAT_WINDOW=2000")
	proc := start()
	slow := stuckSubscriber(t, ctx, addr, "volume")
	client := testenv.NewClient(t, st.Ingest.Addr, addr)
	normal, err := client.Subscribe(ctx, "volume", chatclient.Latest)
	if err != nil {
		t.Fatal(err)
	}
	defer normal.Close()
	before, err := proc.RSS()
	if err != nil {
		t.Fatal(err)
	}

	pad := strings.Repeat("x", 1000)
	var sentAt sync.Map // text -> time of Send
	errs := make(chan error, senders)
	for w := range senders {
		go func() {
			for i := range n / senders {
				text := fmt.Sprintf("%d-%d %s", w, i, pad)
				sentAt.Store(text[:strings.IndexByte(text, ' ')], time.Now())
				if _, err := st.Client.Send(ctx, "volume", "alice", text); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	next := map[string]int{}
	var latencies []time.Duration
	var peak int64
	for i := range n {
		m, err := normal.Recv()
		if err != nil {
			t.Fatalf("normal subscriber after %d: %v", i, err)
		}
		id, _, _ := strings.Cut(m.GetText(), " ")
		if at, ok := sentAt.Load(id); ok {
			latencies = append(latencies, time.Since(at.(time.Time)))
		}
		w, num, _ := strings.Cut(id, "-")
		if fmt.Sprint(next[w]) != num {
			t.Fatalf("sender %s: got %s, want %d", w, num, next[w])
		}
		next[w]++
		if i%2000 == 0 {
			rss, err := proc.RSS()
			if err != nil {
				t.Fatal(err)
			}
			peak = max(peak, rss)
		}
	}
	for range senders {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if normal.Resumes() != 0 {
		t.Fatalf("the normal subscriber was interrupted %d times", normal.Resumes())
	}
	slices.Sort(latencies)
	p99 := latencies[len(latencies)*99/100]
	t.Logf("normal subscriber: %d messages, send-to-receive p50 %v p99 %v; subscribe RSS %d MiB before, peak %d MiB",
		n, latencies[len(latencies)/2], p99, before>>20, peak>>20)
	// Bounds generous enough for -race on 2 busy cores; what they catch is
	// a consumer held up by the slow stream (seconds), or the service
	// keeping the stream's backlog (the traffic is 50 MB).
	if p99 > time.Second {
		t.Errorf("p99 latency %v next to a stuck subscriber", p99)
	}
	if grown := peak - before; grown > 40<<20 {
		t.Errorf("subscribe RSS grew by %d MiB while a subscriber was stuck", grown>>20)
	}
	for {
		if _, err := slow.Recv(); err != nil {
			if status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("slow stream ended with %v, want ResourceExhausted", err)
			}
			break
		}
	}
}

// subscribeProcess builds the subscribe binary and returns a free address
// and a function that starts the service there as its own process, on the
// stack's broker and topic, waiting until it is SERVING.
func subscribeProcess(t *testing.T, ctx context.Context, st *testenv.Stack, env ...string) (string, func() *procs.Proc) {
	t.Helper()
	dir := t.TempDir()
	if err := procs.Build(ctx, dir, "./services/subscribe"); err != nil {
		t.Fatal(err)
	}
	addr := freeLoopback(t)
	env = append(env, "KAFKA_BROKERS="+st.Broker.Addrs, "CHAT_TOPIC="+st.Topic, "CHAT_LISTEN_ADDR="+addr)
	return addr, func() *procs.Proc {
		p, err := procs.Start("subscribe", filepath.Join(dir, "subscribe"), dir, env, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Stop(5 * time.Second) })
		conn := testenv.Conn(t, addr)
		testenv.Eventually(t, "subscribe process SERVING", func() (bool, error) {
			select {
			case <-p.Done():
				return false, fmt.Errorf("exited: %v\n%s", p.Err(), p.Tail(20))
			default:
			}
			st, err := testenv.HealthStatus(ctx, conn)
			return err == nil && st == healthpb.HealthCheckResponse_SERVING, nil
		})
		return p
	}
}
