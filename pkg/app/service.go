package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/kafkachat/kafkachat/pkg/config"
	"github.com/kafkachat/kafkachat/pkg/grpcserver"
	"github.com/kafkachat/kafkachat/pkg/kafka"
)

// ServiceConfig holds the settings every service has.
type ServiceConfig struct {
	ListenAddr      string
	Brokers         string
	Topic           string
	ShutdownTimeout time.Duration
	KeepaliveTime   time.Duration
	KeepalivePing   time.Duration
	PprofAddr       string
	Log             LogConfig
}

// Register adds the common settings; defaultListen differs per service.
func (c *ServiceConfig) Register(s *config.Set, defaultListen string) {
	s.String(&c.ListenAddr, "listen", "CHAT_LISTEN_ADDR", defaultListen, "gRPC listen address (host:port)")
	s.String(&c.Brokers, "brokers", "KAFKA_BROKERS", "127.0.0.1:9092", "comma-separated Kafka seed brokers")
	s.String(&c.Topic, "topic", "CHAT_TOPIC", kafka.DefaultTopic, "Kafka topic holding the chat")
	s.Duration(&c.ShutdownTimeout, "shutdown-timeout", "CHAT_SHUTDOWN_TIMEOUT", 10*time.Second,
		"how long a graceful shutdown may take before calls are cut")
	s.Duration(&c.KeepaliveTime, "keepalive-time", "CHAT_KEEPALIVE_TIME", 15*time.Second,
		"ping a client connection after this long without traffic")
	s.Duration(&c.KeepalivePing, "keepalive-timeout", "CHAT_KEEPALIVE_TIMEOUT", 10*time.Second,
		"drop a connection whose ping is not answered within this long")
	s.String(&c.PprofAddr, "pprof", "CHAT_PPROF_ADDR", "",
		"serve Go's /debug/pprof/ profiles on this address (keep it on loopback); empty: off")
	c.Log.Register(s)
}

// Keepalive is the gRPC keepalive the settings ask for.
func (c *ServiceConfig) Keepalive() grpcserver.Keepalive {
	return grpcserver.Keepalive{Time: c.KeepaliveTime, Timeout: c.KeepalivePing}
}

// Check validates the common settings.
func (c *ServiceConfig) Check() error {
	switch {
	case len(kafka.SplitBrokers(c.Brokers)) == 0:
		return fmt.Errorf("KAFKA_BROKERS is empty")
	case c.Topic == "":
		return fmt.Errorf("CHAT_TOPIC is empty")
	case c.ShutdownTimeout <= 0:
		return fmt.Errorf("CHAT_SHUTDOWN_TIMEOUT must be positive, got %v", c.ShutdownTimeout)
	case c.KeepaliveTime < time.Second || c.KeepalivePing < time.Second:
		return fmt.Errorf("CHAT_KEEPALIVE_TIME and CHAT_KEEPALIVE_TIMEOUT must be at least 1s, got %v and %v", c.KeepaliveTime, c.KeepalivePing)
	}
	return nil
}

// RunService is the body of a service's main: it parses the settings
// registered by register (plus the common ones) from args and the
// environment, builds the logger, listens, and calls run until ctx ends.
func RunService(ctx context.Context, name, defaultListen string, args []string, common *ServiceConfig,
	register func(*config.Set), check func() error,
	run func(ctx context.Context, lis net.Listener, logger *slog.Logger) error) error {
	set := config.New(name)
	common.Register(set, defaultListen)
	register(set)
	if err := set.Parse(args, os.LookupEnv); err != nil {
		return &UsageError{err}
	}
	if err := common.Check(); err != nil {
		return &UsageError{err}
	}
	if err := check(); err != nil {
		return &UsageError{err}
	}
	logger, err := common.Log.Logger(os.Stderr)
	if err != nil {
		return &UsageError{err}
	}
	logger = logger.With("service", name)
	lis, err := net.Listen("tcp", common.ListenAddr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", common.ListenAddr, err)
	}
	logger.Info("listening", "addr", lis.Addr().String(), "brokers", common.Brokers, "topic", common.Topic)
	if common.PprofAddr != "" {
		stop, err := ServePprof(common.PprofAddr, logger)
		if err != nil {
			lis.Close()
			return err
		}
		defer stop()
	}
	return run(ctx, lis, logger)
}
