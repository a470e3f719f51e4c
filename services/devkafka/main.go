// Command devkafka runs an embedded Kafka-protocol broker (franz-go's kfake)
// on a loopback port, for the demo and local development. It keeps data in
// memory only. It prints "KAFKA_BROKERS=host:port" once it listens and runs
// until SIGINT or SIGTERM.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafkachat/kafkachat/pkg/app"
	"github.com/kafkachat/kafkachat/pkg/config"
)

func main() { app.Main(run) }

func run(ctx context.Context, args []string) error {
	var port int
	set := config.New("devkafka")
	set.Int(&port, "port", "DEVKAFKA_PORT", 9092, "loopback port to listen on (0 picks a free one)")
	if err := set.Parse(args, os.LookupEnv); err != nil {
		return &app.UsageError{Err: err}
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port))
	if err != nil {
		return fmt.Errorf("starting embedded broker on 127.0.0.1:%d: %w", port, err)
	}
	defer cluster.Close()
	fmt.Printf("KAFKA_BROKERS=%s\n", cluster.ListenAddrs()[0])
	<-ctx.Done()
	return nil
}
