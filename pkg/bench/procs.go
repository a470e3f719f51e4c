package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"

	"github.com/kafkachat/kafkachat/pkg/app"
	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
	"github.com/kafkachat/kafkachat/pkg/grpcserver"
	"github.com/kafkachat/kafkachat/pkg/kafka"
	"github.com/kafkachat/kafkachat/pkg/procs"
	"github.com/kafkachat/kafkachat/pkg/subscribe"
)

// ServeEnv, set in a bench process's environment, makes it serve a
// baseline on CHAT_LISTEN_ADDR instead of benchmarking, for the scenarios
// that run the services as separate processes: "noop" is the no-op Send
// handler, "bare" the bare fan-out (see bareHub), "idle" the floor of an
// idle stream (see idleSubscribe). With CHAT_PPROF_ADDR set it serves Go's
// profiles there, as the services do.
const ServeEnv = "BENCH_SERVE"

// Serve serves the baseline named by kind on addr until ctx ends.
func Serve(ctx context.Context, kind, addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if pprofAddr := os.Getenv("CHAT_PPROF_ADDR"); pprofAddr != "" {
		stop, err := app.ServePprof(pprofAddr, quietLogger())
		if err != nil {
			lis.Close()
			return err
		}
		defer stop()
	}
	var opts []grpc.ServerOption
	if kind == "idle" { // the floor of the subscribe service: its options
		opts = subscribe.ServerOptions()
	}
	srv := grpcserver.New(quietLogger(), grpcserver.Keepalive{Time: 15 * time.Second, Timeout: 10 * time.Second}, opts...)
	switch kind {
	case "noop":
		chatv1.RegisterIngestServiceServer(srv.GRPC, noopIngest{})
	case "bare":
		b := &bareHub{}
		chatv1.RegisterIngestServiceServer(srv.GRPC, b)
		chatv1.RegisterSubscribeServiceServer(srv.GRPC, b)
	case "idle":
		chatv1.RegisterSubscribeServiceServer(srv.GRPC, idleSubscribe{})
	default:
		lis.Close()
		return fmt.Errorf("%s=%q: want noop, bare or idle", ServeEnv, kind)
	}
	srv.SetServing()
	return srv.Serve(ctx, lis, time.Second, nil)
}

// process starts bin with env on a free loopback address (given as
// CHAT_LISTEN_ADDR) and waits until it is SERVING.
func (e *env) process(ctx context.Context, name, bin, dir string, env ...string) (*procs.Proc, string, error) {
	addr, err := procs.FreeAddr()
	if err != nil {
		return nil, "", err
	}
	p, err := procs.Start(name, bin, dir, append(env, "CHAT_LISTEN_ADDR="+addr, "CHAT_LOG_LEVEL=warn"), nil)
	if err != nil {
		return nil, "", err
	}
	e.stops = append(e.stops, func() { _ = p.Stop(10 * time.Second) })
	if err := awaitServing(ctx, addr); err != nil {
		return nil, "", fmt.Errorf("%w\n%s", err, p.Tail(20))
	}
	return p, addr, nil
}

// profiledProcess is process with Go's profiles served on a loopback
// address of their own (CHAT_PPROF_ADDR), returned as pprofAddr.
func (e *env) profiledProcess(ctx context.Context, name, bin, dir string, env ...string) (p *procs.Proc, addr, pprofAddr string, err error) {
	if pprofAddr, err = procs.FreeAddr(); err != nil {
		return nil, "", "", err
	}
	p, addr, err = e.process(ctx, name, bin, dir, append(env, "CHAT_PPROF_ADDR="+pprofAddr)...)
	return p, addr, pprofAddr, err
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
		Baseline: "the no-op Send handler in its own process (this benchmark binary in serving mode), same load generator, interleaved: baseline, ours, ours, baseline, each for half the time."}
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
	noopProc, noopAddr, err := e.process(ctx, "noop", self, dir, ServeEnv+"=noop")
	if err != nil {
		return res, err
	}
	ingestProc, ingestAddr, ingestPprof, err := e.profiledProcess(ctx, "ingest", filepath.Join(dir, "ingest"), dir, "KAFKA_BROKERS="+e.brokers, "CHAT_TOPIC="+topic)
	if err != nil {
		return res, err
	}
	ingestConn, err := dial(ingestAddr)
	if err != nil {
		return res, err
	}
	defer ingestConn.Close()
	noopConn, err := dial(noopAddr)
	if err != nil {
		return res, err
	}
	defer noopConn.Close()
	// The rate moves with whatever else the two cores are doing; the CPU
	// each process spends per call is steadier and says where the time goes.
	// Each server process is idle while the other one is measured. A broker
	// on this machine (not kfake, which runs in this process) is counted
	// too: the no-op handler does without one. Its CPU over the whole
	// measurement is charged to ingest's Sends, its idle background work
	// during the no-op halves included (a small share beside 20,000 Sends/s).
	pids := []int{ingestProc.Pid(), noopProc.Pid()}
	if !e.embedded {
		if broker := listenerPid(kafka.SplitBrokers(e.brokers)[0]); broker != 0 {
			pids = append(pids, broker)
		}
	}
	before, err := sampleProcs(pids)
	if err != nil {
		return res, err
	}
	profiled := e.profileCPU(ctx, o, ingestPprof, "send-ingest-process", 2*o.Duration)
	ours, base, ol, bl, err := compareSend(ctx, o.Progress, "ingest process", ingestConn, noopConn, 64, o.Duration)
	if err := errors.Join(err, profiled()); err != nil {
		return res, err
	}
	after, err := sampleProcs(pids)
	if err != nil {
		return res, err
	}
	secs := func(i int) float64 { _, s := cpuUse(before[i], after[i]); return s }
	calls := o.Duration.Seconds() // each side ran for o.Duration in all
	res.Figures = append(sendFigures(64, ours, base, ol, bl, true),
		fig("server process CPU per call", "µs", perCall(secs(0), ours*calls), perCall(secs(1), base*calls)))
	if len(pids) > 2 {
		res.Figures = append(res.Figures, fig("broker process CPU per Send", "µs", perCall(secs(2), ours*calls), 0))
	}
	return res, nil
}

// sampleProcs samples the CPU of each of pids.
func sampleProcs(pids []int) ([]cpuSample, error) {
	out := make([]cpuSample, len(pids))
	for i, pid := range pids {
		var err error
		if out[i], err = sampleCPU(pid); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// perCall is secs spread over n calls, in microseconds.
func perCall(secs, n float64) float64 {
	if n == 0 {
		return 0
	}
	return 1e6 * secs / n
}

// deployment is the services as deployed: the broker, ingest and
// subscribe each in a process of their own, on a fresh topic.
type deployment struct {
	dir, self           string // built binaries; this benchmark binary
	brokers, topic      string
	ingestAddr, subAddr string
	ingestPprof         string      // the ingest service's pprof listener
	subPprof            string      // the subscribe service's pprof listener
	subProc             *procs.Proc // the subscribe service
}

func (d deployment) cleanup() { os.RemoveAll(d.dir) }

// deployed builds and starts the services (and, on the embedded broker,
// kfake in the devkafka binary) in their own processes. Subscribers may
// queue up to 100,000 messages.
func (e *env) deployed(ctx context.Context) (deployment, error) {
	var d deployment
	var err error
	if d.self, err = os.Executable(); err != nil {
		return d, err
	}
	if d.dir, err = buildServices(ctx, "./services/ingest", "./services/subscribe", "./services/devkafka"); err != nil {
		return d, err
	}
	d.brokers = e.brokers
	if e.embedded {
		if d.brokers, err = e.devKafka(ctx, filepath.Join(d.dir, "devkafka"), d.dir); err != nil {
			return d, err
		}
	}
	if d.topic, err = e.topicOn(ctx, d.brokers, 3); err != nil {
		return d, err
	}
	svcEnv := []string{"KAFKA_BROKERS=" + d.brokers, "CHAT_TOPIC=" + d.topic, "CHAT_SUBSCRIBER_QUEUE=100000"}
	if _, d.ingestAddr, d.ingestPprof, err = e.profiledProcess(ctx, "ingest", filepath.Join(d.dir, "ingest"), d.dir, svcEnv...); err != nil {
		return d, err
	}
	d.subProc, d.subAddr, d.subPprof, err = e.profiledProcess(ctx, "subscribe", filepath.Join(d.dir, "subscribe"), d.dir, svcEnv...)
	return d, err
}

// devKafka starts kfake in its own process (the devkafka binary) and
// returns its address.
func (e *env) devKafka(ctx context.Context, bin, dir string) (string, error) {
	lines := make(chan string, 16)
	p, err := procs.Start("devkafka", bin, dir, []string{"DEVKAFKA_PORT=0"}, lines)
	if err != nil {
		return "", err
	}
	e.stops = append(e.stops, func() { _ = p.Stop(10 * time.Second) })
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return procs.AwaitLine(ctx, p, lines, "KAFKA_BROKERS=")
}
