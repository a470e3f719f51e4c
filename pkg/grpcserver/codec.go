package grpcserver

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// PreEncoded is a message already in protobuf wire form. Sent with a
// stream's SendMsg, its bytes go out as they are: a message fanned out to
// many streams is encoded once, not once per stream.
type PreEncoded struct{ Bytes []byte }

// codec is grpc-go's protobuf codec that also passes PreEncoded through.
type codec struct{ proto encoding.CodecV2 }

func newCodec() codec {
	c := encoding.GetCodecV2("proto")
	if c == nil {
		panic("grpcserver: grpc-go's proto codec is not registered")
	}
	return codec{c}
}

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if p, ok := v.(*PreEncoded); ok {
		// SliceBuffer's Free is a no-op, so the shared bytes are never
		// recycled under another stream.
		return mem.BufferSlice{mem.SliceBuffer(p.Bytes)}, nil
	}
	out, err := c.proto.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding %T: %w", v, err)
	}
	return out, nil
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

func (c codec) Name() string { return c.proto.Name() }
