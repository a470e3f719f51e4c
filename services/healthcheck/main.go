// Command healthcheck asks a gRPC server's grpc.health.v1 service for its
// status and exits 0 only when it is SERVING. The container images use it
// as their HEALTHCHECK (they have no shell or other tools).
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/kafkachat/kafkachat/pkg/app"
	"github.com/kafkachat/kafkachat/pkg/config"
)

func main() { app.Main(run) }

func run(ctx context.Context, args []string) error {
	var addr, service string
	var timeout time.Duration
	set := config.New("healthcheck")
	set.String(&addr, "addr", "HEALTHCHECK_ADDR", "127.0.0.1:8081", "server to ask")
	set.String(&service, "service", "HEALTHCHECK_SERVICE", "", "service name to ask about (empty: the whole server)")
	set.Duration(&timeout, "timeout", "HEALTHCHECK_TIMEOUT", 3*time.Second, "give up after this long")
	if err := set.Parse(args, os.LookupEnv); err != nil {
		return &app.UsageError{Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return fmt.Errorf("checking %s: %w", addr, err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("%s is %s", addr, resp.GetStatus())
	}
	return nil
}
