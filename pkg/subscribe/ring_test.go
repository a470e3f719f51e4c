package subscribe

import "testing"

func TestRing(t *testing.T) {
	r := newRing(3)
	rooms := []string{"a", "b", "a", "a", "b"}
	var dropped []int64
	for i, room := range rooms {
		if old, ok := r.push(&entry{offset: int64(10 + i), room: room}); ok {
			dropped = append(dropped, old.offset)
		}
	}
	if len(dropped) != 2 || dropped[0] != 10 || dropped[1] != 11 {
		t.Fatalf("dropped %v, want [10 11]", dropped)
	}
	offsets := func(es []*entry) (out []int64) {
		for _, e := range es {
			out = append(out, e.offset)
		}
		return out
	}
	for _, tc := range []struct {
		from int64
		room string
		want []int64
	}{
		{0, "a", []int64{12, 13}},
		{13, "a", []int64{13}},
		{12, "b", []int64{14}},
		{15, "a", nil},
	} {
		if got := offsets(r.since(tc.from, tc.room)); len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) {
			t.Errorf("since(%d, %s) = %v, want %v", tc.from, tc.room, got, tc.want)
		}
	}
	zero := newRing(0)
	if old, ok := zero.push(&entry{offset: 5}); !ok || old.offset != 5 {
		t.Fatal("a zero-size ring must drop what is pushed")
	}
}
