package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kafkachat/kafkachat/pkg/chatclient"
	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
	"github.com/kafkachat/kafkachat/pkg/ingest"
	"github.com/kafkachat/kafkachat/pkg/subscribe"
	"github.com/kafkachat/kafkachat/pkg/testenv"
)

// TestSlowSubscriberDoesNotBlockOthers: a subscriber that stops reading
// fills its queue and is ended with RESOURCE_EXHAUSTED; a normal subscriber
// of the same room gets every message in order meanwhile.
func TestSlowSubscriberDoesNotBlockOthers(t *testing.T) {
	const n = 3000
	st := testenv.StartStack(t, func(_ *ingest.Config, sc *subscribe.Config) { sc.QueueLen = 32 })
	ctx, cancel := context.WithTimeout(context.Background(), testenv.Wait)
	defer cancel()

	slow := stuckSubscriber(t, ctx, st.Subscribe.Addr, "busy")
	normal, err := st.Client.Subscribe(ctx, "busy", chatclient.Latest)
	if err != nil {
		t.Fatal(err)
	}
	defer normal.Close()

	received := make(chan error, 1)
	go func() {
		got, err := collect(ctx, normal, n)
		if err == nil {
			for i, m := range got {
				if want := fmt.Sprintf("%d %s", i, strings.Repeat("x", 200)); m.GetText() != want {
					err = fmt.Errorf("message %d is %.20q", i, m.GetText())
					break
				}
			}
		}
		received <- err
	}()
	ingestClient := chatv1.NewIngestServiceClient(testenv.Conn(t, st.Ingest.Addr))
	for i := range n {
		text := fmt.Sprintf("%d %s", i, strings.Repeat("x", 200))
		if _, err := ingestClient.Send(ctx, &chatv1.SendRequest{Room: "busy", User: "alice", Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-received; err != nil {
		t.Fatalf("normal subscriber: %v", err)
	}
	hub := st.Subscribe.Subscribe.Hub()
	if hub.Stats().Evicted != 1 {
		t.Fatalf("evicted %d subscribers, want the slow one", hub.Stats().Evicted)
	}
	// The slow client finally reads: what it was sent is in order, then the
	// stream ends with RESOURCE_EXHAUSTED.
	for i := 0; ; i++ {
		m, err := slow.Recv()
		if err != nil {
			if status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("slow stream ended with %v, want ResourceExhausted", err)
			}
			if i >= n {
				t.Fatalf("slow subscriber got all %d messages; it was not slow", i)
			}
			break
		}
		if want := fmt.Sprintf("%d ", i); !strings.HasPrefix(m.GetMessage().GetText(), want) {
			t.Fatalf("slow subscriber message %d is %.20q", i, m.GetMessage().GetText())
		}
	}
	testenv.Eventually(t, "only the normal subscriber registered", func() (bool, error) {
		return hub.Stats().Subscribers == 1, nil
	})
}
