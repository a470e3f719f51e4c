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
	"google.golang.org/grpc/metadata"
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

// Subscription is an open Subscribe stream.
type Subscription struct {
	stream grpc.ServerStreamingClient[chatv1.SubscribeResponse]
	cancel context.CancelFunc
}

// Subscribe opens a stream of room's messages from pos and returns once the
// service has registered it: every message stored from then on will be
// received. While the subscribe service answers UNAVAILABLE (starting,
// restarting) it retries with the client's backoff policy.
func (c *Client) Subscribe(ctx context.Context, room string, pos chatv1.StartPosition) (*Subscription, error) {
	var sub *Subscription
	_, err := c.retryUnavailable(ctx, "subscribe", func(ctx context.Context) error {
		var err error
		sub, err = c.subscribeOnce(ctx, room, pos)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("subscribing to room %q: %w", room, err)
	}
	return sub, nil
}

func (c *Client) subscribeOnce(ctx context.Context, room string, pos chatv1.StartPosition) (*Subscription, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := c.subscribe.Subscribe(ctx, &chatv1.SubscribeRequest{
		Room:  room,
		Start: &chatv1.SubscribeRequest_Position{Position: pos},
	})
	if err == nil {
		// The service sends headers once the subscription is registered. A
		// stream refused at once ends with trailers only: its status comes
		// from Recv.
		var md metadata.MD
		md, err = stream.Header()
		if err == nil && len(md.Get(message.HeaderPartition)) == 0 {
			_, err = stream.Recv()
			if err == nil || errors.Is(err, io.EOF) {
				err = errors.New("the service did not confirm the subscription")
			}
		}
	}
	if err != nil {
		cancel()
		return nil, err
	}
	return &Subscription{stream: stream, cancel: cancel}, nil
}

// Recv returns the next message. At the end of the stream it returns the
// stream's status as an error (io.EOF if the server ended it cleanly).
func (s *Subscription) Recv() (*chatv1.ChatMessage, error) {
	resp, err := s.stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("receiving: %w", err)
	}
	return resp.GetMessage(), nil
}

// Close ends the stream.
func (s *Subscription) Close() { s.cancel() }

// NewMessageID returns a random client message id.
func NewMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
