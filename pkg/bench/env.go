package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/kafkachat/kafkachat/pkg/app"
	"github.com/kafkachat/kafkachat/pkg/grpcserver"
	"github.com/kafkachat/kafkachat/pkg/ingest"
	"github.com/kafkachat/kafkachat/pkg/kafka"
	"github.com/kafkachat/kafkachat/pkg/subscribe"
)

// env is a broker plus whatever a scenario started on it, stopped by close.
type env struct {
	brokers  string
	embedded bool   // brokers is kfake in this process
	name     string // "kfake (embedded)" or "Apache Kafka at ..."
	stops    []func()
	topicSeq int
}

func newEnv(brokers string) (*env, error) {
	e := &env{brokers: brokers, name: "Apache Kafka at " + brokers}
	if brokers == "" {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			return nil, err
		}
		e.brokers, e.name, e.embedded = strings.Join(c.ListenAddrs(), ","), "kfake (embedded)", true
		e.stops = append(e.stops, c.Close)
	}
	return e, nil
}

func (e *env) close() {
	for i := len(e.stops) - 1; i >= 0; i-- {
		e.stops[i]()
	}
	e.stops = nil
}

func (e *env) client(opts ...kgo.Opt) (*kgo.Client, error) {
	return e.clientOn(e.brokers, opts...)
}

// clientOn is a franz-go client of brokers, closed at close.
func (e *env) clientOn(brokers string, opts ...kgo.Opt) (*kgo.Client, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(kafka.SplitBrokers(brokers)...)}, opts...)...)
	if err == nil {
		e.stops = append(e.stops, cl.Close)
	}
	return cl, err
}

// topic creates a fresh topic, deleted at close.
func (e *env) topic(ctx context.Context, partitions int32) (string, error) {
	return e.topicOn(ctx, e.brokers, partitions)
}

// topicOn creates a fresh topic on brokers, deleted at close.
func (e *env) topicOn(ctx context.Context, brokers string, partitions int32) (string, error) {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	e.topicSeq++
	name := fmt.Sprintf("bench-%s-%d", hex.EncodeToString(b), e.topicSeq)
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.SplitBrokers(brokers)...))
	if err != nil {
		return "", err
	}
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, partitions, 1, nil, name); err != nil {
		cl.Close()
		return "", fmt.Errorf("creating %s: %w", name, err)
	}
	if _, err := kafka.WaitTopicReady(ctx, adm, name, slog.New(slog.DiscardHandler)); err != nil {
		cl.Close()
		return "", err
	}
	e.stops = append(e.stops, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = adm.DeleteTopics(ctx, name)
		cl.Close()
	})
	return name, nil
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func serviceConfig(brokers, topic string) app.ServiceConfig {
	return app.ServiceConfig{Brokers: brokers, Topic: topic, ShutdownTimeout: 5 * time.Second,
		KeepaliveTime: 15 * time.Second, KeepalivePing: 10 * time.Second}
}

// stack is a fresh topic with the services running on it in process.
type stack struct {
	topic               string
	ingestAddr, subAddr string
	sub                 *subscribe.Server
}

// stack creates a 3-partition topic and runs ingest and subscribe on it,
// returning once both are SERVING.
func (e *env) stack(ctx context.Context, queueLen int) (stack, error) {
	st, err := e.ingestOnly(ctx)
	if err != nil {
		return st, err
	}
	sc := subscribe.Config{ServiceConfig: serviceConfig(e.brokers, st.topic), Window: 10000, QueueLen: queueLen}
	st.sub = subscribe.New(sc, quietLogger())
	if st.subAddr, err = e.serve(st.sub.Run); err != nil {
		return st, err
	}
	return st, awaitServing(ctx, st.subAddr)
}

// ingestOnly creates a 3-partition topic and runs only the ingest service
// on it: what a Send goes through, without a consumer competing for the
// same cores.
func (e *env) ingestOnly(ctx context.Context) (stack, error) {
	topic, err := e.topic(ctx, 3)
	if err != nil {
		return stack{}, err
	}
	ic := ingest.Config{ServiceConfig: serviceConfig(e.brokers, topic), Partitions: 3, Replication: 1,
		MaxTextBytes: 4096, SendTimeout: 10 * time.Second}
	st := stack{topic: topic}
	if st.ingestAddr, err = e.serve(func(ctx context.Context, lis net.Listener) error { return ingest.Run(ctx, ic, lis, quietLogger()) }); err != nil {
		return st, err
	}
	return st, awaitServing(ctx, st.ingestAddr)
}

// serve runs fn on a loopback listener until close.
func (e *env) serve(fn func(context.Context, net.Listener) error) (string, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = fn(ctx, lis)
	}()
	e.stops = append(e.stops, func() { cancel(); <-done })
	return lis.Addr().String(), nil
}

// serveGRPC runs a bare gRPC server (our server plumbing, nothing else)
// with register's services.
func (e *env) serveGRPC(register func(*grpc.Server)) (string, error) {
	srv := grpcserver.New(quietLogger(), grpcserver.Keepalive{Time: 15 * time.Second, Timeout: 10 * time.Second})
	register(srv.GRPC)
	srv.SetServing()
	return e.serve(func(ctx context.Context, lis net.Listener) error { return srv.Serve(ctx, lis, time.Second, nil) })
}

func awaitServing(ctx context.Context, addr string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not SERVING after 60s", addr)
}

// dial opens a client connection. Static flow-control windows stop the
// client from pinging for bandwidth estimation after almost every message,
// which costs the server dearly with many connections (see the README of
// the benchmarks); every client here, for our services and for the
// baselines alike, uses them.
func dial(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(1<<20), grpc.WithInitialConnWindowSize(1<<20))
}
