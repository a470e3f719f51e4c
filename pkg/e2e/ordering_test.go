package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kafkachat/kafkachat/pkg/chatclient"
	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
	"github.com/kafkachat/kafkachat/pkg/ingest"
	"github.com/kafkachat/kafkachat/pkg/subscribe"
	"github.com/kafkachat/kafkachat/pkg/testenv"
)

// collect receives n messages from sub.
func collect(ctx context.Context, sub *chatclient.Subscription, n int) ([]*chatv1.ChatMessage, error) {
	out := make([]*chatv1.ChatMessage, 0, n)
	for len(out) < n {
		m, err := sub.Recv()
		if err != nil {
			return out, fmt.Errorf("after %d of %d messages: %w", len(out), n, err)
		}
		out = append(out, m)
	}
	return out, ctx.Err()
}

// TestOrdering: alice and bob send 500 numbered messages each at the same
// time on a 3-partition topic; three subscribers from earliest (one before
// the sends, one during, one after, the last two read back from Kafka since
// the window is small) see the same sequence, equal to Kafka's offset
// order, with each sender's numbers strictly increasing.
func TestOrdering(t *testing.T) {
	const perSender = 500
	st := testenv.StartStack(t, func(ic *ingest.Config, sc *subscribe.Config) {
		ic.Partitions = 3
		sc.Window = 50 // later subscribers must catch up from Kafka
		sc.QueueLen = 4096
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const room = "ordering"

	subscribeEarliest := func() *chatclient.Subscription {
		sub, err := st.Client.Subscribe(ctx, room, chatclient.Earliest)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sub.Close)
		return sub
	}
	var results [3][]*chatv1.ChatMessage
	var readers errgroup.Group
	read := func(i int, sub *chatclient.Subscription) {
		readers.Go(func() (err error) {
			results[i], err = collect(ctx, sub, 2*perSender)
			return err
		})
	}
	read(0, subscribeEarliest())

	halfway := make(chan struct{})
	var once sync.Once
	var senders errgroup.Group
	for _, user := range []string{"alice", "bob"} {
		senders.Go(func() error {
			for i := range perSender {
				if _, err := st.Client.Send(ctx, room, user, fmt.Sprintf("%s %d", user, i)); err != nil {
					return err
				}
				if i == perSender/2 {
					once.Do(func() { close(halfway) })
				}
			}
			return nil
		})
	}
	<-halfway
	read(1, subscribeEarliest())
	if err := senders.Wait(); err != nil {
		t.Fatal(err)
	}
	read(2, subscribeEarliest())
	if err := readers.Wait(); err != nil {
		t.Fatal(err)
	}

	// Kafka's own order of the room, read with a plain consumer.
	var kafkaOrder []string
	for _, r := range st.Broker.ReadAll(t, st.Topic) {
		if string(r.Key) == room {
			kafkaOrder = append(kafkaOrder, fmt.Sprintf("%d/%d", r.Partition, r.Offset))
		}
	}
	if len(kafkaOrder) != 2*perSender {
		t.Fatalf("kafka holds %d messages of the room, want %d", len(kafkaOrder), 2*perSender)
	}
	for i, got := range results {
		last := map[string]int{"alice": -1, "bob": -1}
		for j, m := range got {
			if pos := fmt.Sprintf("%d/%d", m.GetPosition().GetPartition(), m.GetPosition().GetOffset()); pos != kafkaOrder[j] {
				t.Fatalf("subscriber %d message %d at %s, kafka has %s there", i, j, pos, kafkaOrder[j])
			}
			user, num, _ := strings.Cut(m.GetText(), " ")
			n, err := strconv.Atoi(num)
			if err != nil || user != m.GetUser() {
				t.Fatalf("subscriber %d message %d: unexpected %q from %q", i, j, m.GetText(), m.GetUser())
			}
			if n != last[user]+1 {
				t.Fatalf("subscriber %d: %s's message %d follows %d", i, user, n, last[user])
			}
			last[user] = n
			if j > 0 && got[j].GetPosition().GetOffset() <= got[j-1].GetPosition().GetOffset() {
				t.Fatalf("subscriber %d: offsets not increasing at %d", i, j)
			}
		}
		if last["alice"] != perSender-1 || last["bob"] != perSender-1 {
			t.Fatalf("subscriber %d ended at alice %d, bob %d", i, last["alice"], last["bob"])
		}
	}
}
