package bench

import (
	"errors"
	"strconv"
	"strings"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// stampCodec is the fan-out receivers' client codec. Instead of decoding
// each SubscribeResponse, it reads only the send time stamped at the start
// of the message's text. The receivers share the machine's 2 cores with the
// service under test, and fully decoding 1,000 streams' messages was about
// 13% of a fan-out run's CPU: a load generator should take as little as it
// can. Requests are encoded normally.
type stampCodec struct{ proto encoding.CodecV2 }

// stamp is what stampCodec decodes a SubscribeResponse into.
type stamp struct {
	sentNanos int64
	ok        bool // the text began with a time stamp
}

func newStampCodec() stampCodec { return stampCodec{encoding.GetCodecV2("proto")} }

func (c stampCodec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

func (c stampCodec) Name() string { return c.proto.Name() }

func (c stampCodec) Unmarshal(data mem.BufferSlice, v any) error {
	s, ok := v.(*stamp)
	if !ok {
		return c.proto.Unmarshal(data, v)
	}
	var b []byte
	if len(data) == 1 {
		b = data[0].ReadOnlyData() // valid until Unmarshal returns
	} else {
		b = data.Materialize()
	}
	var err error
	*s, err = parseStamp(b)
	return err
}

// parseStamp reads the send time at the start of an encoded
// SubscribeResponse's text.
func parseStamp(b []byte) (stamp, error) {
	// SubscribeResponse.message (1) -> ChatMessage.text (4).
	msg, err := field(b, 1)
	if err != nil || msg == nil {
		return stamp{}, err
	}
	text, err := field(msg, 4)
	if err != nil {
		return stamp{}, err
	}
	digits, _, _ := strings.Cut(string(text), " ")
	if ns, err := strconv.ParseInt(digits, 10, 64); err == nil {
		return stamp{sentNanos: ns, ok: true}, nil
	}
	return stamp{}, nil
}

// field returns the last occurrence of a length-delimited field in b, or
// nil if b has none.
func field(b []byte, num protowire.Number) ([]byte, error) {
	var out []byte
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return nil, errors.New("bad protobuf tag")
		}
		b = b[l:]
		if n == num && typ == protowire.BytesType {
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return nil, errors.New("bad protobuf field")
			}
			out, b = v, b[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(n, typ, b)
		if l < 0 {
			return nil, errors.New("bad protobuf field")
		}
		b = b[l:]
	}
	return out, nil
}
