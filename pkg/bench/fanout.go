package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
	"github.com/kafkachat/kafkachat/pkg/message"
	"github.com/kafkachat/kafkachat/pkg/procs"
)

// bareHub is the fan-out baseline: Send pushes the message straight to
// every Subscribe stream, each fed from a channel; no Kafka, no ordering
// machinery, no resume tokens worth the name. It runs in its own process
// (the bench binary with BENCH_SERVE=bare), like the services it is
// compared with.
type bareHub struct {
	chatv1.UnimplementedSubscribeServiceServer
	chatv1.UnimplementedIngestServiceServer
	mu      sync.Mutex
	streams []chan *chatv1.SubscribeResponse
}

func (b *bareHub) Subscribe(_ *chatv1.SubscribeRequest, stream grpc.ServerStreamingServer[chatv1.SubscribeResponse]) error {
	ch := make(chan *chatv1.SubscribeResponse, 100000)
	b.mu.Lock()
	b.streams = append(b.streams, ch)
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.streams = slices.DeleteFunc(b.streams, func(c chan *chatv1.SubscribeResponse) bool { return c == ch })
	}()
	if err := stream.SendHeader(metadata.Pairs(message.HeaderResumeToken, "bare")); err != nil {
		return err
	}
	for {
		select {
		case r := <-ch:
			if err := stream.Send(r); err != nil {
				return err
			}
		case <-stream.Context().Done():
			return nil
		}
	}
}

func (b *bareHub) streamCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.streams)
}

func (b *bareHub) Send(_ context.Context, req *chatv1.SendRequest) (*chatv1.SendResponse, error) {
	msg := &chatv1.ChatMessage{Room: req.GetRoom(), User: req.GetUser(), Text: req.GetText(),
		ClientMessageId: "0123456789abcdef0123456789abcdef", ServerTime: timestamppb.Now(), Position: &chatv1.Position{Partition: 1, Offset: 123456}}
	r := &chatv1.SubscribeResponse{Message: msg, ResumeToken: "AQAAAAAAAAAAAAAAAAAAAAAAAcDEBw"}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ch := range b.streams {
		ch <- r
	}
	return &chatv1.SendResponse{Message: msg}, nil
}

// receivers are n subscribers, spread over a number of connections,
// counting what they get and, while timing, the latency encoded in each
// message's text (read with stampCodec, without decoding the rest).
type receivers struct {
	delivered atomic.Int64
	last      atomic.Int64 // unix nanos of the latest delivery
	timing    atomic.Bool
	lat       Latencies
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	conns     []*grpc.ClientConn
	lean      []*leanStream
}

// got records one message received now.
func (r *receivers) got(st stamp) {
	now := time.Now()
	r.delivered.Add(1)
	r.last.Store(now.UnixNano())
	if st.ok && r.timing.Load() {
		r.lat.Add(now.Sub(time.Unix(0, st.sentNanos)))
	}
}

// startLeanReceivers opens n subscribers of room, each on its own
// connection, with the lean client (see leanStream).
func startLeanReceivers(ctx context.Context, addr, room string, n int) (*receivers, error) {
	ctx, cancel := context.WithCancel(ctx)
	r := &receivers{cancel: cancel}
	for i := range n {
		openCtx, cancelOpen := context.WithTimeout(ctx, 30*time.Second)
		s, err := openLean(openCtx, addr, room)
		cancelOpen()
		if err != nil {
			r.stop()
			return nil, fmt.Errorf("subscriber %d: %w", i, err)
		}
		r.lean = append(r.lean, s)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			_ = s.run(func(b []byte) {
				st, _ := parseStamp(b)
				r.got(st)
			})
		}()
	}
	return r, nil
}

// startReceiversOn opens n subscribers of room on conns connections, as a
// proxy in front of the service would multiplex its clients' streams.
func startReceiversOn(ctx context.Context, addr, room string, n, conns int) (*receivers, error) {
	ctx, cancel := context.WithCancel(ctx)
	r := &receivers{cancel: cancel}
	codec := newStampCodec()
	for i := range n {
		if i < conns {
			conn, err := dial(addr)
			if err != nil {
				r.stop()
				return nil, err
			}
			r.conns = append(r.conns, conn)
		}
		conn := r.conns[i%conns]
		stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, chatv1.SubscribeService_Subscribe_FullMethodName, grpc.ForceCodecV2(codec))
		if err == nil {
			err = stream.SendMsg(&chatv1.SubscribeRequest{Room: room})
		}
		if err == nil {
			err = stream.CloseSend()
		}
		if err == nil {
			_, err = stream.Header()
		}
		if err != nil {
			r.stop()
			return nil, fmt.Errorf("subscriber %d: %w", i, err)
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for {
				var st stamp
				if err := stream.RecvMsg(&st); err != nil {
					return
				}
				r.got(st)
			}
		}()
	}
	return r, nil
}

// waitFor waits until total deliveries reach want, or timeout.
func (r *receivers) waitFor(want int64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for r.delivered.Load() < want {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond) // polling a counter with a deadline
	}
	return true
}

func (r *receivers) stop() {
	r.cancel()
	for _, c := range r.conns {
		c.Close()
	}
	for _, s := range r.lean {
		s.Close()
	}
	r.wg.Wait()
}

func stampedText() string { return stampAt(time.Now().UnixNano()) + " " + text200[:180] }

// stampAt is the stamp a message's text starts with (see parseStamp).
func stampAt(unixNanos int64) string { return strconv.FormatInt(unixNanos, 10) }

// scenarioFanout: one room, 1,000 subscribers, each on its own connection,
// with the broker, both services and the baseline each in a process of its
// own, as deployed. In one process, the Go scheduler would queue every
// stage of a message's path (Send, produce, fetch) behind the thousands of
// goroutines the previous message woke, so the figure would measure the
// harness as much as the service.
func scenarioFanout(ctx context.Context, e *env, o Options) (Result, error) {
	const n = 1000
	res := Result{Scenario: "3. Fan-out to 1,000 subscribers", Broker: e.name,
		Setup: fmt.Sprintf("1,000 subscribers of one room, each on its own gRPC connection (clients with static 1 MiB flow-control windows that read only the send time from each message). "+
			"The ingest and subscribe services run as their own processes (the built binaries), so does the broker (kfake in the devkafka binary, or the real Kafka); the clients and senders are in the benchmark process. "+
			"First 100 msg/s for %v, then as fast as 16 closed-loop senders go for %v. Latency is from the start of Send to receipt.", o.Duration, o.Duration),
		Baseline: "the bare fan-out in its own process: Send pushes the message straight to every Subscribe stream of the same 1,000 connections (a channel per stream), without Kafka; same clients, same load."}
	d, err := e.deployed(ctx)
	if err != nil {
		return res, err
	}
	defer d.cleanup()
	ours, err := fanoutRun(ctx, e, o, fanoutTarget{"chat services", d.ingestAddr, d.subAddr, d.subPprof, d.subProc}, n)
	if err != nil {
		return res, err
	}
	bareProc, bareAddr, barePprof, err := e.profiledProcess(ctx, "bare", d.self, d.dir, ServeEnv+"=bare")
	if err != nil {
		return res, err
	}
	bare, err := fanoutRun(ctx, e, o, fanoutTarget{"bare fan-out", bareAddr, bareAddr, barePprof, bareProc}, n)
	_ = bareProc.Stop(10 * time.Second)
	if err != nil {
		return res, err
	}
	pct := 100 * float64(ours.deliveredA) / float64(ours.sentA*n)
	res.Figures = []Figure{
		fig("delivered at 100 msg/s", "%", pct, 0).target("100%", pct == 100),
		fig("delivery p50 at 100 msg/s", "ms", ours.latA.P50, bare.latA.P50),
		fig("delivery p99 at 100 msg/s", "ms", ours.latA.P99, bare.latA.P99).target("<= 50 ms", ours.latA.P99 <= 50),
		fig("delivery p99.9 at 100 msg/s", "ms", ours.latA.P999, bare.latA.P999),
		fig("machine CPU busy at 100 msg/s (both cores)", "%", 100*ours.busyA, 100*bare.busyA),
		fig("fan-out process CPU per delivery at 100 msg/s", "µs", ours.cpuPerDeliveryA, bare.cpuPerDeliveryA),
		fig("deliveries/s, max rate", "msg/s", ours.rateB, bare.rateB).target(">= 0.7x bare push", ours.rateB >= 0.7*bare.rateB),
	}
	res.Details = map[string]any{"sent_max_phase": ours.sentB, "delivered_max_phase": ours.gotB, "complete": ours.completeB,
		"bare_sent_max_phase": bare.sentB, "bare_complete": bare.completeB}
	return res, nil
}

// fanoutOutcome is one fan-out run's figures.
type fanoutOutcome struct {
	sentA, deliveredA int64
	latA              Summary
	sentB, gotB       int64
	rateB             float64
	completeB         bool
	// The machine's busy share and the fan-out process's CPU time per
	// delivery (µs) during phase A.
	busyA, cpuPerDeliveryA float64
}

// fanoutTarget is what a fan-out run sends to and receives from: the
// process serving subAddr does the fan-out, and serves pprof on pprof.
type fanoutTarget struct {
	name, ingestAddr, subAddr, pprof string
	proc                             *procs.Proc
}

// fanoutRun opens n subscribers on t.subAddr, sends 100 msg/s through
// t.ingestAddr for o.Duration and then as fast as 16 senders go. The
// fan-out process is profiled in both phases.
func fanoutRun(ctx context.Context, e *env, o Options, t fanoutTarget, n int64) (fanoutOutcome, error) {
	var out fanoutOutcome
	name := t.name
	conn, err := dial(t.ingestAddr)
	if err != nil {
		return out, err
	}
	defer conn.Close()
	client := chatv1.NewIngestServiceClient(conn)
	fmt.Fprintf(o.Progress, "  %s: opening %d streams...\n", name, n)
	rcv, err := startLeanReceivers(ctx, t.subAddr, "fanout", int(n))
	if err != nil {
		return out, err
	}
	defer rcv.stop()

	// Phase A: a steady 100 msg/s.
	rcv.timing.Store(true)
	var sentA atomic.Int64
	var sendErr error
	var once sync.Once
	pa := startProgress(o.Progress, name+", 100 msg/s (deliveries)", rcv.delivered.Load)
	profiled := e.profileCPU(ctx, o, t.pprof, "fanout-"+name+"-100", o.Duration)
	cpuBefore, err := sampleCPU(t.proc.Pid())
	if err != nil {
		return out, err
	}
	openLoop(ctx, 100, o.Duration, func(int) {
		if _, err := client.Send(ctx, &chatv1.SendRequest{Room: "fanout", User: "bench", Text: stampedText()}); err != nil {
			once.Do(func() { sendErr = err })
			return
		}
		sentA.Add(1)
	})
	rcv.waitFor(sentA.Load()*n, 30*time.Second)
	pa.end()
	cpuAfter, err := sampleCPU(t.proc.Pid())
	if err != nil {
		return out, err
	}
	busy, procSecs := cpuUse(cpuBefore, cpuAfter)
	out.busyA = busy
	out.cpuPerDeliveryA = perCall(procSecs, float64(rcv.delivered.Load()))
	if err := profiled(); err != nil {
		return out, err
	}
	if sendErr != nil {
		return out, sendErr
	}
	rcv.timing.Store(false)
	out.sentA, out.deliveredA, out.latA = sentA.Load(), rcv.delivered.Load(), rcv.lat.Summary()

	// Phase B: as fast as it goes.
	startB := time.Now()
	var sentB atomic.Int64
	profiled = e.profileCPU(ctx, o, t.pprof, "fanout-"+name+"-max", o.Duration)
	_, _, err = closedLoop(ctx, o.Progress, name+", senders at max rate", 16, o.Duration, func(ctx context.Context, _, _ int) error {
		_, err := client.Send(ctx, &chatv1.SendRequest{Room: "fanout", User: "bench", Text: stampedText()})
		if err == nil {
			sentB.Add(1)
		}
		return err
	})
	if err := errors.Join(err, profiled()); err != nil {
		return out, err
	}
	out.sentB = sentB.Load()
	out.completeB = rcv.waitFor(out.deliveredA+out.sentB*n, 120*time.Second)
	out.gotB = rcv.delivered.Load() - out.deliveredA
	out.rateB = float64(out.gotB) / time.Unix(0, rcv.last.Load()).Sub(startB).Seconds()
	return out, nil
}
