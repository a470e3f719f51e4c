package grpcserver

import (
	"context"
	"sync"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// Health is grpc.health.v1 with one difference from grpc-go's own server:
// Shutdown also ends Watch streams (after they have been sent NOT_SERVING).
// Open watches would otherwise hold a graceful stop until its timeout.
type Health struct {
	healthpb.UnimplementedHealthServer

	mu       sync.Mutex
	statuses map[string]healthpb.HealthCheckResponse_ServingStatus
	watchers map[string]map[chan healthpb.HealthCheckResponse_ServingStatus]struct{}
	shutdown bool
	quit     chan struct{}
}

// NewHealth returns a health server whose overall status ("") is SERVING.
func NewHealth() *Health {
	return &Health{
		statuses: map[string]healthpb.HealthCheckResponse_ServingStatus{"": healthpb.HealthCheckResponse_SERVING},
		watchers: map[string]map[chan healthpb.HealthCheckResponse_ServingStatus]struct{}{},
		quit:     make(chan struct{}),
	}
}

// Check implements grpc.health.v1.Health.Check.
func (h *Health) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st, ok := h.statuses[req.GetService()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "unknown service %q", req.GetService())
	}
	return &healthpb.HealthCheckResponse{Status: st}, nil
}

// List implements grpc.health.v1.Health.List.
func (h *Health) List(context.Context, *healthpb.HealthListRequest) (*healthpb.HealthListResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := &healthpb.HealthListResponse{Statuses: map[string]*healthpb.HealthCheckResponse{}}
	for name, st := range h.statuses {
		out.Statuses[name] = &healthpb.HealthCheckResponse{Status: st}
	}
	return out, nil
}

// Watch implements grpc.health.v1.Health.Watch: it sends the current status
// and every change, and ends with UNAVAILABLE after Shutdown.
func (h *Health) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	name := req.GetService()
	// A buffer of one holding only the newest status: a slow watcher skips
	// intermediate states but always ends on the current one.
	updates := make(chan healthpb.HealthCheckResponse_ServingStatus, 1)
	h.mu.Lock()
	st, ok := h.statuses[name]
	if !ok {
		st = healthpb.HealthCheckResponse_SERVICE_UNKNOWN
	}
	updates <- st
	if h.watchers[name] == nil {
		h.watchers[name] = map[chan healthpb.HealthCheckResponse_ServingStatus]struct{}{}
	}
	h.watchers[name][updates] = struct{}{}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.watchers[name], updates)
		h.mu.Unlock()
	}()

	send := func(st healthpb.HealthCheckResponse_ServingStatus) error {
		return stream.Send(&healthpb.HealthCheckResponse{Status: st})
	}
	for {
		select {
		case st := <-updates:
			if err := send(st); err != nil {
				return err
			}
		case <-h.quit:
			select {
			case st := <-updates:
				if err := send(st); err != nil {
					return err
				}
			default:
			}
			return status.Error(codes.Unavailable, "server is shutting down")
		case <-stream.Context().Done():
			return status.FromContextError(stream.Context().Err()).Err()
		}
	}
}

// SetServingStatus sets a service's status ("" is the whole server). After
// Shutdown it has no effect.
func (h *Health) SetServingStatus(name string, st healthpb.HealthCheckResponse_ServingStatus) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.shutdown {
		h.setLocked(name, st)
	}
}

func (h *Health) setLocked(name string, st healthpb.HealthCheckResponse_ServingStatus) {
	h.statuses[name] = st
	for ch := range h.watchers[name] {
		select { // replace a status the watcher has not taken yet
		case <-ch:
		default:
		}
		ch <- st
	}
}

// Shutdown sets every status to NOT_SERVING for good and ends the watches.
func (h *Health) Shutdown() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shutdown {
		return
	}
	h.shutdown = true
	for name := range h.statuses {
		h.setLocked(name, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	close(h.quit)
}
