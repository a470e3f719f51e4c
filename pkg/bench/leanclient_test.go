package bench

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
	"github.com/kafkachat/kafkachat/pkg/grpcserver"
)

// serveForTest serves register's services on loopback until the test ends.
func serveForTest(t *testing.T, register func(*grpc.Server)) string {
	t.Helper()
	srv := grpcserver.New(quietLogger(), grpcserver.Keepalive{Time: time.Second, Timeout: time.Second})
	register(srv.GRPC)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ctx, lis, time.Second, nil)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return lis.Addr().String()
}

func TestLeanStreamReceivesEveryMessageInOrder(t *testing.T) {
	hub := &bareHub{}
	addr := serveForTest(t, func(s *grpc.Server) {
		chatv1.RegisterSubscribeServiceServer(s, hub)
		chatv1.RegisterIngestServiceServer(s, hub)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := openLean(ctx, addr, "room")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Enough bytes to need window updates (4 x leanWindow), in messages
	// that straddle DATA frames.
	const n = 4000
	text := strings.Repeat("x", 1000)
	got := make(chan stamp, n)
	runErr := make(chan error, 1)
	go func() {
		runErr <- s.run(func(b []byte) {
			st, err := parseStamp(b)
			if err != nil {
				t.Errorf("message %d: %v", len(got), err)
			}
			got <- st
		})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for hub.streamCount() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stream never joined the hub")
		}
		time.Sleep(time.Millisecond) // polling a counter with a deadline
	}
	for i := range n {
		req := &chatv1.SendRequest{Room: "room", User: "u", Text: stampAt(int64(i)) + " " + text}
		if _, err := hub.Send(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case st := <-got:
			if !st.ok || st.sentNanos != int64(i) {
				t.Fatalf("message %d: got stamp %+v", i, st)
			}
		case err := <-runErr:
			t.Fatalf("stream ended after %d messages: %v", i, err)
		case <-ctx.Done():
			t.Fatalf("only %d of %d messages arrived", i, n)
		}
	}
	s.Close()
	if err := <-runErr; err == nil {
		t.Fatal("run returned no error after the connection was closed")
	}
}

func TestLeanStreamReportsARefusedSubscribe(t *testing.T) {
	addr := serveForTest(t, func(s *grpc.Server) {
		chatv1.RegisterSubscribeServiceServer(s, refusing{})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := openLean(ctx, addr, "room")
	if err == nil {
		s.Close()
		t.Fatal("openLean succeeded on a refused subscription")
	}
	if !strings.Contains(err.Error(), "3 no rooms today") {
		t.Fatalf("error %q does not carry the status", err)
	}
}

type refusing struct {
	chatv1.UnimplementedSubscribeServiceServer
}

func (refusing) Subscribe(*chatv1.SubscribeRequest, grpc.ServerStreamingServer[chatv1.SubscribeResponse]) error {
	return status.Error(codes.InvalidArgument, "no rooms today")
}
