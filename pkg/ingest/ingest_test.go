package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/kafkachat/kafkachat/pkg/app"
	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
	"github.com/kafkachat/kafkachat/pkg/kafka"
)

// A caller that gives up must not fail the Sends that share its batch.
// franz-go fails a whole batch when the context of the batch's first record
// has ended; the test builds exactly that batch: the producer ID request
// is held so that records queue in one partition, the first of them from a
// caller who has left, then a second one behind it.
func TestCancelledSendDoesNotFailItsBatch(t *testing.T) {
	const topic = "chat"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()

	seen, release := holdProducerID(cluster)
	defer release()

	cfg := Config{ServiceConfig: app.ServiceConfig{Brokers: cluster.ListenAddrs()[0], Topic: topic}, MaxTextBytes: 4096, SendTimeout: 20 * time.Second}
	logger := slog.New(slog.DiscardHandler)
	producer, err := newProducer(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	svc := newService(cfg, producer, logger)
	svc.ready.Store(true)

	// Two rooms on different partitions: the first Send loads the topic's
	// metadata and asks for the producer ID (held); the other two then
	// queue, in order, in the second room's partition.
	first, second := roomOn(t, 0), roomOn(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type result struct {
		resp *chatv1.SendResponse
		err  error
	}
	send := func(ctx context.Context, room, text string) chan result {
		done := make(chan result, 1)
		go func() {
			resp, err := svc.Send(ctx, &chatv1.SendRequest{Room: room, User: "test", Text: text})
			done <- result{resp, err}
		}()
		return done
	}
	warm := send(ctx, first, "loads the metadata")
	select {
	case <-seen:
	case <-ctx.Done():
		t.Fatal("no producer ID request")
	}
	waitBuffered := func(n int64) {
		t.Helper()
		for producer.BufferedProduceRecords() < n {
			select {
			case <-ctx.Done():
				t.Fatalf("%d records buffered, want %d", producer.BufferedProduceRecords(), n)
			case <-time.After(time.Millisecond): // polling franz-go's counter
			}
		}
	}
	// A caller already gone when its Send arrives: nothing is written.
	gone, leave := context.WithCancel(ctx)
	leave()
	if r := <-send(gone, second, "from a caller gone before"); status.Code(r.err) != codes.Canceled {
		t.Fatalf("Send of a gone caller: %v, want CANCELED", r.err)
	}
	if n := producer.BufferedProduceRecords(); n != 1 {
		t.Fatalf("%d records buffered after a Send of a gone caller, want 1", n)
	}
	// A caller who leaves once its record waits in the buffer, first in
	// the second room's partition, then one who stays, behind it.
	leaving, leave := context.WithCancel(ctx)
	left := send(leaving, second, "from a caller who leaves")
	waitBuffered(2)
	leave()
	if r := <-left; status.Code(r.err) != codes.Canceled {
		t.Fatalf("Send of a caller who left: %v, want CANCELED", r.err)
	}
	stays := send(ctx, second, "from a caller who waits")
	waitBuffered(3)
	release()

	for name, ch := range map[string]chan result{"first room": warm, "second room": stays} {
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatalf("Send to the %s: %v", name, r.err)
			}
		case <-ctx.Done():
			t.Fatalf("Send to the %s did not return", name)
		}
	}
}

// holdProducerID makes kfake hold the first InitProducerID request until
// release is called: a producer's records then wait in its buffer. seen
// closes when the request has arrived. release may be called more than once.
func holdProducerID(cluster *kfake.Cluster) (seen <-chan struct{}, release func()) {
	arrived, released := make(chan struct{}), make(chan struct{})
	held := false
	cluster.ControlKey(int16(kmsg.InitProducerID), func(kmsg.Request) (kmsg.Response, error, bool) {
		if !held { // only the first request; the control runs on kfake's loop
			held = true
			close(arrived)
			cluster.SleepControl(func() { <-released })
		}
		return nil, nil, false
	})
	return arrived, sync.OnceFunc(func() { close(released) })
}

// roomOn is a room whose messages land on partition p of a 2-partition topic.
func roomOn(t *testing.T, p int32) string {
	for i := range 1000 {
		if room := fmt.Sprintf("room-%d", i); kafka.PartitionFor(room, 2) == p {
			return room
		}
	}
	t.Fatalf("no room on partition %d", p)
	return ""
}

func TestSendStatus(t *testing.T) {
	live := context.Background()
	gone, cancel := context.WithCancel(live)
	cancel()
	for _, tc := range []struct {
		ctx  context.Context
		err  error
		want codes.Code
		says string
	}{
		{live, fmt.Errorf("producing: %w", kgo.ErrMaxBuffered), codes.Unavailable, "already wait to be written to Kafka"},
		{live, fmt.Errorf("producing: %w", kerr.NotEnoughReplicas), codes.Unavailable, "not stored"},
		{live, fmt.Errorf("waiting: %w", errAckTimeout), codes.DeadlineExceeded, "may still be stored"},
		{gone, fmt.Errorf("waiting: %w", errAckTimeout), codes.Canceled, "may still be stored"},
	} {
		err := sendStatus(tc.ctx, tc.err)
		if st := status.Convert(err); st.Code() != tc.want || !strings.Contains(st.Message(), tc.says) {
			t.Errorf("sendStatus(%v) = %v, want %v saying %q", tc.err, err, tc.want, tc.says)
		}
	}
}

// CHAT_SHUTDOWN_TIMEOUT bounds the whole shutdown, flushing the producer
// included, even when Kafka answers nothing: the Send in flight is cut
// when the timeout ends, and the flush gets no time beyond it.
func TestShutdownWithinTimeoutWhenKafkaHangs(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	seen, release := holdProducerID(cluster)
	defer release()

	const timeout = 2 * time.Second
	cfg := Config{ServiceConfig: app.ServiceConfig{Brokers: cluster.ListenAddrs()[0], Topic: "chat",
		ShutdownTimeout: timeout, KeepaliveTime: 15 * time.Second, KeepalivePing: 10 * time.Second},
		Partitions: 1, Replication: 1, MaxTextBytes: 4096, SendTimeout: 30 * time.Second}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	ran := make(chan error, 1)
	go func() { ran <- Run(ctx, cfg, lis, slog.New(slog.DiscardHandler)) }()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := chatv1.NewIngestServiceClient(conn)
	sendCtx, sendCancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer sendCancel()
	go func() { // until the topic is ready, then one Send that Kafka holds
		for sendCtx.Err() == nil {
			_, err := client.Send(sendCtx, &chatv1.SendRequest{Room: "lobby", User: "test", Text: "held"})
			if !strings.Contains(status.Convert(err).Message(), "is starting") {
				return
			}
		}
	}()
	select {
	case <-seen:
	case <-sendCtx.Done():
		t.Fatal("no Send reached Kafka")
	}

	began := time.Now()
	stop()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(3 * timeout):
		t.Fatalf("Run still running %v after the shutdown began", 3*timeout)
	}
	if took := time.Since(began); took > timeout+timeout/2 {
		t.Errorf("shutdown took %v, want about CHAT_SHUTDOWN_TIMEOUT (%v)", took, timeout)
	}
}
