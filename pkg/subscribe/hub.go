package subscribe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
	"github.com/kafkachat/kafkachat/pkg/kafka"
	"github.com/kafkachat/kafkachat/pkg/record"
	"github.com/kafkachat/kafkachat/pkg/token"
)

// Hub runs the service's one Kafka consumer and fans its records out to
// subscribers.
//
// Every partition keeps the offset of the next record the consumer will
// deliver (head) and a window of its most recent messages. A subscriber
// starts at an offset: if the window still covers it, the subscriber takes
// the window's part from that offset on and is registered for what comes
// after head, all under the partition's lock, so the seam has no gap and no
// duplicate. Otherwise it first reads the older records back from Kafka with
// a short-lived reader of its own, which never moves the live consumer, and
// joins the same way once it has reached the window.
//
// Live delivery never blocks: each subscriber has a bounded queue, and one
// that lets it fill up is ended with RESOURCE_EXHAUSTED.
type Hub struct {
	topic      string
	topicID    kadm.TopicID  // identity at start: a recreated topic gets a new one
	admin      *kadm.Client  // for the hub's own look-ups (topic identity)
	starts     *sharedLookup // log start offsets, shared by concurrent subscriptions
	ends       *sharedLookup // end offsets, likewise
	partitions []*partition
	consumer   *kgo.Client
	clientOpts []kgo.Opt
	queueLen   int
	logger     *slog.Logger

	bootEnd   []int64 // end offsets when the hub started; ready once reached
	ready     atomic.Bool
	readyCh   chan struct{}
	malformed atomic.Int64
	evicted   atomic.Int64
	closing   atomic.Bool
	life      context.Context // cancelled by Close: ends catch-up reads
	endLife   context.CancelFunc

	runDone chan struct{}
}

// HubConfig configures a Hub.
type HubConfig struct {
	Topic string
	// Window is how many recent messages each partition keeps in memory.
	Window int
	// QueueLen is how many messages a subscriber may have waiting before it
	// is ended as too slow.
	QueueLen int
}

// Stats are counters for tests and logs.
type Stats struct {
	Subscribers int
	Malformed   int64
	Evicted     int64
}

type partition struct {
	id int32

	mu          sync.Mutex
	head        int64         // next offset the consumer will deliver
	window      ring          // recent messages, oldest first
	coveredFrom int64         // every message at offset >= coveredFrom is in window or still to come
	advanced    chan struct{} // closed (and cleared) when head moves; made by waiters
	rooms       map[string]map[*subscriber]struct{}
}

// entry is one decoded message, shared read-only by every subscriber.
type entry struct {
	offset int64
	room   string
	wire   []byte // the SubscribeResponse, encoded
}

// NewHub looks the topic up (waiting for it to exist), positions the
// consumer Window messages before the end of each partition, and returns a
// hub whose Run must be called to start consuming.
func NewHub(ctx context.Context, cfg HubConfig, clientOpts []kgo.Opt, logger *slog.Logger) (*Hub, error) {
	admClient, err := kgo.NewClient(clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("creating Kafka client: %w", err)
	}
	adm := kadm.NewClient(admClient)
	ok := false
	defer func() {
		if !ok {
			admClient.Close()
		}
	}()
	info, err := kafka.WaitTopicReady(ctx, adm, cfg.Topic, logger)
	if err != nil {
		return nil, err
	}
	starts, err := listOffsets(ctx, adm.ListStartOffsets, cfg.Topic)
	if err != nil {
		return nil, err
	}
	ends, err := listOffsets(ctx, adm.ListEndOffsets, cfg.Topic)
	if err != nil {
		return nil, err
	}
	h := &Hub{
		admin:      adm,
		topic:      cfg.Topic,
		topicID:    info.ID,
		clientOpts: clientOpts,
		queueLen:   cfg.QueueLen,
		logger:     logger,
		bootEnd:    make([]int64, info.Partitions),
		readyCh:    make(chan struct{}),
		runDone:    make(chan struct{}),
	}
	h.life, h.endLife = context.WithCancel(context.Background())
	h.starts = newSharedLookup(h.life, func(ctx context.Context) (map[int32]int64, error) {
		return listOffsets(ctx, adm.ListStartOffsets, cfg.Topic)
	})
	h.ends = newSharedLookup(h.life, func(ctx context.Context) (map[int32]int64, error) {
		return listOffsets(ctx, adm.ListEndOffsets, cfg.Topic)
	})
	offsets := map[int32]kgo.Offset{}
	for p := range info.Partitions {
		start := max(starts[p], ends[p]-int64(cfg.Window))
		h.partitions = append(h.partitions, &partition{
			id: p, head: start, coveredFrom: start,
			window: newRing(cfg.Window),
			rooms:  map[string]map[*subscriber]struct{}{},
		})
		h.bootEnd[p] = ends[p]
		offsets[p] = kgo.NewOffset().At(start)
	}
	h.consumer, err = kgo.NewClient(append(append([]kgo.Opt(nil), clientOpts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Topic: offsets}),
	)...)
	if err != nil {
		return nil, fmt.Errorf("creating Kafka consumer: %w", err)
	}
	h.checkReady()
	ok = true
	logger.Info("hub positioned", "topic", cfg.Topic, "partitions", info.Partitions, "end_offsets", ends)
	return h, nil
}

func listOffsets(ctx context.Context, list func(context.Context, ...string) (kadm.ListedOffsets, error), topic string) (map[int32]int64, error) {
	listed, err := list(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("listing offsets of %q: %w", topic, err)
	}
	if err := listed.Error(); err != nil {
		return nil, fmt.Errorf("listing offsets of %q: %w", topic, err)
	}
	out := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

// Ready is closed once the consumer has caught up with the end of every
// partition as it was at start: from then on "latest" means now.
func (h *Hub) Ready() <-chan struct{} { return h.readyCh }

// Partitions is the topic's partition count.
func (h *Hub) Partitions() int32 { return int32(len(h.partitions)) }

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	n := 0
	for _, p := range h.partitions {
		p.mu.Lock()
		for _, subs := range p.rooms {
			n += len(subs)
		}
		p.mu.Unlock()
	}
	return Stats{Subscribers: n, Malformed: h.malformed.Load(), Evicted: h.evicted.Load()}
}

// Run consumes until ctx ends, then closes the consumer. It returns an
// error only when the topic was deleted, recreated or truncated under it:
// the positions it holds then mean nothing, and the service must restart.
func (h *Hub) Run(ctx context.Context) error {
	defer close(h.runDone)
	defer h.admin.Close()
	defer h.consumer.Close()
	failures := 0
	var lastCheck time.Time
	for {
		fetches := h.consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			// franz-go retries by itself; what comes back here repeats on
			// every poll while the cause lasts, so log it sparingly and
			// back off instead of spinning.
			failures++
			if failures == 1 || failures%50 == 0 {
				h.logger.Warn("fetch error", "partition", errs[0].Partition, "err", errs[0].Err, "consecutive", failures)
			}
			if time.Since(lastCheck) > 2*time.Second {
				lastCheck = time.Now()
				if err := h.checkTopicIdentity(ctx); err != nil {
					return err
				}
			}
			if err := sleepCtx(ctx, min(time.Second, time.Duration(failures)*20*time.Millisecond)); err != nil {
				return nil
			}
			continue
		}
		failures = 0
		var rewound error
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if int(fp.Partition) < len(h.partitions) && len(fp.Records) > 0 && rewound == nil {
				rewound = h.dispatch(h.partitions[fp.Partition], fp.Records)
			}
		})
		if rewound != nil {
			return rewound
		}
		if !h.ready.Load() {
			h.checkReady()
		}
	}
}

// checkTopicIdentity fails when the topic is gone or is another topic of
// the same name. An unreachable cluster is not an error here.
func (h *Hub) checkTopicIdentity(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	details, err := h.admin.ListTopics(ctx, h.topic)
	if err != nil {
		return nil
	}
	d, ok := details[h.topic]
	switch {
	case !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition):
		return fmt.Errorf("topic %q was deleted", h.topic)
	case d.Err != nil:
		return nil
	case d.ID != h.topicID && d.ID != (kadm.TopicID{}) && h.topicID != (kadm.TopicID{}):
		return fmt.Errorf("topic %q was recreated (id %s, was %s): the positions held no longer exist", h.topic, d.ID, h.topicID)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hub) checkReady() {
	for i, p := range h.partitions {
		p.mu.Lock()
		behind := p.head < h.bootEnd[i]
		p.mu.Unlock()
		if behind {
			return
		}
	}
	if h.ready.CompareAndSwap(false, true) {
		close(h.readyCh)
		h.logger.Info("hub caught up; ready")
	}
}

// dispatch appends records to the partition's window and hands each to the
// subscribers of its room. A record below the partition's head means the
// log went backwards (truncated, or the topic recreated): that is returned
// as an error, since delivering it would break every stream's order.
func (h *Hub) dispatch(p *partition, recs []*kgo.Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range recs {
		if r.Offset < p.head {
			return fmt.Errorf("partition %d went back from offset %d to %d: the topic %q was truncated or recreated",
				p.id, p.head, r.Offset, h.topic)
		}
		p.head = r.Offset + 1
		e, err := h.decode(r)
		if err != nil {
			h.malformed.Add(1)
			h.logger.Warn("skipping malformed record", "partition", r.Partition, "offset", r.Offset, "err", err)
			continue
		}
		if kafka.PartitionFor(e.room, int32(len(h.partitions))) != p.id {
			// Readers of the room look in another partition; delivering
			// it would break the room's single order.
			h.malformed.Add(1)
			h.logger.Warn("skipping record in the wrong partition for its room", "room", e.room, "partition", r.Partition, "offset", r.Offset)
			continue
		}
		if dropped, ok := p.window.push(e); ok {
			p.coveredFrom = dropped.offset + 1
		}
		for s := range p.rooms[e.room] {
			s.offer(e)
		}
	}
	if p.advanced != nil {
		close(p.advanced)
		p.advanced = nil
	}
	return nil
}

// awaitHead waits, at most maxWait, until the consumer has delivered
// partition p up to end. It reports whether it has.
func awaitHead(ctx context.Context, p *partition, end int64, maxWait time.Duration) bool {
	t := time.NewTimer(maxWait)
	defer t.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.head < end {
		if p.advanced == nil {
			p.advanced = make(chan struct{})
		}
		ch := p.advanced
		p.mu.Unlock()
		select {
		case <-ch:
		case <-t.C:
			p.mu.Lock()
			return false
		case <-ctx.Done():
			p.mu.Lock()
			return false
		}
		p.mu.Lock()
	}
	return true
}

// decode turns a record into the response every subscriber of its room is
// sent, resume token included.
func (h *Hub) decode(r *kgo.Record) (*entry, error) {
	m, err := record.Decode(r)
	if err != nil {
		return nil, err
	}
	// Encoded here, once, and sent as these bytes to every subscriber.
	wire, err := proto.Marshal(&chatv1.SubscribeResponse{Message: m, ResumeToken: h.Token(r.Partition, r.Offset)})
	if err != nil {
		return nil, fmt.Errorf("encoding response: %w", err)
	}
	return &entry{offset: r.Offset, room: m.Room, wire: wire}, nil
}

// Token is the resume token of a position in this hub's topic.
func (h *Hub) Token(partition int32, offset int64) string {
	return token.Token{TopicID: h.topicID, Partition: partition, Offset: offset}.Encode()
}

// Close ends every subscription with UNAVAILABLE: the server is going away
// and clients should reconnect elsewhere. Subscriptions made after Close
// fail the same way.
func (h *Hub) Close() {
	h.closing.Store(true)
	defer h.endLife()
	for _, p := range h.partitions {
		p.mu.Lock()
		for _, subs := range p.rooms {
			for s := range subs {
				s.end(codes.Unavailable, "subscribe service is shutting down")
			}
		}
		p.mu.Unlock()
	}
}

// Wait blocks until Run has returned.
func (h *Hub) Wait() { <-h.runDone }

var errClosing = status.Error(codes.Unavailable, "subscribe service is shutting down")

func closingStatus(partition int32, last int64) error {
	return status.Errorf(codes.Unavailable, "subscribe service is shutting down; resume after partition %d offset %d", partition, last)
}

// From is where a subscription starts: exactly one field is set.
type From struct {
	// Latest starts at the next message stored.
	Latest bool
	// Earliest starts at the oldest message Kafka retains.
	Earliest bool
	// After starts right after a resume token's position.
	After *token.Token
	// Last starts with the room's last Last messages.
	Last int
}

// Follow delivers the room's messages from the start position to send, in
// offset order, until ctx ends, send fails or the hub ends the
// subscription. registered is called once the start offset is fixed: every
// message from then on will be delivered.
func (h *Hub) Follow(ctx context.Context, room string, from From, registered func(partition int32, offset int64) error, send func(*entry) error) error {
	if h.closing.Load() {
		return errClosing
	}
	// Look-ups and catch-up reads end with the stream or with Close; once
	// joined, the subscription needs neither registration (Close ends it
	// through s.end), so both are released then rather than held for the
	// life of an idle stream.
	streamCtx := ctx
	ctx, cancel := context.WithCancel(ctx)
	stopLife := context.AfterFunc(h.life, cancel)
	release := func() { stopLife(); cancel() }
	defer release()
	p := h.partitions[kafka.PartitionFor(room, int32(len(h.partitions)))]
	s := &subscriber{room: room, limit: h.queueLen, wake: make(chan struct{}, 1), done: make(chan struct{}), hub: h}

	var startAt int64
	var err error
	switch {
	case from.After != nil:
		startAt, err = h.afterToken(ctx, p, *from.After)
	case from.Earliest:
		var starts map[int32]int64
		if starts, err = h.startOffsets(ctx); err == nil {
			startAt = starts[p.id]
		}
	case from.Last > 0:
		startAt, err = h.lastN(ctx, p, room, from.Last)
	default:
		startAt = h.latest(ctx, p)
	}
	if err != nil {
		if h.closing.Load() { // the look-up was cut by Close
			return errClosing
		}
		return err
	}
	if err := registered(p.id, startAt); err != nil {
		return err
	}

	next := startAt
	var backlog []*entry
	var reader *catchUp
	defer func() {
		if reader != nil {
			reader.close()
		}
	}()
	for {
		var joined bool
		backlog, joined = h.tryJoin(p, s, next)
		if joined {
			break
		}
		if h.closing.Load() {
			return closingStatus(p.id, next-1)
		}
		if reader == nil {
			var err error
			if reader, err = h.newCatchUp(p.id, next); err != nil {
				return err
			}
		}
		var err error
		if next, err = reader.readBatch(ctx, room, next, send); err != nil {
			if h.closing.Load() {
				return closingStatus(p.id, next-1)
			}
			return err
		}
	}
	if reader != nil {
		reader.close()
		reader = nil
	}
	defer h.leave(p, s)
	release()
	// The live loop waits on wake alone: the stream's end and the hub's
	// end of the subscription post there too, so a delivery costs one
	// channel receive rather than a select over three.
	defer context.AfterFunc(streamCtx, s.signal)()

	last := next - 1 // offset of the last message the client was sent, or before
	deliver := func(e *entry) error {
		if err := send(e); err != nil {
			return err
		}
		last = e.offset
		return nil
	}
	for _, e := range backlog {
		if err := deliver(e); err != nil {
			return err
		}
	}
	var batch []*entry
	for {
		<-s.wake
		select {
		case <-s.done: // ended by the hub: its status says more
			return s.status(p.id, last)
		default:
		}
		if err := streamCtx.Err(); err != nil {
			if h.closing.Load() {
				return closingStatus(p.id, last)
			}
			return status.FromContextError(err).Err()
		}
		batch = s.take(batch[:0])
		for _, e := range batch {
			if err := deliver(e); err != nil {
				return err
			}
		}
		clear(batch) // let delivered entries go once the window drops them
	}
}

// tryJoin registers s for live delivery if the window covers next, and
// returns the window's messages of the room from next up to head.
func (h *Hub) tryJoin(p *partition, s *subscriber, next int64) ([]*entry, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if next < p.coveredFrom || h.closing.Load() {
		// Close marks the hub closing before it takes the partition locks,
		// so a subscriber either is ended by Close or never joins.
		return nil, false
	}
	backlog := p.window.since(next, s.room)
	s.next = max(next, p.head)
	if p.rooms[s.room] == nil {
		p.rooms[s.room] = map[*subscriber]struct{}{}
	}
	p.rooms[s.room][s] = struct{}{}
	return backlog, true
}

func (h *Hub) leave(p *partition, s *subscriber) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.rooms[s.room], s)
	if len(p.rooms[s.room]) == 0 {
		delete(p.rooms, s.room)
	}
}

func (h *Hub) startOffsets(ctx context.Context) (map[int32]int64, error) {
	starts, err := h.starts.get(ctx)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "looking up the earliest offset: %v", err)
	}
	return starts, nil
}

// latest is where a "latest" subscription starts: the partition's end as
// Kafka reports it now, so that messages acknowledged before the
// subscription (which the consumer may not have fetched yet) are not
// delivered. If Kafka cannot be asked, the consumer's head is the best
// known end: nothing stored after registration is missed either way.
func (h *Hub) latest(ctx context.Context, p *partition) int64 {
	p.mu.Lock()
	head := p.head
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ends, err := h.ends.get(ctx)
	if err != nil {
		h.logger.Debug("latest: end offsets unavailable; using the consumer's head", "err", err)
		return head
	}
	return max(head, ends[p.id])
}

// afterToken checks a resume token against the topic and the room and
// returns the offset to start at.
func (h *Hub) afterToken(ctx context.Context, p *partition, t token.Token) (int64, error) {
	if t.TopicID != h.topicID && h.topicID != (kadm.TopicID{}) {
		return 0, status.Errorf(codes.FailedPrecondition,
			"resume token is from another incarnation of topic %q (it was deleted and recreated since, or the token carries no topic ID): start from earliest, latest or last N", h.topic)
	}
	if t.Partition != p.id {
		return 0, status.Errorf(codes.InvalidArgument, "invalid after: the token is for partition %d, the room is in partition %d", t.Partition, p.id)
	}
	// The bounds are always asked of Kafka, even when the window still
	// holds the messages: records deleted there (retention, DeleteRecords)
	// must not come back from memory.
	starts, err := h.startOffsets(ctx)
	if err != nil {
		return 0, err
	}
	ends, err := h.ends.get(ctx)
	if err != nil {
		return 0, status.Errorf(codes.Unavailable, "looking up the latest offset: %v", err)
	}
	if t.Offset >= ends[p.id] { // checked before adding 1, which could overflow
		return 0, status.Errorf(codes.OutOfRange, "the token's offset %d is beyond the end of partition %d (%d)", t.Offset, p.id, ends[p.id])
	}
	next := t.Offset + 1
	switch {
	case next < starts[p.id]:
		return 0, status.Errorf(codes.OutOfRange,
			"the messages after the token (partition %d offset %d) are no longer retained by Kafka; the oldest is at offset %d: start from earliest or latest",
			p.id, t.Offset, starts[p.id])
	}
	return next, nil
}

// lastN finds the offset of the room's n-th newest message, counting back
// from Kafka's end offset at the time of the request: first the messages
// Kafka has acknowledged that the consumer has not delivered yet (those
// still pending after a short wait for the consumer are read from Kafka),
// then the window,
// then older records read backwards from Kafka in growing chunks. With
// fewer messages retained it returns the room's oldest retained message,
// and with none, the end.
func (h *Hub) lastN(ctx context.Context, p *partition, room string, n int) (int64, error) {
	// Kafka's start offset bounds the answer even when the window holds
	// enough: messages deleted there must not come back from memory (their
	// tokens could not be resumed from).
	starts, err := h.startOffsets(ctx)
	if err != nil {
		return 0, err
	}
	ends, err := h.ends.get(ctx)
	if err != nil {
		return 0, status.Errorf(codes.Unavailable, "looking up the latest offset: %v", err)
	}
	lo, end := starts[p.id], ends[p.id]
	// The consumer is usually at most a fetch behind Kafka's end: waiting
	// for it is much cheaper than reading the difference from Kafka.
	awaitHead(ctx, p, end, 500*time.Millisecond)
	p.mu.Lock()
	inWindow := p.window.since(max(p.coveredFrom, lo), room)
	hi, head := p.coveredFrom, p.head
	p.mu.Unlock()
	// The room's offsets are taken in segments, newest first, until n are
	// found; oldest is the oldest taken so far.
	need, oldest := n, int64(-1)
	take := func(offsets []int64) (int64, bool) {
		if len(offsets) >= need {
			return offsets[len(offsets)-need], true
		}
		need -= len(offsets)
		if len(offsets) > 0 {
			oldest = offsets[0]
		}
		return 0, false
	}
	if head < end {
		pending, err := h.roomOffsets(ctx, p.id, room, max(head, lo), end)
		if err != nil {
			return 0, err
		}
		if at, ok := take(pending); ok {
			return at, nil
		}
	}
	windowOffsets := make([]int64, len(inWindow))
	for i, e := range inWindow {
		windowOffsets[i] = e.offset
	}
	if at, ok := take(windowOffsets); ok {
		return at, nil
	}
	chunk := int64(max(need*8, 512))
	for hi > lo {
		from := max(lo, hi-chunk)
		offsets, err := h.roomOffsets(ctx, p.id, room, from, hi)
		if err != nil {
			return 0, err
		}
		if at, ok := take(offsets); ok {
			return at, nil
		}
		hi, chunk = from, chunk*2
	}
	if oldest >= 0 {
		return oldest, nil
	}
	// Kafka retains nothing of the room: start where the next one will be.
	return max(end, lo), nil
}

// roomOffsets reads [from, to) of a partition back from Kafka and returns
// the offsets of the room's messages.
func (h *Hub) roomOffsets(ctx context.Context, partition int32, room string, from, to int64) ([]int64, error) {
	reader, err := h.newCatchUp(partition, from)
	if err != nil {
		return nil, err
	}
	defer reader.close()
	var offsets []int64
	collect := func(e *entry) error {
		if e.offset < to {
			offsets = append(offsets, e.offset)
		}
		return nil
	}
	for next := from; next < to; {
		if next, err = reader.readBatch(ctx, room, next, collect); err != nil {
			return nil, err
		}
	}
	return offsets, nil
}

// subscriber is one live subscription. next and membership are guarded by
// its partition's lock.
type subscriber struct {
	room string
	hub  *Hub
	next int64

	// The queue is a slice that grows as needed up to limit rather than a
	// channel: a channel allocates its whole capacity up front, which for
	// thousands of idle subscribers is most of their memory.
	qmu   sync.Mutex
	queue []*entry
	limit int
	wake  chan struct{} // a token here: the queue may hold entries, or the subscription ended

	once   sync.Once
	done   chan struct{}
	code   codes.Code
	reason string
}

// offer queues e without blocking; a full queue ends the subscriber.
// Called with the partition locked.
func (s *subscriber) offer(e *entry) {
	if e.offset < s.next {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	s.qmu.Lock()
	full := len(s.queue) >= s.limit
	if !full {
		s.queue = append(s.queue, e)
	}
	s.qmu.Unlock()
	if full {
		s.hub.evicted.Add(1)
		s.end(codes.ResourceExhausted, fmt.Sprintf("subscriber too slow: %d messages were waiting to be sent", s.limit))
		return
	}
	s.next = e.offset + 1
	s.signal()
}

// signal wakes the subscription's loop; a wake already pending covers it.
func (s *subscriber) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take moves the queued entries into buf, leaving the queue empty.
func (s *subscriber) take(buf []*entry) []*entry {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	buf = append(buf, s.queue...)
	clear(s.queue)
	s.queue = s.queue[:0]
	if cap(s.queue) > 256 {
		s.queue = nil // a burst is over: do not hold its memory
	}
	return buf
}

// status is the final status of a subscription the hub ended. It names the
// offset of the last message the client was sent (or, if none, the one
// before its start) so that it knows where to resume.
func (s *subscriber) status(partition int32, last int64) error {
	return status.Errorf(s.code, "%s; resume after partition %d offset %d", s.reason, partition, last)
}

// end stops the subscription; called with the partition locked.
func (s *subscriber) end(code codes.Code, reason string) {
	s.once.Do(func() {
		s.code, s.reason = code, reason
		close(s.done)
		s.signal()
	})
}
