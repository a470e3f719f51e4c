// Package subscribe is the subscribe service: one Kafka consumer whose
// records are streamed, in offset order, to any number of Subscribe calls.
package subscribe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kafkachat/kafkachat/pkg/app"
	"github.com/kafkachat/kafkachat/pkg/config"
	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
	"github.com/kafkachat/kafkachat/pkg/grpcserver"
	"github.com/kafkachat/kafkachat/pkg/kafka"
	"github.com/kafkachat/kafkachat/pkg/message"
	"github.com/kafkachat/kafkachat/pkg/token"
)

// DefaultListen is the subscribe service's default address.
const DefaultListen = ":8082"

// Config is the subscribe service's configuration.
type Config struct {
	app.ServiceConfig
	Window   int
	QueueLen int
}

// Register adds the subscribe-specific settings.
func (c *Config) Register(s *config.Set) {
	s.Int(&c.Window, "window", "CHAT_WINDOW", 10000,
		"recent messages kept in memory per partition; older starts are read back from Kafka")
	s.Int(&c.QueueLen, "queue", "CHAT_SUBSCRIBER_QUEUE", 1024,
		"messages a subscriber may have waiting before it is ended as too slow")
}

// Check validates the subscribe-specific settings.
func (c *Config) Check() error {
	switch {
	case c.Window < 0:
		return fmt.Errorf("CHAT_WINDOW must not be negative, got %d", c.Window)
	case c.QueueLen < 1:
		return fmt.Errorf("CHAT_SUBSCRIBER_QUEUE must be at least 1, got %d", c.QueueLen)
	}
	return nil
}

// Main parses args and the environment and runs the service until ctx ends.
func Main(ctx context.Context, args []string) error {
	var cfg Config
	return app.RunService(ctx, "subscribe", DefaultListen, args, &cfg.ServiceConfig, cfg.Register, cfg.Check,
		func(ctx context.Context, lis net.Listener, logger *slog.Logger) error {
			return Run(ctx, cfg, lis, logger)
		})
}

// Run serves the subscribe service on lis until ctx ends.
func Run(ctx context.Context, cfg Config, lis net.Listener, logger *slog.Logger) error {
	return New(cfg, logger).Run(ctx, lis)
}

// Server is a subscribe service.
type Server struct {
	cfg    Config
	logger *slog.Logger
	svc    *Service
}

// New returns a subscribe service; Run serves it.
func New(cfg Config, logger *slog.Logger) *Server {
	return &Server{cfg: cfg, logger: logger, svc: &Service{hubReady: make(chan struct{})}}
}

// Hub is the service's hub, or nil until the topic has been found.
func (s *Server) Hub() *Hub { return s.svc.getHub() }

// Run serves on lis until ctx ends. Health reports SERVING once the topic
// exists and the consumer has caught up with it.
func (s *Server) Run(ctx context.Context, lis net.Listener) error {
	cfg, logger, svc := s.cfg, s.logger, s.svc
	srv := grpcserver.New(logger, cfg.Keepalive())
	chatv1.RegisterSubscribeServiceServer(srv.GRPC, svc)

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	hubDone := make(chan struct{})
	go func() {
		defer close(hubDone)
		hub, err := NewHub(ctx, HubConfig{Topic: cfg.Topic, Window: cfg.Window, QueueLen: cfg.QueueLen},
			kafka.ClientOpts(kafka.SplitBrokers(cfg.Brokers), logger), logger)
		if err != nil {
			if ctx.Err() == nil {
				cancel(fmt.Errorf("starting the consumer: %w", err))
			}
			return
		}
		svc.hub = hub
		close(svc.hubReady)
		go func() {
			select {
			case <-hub.Ready():
				srv.SetServing(chatv1.SubscribeService_ServiceDesc.ServiceName)
			case <-ctx.Done():
			}
		}()
		if err := hub.Run(ctx); err != nil {
			cancel(fmt.Errorf("consumer: %w", err))
		}
	}()

	serveErr := srv.Serve(ctx, lis, cfg.ShutdownTimeout, func() {
		if hub := svc.getHub(); hub != nil {
			hub.Close()
		}
	})
	cancel(nil)
	<-hubDone
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	if serveErr != nil {
		return serveErr
	}
	logger.Info("stopped")
	return nil
}

// Service implements chat.v1.SubscribeService.
type Service struct {
	chatv1.UnimplementedSubscribeServiceServer
	hubReady chan struct{} // closed once hub is set
	hub      *Hub
}

var _ chatv1.SubscribeServiceServer = (*Service)(nil)

func (s *Service) getHub() *Hub {
	select {
	case <-s.hubReady:
		return s.hub
	default:
		return nil
	}
}

// Subscribe implements chat.v1.SubscribeService.Subscribe.
func (s *Service) Subscribe(req *chatv1.SubscribeRequest, stream grpc.ServerStreamingServer[chatv1.SubscribeResponse]) error {
	if err := message.ValidateRoom("room", req.GetRoom()); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	from, err := startOf(req)
	if err != nil {
		return err
	}
	hub := s.getHub()
	if hub == nil {
		return status.Error(codes.Unavailable, "subscribe service is starting: the Kafka topic is not ready yet")
	}
	select {
	case <-hub.Ready():
	default:
		return status.Error(codes.Unavailable, "subscribe service is starting: the consumer is catching up with Kafka")
	}
	ctx := stream.Context()
	// The resume point the client would need if the stream ended now: the
	// position before the start, then each message sent. It goes out in
	// the headers and again in the trailers, whatever ends the stream.
	var partition int32
	var last int64
	started := false
	defer func() {
		if started {
			stream.SetTrailer(metadata.Pairs(message.HeaderResumeToken, hub.Token(partition, last)))
		}
	}()
	registered := func(p int32, offset int64) error {
		partition, last, started = p, offset-1, true
		return stream.SendHeader(metadata.Pairs(
			message.HeaderPartition, strconv.Itoa(int(p)),
			message.HeaderStartOffset, strconv.FormatInt(offset, 10),
			message.HeaderResumeToken, hub.Token(p, offset-1),
		))
	}
	send := func(r *chatv1.SubscribeResponse) error {
		if err := stream.Send(r); err != nil {
			return err
		}
		last = r.GetMessage().GetPosition().GetOffset()
		return nil
	}
	return hub.Follow(ctx, req.GetRoom(), from, registered, send)
}

// MaxLast is the largest history on join a Subscribe may ask for.
const MaxLast = 10000

// startOf reads the request's start position.
func startOf(req *chatv1.SubscribeRequest) (From, error) {
	switch start := req.GetStart().(type) {
	case nil:
		return From{Latest: true}, nil
	case *chatv1.SubscribeRequest_Position:
		switch start.Position {
		case chatv1.StartPosition_START_POSITION_UNSPECIFIED, chatv1.StartPosition_START_POSITION_LATEST:
			return From{Latest: true}, nil
		case chatv1.StartPosition_START_POSITION_EARLIEST:
			return From{Earliest: true}, nil
		default:
			return From{}, status.Errorf(codes.InvalidArgument, "invalid position: unknown start position %d", start.Position)
		}
	case *chatv1.SubscribeRequest_After:
		t, err := token.Decode(start.After)
		if err != nil {
			return From{}, status.Errorf(codes.InvalidArgument, "invalid after: %v", err)
		}
		return From{After: &t}, nil
	case *chatv1.SubscribeRequest_Last:
		if start.Last == 0 || start.Last > MaxLast {
			return From{}, status.Errorf(codes.InvalidArgument, "invalid last: want 1-%d, got %d", MaxLast, start.Last)
		}
		return From{Last: int(start.Last)}, nil
	default:
		return From{}, status.Errorf(codes.InvalidArgument, "invalid start: unsupported %T", start)
	}
}
