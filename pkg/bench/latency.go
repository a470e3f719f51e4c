package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kafkachat/kafkachat/pkg/chatclient"
	"github.com/kafkachat/kafkachat/pkg/kafka"
)

// scenarioLatency: Send start to receipt by a subscriber, at fixed rates,
// against raw franz-go produce-to-consume on the same broker.
func scenarioLatency(ctx context.Context, e *env, o Options) (Result, error) {
	res := Result{Scenario: "2. End-to-end latency", Broker: e.name,
		Setup:    fmt.Sprintf("Open loop at 1,000 and 5,000 msg/s for %v each: each message is sent in its own goroutine at its due time (Send through the ingest service), and the time from the start of its Send to its receipt by a subscriber of the room (through the subscribe service) is recorded. One room. The ingest and subscribe services run as their own processes (the built binaries), so does the broker (kfake in the devkafka binary, or the real Kafka); the sender and the subscriber are in the benchmark process.", o.Duration),
		Baseline: "raw franz-go on the same broker, from the benchmark process: a producer (acks=all, idempotent, no linger) and a consumer reading the partition, the time from Produce to receipt."}
	d, err := e.deployed(ctx)
	if err != nil {
		return res, err
	}
	defer d.cleanup()
	client, err := chatclient.New(d.ingestAddr, d.subAddr)
	if err != nil {
		return res, err
	}
	defer client.Close()
	for _, rate := range []int{1000, 5000} {
		var base, ours latencyRun
		if err := machineBusy(&base.busy, func() (err error) {
			base.total, err = rawLatency(ctx, e, d.brokers, d.topic, rate, o)
			return err
		}); err != nil {
			return res, err
		}
		if err := machineBusy(&ours.busy, func() (err error) {
			ingestProfiled := e.profileCPU(ctx, o, d.ingestPprof, fmt.Sprintf("latency-%d-ingest", rate), o.Duration)
			subProfiled := e.profileCPU(ctx, o, d.subPprof, fmt.Sprintf("latency-%d-subscribe", rate), o.Duration)
			ours, err = chatLatency(ctx, client, rate, o)
			return errors.Join(err, ingestProfiled(), subProfiled())
		}); err != nil {
			return res, err
		}
		os, bs := ours.total.Summary(), base.total.Summary()
		in, out := ours.toIngest.Summary(), ours.fromIngest.Summary() // ours, split
		limit := 1.5*bs.P99 + 1
		res.Figures = append(res.Figures,
			fig(fmt.Sprintf("p50 at %d msg/s", rate), "ms", os.P50, bs.P50),
			fig(fmt.Sprintf("p99 at %d msg/s", rate), "ms", os.P99, bs.P99).target(fmt.Sprintf("<= 1.5x raw + 1 ms (%.3g ms)", limit), os.P99 <= limit),
			fig(fmt.Sprintf("p99.9 at %d msg/s", rate), "ms", os.P999, bs.P999),
			fig(fmt.Sprintf("  of which Send start to the ingest service's stamp, p99 at %d msg/s", rate), "ms", in.P99, 0),
			fig(fmt.Sprintf("  of which the stamp to receipt (produce, fetch, fan-out), p99 at %d msg/s", rate), "ms", out.P99, 0),
			fig(fmt.Sprintf("machine CPU busy at %d msg/s (both cores)", rate), "%", 100*ours.busy, 100*base.busy),
			fig(fmt.Sprintf("received at %d msg/s", rate), "msgs", float64(os.Count), float64(bs.Count)),
		)
	}
	return res, nil
}

// latencyRun is one latency measurement: Send (or Produce) to receipt,
// for ours split at the ingest service's server_time stamp (same machine,
// same clock), and the machine's busy share meanwhile.
type latencyRun struct {
	total, toIngest, fromIngest *Latencies
	busy                        float64
}

// machineBusy runs fn and stores the machine's busy share (0-1) meanwhile.
func machineBusy(busy *float64, fn func() error) error {
	before, err := sampleCPU(0)
	if err != nil {
		return err
	}
	if err := fn(); err != nil {
		return err
	}
	after, err := sampleCPU(0)
	if err != nil {
		return err
	}
	*busy, _ = cpuUse(before, after)
	return nil
}

// chatLatency measures Send-to-receipt through the services.
func chatLatency(ctx context.Context, client *chatclient.Client, rate int, o Options) (latencyRun, error) {
	room := fmt.Sprintf("latency-%d", rate)
	run := latencyRun{toIngest: &Latencies{}, fromIngest: &Latencies{}}
	sub, err := client.Subscribe(ctx, room, chatclient.Latest)
	if err != nil {
		return run, err
	}
	defer sub.Close()
	var starts sync.Map
	lat := &Latencies{}
	total := rate * int(o.Duration/time.Second)
	got := make(chan error, 1)
	go func() {
		for range total {
			m, err := sub.Recv()
			if err != nil {
				got <- err
				return
			}
			if t0, ok := starts.Load(m.GetText()); ok {
				now, start, stamped := time.Now(), t0.(time.Time), m.GetServerTime().AsTime()
				lat.Add(now.Sub(start))
				run.toIngest.Add(stamped.Sub(start))
				run.fromIngest.Add(now.Sub(stamped))
			}
		}
		got <- nil
	}()
	var sendErr error
	var once sync.Once
	p := startProgressCount(o, fmt.Sprintf("Send->receive at %d msg/s", rate), lat)
	openLoop(ctx, rate, o.Duration, func(i int) {
		id := strconv.Itoa(i)
		starts.Store(id, time.Now())
		if _, err := client.Send(ctx, room, "bench", id); err != nil {
			once.Do(func() { sendErr = err })
		}
	})
	if sendErr != nil {
		p.end()
		return run, sendErr
	}
	run.total, err = awaitReceived(got, p, lat, total)
	return run, err
}

// rawLatency measures Produce-to-receipt with plain franz-go clients.
func rawLatency(ctx context.Context, e *env, brokers, topic string, rate int, o Options) (*Latencies, error) {
	key := fmt.Sprintf("raw-%d", rate)
	part := kafka.PartitionFor(key, 3)
	producer, err := e.clientOn(brokers, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kafka.Partitioner()), kgo.ProducerLinger(0))
	if err != nil {
		return nil, err
	}
	// Find the end first, so the consumer starts exactly there.
	warm := &kgo.Record{Key: []byte(key), Value: []byte("warm-up")}
	if err := producer.ProduceSync(ctx, warm).FirstErr(); err != nil {
		return nil, err
	}
	consumer, err := e.clientOn(brokers, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {part: kgo.NewOffset().At(warm.Offset + 1)}}))
	if err != nil {
		return nil, err
	}
	var starts sync.Map
	lat := &Latencies{}
	total := rate * int(o.Duration/time.Second)
	got := make(chan error, 1)
	go func() {
		n := 0
		for n < total {
			fs := consumer.PollFetches(ctx)
			if err := fs.Err0(); err != nil {
				got <- err
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				if t0, ok := starts.Load(string(r.Value)); ok {
					lat.Add(time.Since(t0.(time.Time)))
				}
				n++
			})
		}
		got <- nil
	}()
	p := startProgressCount(o, fmt.Sprintf("raw produce->consume at %d msg/s", rate), lat)
	openLoop(ctx, rate, o.Duration, func(i int) {
		id := strconv.Itoa(i)
		starts.Store(id, time.Now())
		producer.Produce(ctx, &kgo.Record{Key: []byte(key), Value: []byte(id)}, nil)
	})
	return awaitReceived(got, p, lat, total)
}

// awaitReceived waits up to 30 s for the collector to report that all total
// messages arrived, and ends the progress display.
func awaitReceived(got <-chan error, p *progress, lat *Latencies, total int) (*Latencies, error) {
	defer p.end()
	select {
	case err := <-got:
		return lat, err
	case <-time.After(30 * time.Second):
		return lat, fmt.Errorf("only %d of %d messages arrived", lat.Count(), total)
	}
}
