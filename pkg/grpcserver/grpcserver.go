// Package grpcserver is the gRPC plumbing both services share: health,
// reflection, keepalive, panic recovery, request logging and a graceful
// stop bounded by a timeout.
package grpcserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// Keepalive says how the server finds dead peers. Chat streams may sit idle
// for hours: the server pings a quiet connection every Time and drops it
// when a ping is not answered within Timeout, so with the defaults (15 s,
// 10 s) a vanished client is found within about 25-30 s and its streams
// end. There is deliberately no MaxConnectionAge: it would cut healthy
// long streams.
type Keepalive struct {
	Time, Timeout time.Duration
}

// keepalivePolicy lets clients ping every 10 s, even without active
// streams; faster pingers are told to go away (ENHANCE_YOUR_CALM).
var keepalivePolicy = keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}

// Server is a gRPC server with the health service registered. Services
// report NOT_SERVING until they call Health.SetServingStatus.
type Server struct {
	GRPC   *grpc.Server
	Health *Health
	logger *slog.Logger
}

// New builds a server with health (overall status NOT_SERVING until the
// service says otherwise), reflection, keepalive and interceptors.
func New(logger *slog.Logger, ka Keepalive, opts ...grpc.ServerOption) *Server {
	base := []grpc.ServerOption{
		// Per-connection buffers dominate the memory of idle streams (the
		// write buffer is shared, grpc-go's default, so only held while
		// writing); a small read buffer is plenty for requests of a few KiB.
		grpc.ReadBufferSize(8 << 10),
		grpc.ForceServerCodecV2(newCodec()),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: ka.Time, Timeout: ka.Timeout}),
		grpc.KeepaliveEnforcementPolicy(keepalivePolicy),
		grpc.ChainUnaryInterceptor(unaryInterceptor(logger)),
		grpc.ChainStreamInterceptor(streamInterceptor(logger)),
	}
	s := &Server{
		GRPC:   grpc.NewServer(append(base, opts...)...),
		Health: NewHealth(),
		logger: logger,
	}
	s.Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(s.GRPC, s.Health)
	reflection.Register(s.GRPC)
	return s
}

// SetServing marks the server and the named services SERVING.
func (s *Server) SetServing(services ...string) {
	for _, name := range append([]string{""}, services...) {
		s.Health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
}

// Serve serves on lis until ctx ends, then stops gracefully: health goes
// NOT_SERVING, beforeStop runs (a service ends its streams there), and
// in-flight calls get up to timeout to finish before the server is stopped
// hard. It returns the serve error, if serving failed.
func (s *Server) Serve(ctx context.Context, lis net.Listener, timeout time.Duration, beforeStop func()) error {
	served := make(chan error, 1)
	go func() { served <- s.GRPC.Serve(lis) }()
	select {
	case err := <-served:
		return fmt.Errorf("grpc serve: %w", err)
	case <-ctx.Done():
	}
	s.logger.Info("shutting down", "timeout", timeout.String())
	s.Health.Shutdown()
	if beforeStop != nil {
		beforeStop()
	}
	stopped := make(chan struct{})
	go func() {
		s.GRPC.GracefulStop()
		close(stopped)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-stopped:
		<-served
		return nil
	case <-t.C:
		// Stop closes every connection; handlers that ignore their
		// cancelled context are left behind rather than waited for.
		s.GRPC.Stop()
		<-served
		s.logger.Warn("graceful stop timed out; remaining calls were cut", "timeout", timeout.String())
		return nil
	}
}

func unaryInterceptor(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		start := time.Now()
		defer func() {
			if r := recover(); r != nil {
				logger.Error("panic in handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
				err = status.Errorf(codes.Internal, "internal error in %s", info.FullMethod)
			}
			logCall(ctx, logger, info.FullMethod, start, err)
		}()
		return handler(ctx, req)
	}
}

func streamInterceptor(logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		start := time.Now()
		defer func() {
			if r := recover(); r != nil {
				logger.Error("panic in handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
				err = status.Errorf(codes.Internal, "internal error in %s", info.FullMethod)
			}
			logCall(ss.Context(), logger, info.FullMethod, start, err)
		}()
		return handler(srv, ss)
	}
}

func logCall(ctx context.Context, logger *slog.Logger, method string, start time.Time, err error) {
	code := status.Code(err)
	level := slog.LevelDebug
	switch code {
	case codes.OK, codes.Canceled, codes.InvalidArgument, codes.NotFound, codes.DeadlineExceeded, codes.OutOfRange, codes.FailedPrecondition:
	default:
		level = slog.LevelWarn
	}
	if !logger.Enabled(ctx, level) {
		return
	}
	attrs := []any{"method", method, "code", code.String(), "duration", time.Since(start)}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	logger.Log(ctx, level, "rpc", attrs...)
}
