package token

import (
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, tok := range []Token{
		{},
		{TopicID: [16]byte{1, 2, 3, 15: 0xff}, Partition: 7, Offset: 123456789012},
		{Partition: 1<<31 - 1, Offset: -1},
	} {
		got, err := Decode(tok.Encode())
		if err != nil || got != tok {
			t.Fatalf("Decode(Encode(%v)) = %v, %v", tok, got, err)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	good := Token{Partition: 1, Offset: 2}.Encode()
	for name, s := range map[string]string{
		"empty":        "",
		"not base64":   "!!!",
		"short":        "AQ",
		"bad version":  "Ag" + good[2:],
		"trailing":     good + "AA",
		"truncated":    good[:len(good)-1],
		"offset below": Token{Offset: -2}.Encode(),
	} {
		if _, err := Decode(s); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Decode(%q) err = %v, want ErrInvalid", name, s, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Token{Partition: 3, Offset: 99}.Encode())
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := Decode(s)
		if err == nil {
			if again, err := Decode(tok.Encode()); err != nil || again != tok {
				t.Fatalf("re-encoding %v failed: %v", tok, err)
			}
		}
	})
}
