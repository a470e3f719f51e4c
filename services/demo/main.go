// Command demo runs the whole chat on this machine and prints the
// conversation between alice and bob: `make demo`. See pkg/demo.
package main

import (
	"context"
	"os"
	"time"

	"github.com/kafkachat/kafkachat/pkg/app"
	"github.com/kafkachat/kafkachat/pkg/config"
	"github.com/kafkachat/kafkachat/pkg/demo"
)

func main() {
	app.Main(func(ctx context.Context, args []string) error {
		var cfg demo.Config
		set := config.New("demo")
		set.String(&cfg.Brokers, "brokers", "KAFKA_BROKERS", "", "Kafka to use; empty starts an embedded broker")
		set.String(&cfg.Room, "room", "CHAT_ROOM", "", "room to chat in; empty picks a fresh one")
		set.Duration(&cfg.MinDelay, "min-delay", "CHAT_MIN_DELAY", 300*time.Millisecond, "shortest pause before a line")
		set.Duration(&cfg.MaxDelay, "max-delay", "CHAT_MAX_DELAY", 1200*time.Millisecond, "longest pause before a line")
		set.Duration(&cfg.Timeout, "timeout", "DEMO_TIMEOUT", 5*time.Minute, "give up after this long")
		set.Bool(&cfg.KeepLogs, "keep-logs", "DEMO_KEEP_LOGS", false, "keep the services' logs")
		if err := set.Parse(args, os.LookupEnv); err != nil {
			return &app.UsageError{Err: err}
		}
		return demo.Run(ctx, cfg, os.Stdout)
	})
}
