// Package ingest is the ingest service: Send validates a chat message,
// stamps the server time and returns once Kafka has acknowledged the record.
package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/kafkachat/kafkachat/pkg/app"
	"github.com/kafkachat/kafkachat/pkg/config"
	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
	"github.com/kafkachat/kafkachat/pkg/grpcserver"
	"github.com/kafkachat/kafkachat/pkg/kafka"
	"github.com/kafkachat/kafkachat/pkg/message"
	"github.com/kafkachat/kafkachat/pkg/record"
)

// Config is the ingest service's configuration.
type Config struct {
	app.ServiceConfig
	Partitions   int
	Replication  int
	MaxTextBytes int
	SendTimeout  time.Duration
}

// DefaultListen is the ingest service's default address.
const DefaultListen = ":8081"

// Register adds the ingest-specific settings.
func (c *Config) Register(s *config.Set) {
	s.Int(&c.Partitions, "partitions", "CHAT_TOPIC_PARTITIONS", 3, "partitions of the topic when the service creates it")
	s.Int(&c.Replication, "replication", "CHAT_TOPIC_REPLICATION", 1, "replication factor of the topic when the service creates it")
	s.Int(&c.MaxTextBytes, "max-text-bytes", "CHAT_MAX_TEXT_BYTES", message.DefaultMaxTextBytes,
		fmt.Sprintf("largest message text accepted, in bytes (at most %d)", message.MaxAllowedTextBytes))
	s.Duration(&c.SendTimeout, "send-timeout", "CHAT_SEND_TIMEOUT", 10*time.Second,
		"longest a Send waits for Kafka's acknowledgement when the caller set no shorter deadline")
}

// Check validates the ingest-specific settings.
func (c *Config) Check() error {
	switch {
	case c.Partitions < 1 || c.Partitions > 10000:
		return fmt.Errorf("CHAT_TOPIC_PARTITIONS must be 1-10000, got %d", c.Partitions)
	case c.Replication < 1 || c.Replication > 32767:
		return fmt.Errorf("CHAT_TOPIC_REPLICATION must be at least 1, got %d", c.Replication)
	case c.MaxTextBytes < 1 || c.MaxTextBytes > message.MaxAllowedTextBytes:
		return fmt.Errorf("CHAT_MAX_TEXT_BYTES must be 1-%d, got %d", message.MaxAllowedTextBytes, c.MaxTextBytes)
	case c.SendTimeout <= 0:
		return fmt.Errorf("CHAT_SEND_TIMEOUT must be positive, got %v", c.SendTimeout)
	}
	return nil
}

// Main parses args and the environment and runs the service until ctx ends.
func Main(ctx context.Context, args []string) error {
	// Sends allocate while the live heap stays small: see DefaultGCPercent.
	// On the Send benchmark across processes (make bench, scenario 6; five
	// runs each, alternated) the ingest process spent 31.5 µs of CPU per
	// Send on average against 40.1 µs with GOGC=100, and reached 0.67x of
	// the no-op handler's rate against 0.58x. While Kafka stalls, up to
	// maxWaitingSends records wait in memory, and the heap may grow to five
	// times theirs (in a container, DefaultGCPercent caps it below the limit).
	app.DefaultGCPercent(400)
	var cfg Config
	return app.RunService(ctx, "ingest", DefaultListen, args, &cfg.ServiceConfig, cfg.Register, cfg.Check,
		func(ctx context.Context, lis net.Listener, logger *slog.Logger) error {
			return Run(ctx, cfg, lis, logger)
		})
}

// sendWorkers is how many goroutines serve Sends with stacks kept grown.
const sendWorkers = 128

// Run serves the ingest service on lis until ctx ends or the topic cannot be
// set up. It creates the topic in the background: until the topic is ready,
// health reports NOT_SERVING and Send answers UNAVAILABLE.
func Run(ctx context.Context, cfg Config, lis net.Listener, logger *slog.Logger) error {
	producer, err := newProducer(cfg, logger)
	if err != nil {
		lis.Close()
		return err
	}
	svc := newService(cfg, producer, logger)

	// Each Send otherwise runs on a fresh goroutine whose stack grows
	// through gRPC, protobuf and franz-go on every call: runtime.newstack
	// was 9% of the service's CPU at 5,000 Sends/s. Workers keep their
	// grown stacks. A worker is held while its Send waits for Kafka, so
	// there are as many as the concurrent Sends worth serving this way;
	// beyond that gRPC starts a goroutine per Send as usual.
	srv := grpcserver.New(logger, cfg.Keepalive(), grpc.NumStreamWorkers(sendWorkers))
	chatv1.RegisterIngestServiceServer(srv.GRPC, svc)

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		spec := kafka.TopicSpec{Name: cfg.Topic, Partitions: int32(cfg.Partitions), ReplicationFactor: int16(cfg.Replication)}
		info, err := kafka.EnsureTopic(ctx, kadm.NewClient(producer), spec, logger)
		if err != nil {
			cancel(fmt.Errorf("setting up topic: %w", err))
			return
		}
		svc.ready.Store(true)
		srv.SetServing(chatv1.IngestService_ServiceDesc.ServiceName)
		logger.Info("ready", "topic", info.Name, "partitions", info.Partitions)
	}()

	// CHAT_SHUTDOWN_TIMEOUT bounds the whole shutdown, flush included: a
	// supervisor kills the process soon after it.
	var stopping atomic.Pointer[time.Time]
	context.AfterFunc(ctx, func() { now := time.Now(); stopping.Store(&now) })
	serveErr := srv.Serve(ctx, lis, cfg.ShutdownTimeout, nil)

	// Every Send has returned by now, and every one answered OK is stored:
	// what is left in the producer belongs to Sends that were told their
	// message may or may not be stored. Flush it while time remains.
	began := time.Now()
	if t := stopping.Load(); t != nil {
		began = *t
	}
	flushCtx, flushCancel := context.WithDeadline(context.Background(), began.Add(cfg.ShutdownTimeout))
	if err := producer.Flush(flushCtx); err != nil {
		logger.Warn("shutdown timeout reached before the producer flushed: records of unanswered Sends dropped",
			"buffered", producer.BufferedProduceRecords(), "err", err)
	}
	flushCancel()
	producer.Close()

	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	if serveErr != nil {
		return serveErr
	}
	logger.Info("stopped")
	return nil
}

// newProducer is the service's Kafka client: idempotent (franz-go's
// default), acks from all in-sync replicas, and records failed by franz-go
// itself no sooner than cfg.SendTimeout (and only when that is safe).
func newProducer(cfg Config, logger *slog.Logger) (*kgo.Client, error) {
	producer, err := kgo.NewClient(append(kafka.ClientOpts(kafka.SplitBrokers(cfg.Brokers), logger),
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RecordPartitioner(kafka.Partitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// A Send waits for its own record: lingering would only add latency.
		// Concurrent Sends are still batched while a request is in flight.
		kgo.ProducerLinger(0),
		kgo.RecordDeliveryTimeout(cfg.SendTimeout),
		kgo.MaxBufferedRecords(maxWaitingSends),
	)...)
	if err != nil {
		return nil, fmt.Errorf("creating Kafka producer: %w", err)
	}
	return producer, nil
}

// maxWaitingSends is how many records may wait to be written to Kafka at
// once (those of Sends still waiting and those whose callers gave up);
// more Sends are refused with UNAVAILABLE at once rather than queued
// behind a broker that does not keep up.
const maxWaitingSends = 10_000

func newService(cfg Config, producer *kgo.Client, logger *slog.Logger) *Service {
	return &Service{producer: producer, topic: cfg.Topic, limits: message.Limits{MaxTextBytes: cfg.MaxTextBytes},
		sendTimeout: cfg.SendTimeout, logger: logger, now: time.Now}
}

// Service implements chat.v1.IngestService.
type Service struct {
	chatv1.UnimplementedIngestServiceServer

	producer    *kgo.Client
	topic       string
	limits      message.Limits
	sendTimeout time.Duration
	ready       atomic.Bool
	logger      *slog.Logger
	now         func() time.Time
}

var _ chatv1.IngestServiceServer = (*Service)(nil)

// Send implements chat.v1.IngestService.Send.
func (s *Service) Send(ctx context.Context, req *chatv1.SendRequest) (*chatv1.SendResponse, error) {
	if err := message.ValidateSend(req, s.limits); err != nil {
		return nil, invalidArgument(err)
	}
	if !s.ready.Load() {
		return nil, status.Error(codes.Unavailable, "ingest service is starting: the Kafka topic is not ready yet")
	}
	id := req.GetClientMessageId()
	if id == "" {
		id = randomID()
	}
	msg := &chatv1.ChatMessage{
		ClientMessageId: id,
		Room:            req.GetRoom(),
		User:            req.GetUser(),
		Text:            req.GetText(),
		ServerTime:      timestamppb.New(s.now().UTC()),
	}
	pos, err := s.produce(ctx, msg)
	if err != nil {
		return nil, sendStatus(ctx, err)
	}
	msg.Position = pos
	return &chatv1.SendResponse{Message: msg}, nil
}

// produce writes msg and waits for Kafka's acknowledgement, at most
// sendTimeout. The wait is abandoned rather than bounded inside franz-go:
// its idempotent producer keeps retrying a batch it cannot prove failed
// (so that no retry can reorder or duplicate it), whatever the context
// says, and a Send must not hang with it.
//
// The record itself is not tied to the caller's context: franz-go fails a
// whole batch when its first record's context ends, so one caller giving
// up would fail the Sends of everyone else in the same batch. A record
// whose caller left is written all the same (the caller was told it may
// be), or failed by franz-go once failing it is safe (after
// RecordDeliveryTimeout; a batch already sent to a broker that never
// answered waits for that broker). context.Background, not
// context.WithoutCancel: a buffered record must not keep the caller's
// gRPC stream reachable.
func (s *Service) produce(ctx context.Context, msg *chatv1.ChatMessage) (*chatv1.Position, error) {
	if err := ctx.Err(); err != nil { // nobody waits for it any more
		return nil, fmt.Errorf("before producing: %w", context.Cause(ctx))
	}
	rec, err := record.Encode(s.topic, msg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.sendTimeout)
	defer cancel()
	acked := make(chan error, 1)
	// TryProduce, not Produce: with a context that does not end, Produce
	// would block while the buffer is full.
	s.producer.TryProduce(context.Background(), rec, func(_ *kgo.Record, err error) { acked <- err })
	select {
	case err := <-acked:
		if err != nil {
			return nil, fmt.Errorf("producing to %s: %w", s.topic, err)
		}
		return &chatv1.Position{Partition: rec.Partition, Offset: rec.Offset}, nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.Canceled) {
			return nil, fmt.Errorf("waiting for Kafka to acknowledge: %w", context.Cause(ctx))
		}
		return nil, fmt.Errorf("waiting for Kafka to acknowledge: %w", errAckTimeout)
	}
}

// errAckTimeout means the wait for an acknowledgement was abandoned: the
// record may still be written.
var errAckTimeout = errors.New("no acknowledgement in time")

// sendStatus converts a produce failure into the status the caller sees.
// UNAVAILABLE means Kafka refused or failed the write: nothing was stored
// and a retry is safe. When the wait was cut short instead (the caller's
// deadline, CHAT_SEND_TIMEOUT, cancellation), the record may still be
// stored, and the status says so.
func sendStatus(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, kgo.ErrMaxBuffered):
		return status.Errorf(codes.Unavailable, "%d messages already wait to be written to Kafka; retry later (the message is not stored)", maxWaitingSends)
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled):
		return status.Errorf(codes.Canceled, "call cancelled before Kafka acknowledged the message (it may still be stored): %v", err)
	case ctx.Err() != nil || errors.Is(err, errAckTimeout) || errors.Is(err, context.DeadlineExceeded):
		return status.Errorf(codes.DeadlineExceeded, "Kafka did not acknowledge the message in time (it may still be stored): %v", err)
	default:
		return status.Errorf(codes.Unavailable, "Kafka did not take the message (it is not stored): %v", err)
	}
}

func invalidArgument(err error) error {
	var fe *message.FieldError
	if !errors.As(err, &fe) {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	st := status.New(codes.InvalidArgument, fe.Error())
	if withDetails, derr := st.WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: fe.Field, Description: fe.Reason}},
	}); derr == nil {
		st = withDetails
	}
	return st.Err()
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}
