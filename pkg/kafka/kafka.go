// Package kafka holds what both services need from Kafka: client options,
// topic bootstrap and the room-to-partition mapping.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"

	"github.com/kafkachat/kafkachat/pkg/backoff"
)

// DefaultTopic is the topic the chat lives in.
const DefaultTopic = "chat-room"

// SplitBrokers parses a comma-separated broker list.
func SplitBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// ClientOpts are the options every client of ours starts from: the seed
// brokers and franz-go's logs routed to slog.
func ClientOpts(brokers []string, logger *slog.Logger) []kgo.Opt {
	return []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.WithLogger(quietInfo{kslog.New(logger.With("component", "franz-go")), logger}),
		kgo.DialTimeout(5 * time.Second),
	}
}

// quietInfo passes franz-go's info messages (a few per client started,
// and a catch-up reader is a client) only when our log level is debug;
// its warnings and errors always.
type quietInfo struct {
	kgo.Logger
	ours *slog.Logger
}

func (q quietInfo) Level() kgo.LogLevel {
	if q.ours.Enabled(context.Background(), slog.LevelDebug) {
		return q.Logger.Level()
	}
	return min(q.Logger.Level(), kgo.LogLevelWarn)
}

// roomPartitioner hashes keys exactly like Kafka's default partitioner
// (murmur2), so records written by any standard producer land where the
// subscribe service looks for them.
var roomPartitioner = kgo.StickyKeyPartitioner(nil)

// keyHasher is made once: ForTopic seeds a random source each time (for
// records without keys), which cost 4% of the CPU of a busy service when
// done per record. For keyed records its Partition only hashes the key,
// with no state, so one value serves every goroutine.
var keyHasher = roomPartitioner.ForTopic("")

// Partitioner is the partitioner producers of chat records must use.
func Partitioner() kgo.Partitioner { return roomPartitioner }

// PartitionFor is the partition that holds room in a topic of n partitions.
func PartitionFor(room string, n int32) int32 {
	return int32(keyHasher.Partition(&kgo.Record{Key: []byte(room)}, int(n)))
}

// TopicSpec is the topic to create at boot.
type TopicSpec struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
}

// TopicInfo describes a topic that is ready to use.
type TopicInfo struct {
	Name              string
	ID                kadm.TopicID
	Partitions        int32
	ReplicationFactor int16
}

// EnsureTopic creates the topic, treating "already exists" as success (with
// a warning when its partition count differs from the spec), then waits
// until every partition has a leader. While the cluster cannot be reached,
// or answers with a retriable error, it retries with backoff until ctx
// ends; any other error, such as a replication factor larger than the
// cluster, is returned at once.
func EnsureTopic(ctx context.Context, adm *kadm.Client, spec TopicSpec, logger *slog.Logger) (TopicInfo, error) {
	create := func(ctx context.Context) error {
		resp, err := adm.CreateTopic(ctx, spec.Partitions, spec.ReplicationFactor, nil, spec.Name)
		switch {
		case err == nil:
			logger.Info("created topic", "topic", spec.Name, "partitions", spec.Partitions, "replication_factor", spec.ReplicationFactor)
			return nil
		case errors.Is(err, kerr.TopicAlreadyExists):
			logger.Info("topic already exists", "topic", spec.Name)
			return nil
		case resp.Topic != "" && !kerr.IsRetriable(err):
			// The broker answered and refused this topic: retrying will not help.
			detail := ""
			if resp.ErrMessage != "" {
				detail = " (" + resp.ErrMessage + ")"
			}
			return backoff.Permanent(fmt.Errorf("creating topic %q (partitions=%d, replication factor=%d): %w%s",
				spec.Name, spec.Partitions, spec.ReplicationFactor, err, detail))
		default:
			return fmt.Errorf("creating topic %q: %w", spec.Name, err)
		}
	}
	policy := backoff.Policy{Initial: 200 * time.Millisecond, Max: 5 * time.Second}
	if err := backoff.Retry(ctx, policy, create, retryLogger(logger, "creating topic")); err != nil {
		return TopicInfo{}, err
	}
	info, err := WaitTopicReady(ctx, adm, spec.Name, logger)
	if err != nil {
		return TopicInfo{}, err
	}
	if info.Partitions != spec.Partitions || info.ReplicationFactor != spec.ReplicationFactor {
		logger.Warn("the existing topic differs from the configured partitions or replication factor; it is used as it is",
			"topic", spec.Name, "partitions", info.Partitions, "configured_partitions", spec.Partitions,
			"replication_factor", info.ReplicationFactor, "configured_replication_factor", spec.ReplicationFactor)
	}
	return info, nil
}

// WaitTopicReady waits until the topic exists and every partition has a
// leader, retrying with backoff until ctx ends.
func WaitTopicReady(ctx context.Context, adm *kadm.Client, topic string, logger *slog.Logger) (TopicInfo, error) {
	var info TopicInfo
	check := func(ctx context.Context) error {
		details, err := adm.ListTopics(ctx, topic)
		if err != nil {
			return fmt.Errorf("describing topic %q: %w", topic, err)
		}
		d, ok := details[topic]
		switch {
		case !ok:
			return fmt.Errorf("topic %q not in metadata yet", topic)
		case d.Err != nil:
			return fmt.Errorf("topic %q: %w", topic, d.Err)
		case len(d.Partitions) == 0:
			return fmt.Errorf("topic %q has no partitions yet", topic)
		}
		for _, p := range d.Partitions.Sorted() {
			if p.Err != nil || p.Leader < 0 {
				return fmt.Errorf("topic %q partition %d has no leader yet (err: %v)", topic, p.Partition, p.Err)
			}
		}
		info = TopicInfo{Name: topic, ID: d.ID, Partitions: int32(len(d.Partitions)),
			ReplicationFactor: int16(len(d.Partitions[0].Replicas))}
		return nil
	}
	policy := backoff.Policy{Initial: 50 * time.Millisecond, Max: 2 * time.Second}
	if err := backoff.Retry(ctx, policy, check, retryLogger(logger, "waiting for topic")); err != nil {
		return TopicInfo{}, err
	}
	return info, nil
}

func retryLogger(logger *slog.Logger, what string) func(int, error, time.Duration) {
	return func(attempt int, err error, wait time.Duration) {
		level := slog.LevelInfo
		if attempt >= 5 {
			level = slog.LevelWarn
		}
		logger.Log(context.Background(), level, what+": retrying", "attempt", attempt, "wait", wait.Round(time.Millisecond), "err", err)
	}
}
