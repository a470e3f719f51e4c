package bench

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"

	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
)

// noopIngest answers Send at once: the gRPC ceiling a Send can approach.
type noopIngest struct {
	chatv1.UnimplementedIngestServiceServer
}

func (noopIngest) Send(context.Context, *chatv1.SendRequest) (*chatv1.SendResponse, error) {
	return &chatv1.SendResponse{}, nil
}

var text200 = strings.Repeat("x", 200)

// sendLoad drives Send on conn from callers goroutines for d.
func sendLoad(ctx context.Context, out io.Writer, name string, conn *grpc.ClientConn, callers int, d time.Duration) (float64, *Latencies, error) {
	client := chatv1.NewIngestServiceClient(conn)
	return closedLoop(ctx, out, name, callers, d, func(ctx context.Context, w, _ int) error {
		_, err := client.Send(ctx, &chatv1.SendRequest{Room: fmt.Sprintf("room-%d", w%8), User: "bench", Text: text200})
		return err
	})
}

// compareSend measures Send on ours and on base, interleaved in four
// halves (base, ours, ours, base) of d each side: this machine's speed
// drifts by 20% and more within a minute, and a drift then weighs on both
// sides alike instead of on whichever ran second.
func compareSend(ctx context.Context, out io.Writer, name string, ours, base *grpc.ClientConn, callers int, d time.Duration) (oursRate, baseRate float64, ol, bl *Latencies, err error) {
	ol, bl = &Latencies{}, &Latencies{}
	for _, run := range []struct {
		conn *grpc.ClientConn
		rate *float64
		lat  *Latencies
		who  string
	}{{base, &baseRate, bl, "no-op "}, {ours, &oursRate, ol, ""}, {ours, &oursRate, ol, ""}, {base, &baseRate, bl, "no-op "}} {
		rate, lat, err := sendLoad(ctx, out, fmt.Sprintf("%s%s, %s", run.who, name, callersLabel(callers)), run.conn, callers, d/2)
		if err != nil {
			return 0, 0, nil, nil, err
		}
		*run.rate += rate / 2 // each side runs twice for d/2: the mean rate
		run.lat.AddAll(lat.d)
	}
	return oursRate, baseRate, ol, bl, nil
}

func callersLabel(n int) string {
	if n == 1 {
		return "1 caller"
	}
	return fmt.Sprintf("%d callers", n)
}

// sendFigures compares one concurrency level with its baseline.
func sendFigures(callers int, ours, base float64, ol, bl *Latencies, target bool) []Figure {
	rate := fig("Send/s, "+callersLabel(callers), "msg/s", ours, base)
	if target {
		rate = rate.target(">= 0.7x no-op", rate.Ratio >= 0.7)
	}
	os, bs := ol.Summary(), bl.Summary()
	return []Figure{
		rate,
		fig("p50, "+callersLabel(callers), "ms", os.P50, bs.P50),
		fig("p99, "+callersLabel(callers), "ms", os.P99, bs.P99),
		fig("p99.9, "+callersLabel(callers), "ms", os.P999, bs.P999),
	}
}

func scenarioSend(ctx context.Context, e *env, o Options) (Result, error) {
	res := Result{Scenario: "1. Send throughput", Broker: e.name,
		Setup:    fmt.Sprintf("Closed loop: 1, 16 and 64 callers sharing one connection, each sending 200-byte messages to one of 8 rooms as fast as answers come, %v each. Client, ingest service and broker in one process, over loopback TCP; topic of 3 partitions; no subscribe service running (its consumer would compete for the same 2 cores; scenario 2 measures the whole path).", o.Duration),
		Baseline: "the same load generator against a no-op Send handler behind the same gRPC server plumbing (interceptors, health, keepalive), in the same process. The two are interleaved: baseline, ours, ours, baseline, each for half the time."}
	st, err := e.ingestOnly(ctx)
	if err != nil {
		return res, err
	}
	noopAddr, err := e.serveGRPC(func(s *grpc.Server) { chatv1.RegisterIngestServiceServer(s, noopIngest{}) })
	if err != nil {
		return res, err
	}
	conn, err := dial(st.ingestAddr)
	if err != nil {
		return res, err
	}
	defer conn.Close()
	noop, err := dial(noopAddr)
	if err != nil {
		return res, err
	}
	defer noop.Close()
	for _, c := range []int{1, 16, 64} {
		ours, base, ol, bl, err := compareSend(ctx, o.Progress, "Send", conn, noop, c, o.Duration)
		if err != nil {
			return res, err
		}
		res.Figures = append(res.Figures, sendFigures(c, ours, base, ol, bl, c == 64)...)
	}
	return res, nil
}
