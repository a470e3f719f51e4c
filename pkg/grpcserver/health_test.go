package grpcserver

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// TestHealthShutdownEndsWatch: a watcher is told NOT_SERVING and its stream
// ends, so it cannot hold a graceful stop.
func TestHealthShutdownEndsWatch(t *testing.T) {
	h := NewHealth()
	h.SetServingStatus("svc", healthpb.HealthCheckResponse_NOT_SERVING)
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, h)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	defer srv.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("Check unknown: %v, want NotFound", err)
	}
	w, err := client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	recv := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		if r, err := w.Recv(); err != nil || r.GetStatus() != want {
			t.Fatalf("watch got %v, %v; want %v", r.GetStatus(), err, want)
		}
	}
	recv(healthpb.HealthCheckResponse_NOT_SERVING)
	h.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	recv(healthpb.HealthCheckResponse_SERVING)

	stopped := make(chan struct{})
	h.Shutdown()
	go func() { srv.GracefulStop(); close(stopped) }()
	recv(healthpb.HealthCheckResponse_NOT_SERVING)
	if _, err := w.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("watch after shutdown: %v, want Unavailable", err)
	}
	select {
	case <-stopped:
	case <-ctx.Done():
		t.Fatal("graceful stop held by a health watch")
	}
	h.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	if r, _ := h.Check(ctx, &healthpb.HealthCheckRequest{Service: "svc"}); r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatal("status changed after Shutdown")
	}
}
