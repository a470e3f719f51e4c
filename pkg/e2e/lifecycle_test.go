package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kafkachat/kafkachat/pkg/chatclient"
	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
	"github.com/kafkachat/kafkachat/pkg/kafka"
	"github.com/kafkachat/kafkachat/pkg/record"
	"github.com/kafkachat/kafkachat/pkg/testenv"
	"github.com/kafkachat/kafkachat/pkg/token"
)

func sendOK(t *testing.T, c chatv1.IngestServiceClient, room, text string) *chatv1.ChatMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testenv.Wait)
	defer cancel()
	resp, err := c.Send(ctx, &chatv1.SendRequest{Room: room, User: "alice", Text: text})
	if err != nil {
		t.Fatalf("Send %q: %v", text, err)
	}
	return resp.GetMessage()
}

// TestTopicAlreadyExists: a topic made beforehand (with another partition
// count than configured) is used as it is, and so is the service's own
// topic when the service restarts.
func TestTopicAlreadyExists(t *testing.T) {
	b := testenv.StartBroker(t)
	topic := b.Topic(t)
	ctx, cancel := context.WithTimeout(context.Background(), testenv.Wait)
	defer cancel()
	if _, err := b.Admin(t).CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	cfg := testenv.IngestConfig(b, topic)
	cfg.Partitions = 3
	for run := range 2 {
		svc := testenv.StartIngest(t, cfg, "")
		testenv.WaitServing(t, svc)
		m := sendOK(t, chatv1.NewIngestServiceClient(testenv.Conn(t, svc.Addr)), "lobby", "run")
		if want := kafka.PartitionFor("lobby", 2); m.GetPosition().GetPartition() != want || m.GetPosition().GetOffset() != int64(run) {
			t.Fatalf("run %d stored at %v, want partition %d offset %d", run, m.GetPosition(), want, run)
		}
		if err := svc.Stop(t); err != nil {
			t.Fatalf("run %d: stop: %v", run, err)
		}
	}
}

// TestBrokerUnreachableAtBoot: the service starts while Kafka cannot be
// reached, says so (NOT_SERVING, Send UNAVAILABLE), and becomes ready by
// itself once Kafka is there.
func TestBrokerUnreachableAtBoot(t *testing.T) {
	b := testenv.StartBroker(t)
	proxy := testenv.NewClosedProxy(t, strings.Split(b.Addrs, ",")[0])
	topic := b.Topic(t)
	cfg := testenv.IngestConfig(b, topic)
	cfg.Brokers = proxy.Addr
	svc := testenv.StartIngest(t, cfg, "")
	conn := testenv.Conn(t, svc.Addr)
	client := chatv1.NewIngestServiceClient(conn)

	// Up, but not ready: health answers NOT_SERVING and Send UNAVAILABLE.
	testenv.Eventually(t, "health NOT_SERVING", func() (bool, error) {
		st, err := testenv.HealthStatus(context.Background(), conn)
		return err == nil && st == healthpb.HealthCheckResponse_NOT_SERVING, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), testenv.Wait)
	defer cancel()
	_, err := client.Send(ctx, &chatv1.SendRequest{Room: "lobby", User: "alice", Text: "too early"})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Send before Kafka is reachable: %v, want Unavailable", err)
	}

	proxy.Open(t)
	testenv.WaitServing(t, svc)
	sendOK(t, client, "lobby", "now it works")
}

// TestBootFailsOnRefusedTopic: a topic the cluster refuses (replication
// factor above the broker count) stops the boot with a clear error.
func TestBootFailsOnRefusedTopic(t *testing.T) {
	b := testenv.StartBroker(t)
	cfg := testenv.IngestConfig(b, b.Topic(t))
	cfg.Replication = 7
	svc := testenv.StartIngest(t, cfg, "")
	select {
	case <-svc.Done():
		if err := svc.Err(); err == nil || !strings.Contains(err.Error(), "replication factor=7") {
			t.Fatalf("boot error %v, want one naming the replication factor", err)
		}
	case <-time.After(testenv.Wait):
		t.Fatal("ingest kept running with a topic the cluster refused")
	}
}

// TestShutdownKeepsAcknowledged: the service is stopped (as on SIGTERM)
// while Sends are in flight; every Send it acknowledged is in Kafka, and
// every other Send got a clear status instead of hanging.
func TestShutdownKeepsAcknowledged(t *testing.T) {
	st := testenv.StartStack(t, nil)
	client := chatv1.NewIngestServiceClient(testenv.Conn(t, st.Ingest.Addr))
	ctx, cancel := context.WithTimeout(context.Background(), testenv.Wait)
	defer cancel()

	var (
		mu      sync.Mutex
		acked   []*chatv1.ChatMessage
		refused = map[codes.Code]int{}
		count   atomic.Int64
		wg      sync.WaitGroup
	)
	enough := make(chan struct{})
	var once sync.Once
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				resp, err := client.Send(ctx, &chatv1.SendRequest{Room: "shutdown", User: "alice", Text: "msg",
					ClientMessageId: testenv.RandomHex(8)})
				mu.Lock()
				if err != nil {
					refused[status.Code(err)]++
					mu.Unlock()
					return
				}
				acked = append(acked, resp.GetMessage())
				mu.Unlock()
				if count.Add(1) == 200 {
					once.Do(func() { close(enough) })
				}
			}
		}()
	}
	<-enough
	if err := st.Ingest.Stop(t); err != nil {
		t.Fatalf("stop: %v", err)
	}
	wg.Wait()
	for code, n := range refused {
		if code != codes.Unavailable {
			t.Fatalf("%d Sends failed with %v, want only Unavailable", n, code)
		}
	}
	stored := map[string]string{}
	for _, r := range st.Broker.ReadAll(t, st.Topic) {
		m, err := record.Decode(r)
		if err != nil {
			t.Fatal(err)
		}
		stored[posKey(m)] = m.GetClientMessageId()
	}
	for _, m := range acked {
		if stored[posKey(m)] != m.GetClientMessageId() {
			t.Fatalf("acknowledged message %s at %s is not in Kafka", m.GetClientMessageId(), posKey(m))
		}
	}
	t.Logf("%d acknowledged, all in Kafka; refused after shutdown: %v", len(acked), refused)
}

func posKey(m *chatv1.ChatMessage) string {
	return fmt.Sprintf("%d/%d", m.GetPosition().GetPartition(), m.GetPosition().GetOffset())
}

// TestSubscribeShutdown: stopping the subscribe service turns health
// NOT_SERVING and ends open streams with UNAVAILABLE, naming where to
// resume.
func TestSubscribeShutdown(t *testing.T) {
	st := testenv.StartStack(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testenv.Wait)
	defer cancel()
	m := sendOK(t, chatv1.NewIngestServiceClient(testenv.Conn(t, st.Ingest.Addr)), "bye", "before")
	sub := rawSubscribe(t, ctx, st.Subscribe.Addr, &chatv1.SubscribeRequest{Room: "bye",
		Start: &chatv1.SubscribeRequest_Position{Position: chatv1.StartPosition_START_POSITION_EARLIEST}})
	if got, err := sub.Recv(); err != nil || !proto.Equal(got.GetMessage(), m) {
		t.Fatalf("got %v, %v; want %v", got, err, m)
	}
	watch, err := healthpb.NewHealthClient(testenv.Conn(t, st.Subscribe.Addr)).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if first, err := watch.Recv(); err != nil || first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health watch: %v %v", first, err)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- st.Subscribe.Stop(t) }()
	if next, err := watch.Recv(); err == nil && next.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health went %v, want NOT_SERVING", next.GetStatus())
	}
	_, err = sub.Recv()
	if s := status.Convert(err); s.Code() != codes.Unavailable || !strings.Contains(s.Message(), "resume after partition") {
		t.Fatalf("stream ended with %v, want Unavailable naming where to resume", err)
	}
	// The trailer's resume token names the last message sent.
	tok := sub.Trailer().Get("chat-resume-token")
	if len(tok) != 1 {
		t.Fatalf("trailer has resume tokens %v, want one", tok)
	}
	if pos, err := token.Decode(tok[0]); err != nil || pos.Offset != m.GetPosition().GetOffset() || pos.Partition != m.GetPosition().GetPartition() {
		t.Fatalf("trailer token %+v (%v), want the position of %v", pos, err, m.GetPosition())
	}
	if err := <-stopped; err != nil {
		t.Fatalf("stop: %v", err)
	}
}

// TestDisconnectedSubscribersLeave: streams whose clients go away are
// removed from the hub at once.
func TestDisconnectedSubscribersLeave(t *testing.T) {
	st := testenv.StartStack(t, nil)
	hub := st.Subscribe.Subscribe.Hub()
	var cancels []context.CancelFunc
	for i := range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		if _, err := st.Client.Subscribe(ctx, []string{"a", "b", "c"}[i%3], chatclient.Latest); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, "20 subscribers registered", func() (bool, error) { return hub.Stats().Subscribers == 20, nil })
	for _, c := range cancels {
		c()
	}
	testenv.Eventually(t, "no subscribers left", func() (bool, error) { return hub.Stats().Subscribers == 0, nil })
}

// TestMalformedRecordSkipped: a record that does not decode is counted and
// skipped; records other producers write in the documented JSON form are
// delivered; the stream goes on in order.
func TestMalformedRecordSkipped(t *testing.T) {
	st := testenv.StartStack(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testenv.Wait)
	defer cancel()
	sub, err := st.Client.Subscribe(ctx, "mixed", chatclient.Latest)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	producer := st.Broker.Client(t, kgoPartitioner())
	for _, r := range []*recordSpec{
		{value: "\xff\xff not protobuf"},
		{value: `{"user":"carol","text":"hello from JSON","serverTime":"2026-01-02T03:04:05Z"}`, contentType: record.ContentTypeJSON},
		{value: `{"user":"mallory","text":"wrong room","room":"other"}`, contentType: record.ContentTypeJSON},
		{value: "x", contentType: "text/plain"},
	} {
		if err := producer.ProduceSync(ctx, r.record(st.Topic, "mixed")).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	valid := sendOK(t, chatv1.NewIngestServiceClient(testenv.Conn(t, st.Ingest.Addr)), "mixed", "still flowing")
	got, err := collect(ctx, sub, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].GetUser() != "carol" || got[0].GetText() != "hello from JSON" || got[0].GetServerTime().AsTime().Year() != 2026 {
		t.Fatalf("first message %v, want carol's JSON one", got[0])
	}
	if !proto.Equal(got[1], valid) {
		t.Fatalf("second message %v, want %v", got[1], valid)
	}
	if n := st.Subscribe.Subscribe.Hub().Stats().Malformed; n != 3 {
		t.Fatalf("malformed count %d, want 3", n)
	}
}
