// Package token is the resume token streamed with every message: where the
// message sits in Kafka, and which incarnation of the topic that was.
//
// Clients treat tokens as opaque strings. Their layout, for operators and
// debugging, is URL-safe base64 without padding of:
//
//	byte 0      version (1)
//	bytes 1-16  the topic's Kafka ID (all zero if the broker has none)
//	then        partition (unsigned varint) and offset (signed varint)
//
// A topic that is deleted and recreated gets a new ID, so a token from
// before is recognised and refused rather than misread.
package token

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
)

const version = 1

// Token is a position in one incarnation of the topic.
type Token struct {
	TopicID   [16]byte
	Partition int32
	Offset    int64
}

// ErrInvalid is wrapped by every Decode error.
var ErrInvalid = errors.New("invalid resume token")

// Encode returns the token's string form.
func (t Token) Encode() string {
	buf := make([]byte, 0, 1+16+binary.MaxVarintLen32+binary.MaxVarintLen64)
	buf = append(buf, version)
	buf = append(buf, t.TopicID[:]...)
	buf = binary.AppendUvarint(buf, uint64(t.Partition))
	buf = binary.AppendVarint(buf, t.Offset)
	return base64.RawURLEncoding.EncodeToString(buf)
}

// Decode parses a token's string form.
func Decode(s string) (Token, error) {
	var t Token
	buf, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return t, fmt.Errorf("%w: not base64url", ErrInvalid)
	}
	if len(buf) < 17 || buf[0] != version {
		return t, fmt.Errorf("%w: unknown version or too short", ErrInvalid)
	}
	copy(t.TopicID[:], buf[1:17])
	rest := buf[17:]
	p, n := binary.Uvarint(rest)
	if n <= 0 || p > 1<<31-1 {
		return t, fmt.Errorf("%w: bad partition", ErrInvalid)
	}
	rest = rest[n:]
	off, n := binary.Varint(rest)
	if n <= 0 || n != len(rest) || off < -1 {
		return t, fmt.Errorf("%w: bad offset", ErrInvalid)
	}
	t.Partition, t.Offset = int32(p), off
	return t, nil
}
