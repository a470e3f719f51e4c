// Package app is the shared frame of every binary: logging set-up, signal
// handling and a single exit point.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/kafkachat/kafkachat/pkg/config"
)

// LogConfig selects the log format and level.
type LogConfig struct {
	Level  string
	Format string
}

// Register adds the logging settings to a config set.
func (c *LogConfig) Register(s *config.Set) {
	s.String(&c.Level, "log-level", "CHAT_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	s.String(&c.Format, "log-format", "CHAT_LOG_FORMAT", "text", "log format: text or json")
}

// Logger builds the slog logger the config asks for, writing to w.
func (c LogConfig) Logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", c.Level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(c.Format) {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("log format %q: want text or json", c.Format)
	}
}

// Main runs fn with a context that is cancelled on SIGINT or SIGTERM and
// exits the process: 0 on success, 2 on a usage error, 1 otherwise. A second
// signal is not caught, so it stops the process at once.
func Main(fn func(ctx context.Context, args []string) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // restore default handling: a second signal kills the process
	}()
	err := fn(ctx, os.Args[1:])
	stop()
	switch {
	case err == nil:
		os.Exit(0)
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case IsUsage(err):
		fmt.Fprintf(os.Stderr, "%s: %v\nrun %s -h for the settings\n", progName(), err, progName())
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "%s: %v\n", progName(), err)
		os.Exit(1)
	}
}

// UsageError marks a configuration or command-line mistake.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// IsUsage reports whether err is a usage error.
func IsUsage(err error) bool {
	var u *UsageError
	return errors.As(err, &u)
}

func progName() string {
	name := os.Args[0]
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	return name
}
