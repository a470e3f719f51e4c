package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kafkachat/kafkachat/pkg/procs"
)

// scenarioMemory: resident memory of the subscribe service per idle
// subscriber, each on its own connection.
func scenarioMemory(ctx context.Context, e *env, o Options) (Result, error) {
	res := Result{Scenario: "4. Memory per idle subscriber", Broker: e.name,
		Setup: "The subscribe service runs as its own process (the built binary). 1,000 and then 10,000 idle Subscribe streams, each on its own gRPC connection from the benchmark process; the figure is the growth of the service's resident memory (RSS) divided by the number of streams, read once the RSS has settled."}
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
		proc, addr, err := e.process(ctx, "subscribe", filepath.Join(dir, "subscribe"), dir, "KAFKA_BROKERS="+e.brokers, "CHAT_TOPIC="+topic)
		if err != nil {
			return res, err
		}
		before, err := settledRSS(proc)
		if err != nil {
			return res, err
		}
		rcv, err := startReceiversProgress(ctx, o, addr, n)
		if err != nil {
			return res, err
		}
		after, err := settledRSS(proc)
		rcv.stop()
		_ = proc.Stop(10 * time.Second)
		if err != nil {
			return res, err
		}
		per := float64(after-before) / float64(n) / 1024
		res.Figures = append(res.Figures,
			fig(fmt.Sprintf("RSS per idle stream, %d streams", n), "KiB", per, 0).target("<= 30 KiB", per <= 30))
		res.Details = map[string]any{fmt.Sprintf("rss_before_%d_MiB", n): before >> 20, fmt.Sprintf("rss_after_%d_MiB", n): after >> 20}
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
