// Package testenv starts what the integration tests need: a Kafka broker
// (the real one named by KAFKA_BROKERS, or an embedded kfake), a unique
// topic per test, and the two services in process on loopback.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/kafkachat/kafkachat/pkg/app"
	"github.com/kafkachat/kafkachat/pkg/chatclient"
	"github.com/kafkachat/kafkachat/pkg/ingest"
	"github.com/kafkachat/kafkachat/pkg/kafka"
	"github.com/kafkachat/kafkachat/pkg/subscribe"
)

// Wait is how long helpers wait for a condition before failing the test.
var Wait = 30 * time.Second

// Broker is a Kafka broker for one test.
type Broker struct {
	Addrs string
	// Fake is the embedded cluster, or nil against a real broker.
	Fake *kfake.Cluster
}

// Real reports whether the tests run against the broker in KAFKA_BROKERS.
func Real() bool { return os.Getenv("KAFKA_BROKERS") != "" }

// StartBroker returns the real broker named by KAFKA_BROKERS, or starts an
// embedded one that the test's cleanup stops.
func StartBroker(t testing.TB) *Broker {
	t.Helper()
	if addrs := os.Getenv("KAFKA_BROKERS"); addrs != "" {
		realOnce.Do(func() { realErr = probe(addrs) })
		if realErr != nil {
			t.Fatalf("KAFKA_BROKERS=%s: %v", addrs, realErr)
		}
		return &Broker{Addrs: addrs}
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return &Broker{Addrs: strings.Join(c.ListenAddrs(), ","), Fake: c}
}

var (
	realOnce sync.Once
	realErr  error
)

// probe fails fast, once per test binary, when nothing answers at the
// real broker's address: each test would otherwise wait out its retries.
func probe(addrs string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.SplitBrokers(addrs)...))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).ListBrokers(ctx); err != nil {
		return fmt.Errorf("no Kafka answers there (start one with make kafka-up): %w", err)
	}
	return nil
}

// Admin returns a kadm client for the broker, closed at cleanup.
func (b *Broker) Admin(t testing.TB) *kadm.Client {
	t.Helper()
	return kadm.NewClient(b.Client(t))
}

// Client returns a plain franz-go client, closed at cleanup.
func (b *Broker) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(kafka.SplitBrokers(b.Addrs)...)}, opts...)...)
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// Topic returns a topic name unique to this test run and deletes the topic
// at cleanup, so reruns against one broker start clean.
func (b *Broker) Topic(t testing.TB) string {
	t.Helper()
	name := unsafeChars.ReplaceAllString(t.Name(), "_")
	if len(name) > 60 {
		name = name[:60]
	}
	topic := fmt.Sprintf("chat-test-%s-%s", name, RandomHex(4))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.SplitBrokers(b.Addrs)...))
		if err != nil {
			return
		}
		defer cl.Close()
		_, _ = kadm.NewClient(cl).DeleteTopics(ctx, topic)
	})
	return topic
}

// RandomHex returns n random bytes in hex.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Logger returns a logger writing to the test log at warn level (or debug
// when CHAT_TEST_DEBUG is set).
func Logger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("CHAT_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Service is a service running in process.
type Service struct {
	Addr   string
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned
	err    error         // Run's result
	// Subscribe is set for the subscribe service.
	Subscribe *subscribe.Server
}

// Stop cancels the service's context (what SIGTERM does) and returns Run's
// result, failing the test if it does not return in time.
func (s *Service) Stop(t testing.TB) error {
	t.Helper()
	s.cancel()
	select {
	case <-s.done:
		return s.err
	case <-time.After(Wait):
		t.Fatalf("service at %s did not stop within %v", s.Addr, Wait)
		return nil
	}
}

// Done is closed once Run has returned; Err then gives its result.
func (s *Service) Done() <-chan struct{} { return s.done }

// Err is Run's result, once Done is closed.
func (s *Service) Err() error { return s.err }

func run(t testing.TB, addr string, fn func(ctx context.Context, lis net.Listener) error) *Service {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{Addr: lis.Addr().String(), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = fn(ctx, lis)
	}()
	t.Cleanup(func() { _ = s.Stop(t) })
	return s
}

// IngestConfig is a config for an ingest service on the broker and topic.
func IngestConfig(b *Broker, topic string) ingest.Config {
	return ingest.Config{
		ServiceConfig: common(b, topic),
		Partitions:    3, Replication: 1, MaxTextBytes: 4096, SendTimeout: 10 * time.Second,
	}
}

// SubscribeConfig is a config for a subscribe service on the broker and topic.
func SubscribeConfig(b *Broker, topic string) subscribe.Config {
	return subscribe.Config{ServiceConfig: common(b, topic), Window: 10000, QueueLen: 1024}
}

func common(b *Broker, topic string) app.ServiceConfig {
	return app.ServiceConfig{Brokers: b.Addrs, Topic: topic, ShutdownTimeout: 10 * time.Second,
		KeepaliveTime: 15 * time.Second, KeepalivePing: 10 * time.Second}
}

// StartIngest runs an ingest service on a loopback port (addr, or any if
// empty) without waiting for it to be ready.
func StartIngest(t testing.TB, cfg ingest.Config, addr string) *Service {
	t.Helper()
	logger := Logger(t).With("service", "ingest")
	return run(t, addr, func(ctx context.Context, lis net.Listener) error { return ingest.Run(ctx, cfg, lis, logger) })
}

// StartSubscribe runs a subscribe service on a loopback port without
// waiting for it to be ready.
func StartSubscribe(t testing.TB, cfg subscribe.Config, addr string) *Service {
	t.Helper()
	logger := Logger(t).With("service", "subscribe")
	srv := subscribe.New(cfg, logger)
	s := run(t, addr, srv.Run)
	s.Subscribe = srv
	return s
}

// Stack is a broker, a topic and both services, ready.
type Stack struct {
	Broker    *Broker
	Topic     string
	Ingest    *Service
	Subscribe *Service
	Client    *chatclient.Client
}

// StartStack starts both services on a fresh topic and waits until both are
// SERVING. mutate, if not nil, may change the configs first.
func StartStack(t testing.TB, mutate func(*ingest.Config, *subscribe.Config)) *Stack {
	t.Helper()
	b := StartBroker(t)
	topic := b.Topic(t)
	ic, sc := IngestConfig(b, topic), SubscribeConfig(b, topic)
	if mutate != nil {
		mutate(&ic, &sc)
	}
	st := &Stack{Broker: b, Topic: topic}
	st.Ingest = StartIngest(t, ic, "")
	WaitServing(t, st.Ingest)
	st.Subscribe = StartSubscribe(t, sc, "")
	WaitServing(t, st.Subscribe)
	st.Client = NewClient(t, st.Ingest.Addr, st.Subscribe.Addr)
	return st
}

// NewClient returns a chat client closed at cleanup.
func NewClient(t testing.TB, ingestAddr, subscribeAddr string, opts ...chatclient.Option) *chatclient.Client {
	t.Helper()
	c, err := chatclient.New(ingestAddr, subscribeAddr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Conn returns a raw gRPC connection, closed at cleanup.
func Conn(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// HealthStatus returns the overall health of the service at addr.
func HealthStatus(ctx context.Context, conn *grpc.ClientConn) (healthpb.HealthCheckResponse_ServingStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return resp.GetStatus(), err
}

// WaitServing waits until the service reports SERVING, failing the test if
// the service exits or the wait runs out.
func WaitServing(t testing.TB, s *Service) {
	t.Helper()
	conn := Conn(t, s.Addr)
	Eventually(t, "service at "+s.Addr+" SERVING", func() (bool, error) {
		select {
		case <-s.done:
			return false, fmt.Errorf("service exited: %v", s.err)
		default:
		}
		st, err := HealthStatus(context.Background(), conn)
		return err == nil && st == healthpb.HealthCheckResponse_SERVING, nil
	})
}

// Eventually polls cond until it holds, fails, or Wait runs out. It polls
// every few milliseconds: a condition with a deadline, never a fixed sleep.
func Eventually(t testing.TB, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for delay := time.Millisecond; ; delay = min(delay*2, 100*time.Millisecond) {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: still not true after %v", what, Wait)
		}
		timer := time.NewTimer(delay)
		<-timer.C
	}
}

// ReadAll reads every record of topic from the start until the end offsets
// as of the call, in partition-offset order per partition.
func (b *Broker) ReadAll(t testing.TB, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	adm := b.Admin(t)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil || ends.Error() != nil {
		t.Fatalf("listing end offsets: %v %v", err, ends.Error())
	}
	want := map[int32]int64{}
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
			total += o.Offset
		}
	})
	var out []*kgo.Record
	if total == 0 {
		return nil
	}
	cl := b.Client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for len(want) > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: still waiting for %v", topic, want)
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			t.Fatalf("reading %s: %v", topic, errs[0].Err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			end, ok := want[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			out = append(out, r)
			if r.Offset == end-1 {
				delete(want, r.Partition)
			}
		})
	}
	return out
}

// Proxy forwards TCP connections from a loopback port to target. It is
// created closed (connections are refused) so that a service can be
// started against a broker it cannot reach yet.
type Proxy struct {
	Addr   string
	target string
	lis    net.Listener
	done   chan struct{}

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	frozen chan struct{} // non-nil while frozen; closed by Thaw
}

// Freeze stops forwarding bytes in both directions while keeping every
// connection open: to each side, the other has gone silent, as a crashed
// host or a dead network path looks.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen == nil {
		p.frozen = make(chan struct{})
	}
}

// gate blocks while the proxy is frozen.
func (p *Proxy) gate() {
	p.mu.Lock()
	ch := p.frozen
	p.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-p.done:
		}
	}
}

// NewProxy starts a proxy to target on a free loopback port.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p := NewClosedProxy(t, target)
	p.Open(t)
	return p
}

// CutAll drops every connection through the proxy, as a network failure
// would; new connections are still accepted. It returns how many it cut.
func (p *Proxy) CutAll() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns)
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
	return n
}

func (p *Proxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		p.conns = map[net.Conn]struct{}{}
	}
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

// NewClosedProxy reserves a loopback port for a proxy to target; Open
// starts accepting there. Cleanup closes it.
func NewClosedProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: l.Addr().String(), target: target, done: make(chan struct{})}
	l.Close()
	t.Cleanup(p.close)
	return p
}

// Open starts forwarding.
func (p *Proxy) Open(t testing.TB) {
	t.Helper()
	l, err := net.Listen("tcp", p.Addr)
	if err != nil {
		t.Fatalf("proxy listen on %s: %v", p.Addr, err)
	}
	p.lis = l
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
}

func (p *Proxy) pipe(c net.Conn) {
	defer c.Close()
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer u.Close()
	p.track(c, true)
	p.track(u, true)
	defer p.track(c, false)
	defer p.track(u, false)
	ended := make(chan struct{})
	defer close(ended)
	go func() {
		select {
		case <-p.done:
			c.Close()
			u.Close()
		case <-ended:
		}
	}()
	go func() { _, _ = p.copyConn(u, c) }()
	_, _ = p.copyConn(c, u)
}

func (p *Proxy) close() {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	p.CutAll()
	if p.lis != nil {
		p.lis.Close()
	}
}
