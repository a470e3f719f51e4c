// Command probe checks that a Kafka broker answers real client requests.
//
// It is the readiness check of scripts/kafka/kafka.sh: it sends a Metadata
// request with franz-go's admin client and succeeds (exit 0) when the cluster
// answers with the expected number of brokers. With -roundtrip it also
// creates a topic, waits until the topic has a leader, produces one record,
// consumes it back and deletes the topic, which shows that the broker is
// fully usable (not just listening).
//
//	go run ./scripts/kafka/probe -brokers 127.0.0.1:19092 [-roundtrip]
//
// Exit status: 0 ready, 1 not ready (the reason is printed on stderr),
// 2 bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	defaultBrokers := os.Getenv("KAFKA_BROKERS")
	if defaultBrokers == "" {
		defaultBrokers = "127.0.0.1:19092"
	}
	brokers := flag.String("brokers", defaultBrokers, "comma-separated seed brokers (default $KAFKA_BROKERS or 127.0.0.1:19092)")
	timeout := flag.Duration("timeout", 5*time.Second, "deadline for the whole probe")
	want := flag.Int("expect-brokers", 1, "number of brokers the cluster must report")
	roundtrip := flag.Bool("roundtrip", false, "also create a topic, produce and consume one record, then delete the topic")
	quiet := flag.Bool("q", false, "print nothing on success")
	flag.Parse()
	if flag.NArg() != 0 || *brokers == "" {
		flag.Usage()
		os.Exit(2)
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	msg, err := probe(ctx, splitBrokers(*brokers), *want, *roundtrip)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kafka probe %s: not ready: %v\n", *brokers, err)
		os.Exit(1)
	}
	if !*quiet {
		fmt.Println(msg)
	}
}

func splitBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

func probe(ctx context.Context, seeds []string, want int, roundtrip bool) (string, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.ClientID("kafkachat-probe"),
		kgo.DialTimeout(time.Second),
	)
	if err != nil {
		return "", err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	start := time.Now()
	md, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return "", fmt.Errorf("metadata: %w", err)
	}
	if len(md.Brokers) != want {
		return "", fmt.Errorf("metadata lists %d broker(s) %v, want %d", len(md.Brokers), md.Brokers.NodeIDs(), want)
	}
	msg := fmt.Sprintf("kafka ready: cluster=%s brokers=%v controller=%d metadata=%s",
		md.Cluster, md.Brokers.NodeIDs(), md.Controller, time.Since(start).Round(time.Millisecond))
	if !roundtrip {
		return msg, nil
	}
	rt, err := roundTrip(ctx, seeds, cl, adm)
	if err != nil {
		return "", fmt.Errorf("roundtrip: %w", err)
	}
	return msg + " " + rt, nil
}

// roundTrip creates a one-partition topic, produces one record to it,
// consumes it back and deletes the topic.
func roundTrip(ctx context.Context, seeds []string, cl *kgo.Client, adm *kadm.Client) (string, error) {
	topic := fmt.Sprintf("kafkachat-probe-%d", time.Now().UnixNano())
	t0 := time.Now()
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil {
		return "", fmt.Errorf("create topic %s: %w", topic, err)
	}
	// Always try to delete, even when a later step fails.
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = adm.DeleteTopic(dctx, topic)
	}()

	// Right after CreateTopics the broker may still answer
	// UNKNOWN_TOPIC_OR_PARTITION: wait until the partition has a leader.
	for {
		md, err := adm.Metadata(ctx, topic)
		if err == nil {
			if td, ok := md.Topics[topic]; ok && td.Err == nil {
				if p, ok := td.Partitions[0]; ok && p.Err == nil && p.Leader >= 0 {
					break
				}
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("topic %s has no leader: %w", topic, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	tCreated := time.Now()

	value := []byte(topic)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: value}).FirstErr(); err != nil {
		return "", fmt.Errorf("produce: %w", err)
	}
	tProduced := time.Now()

	cons, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.ClientID("kafkachat-probe"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			topic: {0: kgo.NewOffset().AtStart()},
		}),
	)
	if err != nil {
		return "", err
	}
	defer cons.Close()
	for {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("consume: %w", err)
		}
		var found bool
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = errors.Join(ferr, err) })
		fs.EachRecord(func(r *kgo.Record) { found = found || string(r.Value) == string(value) })
		if found {
			break
		}
		if ferr != nil {
			return "", fmt.Errorf("consume: %w", ferr)
		}
	}
	tConsumed := time.Now()

	if _, err := adm.DeleteTopic(ctx, topic); err != nil {
		return "", fmt.Errorf("delete topic %s: %w", topic, err)
	}
	return fmt.Sprintf("roundtrip: create=%s produce=%s consume=%s delete=%s",
		tCreated.Sub(t0).Round(time.Millisecond),
		tProduced.Sub(tCreated).Round(time.Millisecond),
		tConsumed.Sub(tProduced).Round(time.Millisecond),
		time.Since(tConsumed).Round(time.Millisecond)), nil
}
