// Package demo runs the whole product on one machine: an embedded Kafka
// broker (unless KAFKA_BROKERS names one), the ingest and subscribe services
// as separate processes, alice and bob at the same time, and a viewer that
// prints the conversation in order.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/kafkachat/kafkachat/pkg/bot"
	"github.com/kafkachat/kafkachat/pkg/chatclient"
	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
	"github.com/kafkachat/kafkachat/pkg/message"
)

// Config configures a demo run.
type Config struct {
	// Brokers, if set, is an existing Kafka; otherwise devkafka is started.
	Brokers string
	// Room to chat in; empty means a fresh room per run.
	Room string
	// MinDelay and MaxDelay bound the bots' pauses.
	MinDelay, MaxDelay time.Duration
	// Timeout bounds the whole run.
	Timeout time.Duration
	// KeepLogs keeps the processes' logs directory.
	KeepLogs bool
}

var binaries = []string{"devkafka", "ingest", "subscribe", "alice", "bob"}

// Run builds the binaries and plays the demo, writing the transcript and
// progress to out. It stops every process it started before returning.
func Run(ctx context.Context, cfg Config, out io.Writer) (err error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "chat-demo-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil || cfg.KeepLogs {
			fmt.Fprintf(out, "demo: logs kept in %s\n", dir)
			return
		}
		os.RemoveAll(dir)
	}()

	say := func(format string, args ...any) { fmt.Fprintf(out, "demo: "+format+"\n", args...) }
	say("building %s", strings.Join(binaries, ", "))
	if err := build(ctx, dir); err != nil {
		return err
	}

	var procs []*proc
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			if serr := procs[i].stop(15 * time.Second); serr != nil && err == nil && !isSignalExit(serr) {
				err = fmt.Errorf("stopping %s: %w\n%s", procs[i].name, serr, procs[i].tail(20))
			}
		}
	}()
	launch := func(name string, env []string, lines chan<- string) (*proc, error) {
		p, err := start(name, filepath.Join(dir, name), dir, env, lines)
		if err == nil {
			procs = append(procs, p)
		}
		return p, err
	}
	fail := func(p *proc, err error) error {
		return fmt.Errorf("%w\n--- last lines of %s ---\n%s", err, p.name, p.tail(30))
	}

	brokers := cfg.Brokers
	if brokers == "" {
		lines := make(chan string, 16)
		p, err := launch("devkafka", []string{"DEVKAFKA_PORT=0"}, lines)
		if err != nil {
			return err
		}
		if brokers, err = awaitAddr(ctx, p, lines); err != nil {
			return fail(p, err)
		}
		say("embedded Kafka broker (kfake) on %s", brokers)
	} else {
		say("using Kafka at %s", brokers)
	}

	ingestAddr, err := freeAddr()
	if err != nil {
		return err
	}
	subscribeAddr, err := freeAddr()
	if err != nil {
		return err
	}
	common := []string{"KAFKA_BROKERS=" + brokers, "CHAT_LOG_FORMAT=text"}
	ingest, err := launch("ingest", append(common, "CHAT_LISTEN_ADDR="+ingestAddr), nil)
	if err != nil {
		return err
	}
	if err := awaitServing(ctx, ingestAddr, ingest); err != nil {
		return fail(ingest, err)
	}
	subscribe, err := launch("subscribe", append(common, "CHAT_LISTEN_ADDR="+subscribeAddr), nil)
	if err != nil {
		return err
	}
	if err := awaitServing(ctx, subscribeAddr, subscribe); err != nil {
		return fail(subscribe, err)
	}
	say("ingest on %s, subscribe on %s", ingestAddr, subscribeAddr)

	room := cfg.Room
	if room == "" {
		room = "demo-" + chatclient.NewMessageID()[:8]
	}
	client, err := chatclient.New(ingestAddr, subscribeAddr)
	if err != nil {
		return err
	}
	defer client.Close()
	// The viewer subscribes first; once the service has registered it,
	// nothing alice and bob say can be missed.
	sub, err := client.Subscribe(ctx, room, chatv1.StartPosition_START_POSITION_LATEST)
	if err != nil {
		return fail(subscribe, err)
	}
	defer sub.Close()
	say("viewer subscribed to room %q; starting alice and bob", room)
	fmt.Fprintln(out)

	botEnv := append(common[:0:0],
		"CHAT_INGEST_ADDR="+ingestAddr, "CHAT_SUBSCRIBE_ADDR="+subscribeAddr,
		"CHAT_ROOM="+room, "CHAT_FROM=earliest",
		"CHAT_MIN_DELAY="+cfg.MinDelay.String(), "CHAT_MAX_DELAY="+cfg.MaxDelay.String())
	alice, err := launch("alice", botEnv, nil)
	if err != nil {
		return err
	}
	bob, err := launch("bob", botEnv, nil)
	if err != nil {
		return err
	}

	var prev *chatv1.ChatMessage
	for i, want := range bot.Conversation {
		m, err := sub.Recv()
		if err != nil {
			return fmt.Errorf("viewer: %w", err)
		}
		fmt.Fprintln(out, message.Format(m))
		if m.GetUser() != want.Speaker || m.GetText() != want.Text {
			return fmt.Errorf("viewer: message %d is %q from %s, want %q from %s", i, m.GetText(), m.GetUser(), want.Text, want.Speaker)
		}
		if prev != nil && m.GetPosition().GetOffset() <= prev.GetPosition().GetOffset() {
			return fmt.Errorf("viewer: offset %d after %d: out of order", m.GetPosition().GetOffset(), prev.GetPosition().GetOffset())
		}
		prev = m
	}
	fmt.Fprintln(out)
	for _, p := range []*proc{alice, bob} {
		if err := p.wait(ctx); err != nil {
			return fail(p, err)
		}
	}
	say("conversation over: %d messages in offset order (partition %d, offsets up to %d); alice and bob exited 0",
		len(bot.Conversation), prev.GetPosition().GetPartition(), prev.GetPosition().GetOffset())
	return nil
}

func build(ctx context.Context, dir string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, b := range binaries {
		args = append(args, "./services/"+b)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if outp, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, outp)
	}
	return nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run the demo from inside the repository (no go.mod found)")
		}
		dir = parent
	}
}

func awaitAddr(ctx context.Context, p *proc, lines <-chan string) (string, error) {
	for {
		select {
		case l := <-lines:
			if addr, ok := strings.CutPrefix(l, "KAFKA_BROKERS="); ok {
				return addr, nil
			}
		case <-p.done:
			return "", fmt.Errorf("%s exited before listening: %v", p.name, p.err)
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for %s: %w", p.name, ctx.Err())
		}
	}
}

// awaitServing polls the gRPC health service until it reports SERVING.
func awaitServing(ctx context.Context, addr string, p *proc) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := health.Check(cctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		select {
		case <-tick.C:
		case <-p.done:
			return fmt.Errorf("%s exited while starting: %v", p.name, p.err)
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to be SERVING: %w", p.name, ctx.Err())
		}
	}
}

// freeAddr finds a free loopback port.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func isSignalExit(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && !ee.Exited()
}
