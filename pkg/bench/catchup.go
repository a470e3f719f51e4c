package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kafkachat/kafkachat/pkg/chatclient"
	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
	"github.com/kafkachat/kafkachat/pkg/kafka"
	"github.com/kafkachat/kafkachat/pkg/record"
)

// scenarioCatchUp: a subscriber resuming 100,000 messages behind.
func scenarioCatchUp(ctx context.Context, e *env, o Options) (Result, error) {
	const n = 100000
	res := Result{Scenario: "5. Resume catch-up", Broker: e.name,
		Setup:    "A room holds 100,000 messages (200 bytes) written after a subscriber's last token; the subscriber resumes with that token (through the subscribe service, whose in-memory window of 10,000 per partition does not reach back that far, so it reads from Kafka) and the figure is messages per second until it is live again. The subscriber, the services and (with kfake) the broker run in the benchmark process, over loopback TCP.",
		Baseline: "a plain franz-go consumer reading the same 100,000 records from the same offset."}
	st, err := e.stack(ctx, 1024)
	if err != nil {
		return res, err
	}
	client, err := chatclient.New(st.ingestAddr, st.subAddr)
	if err != nil {
		return res, err
	}
	defer client.Close()
	const room = "catchup"
	first, err := client.Send(ctx, room, "bench", "before")
	if err != nil {
		return res, err
	}
	sub, err := client.Subscribe(ctx, room, chatclient.Earliest)
	if err != nil {
		return res, err
	}
	if _, err := sub.Recv(); err != nil {
		return res, err
	}
	token := sub.Token()
	sub.Close()

	producer, err := e.client(kgo.DefaultProduceTopic(st.topic), kgo.RecordPartitioner(kafka.Partitioner()))
	if err != nil {
		return res, err
	}
	var wrote atomic.Int64
	pw := startProgress(o.Progress, "writing 100,000 messages", wrote.Load)
	for i := range n {
		r, err := record.Encode(st.topic, &chatv1.ChatMessage{Room: room, User: "bench", Text: strconv.Itoa(i) + text200[:190], ServerTime: timestamppb.Now()})
		if err != nil {
			return res, err
		}
		producer.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err == nil {
				wrote.Add(1)
			}
		})
	}
	if err := producer.Flush(ctx); err != nil {
		return res, err
	}
	pw.end()
	if wrote.Load() != n {
		return res, fmt.Errorf("wrote %d of %d", wrote.Load(), n)
	}

	// Baseline: raw consumer from the same offset.
	part := first.GetPosition().GetPartition()
	consumer, err := e.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{st.topic: {part: kgo.NewOffset().At(first.GetPosition().GetOffset() + 1)}}))
	if err != nil {
		return res, err
	}
	var rawN atomic.Int64
	pr := startProgress(o.Progress, "raw franz-go catch-up", rawN.Load)
	start := time.Now()
	for rawN.Load() < n {
		fs := consumer.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			return res, err
		}
		rawN.Add(int64(fs.NumRecords()))
	}
	rawRate := float64(n) / time.Since(start).Seconds()
	pr.end()

	var got atomic.Int64
	pc := startProgress(o.Progress, "resume through the subscribe service", got.Load)
	start = time.Now()
	resumed, err := client.Subscribe(ctx, room, chatclient.After(token))
	if err != nil {
		return res, err
	}
	defer resumed.Close()
	for got.Load() < n {
		if _, err := resumed.Recv(); err != nil {
			return res, err
		}
		got.Add(1)
	}
	rate := float64(n) / time.Since(start).Seconds()
	pc.end()
	res.Figures = []Figure{fig("catch-up until live", "msg/s", rate, rawRate)}
	return res, nil
}
