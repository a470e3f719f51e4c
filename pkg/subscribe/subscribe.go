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
	"sync"

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

// ServerOptions are the subscribe service's gRPC server options beyond
// grpcserver's defaults, tuned for many long idle streams.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		// A subscriber's connection usually carries one request for hours.
		// An HPACK dynamic table would keep that request's headers on the
		// server (and the response's on the client) for the connection's
		// whole life, about 1 KiB of each idle stream, to save bytes on
		// requests that never come.
		grpc.HeaderTableSize(0),
	}
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
	srv := grpcserver.New(logger, cfg.Keepalive(), ServerOptions()...)
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
	rooms, err := roomsOf(req)
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
	if len(rooms) == 1 {
		return followOne(hub, rooms[0], stream)
	}
	return followMany(hub, rooms, stream)
}

// roomStart is one room of a subscription and where it starts.
type roomStart struct {
	room string
	from From
}

// position tracks the resume point of one room of a stream: the position
// before its start, then each message sent.
type position struct {
	room      string
	partition int32
	last      int64
	known     bool
}

// resumeMD is metadata holding each room's resume token (and, for headers,
// partition and start offset), in the order of the request's rooms.
func resumeMD(hub *Hub, ps []*position, header bool) metadata.MD {
	md := metadata.MD{}
	for _, p := range ps {
		if !p.known {
			return nil
		}
		md.Append(message.HeaderResumeToken, hub.Token(p.partition, p.last))
		if header {
			md.Append(message.HeaderPartition, strconv.Itoa(int(p.partition)))
			md.Append(message.HeaderStartOffset, strconv.FormatInt(p.last+1, 10))
		}
	}
	return md
}

// followOne serves a one-room stream on the handler's goroutine, the
// common case, without a hop through another goroutine per message.
func followOne(hub *Hub, rs roomStart, stream grpc.ServerStreamingServer[chatv1.SubscribeResponse]) error {
	pos := &position{room: rs.room}
	defer func() { stream.SetTrailer(resumeMD(hub, []*position{pos}, false)) }()
	registered := func(p int32, offset int64) error {
		pos.partition, pos.last, pos.known = p, offset-1, true
		return stream.SendHeader(resumeMD(hub, []*position{pos}, true))
	}
	send := func(e *entry) error {
		if err := stream.SendMsg(&grpcserver.PreEncoded{Bytes: e.wire}); err != nil {
			return err
		}
		pos.last = e.offset
		return nil
	}
	return hub.Follow(stream.Context(), rs.room, rs.from, registered, send)
}

// followMany serves a multi-room stream: one Follow per room, each in its
// own goroutine and order, funnelled into the one goroutine that may send
// on the stream. The first room to fail ends the whole stream.
func followMany(hub *Hub, rooms []roomStart, stream grpc.ServerStreamingServer[chatv1.SubscribeResponse]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	var mu sync.Mutex // guards positions until headers are sent
	positions := make([]*position, len(rooms))
	byRoom := map[string]*position{}
	for i, rs := range rooms {
		positions[i] = &position{room: rs.room}
		byRoom[rs.room] = positions[i]
	}
	registeredCh := make(chan struct{}, len(rooms))
	out := make(chan *entry)
	errs := make(chan error, len(rooms))
	var wg sync.WaitGroup
	for i, rs := range rooms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- hub.Follow(ctx, rs.room, rs.from,
				func(p int32, offset int64) error {
					mu.Lock()
					positions[i].partition, positions[i].last, positions[i].known = p, offset-1, true
					mu.Unlock()
					registeredCh <- struct{}{}
					return nil
				},
				func(e *entry) error {
					select {
					case out <- e:
						return nil
					case <-ctx.Done():
						return status.FromContextError(ctx.Err()).Err()
					}
				})
		}()
	}
	defer wg.Wait()
	defer cancel()
	for range rooms {
		select {
		case <-registeredCh:
		case err := <-errs:
			return err
		}
	}
	mu.Lock()
	header := resumeMD(hub, positions, true)
	mu.Unlock()
	if err := stream.SendHeader(header); err != nil {
		return err
	}
	defer func() { stream.SetTrailer(resumeMD(hub, positions, false)) }()
	for {
		select {
		case e := <-out:
			if err := stream.SendMsg(&grpcserver.PreEncoded{Bytes: e.wire}); err != nil {
				return err
			}
			byRoom[e.room].last = e.offset
		case err := <-errs:
			return err
		}
	}
}

// MaxLast is the largest history on join a Subscribe may ask for.
const MaxLast = 10000

// MaxRooms is the most rooms one stream may follow.
const MaxRooms = 100

// startSource is what SubscribeRequest and RoomStart have in common.
type startSource interface {
	GetPosition() chatv1.StartPosition
	GetAfter() string
	GetLast() uint32
}

// roomsOf reads the request's rooms and their start positions.
func roomsOf(req *chatv1.SubscribeRequest) ([]roomStart, error) {
	if len(req.GetRooms()) == 0 {
		if err := message.ValidateRoom("room", req.GetRoom()); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		from, err := startOf(requestStartKind(req), req, "")
		if err != nil {
			return nil, err
		}
		return []roomStart{{req.GetRoom(), from}}, nil
	}
	if req.GetRoom() != "" || req.GetStart() != nil {
		return nil, status.Error(codes.InvalidArgument, "invalid rooms: give either room (and a start) or rooms, not both")
	}
	if len(req.GetRooms()) > MaxRooms {
		return nil, status.Errorf(codes.InvalidArgument, "invalid rooms: %d rooms, at most %d", len(req.GetRooms()), MaxRooms)
	}
	seen := map[string]bool{}
	var out []roomStart
	for i, rs := range req.GetRooms() {
		field := fmt.Sprintf("rooms[%d].room", i)
		if err := message.ValidateRoom(field, rs.GetRoom()); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		if seen[rs.GetRoom()] {
			return nil, status.Errorf(codes.InvalidArgument, "invalid %s: room %q is named twice", field, rs.GetRoom())
		}
		seen[rs.GetRoom()] = true
		from, err := startOf(roomStartKind(rs), rs, fmt.Sprintf("rooms[%d].", i))
		if err != nil {
			return nil, err
		}
		out = append(out, roomStart{rs.GetRoom(), from})
	}
	return out, nil
}

// startKind is which start field a request set.
type startKind int

const (
	startNone startKind = iota
	startPosition
	startAfter
	startLast
)

func requestStartKind(r *chatv1.SubscribeRequest) startKind {
	switch r.GetStart().(type) {
	case *chatv1.SubscribeRequest_Position:
		return startPosition
	case *chatv1.SubscribeRequest_After:
		return startAfter
	case *chatv1.SubscribeRequest_Last:
		return startLast
	}
	return startNone
}

func roomStartKind(r *chatv1.RoomStart) startKind {
	switch r.GetStart().(type) {
	case *chatv1.RoomStart_Position:
		return startPosition
	case *chatv1.RoomStart_After:
		return startAfter
	case *chatv1.RoomStart_Last:
		return startLast
	}
	return startNone
}

// startOf reads a start position; prefix names the field in errors.
func startOf(kind startKind, src startSource, prefix string) (From, error) {
	switch kind {
	case startAfter:
		t, err := token.Decode(src.GetAfter())
		if err != nil {
			return From{}, status.Errorf(codes.InvalidArgument, "invalid %safter: %v", prefix, err)
		}
		return From{After: &t}, nil
	case startLast:
		if src.GetLast() == 0 || src.GetLast() > MaxLast {
			return From{}, status.Errorf(codes.InvalidArgument, "invalid %slast: want 1-%d, got %d", prefix, MaxLast, src.GetLast())
		}
		return From{Last: int(src.GetLast())}, nil
	}
	switch pos := src.GetPosition(); pos {
	case chatv1.StartPosition_START_POSITION_UNSPECIFIED, chatv1.StartPosition_START_POSITION_LATEST:
		return From{Latest: true}, nil
	case chatv1.StartPosition_START_POSITION_EARLIEST:
		return From{Earliest: true}, nil
	default:
		return From{}, status.Errorf(codes.InvalidArgument, "invalid %sposition: unknown start position %d", prefix, pos)
	}
}
