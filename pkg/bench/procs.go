package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"

	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
	"github.com/kafkachat/kafkachat/pkg/grpcserver"
	"github.com/kafkachat/kafkachat/pkg/procs"
)

// NoopEnv, set in a bench process's environment, makes it serve the no-op
// Send handler on the address it names instead of benchmarking: the
// baseline of the separate-process scenario.
const NoopEnv = "BENCH_SERVE_NOOP"

// ServeNoop serves the no-op ingest service on addr until ctx ends.
func ServeNoop(ctx context.Context, addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := grpcserver.New(quietLogger(), grpcserver.Keepalive{Time: 15 * time.Second, Timeout: 10 * time.Second})
	chatv1.RegisterIngestServiceServer(srv.GRPC, noopIngest{})
	srv.SetServing()
	return srv.Serve(ctx, lis, time.Second, nil)
}

// process starts bin with env on a free loopback address (given as
// CHAT_LISTEN_ADDR and NoopEnv) and waits until it is SERVING.
func (e *env) process(ctx context.Context, name, bin, dir string, env ...string) (*procs.Proc, string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	addr := l.Addr().String()
	l.Close()
	p, err := procs.Start(name, bin, dir, append(env, "CHAT_LISTEN_ADDR="+addr, NoopEnv+"="+addr, "CHAT_LOG_LEVEL=warn"), nil)
	if err != nil {
		return nil, "", err
	}
	e.stops = append(e.stops, func() { _ = p.Stop(10 * time.Second) })
	if err := awaitServing(ctx, addr); err != nil {
		return nil, "", fmt.Errorf("%w\n%s", err, p.Tail(20))
	}
	return p, addr, nil
}

func buildServices(ctx context.Context, pkgs ...string) (string, error) {
	dir, err := os.MkdirTemp("", "chat-bench-")
	if err != nil {
		return "", err
	}
	return dir, procs.Build(ctx, dir, pkgs...)
}

// scenarioProcesses: Send with the load generator, the ingest service and
// the broker in separate processes, as deployed.
func scenarioProcesses(ctx context.Context, e *env, o Options) (Result, error) {
	res := Result{Scenario: "6. Send across processes", Broker: e.name,
		Setup:    fmt.Sprintf("The ingest service runs as its own process (the built binary), the load generator in the benchmark process, the broker in the benchmark process (kfake) or its own JVM. 64 closed-loop callers on one connection, 200-byte messages, %v.", o.Duration),
		Baseline: "the no-op Send handler in its own process (this benchmark binary in serving mode), same load generator."}
	dir, err := buildServices(ctx, "./services/ingest")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	self, err := os.Executable()
	if err != nil {
		return res, err
	}
	topic, err := e.topic(ctx, 3)
	if err != nil {
		return res, err
	}
	_, noopAddr, err := e.process(ctx, "noop", self, dir)
	if err != nil {
		return res, err
	}
	_, ingestAddr, err := e.process(ctx, "ingest", filepath.Join(dir, "ingest"), dir, "KAFKA_BROKERS="+e.brokers, "CHAT_TOPIC="+topic)
	if err != nil {
		return res, err
	}
	var conns []*grpc.ClientConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	run := func(name, addr string) (float64, *Latencies, error) {
		conn, err := dial(addr)
		if err != nil {
			return 0, nil, err
		}
		conns = append(conns, conn)
		return sendLoad(ctx, o.Progress, name, conn, 64, o.Duration)
	}
	base, bl, err := run("no-op Send process, 64 callers", noopAddr)
	if err != nil {
		return res, err
	}
	ours, ol, err := run("ingest process, 64 callers", ingestAddr)
	if err != nil {
		return res, err
	}
	res.Figures = sendFigures(64, ours, base, ol, bl, true)
	return res, nil
}
