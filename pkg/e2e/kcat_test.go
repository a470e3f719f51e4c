package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/kafkachat/kafkachat/pkg/chatclient"
	"github.com/kafkachat/kafkachat/pkg/kafka"
	"github.com/kafkachat/kafkachat/pkg/testenv"
)

// kcatPath finds kcat; CI installs it, so there a missing kcat fails.
func kcatPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kcat not installed; .ci/run installs it (apt-get install kcat)")
		}
		t.Skip("kcat not installed (apt-get install kcat)")
	}
	return path
}

func runKcat(t *testing.T, ctx context.Context, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, kcatPath(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

// TestKcatReadsSentRecords: a client no one here wrote (kcat, librdkafka)
// sees what Send produced: key = room and the documented headers.
func TestKcatReadsSentRecords(t *testing.T) {
	kcatPath(t)
	st := testenv.StartStack(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testenv.Wait)
	defer cancel()
	m, err := st.Client.Send(ctx, "interop", "alice", "read me with kcat")
	if err != nil {
		t.Fatal(err)
	}
	out := runKcat(t, ctx, "", "-b", st.Broker.Addrs, "-C", "-t", st.Topic,
		"-p", fmt.Sprint(m.GetPosition().GetPartition()), "-o", fmt.Sprint(m.GetPosition().GetOffset()), "-c", "1", "-e", "-q",
		"-f", "key=%k partition=%p offset=%o headers=%h\n")
	for _, want := range []string{
		"key=interop ",
		fmt.Sprintf("partition=%d offset=%d ", m.GetPosition().GetPartition(), m.GetPosition().GetOffset()),
		"content-type=application/x-protobuf",
		"message-type=chat.v1.ChatMessage",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("kcat printed %q, want it to contain %q", out, want)
		}
	}
}

// TestKcatProducedRecordsReachSubscribers: records kcat writes in the
// documented JSON form, partitioned with librdkafka's murmur2 (the Java
// client's default), reach the Subscribe streams of their rooms.
func TestKcatProducedRecordsReachSubscribers(t *testing.T) {
	kcatPath(t)
	st := testenv.StartStack(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), testenv.Wait)
	defer cancel()
	rooms := []string{"general", "random", "dev", "ops", "lobby", "interop-6"}
	parts := map[int32]bool{}
	var lines strings.Builder
	for _, room := range rooms {
		parts[kafka.PartitionFor(room, 3)] = true
		fmt.Fprintf(&lines, "%s|{\"user\":\"kcat\",\"text\":\"hello %s\"}\n", room, room)
	}
	if len(parts) < 2 {
		t.Fatalf("rooms %v all hash to one partition; pick rooms that spread", rooms)
	}
	subs := map[string]*chatclientSub{}
	for _, room := range rooms {
		subs[room] = subscribeLatest(t, ctx, st, room)
	}
	runKcat(t, ctx, lines.String(), "-b", st.Broker.Addrs, "-P", "-t", st.Topic, "-K", "|",
		"-H", "content-type=application/json", "-X", "partitioner=murmur2_random")
	for _, room := range rooms {
		got, err := collect(ctx, subs[room].Subscription, 1)
		if err != nil {
			t.Fatalf("room %s: %v", room, err)
		}
		if got[0].GetUser() != "kcat" || got[0].GetText() != "hello "+room || got[0].GetRoom() != room {
			t.Fatalf("room %s got %v", room, got[0])
		}
		if p := got[0].GetPosition().GetPartition(); p != kafka.PartitionFor(room, 3) {
			t.Fatalf("room %s: kcat wrote partition %d, we expect %d", room, p, kafka.PartitionFor(room, 3))
		}
	}
	if n := st.Subscribe.Subscribe.Hub().Stats().Malformed; n != 0 {
		t.Fatalf("%d of kcat's records were rejected", n)
	}
}

type chatclientSub struct{ Subscription *chatclient.Subscription }

func subscribeLatest(t *testing.T, ctx context.Context, st *testenv.Stack, room string) *chatclientSub {
	t.Helper()
	sub, err := st.Client.Subscribe(ctx, room, chatclient.Latest)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	return &chatclientSub{sub}
}
