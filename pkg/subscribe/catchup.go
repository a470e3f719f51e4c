package subscribe

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// catchUp reads one partition back from Kafka for one subscriber that starts
// before the hub's window. It is a client of its own, so it never moves the
// live consumer.
type catchUp struct {
	hub       *Hub
	cl        *kgo.Client
	partition int32
}

func (h *Hub) newCatchUp(partition int32, from int64) (*catchUp, error) {
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), h.clientOpts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{h.topic: {partition: kgo.NewOffset().At(from)}}),
		// An offset Kafka no longer has must surface as an error, not be
		// silently moved: the client asked for exactly that position.
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
	)...)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "creating a Kafka reader: %v", err)
	}
	return &catchUp{hub: h, cl: cl, partition: partition}, nil
}

func (c *catchUp) close() { c.cl.Close() }

// readBatch sends the room's messages of the next fetch and returns the
// offset after the last record read.
func (c *catchUp) readBatch(ctx context.Context, room string, next int64, send func(*entry) error) (int64, error) {
	fetches := c.cl.PollFetches(ctx)
	if err := ctx.Err(); err != nil {
		return next, status.FromContextError(err).Err()
	}
	var ferr error
	fetches.EachError(func(_ string, _ int32, err error) {
		if ferr == nil {
			ferr = err
		}
	})
	switch {
	case errors.Is(ferr, kerr.OffsetOutOfRange):
		return next, status.Errorf(codes.OutOfRange, "partition %d offset %d is no longer retained by Kafka", c.partition, next)
	case ferr != nil:
		return next, status.Errorf(codes.Unavailable, "reading history from Kafka: %v", ferr)
	}
	var sendErr error
	fetches.EachRecord(func(r *kgo.Record) {
		if sendErr != nil || r.Partition != c.partition || r.Offset < next {
			return
		}
		next = r.Offset + 1
		e, err := c.hub.decode(r)
		if err != nil {
			c.hub.malformed.Add(1)
			c.hub.logger.Warn("skipping malformed record", "partition", r.Partition, "offset", r.Offset, "err", err)
			return
		}
		if e.room == room {
			if err := send(e); err != nil {
				sendErr = fmt.Errorf("sending history: %w", err)
			}
		}
	})
	return next, sendErr
}
