package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"

	chatv1 "github.com/kafkachat/kafkachat/pkg/gen/chat/v1"
)

// leanWindow is the lean client's flow-control window, for its stream and
// its connection alike: static, like the grpc-go clients' (see dial).
const leanWindow = 1 << 20

// leanStream is one Subscribe stream on a connection of its own, spoken
// by a client that knows just enough HTTP/2 and gRPC to hold it: it reads
// frames in one goroutine, hands each message's bytes on, answers the
// server's SETTINGS and PINGs and returns flow-control credit.
//
// It stands in for a thousand devices in the fan-out scenario. A grpc-go
// client needs a reader, a writer and the caller's goroutine for every
// message and allocates on each; with 1,000 of them sharing this machine's
// 2 cores with the service under test, the clients took about half of the
// CPU. Real subscribers run on machines of their own, so the less the
// stand-ins take, the more the figures say about the server. The service
// and the baseline are measured with the same client.
type leanStream struct {
	conn net.Conn
	bw   *bufio.Writer
	fr   *http2.Framer
}

const leanStreamID = 1

// openLean connects to addr, subscribes to room and waits for the
// response headers.
func openLean(ctx context.Context, addr, room string) (*leanStream, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &leanStream{conn: conn, bw: bufio.NewWriterSize(conn, 4<<10)}
	s.fr = http2.NewFramer(s.bw, bufio.NewReaderSize(conn, 32<<10))
	s.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := s.start(addr, room); err != nil {
		conn.Close()
		return nil, err
	}
	// The response headers (or an early end) come first.
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(deadline)
	}
	defer conn.SetReadDeadline(time.Time{})
	for {
		f, err := s.fr.ReadFrame()
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("waiting for response headers: %w", err)
		}
		done, err := s.handleControl(f)
		if err == nil && done {
			err = errors.New("stream ended before its headers")
		}
		if err != nil {
			conn.Close()
			return nil, err
		}
		if h, ok := f.(*http2.MetaHeadersFrame); ok && h.StreamID == leanStreamID {
			if h.StreamEnded() { // trailers only: the call failed
				conn.Close()
				return nil, fmt.Errorf("subscribe refused: %s", grpcStatus(h))
			}
			return s, nil
		}
	}
}

// start writes the connection preface, settings and the Subscribe request.
func (s *leanStream) start(addr, room string) error {
	if _, err := io.WriteString(s.bw, http2.ClientPreface); err != nil {
		return err
	}
	if err := s.fr.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: leanWindow},
	); err != nil {
		return err
	}
	if err := s.fr.WriteWindowUpdate(0, leanWindow-65535); err != nil {
		return err
	}
	var hdr bytes.Buffer
	enc := hpack.NewEncoder(&hdr)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":authority", addr},
		{":path", chatv1.SubscribeService_Subscribe_FullMethodName},
		{"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
			return err
		}
	}
	if err := s.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: leanStreamID, BlockFragment: hdr.Bytes(), EndHeaders: true}); err != nil {
		return err
	}
	req, err := proto.Marshal(&chatv1.SubscribeRequest{Room: room})
	if err != nil {
		return err
	}
	body := binary.BigEndian.AppendUint32([]byte{0}, uint32(len(req))) // uncompressed, length
	if err := s.fr.WriteData(leanStreamID, true, append(body, req...)); err != nil {
		return err
	}
	return s.bw.Flush()
}

// handleControl answers the frames that are not the stream's data. done
// reports that the stream or the connection has ended.
func (s *leanStream) handleControl(f http2.Frame) (done bool, err error) {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if !f.IsAck() {
			if err := s.fr.WriteSettingsAck(); err != nil {
				return true, err
			}
			return false, s.bw.Flush()
		}
	case *http2.PingFrame:
		if !f.IsAck() { // the server's keepalive
			if err := s.fr.WritePing(true, f.Data); err != nil {
				return true, err
			}
			return false, s.bw.Flush()
		}
	case *http2.GoAwayFrame:
		return true, fmt.Errorf("server sent GOAWAY (%v)", f.ErrCode)
	case *http2.RSTStreamFrame:
		return true, fmt.Errorf("stream reset (%v)", f.ErrCode)
	}
	return false, nil
}

// run reads the stream until it ends or the connection is closed, calling
// msg with each gRPC message (the bytes are only valid during the call).
func (s *leanStream) run(msg func([]byte)) error {
	var pending []byte // bytes of a message split across DATA frames
	var credit uint32  // bytes received and not yet returned as window
	for {
		f, err := s.fr.ReadFrame()
		if err != nil {
			return err
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			data := f.Data()
			if len(pending) > 0 {
				pending = append(pending, data...)
				data = pending
			}
			for len(data) >= 5 {
				n := int(binary.BigEndian.Uint32(data[1:5]))
				if len(data) < 5+n {
					break
				}
				msg(data[5 : 5+n])
				data = data[5+n:]
			}
			pending = append(pending[:0], data...)
			// The whole frame counts against the windows, padding too.
			if credit += f.Length; credit >= leanWindow/4 {
				if err := errors.Join(s.fr.WriteWindowUpdate(0, credit), s.fr.WriteWindowUpdate(leanStreamID, credit), s.bw.Flush()); err != nil {
					return err
				}
				credit = 0
			}
			if f.StreamEnded() {
				return nil
			}
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() { // trailers
				if st := grpcStatus(f); st != "0" {
					return fmt.Errorf("stream ended: %s", st)
				}
				return nil
			}
		default:
			if done, err := s.handleControl(f); done || err != nil {
				return err
			}
		}
	}
}

func (s *leanStream) Close() error { return s.conn.Close() }

// grpcStatus is a response's grpc-status and grpc-message.
func grpcStatus(h *http2.MetaHeadersFrame) string {
	st := h.PseudoValue("status")
	if v := h.Fields; v != nil {
		for _, f := range v {
			switch f.Name {
			case "grpc-status":
				st = f.Value
			case "grpc-message":
				st += " " + f.Value
			}
		}
	}
	return st
}
