package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
	"github.com/kafkachat/kafkachat/pkg/message"
)

// bareHub is the fan-out baseline: a gRPC server stream per subscriber fed
// from a channel, no Kafka, no ordering machinery.
type bareHub struct {
	chatv1.UnimplementedSubscribeServiceServer
	mu      sync.Mutex
	streams []chan *chatv1.SubscribeResponse
}

func (b *bareHub) Subscribe(_ *chatv1.SubscribeRequest, stream grpc.ServerStreamingServer[chatv1.SubscribeResponse]) error {
	ch := make(chan *chatv1.SubscribeResponse, 100000)
	b.mu.Lock()
	b.streams = append(b.streams, ch)
	b.mu.Unlock()
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

func (b *bareHub) publish(r *chatv1.SubscribeResponse) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ch := range b.streams {
		ch <- r
	}
}

// receivers are n subscribers, each on its own connection, counting what
// they get and, while timing, the latency encoded in each message's text.
type receivers struct {
	delivered atomic.Int64
	last      atomic.Int64 // unix nanos of the latest delivery
	timing    atomic.Bool
	lat       Latencies
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	conns     []*grpc.ClientConn
}

func startReceivers(ctx context.Context, addr, room string, n int) (*receivers, error) {
	ctx, cancel := context.WithCancel(ctx)
	r := &receivers{cancel: cancel}
	for range n {
		conn, err := dial(addr)
		if err != nil {
			r.stop()
			return nil, err
		}
		r.conns = append(r.conns, conn)
		stream, err := chatv1.NewSubscribeServiceClient(conn).Subscribe(ctx, &chatv1.SubscribeRequest{Room: room})
		if err == nil {
			_, err = stream.Header()
		}
		if err != nil {
			r.stop()
			return nil, fmt.Errorf("subscriber %d: %w", len(r.conns), err)
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for {
				resp, err := stream.Recv()
				if err != nil {
					return
				}
				now := time.Now()
				r.delivered.Add(1)
				r.last.Store(now.UnixNano())
				if r.timing.Load() {
					stamp, _, _ := strings.Cut(resp.GetMessage().GetText(), " ")
					if ns, err := strconv.ParseInt(stamp, 10, 64); err == nil {
						r.lat.Add(now.Sub(time.Unix(0, ns)))
					}
				}
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
	r.wg.Wait()
}

func stampedText() string { return strconv.FormatInt(time.Now().UnixNano(), 10) + " " + text200[:180] }

func scenarioFanout(ctx context.Context, e *env, o Options) (Result, error) {
	const n = 1000
	res := Result{Scenario: "3. Fan-out to 1,000 subscribers", Broker: e.name,
		Setup:    fmt.Sprintf("1,000 subscribers of one room, each on its own gRPC connection (clients with static 1 MiB flow-control windows), everything in one process. First 100 msg/s for %v, then as fast as 16 closed-loop senders go for %v. Latency is from the start of Send to receipt.", o.Duration, o.Duration),
		Baseline: "a bare gRPC server stream per subscriber, fed from a channel, pushing the same number of messages of the same size to the same 1,000 connections, without Kafka."}
	st, err := e.stack(ctx, 100000)
	if err != nil {
		return res, err
	}
	conn, err := dial(st.ingestAddr)
	if err != nil {
		return res, err
	}
	defer conn.Close()
	client := chatv1.NewIngestServiceClient(conn)
	rcv, err := startReceivers(ctx, st.subAddr, "fanout", n)
	if err != nil {
		return res, err
	}
	defer rcv.stop()

	// Phase A: a steady 100 msg/s.
	rcv.timing.Store(true)
	var sentA atomic.Int64
	var sendErr error
	var once sync.Once
	pa := startProgress(o.Progress, "fan-out at 100 msg/s (deliveries)", rcv.delivered.Load)
	openLoop(ctx, 100, o.Duration, func(int) {
		if _, err := client.Send(ctx, &chatv1.SendRequest{Room: "fanout", User: "bench", Text: stampedText()}); err != nil {
			once.Do(func() { sendErr = err })
			return
		}
		sentA.Add(1)
	})
	rcv.waitFor(sentA.Load()*n, 30*time.Second)
	pa.end()
	if sendErr != nil {
		return res, sendErr
	}
	rcv.timing.Store(false)
	deliveredA := rcv.delivered.Load()
	latA := rcv.lat.Summary()

	// Phase B: as fast as it goes.
	startB := time.Now()
	var sentB atomic.Int64
	_, _, err = closedLoop(ctx, o.Progress, "fan-out senders, max rate", 16, o.Duration, func(ctx context.Context, _, _ int) error {
		_, err := client.Send(ctx, &chatv1.SendRequest{Room: "fanout", User: "bench", Text: stampedText()})
		if err == nil {
			sentB.Add(1)
		}
		return err
	})
	if err != nil {
		return res, err
	}
	wantB := deliveredA + sentB.Load()*n
	completeB := rcv.waitFor(wantB, 120*time.Second)
	gotB := rcv.delivered.Load() - deliveredA
	rateB := float64(gotB) / time.Unix(0, rcv.last.Load()).Sub(startB).Seconds()
	evicted := st.sub.Hub().Stats().Evicted
	rcv.stop()

	// Baseline: the bare push of as many messages.
	bare := &bareHub{}
	bareAddr, err := e.serveGRPC(func(s *grpc.Server) { chatv1.RegisterSubscribeServiceServer(s, bare) })
	if err != nil {
		return res, err
	}
	brcv, err := startReceivers(ctx, bareAddr, "fanout", n)
	if err != nil {
		return res, err
	}
	defer brcv.stop()
	pb := startProgress(o.Progress, "bare push, max rate (deliveries)", brcv.delivered.Load)
	startBare := time.Now()
	for range sentB.Load() {
		bare.publish(&chatv1.SubscribeResponse{Message: &chatv1.ChatMessage{Room: "fanout", User: "bench", Text: stampedText(),
			ClientMessageId: "0123456789abcdef0123456789abcdef", ServerTime: timestamppb.Now(), Position: &chatv1.Position{Partition: 1, Offset: 123456}},
			ResumeToken: "AQAAAAAAAAAAAAAAAAAAAAAAAcDEBw"})
	}
	brcv.waitFor(sentB.Load()*n, 120*time.Second)
	pb.end()
	bareRate := float64(brcv.delivered.Load()) / time.Unix(0, brcv.last.Load()).Sub(startBare).Seconds()

	pct := 100 * float64(deliveredA) / float64(sentA.Load()*n)
	res.Figures = []Figure{
		fig("delivered at 100 msg/s", "%", pct, 0).target("100%", pct == 100),
		fig("delivery p50 at 100 msg/s", "ms", latA.P50, 0),
		fig("delivery p99 at 100 msg/s", "ms", latA.P99, 0).target("<= 50 ms", latA.P99 <= 50),
		fig("delivery p99.9 at 100 msg/s", "ms", latA.P999, 0),
		fig("deliveries/s, max rate", "msg/s", rateB, bareRate).target(">= 0.7x bare push", rateB >= 0.7*bareRate),
	}
	res.Details = map[string]any{"sent_max_phase": sentB.Load(), "delivered_max_phase": gotB, "complete": completeB, "evicted": evicted}
	return res, nil
}
