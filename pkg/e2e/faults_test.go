package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
	"github.com/kafkachat/kafkachat/pkg/ingest"
	"github.com/kafkachat/kafkachat/pkg/subscribe"
	"github.com/kafkachat/kafkachat/pkg/testenv"
)

// TestSendDoesNotHangWhenBrokerDies: with the broker gone, a Send answers
// within CHAT_SEND_TIMEOUT (franz-go's idempotent producer would keep the
// record forever), and the service still shuts down within its timeout.
// Killing the broker needs the embedded one.
func TestSendDoesNotHangWhenBrokerDies(t *testing.T) {
	if testenv.Real() {
		t.Skip("kills the broker: runs on the embedded broker only")
	}
	const sendTimeout, shutdownTimeout = 2 * time.Second, 3 * time.Second
	st := testenv.StartStack(t, func(ic *ingest.Config, _ *subscribe.Config) {
		ic.SendTimeout, ic.ShutdownTimeout = sendTimeout, shutdownTimeout
	})
	client := chatv1.NewIngestServiceClient(testenv.Conn(t, st.Ingest.Addr))
	sendOK(t, client, "doomed", "before")
	st.Broker.Fake.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err := client.Send(ctx, &chatv1.SendRequest{Room: "doomed", User: "alice", Text: "after"})
	took := time.Since(start)
	if code := status.Code(err); code != codes.DeadlineExceeded && code != codes.Unavailable {
		t.Fatalf("Send with the broker gone: %v, want DeadlineExceeded or Unavailable", err)
	}
	if took > sendTimeout+2*time.Second {
		t.Fatalf("Send with the broker gone took %v; the limit is %v", took, sendTimeout)
	}
	start = time.Now()
	if err := st.Ingest.Stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
	// Graceful stop, then the producer's flush, are each bounded by the
	// shutdown timeout.
	if took := time.Since(start); took > 2*shutdownTimeout+2*time.Second {
		t.Fatalf("ingest took %v to stop with the broker gone", took)
	}
}

// TestSubscribeStopsWhenTopicRecreated: a topic deleted and recreated under
// the subscribe service invalidates every position it holds. The service
// ends its streams with UNAVAILABLE and exits with an error saying why,
// instead of spinning on fetch errors or delivering the new topic's
// offsets as if they continued the old ones.
func TestSubscribeStopsWhenTopicRecreated(t *testing.T) {
	st := testenv.StartStack(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testenv.Wait)
	defer cancel()
	sendOK(t, chatv1.NewIngestServiceClient(testenv.Conn(t, st.Ingest.Addr)), "phoenix", "old")
	sub := rawSubscribe(t, ctx, st.Subscribe.Addr, &chatv1.SubscribeRequest{Room: "phoenix",
		Start: &chatv1.SubscribeRequest_Position{Position: chatv1.StartPosition_START_POSITION_EARLIEST}})
	if _, err := sub.Recv(); err != nil {
		t.Fatal(err)
	}
	recreateTopic(t, ctx, st)
	select {
	case <-st.Subscribe.Done():
		err := st.Subscribe.Err()
		if err == nil || !(strings.Contains(err.Error(), "recreated") || strings.Contains(err.Error(), "deleted") || strings.Contains(err.Error(), "went back")) {
			t.Fatalf("subscribe exited with %v, want an error about the recreated topic", err)
		}
	case <-ctx.Done():
		t.Fatal("subscribe kept running on a recreated topic")
	}
	if _, err := sub.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("open stream ended with %v, want Unavailable", err)
	}
}
