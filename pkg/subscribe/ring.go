package subscribe

import "sort"

// ring is a fixed-size window of the most recent entries of a partition, in
// offset order.
type ring struct {
	buf   []*entry
	start int // index of the oldest entry
	n     int
}

func newRing(size int) ring { return ring{buf: make([]*entry, max(size, 0))} }

func (r *ring) at(i int) *entry { return r.buf[(r.start+i)%len(r.buf)] }

// push appends e and returns the entry it pushed out, if the window was full.
func (r *ring) push(e *entry) (*entry, bool) {
	if len(r.buf) == 0 {
		return e, true
	}
	if r.n < len(r.buf) {
		r.buf[(r.start+r.n)%len(r.buf)] = e
		r.n++
		return nil, false
	}
	old := r.buf[r.start]
	r.buf[r.start] = e
	r.start = (r.start + 1) % len(r.buf)
	return old, true
}

// since returns the entries of room at offset >= from, oldest first.
func (r *ring) since(from int64, room string) []*entry {
	i := sort.Search(r.n, func(i int) bool { return r.at(i).offset >= from })
	var out []*entry
	for ; i < r.n; i++ {
		if e := r.at(i); e.room == room {
			out = append(out, e)
		}
	}
	return out
}
