// Package demo runs the whole product on one machine: an embedded Kafka
// broker (unless KAFKA_BROKERS names one), the ingest and subscribe services
// as separate processes, alice and bob at the same time, and a viewer that
// prints the conversation in order.
package demo

import (
	"context"
	"fmt"
	"io"
	"os"
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
	"github.com/kafkachat/kafkachat/pkg/procs"
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
	var pkgs []string
	for _, b := range binaries {
		pkgs = append(pkgs, "./services/"+b)
	}
	if err := procs.Build(ctx, dir, pkgs...); err != nil {
		return err
	}

	var started []*procs.Proc
	defer func() {
		for i := len(started) - 1; i >= 0; i-- {
			if serr := started[i].Stop(15 * time.Second); serr != nil && err == nil && !procs.IsSignalExit(serr) {
				err = fmt.Errorf("stopping %s: %w\n%s", started[i].Name, serr, started[i].Tail(20))
			}
		}
	}()
	launch := func(name string, env []string, lines chan<- string) (*procs.Proc, error) {
		p, err := procs.Start(name, filepath.Join(dir, name), dir, env, lines)
		if err == nil {
			started = append(started, p)
		}
		return p, err
	}
	fail := func(p *procs.Proc, err error) error {
		return fmt.Errorf("%w\n--- last lines of %s ---\n%s", err, p.Name, p.Tail(30))
	}

	brokers := cfg.Brokers
	if brokers == "" {
		lines := make(chan string, 16)
		p, err := launch("devkafka", []string{"DEVKAFKA_PORT=0"}, lines)
		if err != nil {
			return err
		}
		if brokers, err = procs.AwaitLine(ctx, p, lines, "KAFKA_BROKERS="); err != nil {
			return fail(p, err)
		}
		say("embedded Kafka broker (kfake) on %s", brokers)
	} else {
		say("using Kafka at %s", brokers)
	}

	ingestAddr, err := procs.FreeAddr()
	if err != nil {
		return err
	}
	subscribeAddr, err := procs.FreeAddr()
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
	sub, err := client.Subscribe(ctx, room, chatclient.Latest)
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
	for _, p := range []*procs.Proc{alice, bob} {
		if err := p.Wait(ctx); err != nil {
			return fail(p, err)
		}
	}
	say("conversation over: %d messages in offset order (partition %d, offsets up to %d); alice and bob exited 0",
		len(bot.Conversation), prev.GetPosition().GetPartition(), prev.GetPosition().GetOffset())
	return nil
}

// awaitServing polls the gRPC health service until it reports SERVING.
func awaitServing(ctx context.Context, addr string, p *procs.Proc) error {
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
		case <-p.Done():
			return fmt.Errorf("%s exited while starting: %v", p.Name, p.Err())
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s to be SERVING: %w", p.Name, ctx.Err())
		}
	}
}
