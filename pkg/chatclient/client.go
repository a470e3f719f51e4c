// Package chatclient is the Go client of the chat services: Send with
// retries, and Subscribe with the room's messages in order.
package chatclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/kafkachat/kafkachat/pkg/backoff"
	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
	"github.com/kafkachat/kafkachat/pkg/message"
)

// Client talks to the ingest and subscribe services.
type Client struct {
	ingest    chatv1.IngestServiceClient
	subscribe chatv1.SubscribeServiceClient
	conns     []*grpc.ClientConn
	retry     backoff.Policy
	logger    *slog.Logger
}

// Option configures a Client.
type Option func(*Client)

// WithRetry sets the retry policy of Send.
func WithRetry(p backoff.Policy) Option { return func(c *Client) { c.retry = p } }

// WithLogger logs retries to logger.
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.logger = l } }

// clientKeepalive pings a quiet connection every 20 s (the servers allow one
// ping per 10 s) so that a dead server or a cut network is noticed.
var clientKeepalive = keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}

// New connects lazily to the ingest and subscribe addresses (host:port,
// plaintext). The connection is made on first use.
func New(ingestAddr, subscribeAddr string, opts ...Option) (*Client, error) {
	c := &Client{retry: backoff.Default, logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(c)
	}
	dial := func(addr string) (*grpc.ClientConn, error) {
		conn, err := grpc.NewClient(addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithKeepaliveParams(clientKeepalive))
		if err != nil {
			return nil, fmt.Errorf("connecting to %s: %w", addr, err)
		}
		c.conns = append(c.conns, conn)
		return conn, nil
	}
	ic, err := dial(ingestAddr)
	if err != nil {
		return nil, err
	}
	sc, err := dial(subscribeAddr)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.ingest = chatv1.NewIngestServiceClient(ic)
	c.subscribe = chatv1.NewSubscribeServiceClient(sc)
	return c, nil
}

// Close closes the connections.
func (c *Client) Close() error {
	var errs []error
	for _, conn := range c.conns {
		errs = append(errs, conn.Close())
	}
	return errors.Join(errs...)
}

// Send posts a message and returns it as stored. It retries with backoff
// while the ingest service answers UNAVAILABLE (it is restarting, or Kafka
// cannot take the write), reusing one client message id across tries. Any
// other error, or the last UNAVAILABLE, is returned wrapped with the
// number of attempts.
func (c *Client) Send(ctx context.Context, room, user, text string) (*chatv1.ChatMessage, error) {
	req := &chatv1.SendRequest{Room: room, User: user, Text: text, ClientMessageId: NewMessageID()}
	var resp *chatv1.SendResponse
	attempts, err := c.retryUnavailable(ctx, "send", func(ctx context.Context) error {
		var err error
		resp, err = c.ingest.Send(ctx, req)
		return err
	})
	if err != nil {
		return nil, &SendError{Attempts: attempts, Err: err}
	}
	return resp.GetMessage(), nil
}

// retryUnavailable calls fn until it returns anything but UNAVAILABLE, or
// the retry policy is used up, and says how many attempts it made.
func (c *Client) retryUnavailable(ctx context.Context, what string, fn func(context.Context) error) (int, error) {
	attempts := 0
	err := backoff.Retry(ctx, c.retry, func(ctx context.Context) error {
		attempts++
		err := fn(ctx)
		if status.Code(err) == codes.Unavailable {
			return err
		}
		return backoff.Permanent(err)
	}, func(attempt int, err error, wait time.Duration) {
		c.logger.Warn(what+" failed; retrying", "attempt", attempt, "wait", wait.Round(time.Millisecond), "err", status.Convert(err).Message())
	})
	return attempts, err
}

// SendError is a Send that failed for good.
type SendError struct {
	Attempts int
	Err      error
}

func (e *SendError) Error() string {
	st := status.Convert(e.Err)
	return fmt.Sprintf("send failed after %d attempt(s): %s: %s", e.Attempts, st.Code(), st.Message())
}

func (e *SendError) Unwrap() error { return e.Err }

// Start is where a subscription starts.
type Start struct {
	position chatv1.StartPosition
	after    string
	last     uint32
}

var (
	// Latest starts with the next message stored.
	Latest = Start{position: chatv1.StartPosition_START_POSITION_LATEST}
	// Earliest starts with the oldest message Kafka retains.
	Earliest = Start{position: chatv1.StartPosition_START_POSITION_EARLIEST}
)

// After starts right after the message a resume token came with.
func After(token string) Start { return Start{after: token} }

// Last starts with the room's last n messages.
func Last(n uint32) Start { return Start{last: n} }

func (s Start) roomStart(room string) *chatv1.RoomStart {
	rs := &chatv1.RoomStart{Room: room}
	switch {
	case s.after != "":
		rs.Start = &chatv1.RoomStart_After{After: s.after}
	case s.last != 0:
		rs.Start = &chatv1.RoomStart_Last{Last: s.last}
	default:
		rs.Start = &chatv1.RoomStart_Position{Position: s.position}
	}
	return rs
}

func (s Start) request(room string) *chatv1.SubscribeRequest {
	req := &chatv1.SubscribeRequest{Room: room}
	switch {
	case s.after != "":
		req.Start = &chatv1.SubscribeRequest_After{After: s.after}
	case s.last != 0:
		req.Start = &chatv1.SubscribeRequest_Last{Last: s.last}
	default:
		req.Start = &chatv1.SubscribeRequest_Position{Position: s.position}
	}
	return req
}

// RoomStart is one room of a multi-room subscription.
type RoomStart struct {
	Room  string
	Start Start
}

// Subscribe opens a stream of room's messages from start and returns once
// the service has registered it: every message stored from then on will be
// received. While the subscribe service answers UNAVAILABLE (starting,
// restarting) it retries with the client's backoff policy.
//
// The subscription resumes by itself: when the stream breaks (the service
// restarts, the network drops, the service ends it as too slow), Recv
// subscribes again after the last message received, with backoff, so the
// caller sees every message once, in order. Errors that resuming cannot
// cure (the room's history is gone, the topic was recreated) are returned.
func (c *Client) Subscribe(ctx context.Context, room string, start Start) (*Subscription, error) {
	return c.SubscribeRooms(ctx, RoomStart{room, start})
}

// SubscribeRooms follows several rooms on one stream, each from its own
// start and in its own order, resuming like Subscribe.
func (c *Client) SubscribeRooms(ctx context.Context, rooms ...RoomStart) (*Subscription, error) {
	ctx, cancel := context.WithCancel(ctx)
	s := &Subscription{c: c, ctx: ctx, cancel: cancel, tokens: map[string]string{}}
	for _, r := range rooms {
		s.rooms = append(s.rooms, r.Room)
	}
	if err := s.open(rooms); err != nil {
		cancel()
		return nil, fmt.Errorf("subscribing to %q: %w", s.rooms, err)
	}
	return s, nil
}

// Subscription is an open, self-resuming Subscribe stream. Recv and Close
// may be called from different goroutines; Recv from one at a time.
type Subscription struct {
	c      *Client
	ctx    context.Context
	cancel context.CancelFunc
	rooms  []string

	stream  grpc.ServerStreamingClient[chatv1.SubscribeResponse]
	tokens  map[string]string // per room: resume after the last message received
	last    string            // token of the last message received
	resumes int
}

// open subscribes, retrying while the service is UNAVAILABLE.
func (s *Subscription) open(rooms []RoomStart) error {
	_, err := s.c.retryUnavailable(s.ctx, "subscribe", func(ctx context.Context) error {
		return s.openOnce(rooms)
	})
	return err
}

func (s *Subscription) openOnce(rooms []RoomStart) error {
	// One room uses the request's plain form (the one people type in
	// grpcurl); several use the rooms list.
	req := rooms[0].Start.request(rooms[0].Room)
	if len(rooms) > 1 {
		req = &chatv1.SubscribeRequest{}
		for _, r := range rooms {
			req.Rooms = append(req.Rooms, r.Start.roomStart(r.Room))
		}
	}
	stream, err := s.c.subscribe.Subscribe(s.ctx, req)
	if err != nil {
		return err
	}
	// The service sends headers once the subscription is registered, with
	// one resume token per room. A stream refused at once ends with
	// trailers only: its status comes from Recv.
	md, err := stream.Header()
	tokens := md.Get(message.HeaderResumeToken)
	if err == nil && len(tokens) != len(rooms) {
		_, err = stream.Recv()
		if err == nil || errors.Is(err, io.EOF) {
			err = errors.New("the service did not confirm the subscription")
		}
	}
	if err != nil {
		return err
	}
	s.stream = stream
	for i, r := range rooms {
		s.tokens[r.Room] = tokens[i]
	}
	if len(rooms) == 1 {
		s.last = tokens[0]
	}
	return nil
}

// Recv returns the next message. At the end of the stream it returns io.EOF
// (the server ended it cleanly) or the error that resuming could not cure.
func (s *Subscription) Recv() (*chatv1.ChatMessage, error) {
	for {
		resp, err := s.stream.Recv()
		if err == nil {
			s.tokens[resp.GetMessage().GetRoom()] = resp.GetResumeToken()
			s.last = resp.GetResumeToken()
			return resp.GetMessage(), nil
		}
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		if s.ctx.Err() != nil || !resumable(err) {
			return nil, fmt.Errorf("receiving: %w", err)
		}
		s.c.logger.Warn("subscription broke; resuming", "rooms", s.rooms, "err", status.Convert(err).Message())
		var again []RoomStart
		for _, room := range s.rooms {
			again = append(again, RoomStart{room, After(s.tokens[room])})
		}
		if rerr := s.open(again); rerr != nil {
			return nil, fmt.Errorf("resuming after %w: %w", err, rerr)
		}
		s.resumes++
	}
}

// Token is the resume token of the last message received (before the
// first one, for a one-room subscription: of the position just before the
// start).
func (s *Subscription) Token() string { return s.last }

// RoomToken is the resume token of the last message received in room.
func (s *Subscription) RoomToken(room string) string { return s.tokens[room] }

// Resumes counts how often the subscription has resumed after a break.
func (s *Subscription) Resumes() int { return s.resumes }

// Close ends the stream.
func (s *Subscription) Close() { s.cancel() }

// resumable reports whether subscribing again after the last message can
// cure err: the service went away or ended a slow stream, or the
// connection broke.
func resumable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted, codes.Aborted, codes.Internal, codes.Unknown:
		return true
	}
	return false
}

// NewMessageID returns a random client message id.
func NewMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
