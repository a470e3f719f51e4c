// Package bot is the program behind the alice and bob binaries: it prints
// the room live as "[user - timestamp]: message" and either plays its side
// of the scripted conversation, with natural random delays, or sends the
// lines typed on standard input.
package bot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kafkachat/kafkachat/pkg/app"
	"github.com/kafkachat/kafkachat/pkg/chatclient"
	"github.com/kafkachat/kafkachat/pkg/config"
	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
	"github.com/kafkachat/kafkachat/pkg/message"
)

// Config configures a bot.
type Config struct {
	User          string
	IngestAddr    string
	SubscribeAddr string
	Room          string
	From          string
	Interactive   bool
	MinDelay      time.Duration
	MaxDelay      time.Duration
	TurnTimeout   time.Duration
	Log           app.LogConfig
}

// Register adds the bot's settings; user is the default user name.
func (c *Config) Register(s *config.Set, user string) {
	s.String(&c.User, "user", "CHAT_USER", user, "name to post as")
	s.String(&c.IngestAddr, "ingest", "CHAT_INGEST_ADDR", "127.0.0.1:8081", "ingest service address")
	s.String(&c.SubscribeAddr, "subscribe", "CHAT_SUBSCRIBE_ADDR", "127.0.0.1:8082", "subscribe service address")
	s.String(&c.Room, "room", "CHAT_ROOM", "lobby", "room to chat in")
	s.String(&c.From, "from", "CHAT_FROM", "20", "where to start reading the room: a number N (its last N messages), earliest or latest")
	s.Bool(&c.Interactive, "i", "CHAT_INTERACTIVE", false, "send the lines typed on stdin instead of the script")
	s.Duration(&c.MinDelay, "min-delay", "CHAT_MIN_DELAY", 400*time.Millisecond, "shortest pause before a scripted line")
	s.Duration(&c.MaxDelay, "max-delay", "CHAT_MAX_DELAY", 1500*time.Millisecond, "longest pause before a scripted line")
	s.Duration(&c.TurnTimeout, "turn-timeout", "CHAT_TURN_TIMEOUT", 30*time.Second,
		"how long to wait for the other side's line before speaking anyway")
	c.Log.Register(s)
}

func (c *Config) check() error {
	if err := message.ValidateRoom("room", c.Room); err != nil {
		return err
	}
	if _, err := parseFrom(c.From); err != nil {
		return err
	}
	if c.MinDelay < 0 || c.MaxDelay < c.MinDelay {
		return fmt.Errorf("want 0 <= min-delay <= max-delay, got %v and %v", c.MinDelay, c.MaxDelay)
	}
	return nil
}

// Main is the body of the alice and bob binaries.
func Main(user string) func(ctx context.Context, args []string) error {
	return func(ctx context.Context, args []string) error {
		var cfg Config
		set := config.New(user)
		cfg.Register(set, user)
		if err := set.Parse(args, os.LookupEnv); err != nil {
			return &app.UsageError{Err: err}
		}
		if err := cfg.check(); err != nil {
			return &app.UsageError{Err: err}
		}
		logger, err := cfg.Log.Logger(os.Stderr)
		if err != nil {
			return &app.UsageError{Err: err}
		}
		return Run(ctx, cfg, os.Stdin, os.Stdout, logger)
	}
}

// Run connects, prints the room to out and plays the script (or sends
// lines from in when cfg.Interactive) until done or ctx ends.
func Run(ctx context.Context, cfg Config, in io.Reader, out io.Writer, logger *slog.Logger) error {
	client, err := chatclient.New(cfg.IngestAddr, cfg.SubscribeAddr, chatclient.WithLogger(logger))
	if err != nil {
		return err
	}
	defer client.Close()

	start, err := parseFrom(cfg.From)
	if err != nil {
		return err
	}
	sub, err := client.Subscribe(ctx, cfg.Room, start)
	if err != nil {
		return err
	}
	defer sub.Close()

	room := newRoomView(out)
	readErr := make(chan error, 1)
	go func() { readErr <- room.follow(sub) }()

	var runErr error
	// A broken subscription ends the run at the next wait (or line typed).
	if cfg.Interactive {
		runErr = interactive(ctx, client, cfg, in, room)
	} else {
		runErr = play(ctx, client, cfg, room)
	}
	sub.Close()
	if err := <-readErr; runErr == nil && err != nil && !errors.Is(err, errClosed) {
		runErr = err
	}
	if ctx.Err() != nil {
		return nil // interrupted: a normal way to leave a chat
	}
	return runErr
}

// play sends this bot's lines of the conversation, each once the line
// before it has appeared in the room, after a natural pause.
func play(ctx context.Context, client *chatclient.Client, cfg Config, room *roomView) error {
	last := -1
	for i, line := range Conversation {
		if line.Speaker == cfg.User {
			last = i
		}
	}
	if last < 0 {
		return fmt.Errorf("user %q has no lines in the conversation (the script has alice and bob)", cfg.User)
	}
	for i, line := range Conversation {
		if line.Speaker != cfg.User {
			continue
		}
		if i > 0 {
			seen, err := room.waitForLine(ctx, i-1, cfg.TurnTimeout)
			if err != nil {
				return err
			}
			if !seen {
				fmt.Fprintf(os.Stderr, "%s: no answer within %v; going on\n", cfg.User, cfg.TurnTimeout)
			}
		}
		if err := pause(ctx, cfg.MinDelay, cfg.MaxDelay); err != nil {
			return err
		}
		if _, err := client.Send(ctx, cfg.Room, cfg.User, line.Text); err != nil {
			return err
		}
	}
	// Stay until the end of the conversation is in the room, so the reader
	// sees it whole.
	_, err := room.waitForLine(ctx, len(Conversation)-1, cfg.TurnTimeout)
	return err
}

func interactive(ctx context.Context, client *chatclient.Client, cfg Config, in io.Reader, room *roomView) error {
	lines := make(chan string)
	scanErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		scanErr <- sc.Err()
		close(lines)
	}()
	var lastSent *chatv1.ChatMessage
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-room.ended:
			return room.broken()
		case text, ok := <-lines:
			if !ok {
				if err := <-scanErr; err != nil {
					return fmt.Errorf("reading stdin: %w", err)
				}
				if lastSent != nil {
					_, err := room.waitForOffset(ctx, lastSent.GetPosition().GetOffset(), 5*time.Second)
					return err
				}
				return nil
			}
			if err := room.broken(); err != nil {
				return err
			}
			if strings.TrimSpace(text) == "" {
				continue
			}
			m, err := client.Send(ctx, cfg.Room, cfg.User, text)
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", cfg.User, err)
				continue
			}
			lastSent = m
		}
	}
}

// parseFrom reads -from: latest, earliest, or N for the last N messages.
func parseFrom(from string) (chatclient.Start, error) {
	switch from {
	case "latest":
		return chatclient.Latest, nil
	case "earliest":
		return chatclient.Earliest, nil
	}
	n, err := strconv.ParseUint(from, 10, 32)
	if err != nil || n == 0 || n > 10000 {
		return chatclient.Start{}, fmt.Errorf("-from must be latest, earliest or a number 1-10000, got %q", from)
	}
	return chatclient.Last(uint32(n)), nil
}

func pause(ctx context.Context, lo, hi time.Duration) error {
	d := lo
	if hi > lo {
		d += rand.N(hi - lo)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var errClosed = errors.New("subscription closed")

// roomView prints the room and tracks how far the current run of the
// conversation has got, so a player can wait for its turn.
type roomView struct {
	out io.Writer

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced whenever a message arrives
	progress int           // index of the last script line seen in order; -1 for none
	offset   int64         // offset of the last message seen
	err      error         // why the subscription ended, once it has
	ended    chan struct{} // closed when the subscription ends
}

func newRoomView(out io.Writer) *roomView {
	return &roomView{out: out, changed: make(chan struct{}), progress: -1, offset: -1, ended: make(chan struct{})}
}

func (r *roomView) follow(sub *chatclient.Subscription) error {
	for {
		m, err := sub.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) || status.Code(errors.Unwrap(err)) == codes.Canceled {
				err = errClosed
			}
			r.mu.Lock()
			r.err = err
			r.notifyLocked()
			r.mu.Unlock()
			close(r.ended)
			return err
		}
		fmt.Fprintln(r.out, message.Format(m))
		r.mu.Lock()
		r.observe(Line{m.GetUser(), m.GetText()})
		r.offset = m.GetPosition().GetOffset()
		r.notifyLocked()
		r.mu.Unlock()
	}
}

func (r *roomView) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// observe advances the conversation: its opening line starts a new run (a
// room's history may hold earlier ones), and any other line counts only
// right after the line before it.
func (r *roomView) observe(l Line) {
	switch {
	case l == Conversation[0]:
		r.progress = 0
	case r.progress+1 < len(Conversation) && l == Conversation[r.progress+1]:
		r.progress++
	}
}

// waitUntil waits until cond holds (checked under the lock), the timeout
// passes (false, nil), or the room can no longer be read (false, why).
func (r *roomView) waitUntil(ctx context.Context, timeout time.Duration, cond func() bool) (bool, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok, ch, err := cond(), r.changed, r.err
		r.mu.Unlock()
		switch {
		case ok:
			return true, nil
		case err != nil:
			return false, fmt.Errorf("reading the room: %w", err)
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// waitForLine waits until script line i has been seen in the current run.
func (r *roomView) waitForLine(ctx context.Context, i int, timeout time.Duration) (bool, error) {
	return r.waitUntil(ctx, timeout, func() bool { return r.progress >= i })
}

func (r *roomView) waitForOffset(ctx context.Context, off int64, timeout time.Duration) (bool, error) {
	return r.waitUntil(ctx, timeout, func() bool { return r.offset >= off })
}

// broken returns why the room can no longer be read, if it cannot.
func (r *roomView) broken() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil && !errors.Is(r.err, errClosed) {
		return fmt.Errorf("reading the room: %w", r.err)
	}
	return nil
}
