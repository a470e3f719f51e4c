package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kafkachat/kafkachat/pkg/chatclient"
	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
	"github.com/kafkachat/kafkachat/pkg/ingest"
	"github.com/kafkachat/kafkachat/pkg/kafka"
	"github.com/kafkachat/kafkachat/pkg/subscribe"
	"github.com/kafkachat/kafkachat/pkg/testenv"
)

// sendNumbered sends texts "0".."n-1" (plus an optional prefix) to room,
// sequentially, and returns the stored messages.
func sendNumbered(t *testing.T, ctx context.Context, c *chatclient.Client, room, prefix string, from, n int) []*chatv1.ChatMessage {
	t.Helper()
	out := make([]*chatv1.ChatMessage, 0, n)
	for i := from; i < from+n; i++ {
		m, err := c.Send(ctx, room, "alice", prefix+strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// expectSequence receives n messages and checks they carry texts
// prefix+from .. prefix+(from+n-1), in order.
func expectSequence(t *testing.T, ctx context.Context, sub *chatclient.Subscription, prefix string, from, n int) {
	t.Helper()
	got, err := collect(ctx, sub, n)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range got {
		if want := prefix + strconv.Itoa(from+i); m.GetText() != want {
			t.Fatalf("message %d is %q, want %q", i, m.GetText(), want)
		}
	}
}

// TestResumeAfterToken: a token older than anything in the service's
// memory resumes exactly after its message (read back from Kafka), then
// goes on live; a token from the window does the same from memory.
func TestResumeAfterToken(t *testing.T) {
	st := testenv.StartStack(t, func(_ *ingest.Config, sc *subscribe.Config) { sc.Window = 20 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sent := sendNumbered(t, ctx, st.Client, "resume", "", 0, 300)
	first, err := st.Client.Subscribe(ctx, "resume", chatclient.Earliest)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	var tokens, texts []string
	for range sent {
		m, err := first.Recv()
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, first.Token())
		texts = append(texts, m.GetText())
	}
	for _, at := range []int{10, 295} { // from Kafka, from memory
		sub, err := st.Client.Subscribe(ctx, "resume", chatclient.After(tokens[at]))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range sendNumbered(t, ctx, st.Client, "resume", "live-", at, 3) {
			texts = append(texts, m.GetText())
		}
		got, err := collect(ctx, sub, len(texts)-at-1)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range got {
			if want := texts[at+1+i]; m.GetText() != want {
				t.Fatalf("after token %d: message %d is %q, want %q", at, i, m.GetText(), want)
			}
		}
		sub.Close()
	}
}

// TestResumeOnAnotherReplica: two subscribe replicas, each with its own
// consumer; a token from one resumes on the other.
func TestResumeOnAnotherReplica(t *testing.T) {
	st := testenv.StartStack(t, nil)
	other := testenv.StartSubscribe(t, testenv.SubscribeConfig(st.Broker, st.Topic), "")
	testenv.WaitServing(t, other)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sendNumbered(t, ctx, st.Client, "replicas", "", 0, 50)
	sub, err := st.Client.Subscribe(ctx, "replicas", chatclient.Earliest)
	if err != nil {
		t.Fatal(err)
	}
	expectSequence(t, ctx, sub, "", 0, 20)
	sub.Close()
	client2 := testenv.NewClient(t, st.Ingest.Addr, other.Addr)
	sub2, err := client2.Subscribe(ctx, "replicas", chatclient.After(sub.Token()))
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Close()
	expectSequence(t, ctx, sub2, "", 20, 30)
}

// TestTokenErrors: tokens that cannot be honoured get a status that says
// why, so the client can choose earliest or latest instead.
func TestTokenErrors(t *testing.T) {
	st := testenv.StartStack(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sendNumbered(t, ctx, st.Client, "tokens", "", 0, 10)
	sub, err := st.Client.Subscribe(ctx, "tokens", chatclient.Earliest)
	if err != nil {
		t.Fatal(err)
	}
	expectSequence(t, ctx, sub, "", 0, 10)
	sub.Close()
	tok := sub.Token()
	hub := st.Subscribe.Subscribe.Hub()
	p := kafka.PartitionFor("tokens", 3)
	type tokenCase struct {
		room, after string
		code        codes.Code
	}
	cases := map[string]tokenCase{
		"garbage":            {"tokens", "not-a-token", codes.InvalidArgument},
		"another room's":     {roomInOtherPartition(p), tok, codes.InvalidArgument},
		"beyond the end":     {"tokens", hub.Token(p, 1_000_000), codes.OutOfRange},
		"fine, for contrast": {"tokens", tok, codes.OK},
	}
	// Records before offset 5 are deleted, as retention would.
	deleteBefore(t, ctx, st, p, 5)
	cases["no longer retained"] = tokenCase{"tokens", hub.Token(p, 2), codes.OutOfRange}
	if hub.Token(p, 9) != testTokenWithoutID(p, 9) { // the broker has topic IDs
		cases["without topic identity"] = tokenCase{"tokens", testTokenWithoutID(p, 9), codes.FailedPrecondition}
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			stream := rawSubscribeErr(ctx, st.Subscribe.Addr, t, &chatv1.SubscribeRequest{Room: tc.room,
				Start: &chatv1.SubscribeRequest_After{After: tc.after}})
			if code := status.Code(stream); code != tc.code {
				t.Fatalf("got %v, want %v", stream, tc.code)
			}
		})
	}
}

// TestTokenFromRecreatedTopic: after the topic is deleted and recreated,
// tokens from before are refused with FAILED_PRECONDITION, not misread as
// positions in the new topic.
func TestTokenFromRecreatedTopic(t *testing.T) {
	st := testenv.StartStack(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sendNumbered(t, ctx, st.Client, "epoch", "", 0, 3)
	sub, err := st.Client.Subscribe(ctx, "epoch", chatclient.Earliest)
	if err != nil {
		t.Fatal(err)
	}
	expectSequence(t, ctx, sub, "", 0, 3)
	sub.Close()
	if st.Subscribe.Subscribe.Hub().Token(0, 0) == (testTokenWithoutID(0, 0)) {
		t.Skip("the broker reports no topic IDs")
	}
	recreateTopic(t, ctx, st)
	fresh := testenv.StartSubscribe(t, testenv.SubscribeConfig(st.Broker, st.Topic), "")
	testenv.WaitServing(t, fresh)
	err = rawSubscribeErr(ctx, fresh.Addr, t, &chatv1.SubscribeRequest{Room: "epoch",
		Start: &chatv1.SubscribeRequest_After{After: sub.Token()}})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "recreated") {
		t.Fatalf("old token on the new topic: %v, want FailedPrecondition", err)
	}
}

// TestHistoryOnJoin: "last N" starts with the room's N newest messages,
// also when other rooms share its partition and the window is too small,
// and with all of them when the room has fewer.
func TestHistoryOnJoin(t *testing.T) {
	st := testenv.StartStack(t, func(_ *ingest.Config, sc *subscribe.Config) { sc.Window = 10 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	room, noise := "history", roomInSamePartition("history")
	for i := range 60 {
		sendNumbered(t, ctx, st.Client, room, "", i, 1)
		sendNumbered(t, ctx, st.Client, noise, "noise-", i*3, 3)
	}
	for _, tc := range []struct {
		last uint32
		from int
		n    int
	}{{1, 59, 1}, {5, 55, 5}, {40, 20, 40}, {1000, 0, 60}} {
		sub, err := st.Client.Subscribe(ctx, room, chatclient.Last(tc.last))
		if err != nil {
			t.Fatal(err)
		}
		expectSequence(t, ctx, sub, "", tc.from, tc.n)
		sub.Close()
	}
}

// TestLastRightAfterSend: "last N" counts from what Kafka has acknowledged,
// not from what the service's consumer has fetched so far: a subscription
// made right after Sends were acknowledged gets exactly their last N, then
// what follows. Many rounds, so that some find the consumer lagging.
func TestLastRightAfterSend(t *testing.T) {
	st := testenv.StartStack(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for round := range 40 {
		room := "fresh-" + strconv.Itoa(round)
		sendNumbered(t, ctx, st.Client, room, "", 0, 3)
		sub, err := st.Client.Subscribe(ctx, room, chatclient.Last(2))
		if err != nil {
			t.Fatal(err)
		}
		sendNumbered(t, ctx, st.Client, room, "", 3, 1)
		expectSequence(t, ctx, sub, "", 1, 3)
		sub.Close()
	}
}

// TestResumeThroughDisconnects: the network under a subscriber is cut again
// and again during a 10,000-message burst; the client library resumes each
// time and the reader sees the exact sequence.
func TestResumeThroughDisconnects(t *testing.T) {
	const n = 10000
	st := testenv.StartStack(t, nil)
	proxy := testenv.NewProxy(t, st.Subscribe.Addr)
	client := testenv.NewClient(t, st.Ingest.Addr, proxy.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sub, err := client.Subscribe(ctx, "burst", chatclient.Latest)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 { // four senders, each its own numbers
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n / 4 {
				if _, err := st.Client.Send(ctx, "burst", "alice", fmt.Sprintf("%d-%d", w, i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	next := map[string]int{}
	cuts := 0
	for i := range n {
		m, err := sub.Recv()
		if err != nil {
			t.Fatalf("after %d messages: %v", i, err)
		}
		w, num, _ := strings.Cut(m.GetText(), "-")
		if k, _ := strconv.Atoi(num); k != next[w] {
			t.Fatalf("message %d: sender %s's %d after %d", i, w, k, next[w]-1)
		}
		next[w]++
		if i%1500 == 700 {
			cuts += proxy.CutAll()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if sub.Resumes() == 0 || cuts == 0 {
		t.Fatalf("%d cuts, %d resumes: the test did not break the stream", cuts, sub.Resumes())
	}
	t.Logf("%d messages, %d connections cut, %d resumes", n, cuts, sub.Resumes())
}

// TestMultiRoomStream: one stream follows several rooms, each from its own
// start and in its own order, and resumes all of them after a break.
func TestMultiRoomStream(t *testing.T) {
	st := testenv.StartStack(t, nil)
	proxy := testenv.NewProxy(t, st.Subscribe.Addr)
	client := testenv.NewClient(t, st.Ingest.Addr, proxy.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rooms := []string{"multi-a", "multi-b", roomInOtherPartition(kafka.PartitionFor("multi-a", 3))}
	for _, r := range rooms {
		sendNumbered(t, ctx, st.Client, r, r+":", 0, 5)
	}
	sub, err := client.SubscribeRooms(ctx,
		chatclient.RoomStart{Room: rooms[0], Start: chatclient.Earliest},
		chatclient.RoomStart{Room: rooms[1], Start: chatclient.Last(2)},
		chatclient.RoomStart{Room: rooms[2], Start: chatclient.Latest})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var wg sync.WaitGroup
	for _, r := range rooms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 5; i < 205; i++ {
				if _, err := st.Client.Send(ctx, r, "alice", r+":"+strconv.Itoa(i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	// Expected per room: a from 0, b from 3 (its last 2 of 5), c from 5.
	next := map[string]int{rooms[0]: 0, rooms[1]: 3, rooms[2]: 5}
	total := (205 - 0) + (205 - 3) + (205 - 5)
	for i := range total {
		m, err := sub.Recv()
		if err != nil {
			t.Fatalf("after %d: %v", i, err)
		}
		if want := m.GetRoom() + ":" + strconv.Itoa(next[m.GetRoom()]); m.GetText() != want {
			t.Fatalf("room %s: got %q, want %q", m.GetRoom(), m.GetText(), want)
		}
		next[m.GetRoom()]++
		if i == total/2 {
			proxy.CutAll()
		}
	}
	wg.Wait()
	if sub.Resumes() == 0 {
		t.Fatal("the stream was never cut")
	}
	for _, r := range rooms {
		if next[r] != 205 {
			t.Fatalf("room %s ended at %d", r, next[r])
		}
	}
}

// TestBadMultiRoomRequests: the rooms list is checked like a single room.
func TestBadMultiRoomRequests(t *testing.T) {
	st := testenv.StartStack(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	many := &chatv1.SubscribeRequest{}
	for i := range 101 {
		many.Rooms = append(many.Rooms, &chatv1.RoomStart{Room: fmt.Sprintf("r%d", i)})
	}
	for name, req := range map[string]*chatv1.SubscribeRequest{
		"both forms":  {Room: "a", Rooms: []*chatv1.RoomStart{{Room: "b"}}},
		"twice":       {Rooms: []*chatv1.RoomStart{{Room: "b"}, {Room: "b"}}},
		"bad room":    {Rooms: []*chatv1.RoomStart{{Room: "b"}, {Room: "no way"}}},
		"bad token":   {Rooms: []*chatv1.RoomStart{{Room: "b", Start: &chatv1.RoomStart_After{After: "zz"}}}},
		"zero last":   {Room: "a", Start: &chatv1.SubscribeRequest_Last{}},
		"too many":    many,
		"empty after": {Room: "a", Start: &chatv1.SubscribeRequest_After{}},
	} {
		t.Run(name, func(t *testing.T) {
			if err := rawSubscribeErr(ctx, st.Subscribe.Addr, t, req); status.Code(err) != codes.InvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
		})
	}
}

// TestHistoryRespectsRetention: "last N" never starts before what Kafka
// still retains, even when the service's memory still holds older
// messages, so every token it hands out can be resumed from.
func TestHistoryRespectsRetention(t *testing.T) {
	st := testenv.StartStack(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sent := sendNumbered(t, ctx, st.Client, "retained", "", 0, 6)
	p := sent[0].GetPosition().GetPartition()
	deleteBefore(t, ctx, st, p, sent[3].GetPosition().GetOffset())
	sub, err := st.Client.Subscribe(ctx, "retained", chatclient.Last(5))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	expectSequence(t, ctx, sub, "", 3, 3)
	// The token of the first message handed out resumes.
	again, err := st.Client.Subscribe(ctx, "retained", chatclient.Last(3))
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if _, err := again.Recv(); err != nil {
		t.Fatal(err)
	}
	resumed, err := st.Client.Subscribe(ctx, "retained", chatclient.After(again.Token()))
	if err != nil {
		t.Fatalf("resuming from a token handed out by last N: %v", err)
	}
	resumed.Close()
}

// deleteBefore deletes a partition's records before offset, as retention
// would, and waits until the broker reports the new start.
func deleteBefore(t *testing.T, ctx context.Context, st *testenv.Stack, p int32, offset int64) {
	t.Helper()
	adm := st.Broker.Admin(t)
	if _, err := adm.DeleteRecords(ctx, offsetsAt(st.Topic, p, offset)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, "deletion visible in the start offsets", func() (bool, error) {
		starts, err := adm.ListStartOffsets(ctx, st.Topic)
		if err != nil {
			return false, nil
		}
		o, _ := starts.Lookup(st.Topic, p)
		return o.Offset == offset, nil
	})
}
