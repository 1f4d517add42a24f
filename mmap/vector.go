package mmap

import "slices"

// Range is a span of a mapping: Len bytes at Off.
type Range struct{ Off, Len uint64 }

// Piece is data to put at Off.
type Piece struct {
	Off  uint64
	Data []byte
}

// ReadMany appends the bytes of every range to b, in order, each after the
// separator that sep appends for its length (the caller's framing). All
// ranges are checked before anything is copied, and their total against
// limit, so a bad range or too large a total reads nothing. A fault part
// way gives ErrFault and b as it was.
func (h *Handle) ReadMany(b []byte, rs []Range, limit uint64, sep func([]byte, uint64) []byte, wait bool) ([]byte, error) {
	m, err := h.reader(wait)
	if err != nil {
		return b, err
	}
	defer h.mu.RUnlock()
	var total uint64
	for _, r := range rs {
		if err := m.Range(r.Off, r.Len); err != nil {
			return b, err
		}
		total += r.Len
		if total > limit {
			return b, ErrNoMemory
		}
	}
	start := len(b)
	b = slices.Grow(b, int(total)+len(rs)*8)
	for _, r := range rs {
		// The Grow above guessed 8 bytes a separator; a longer one must
		// not make the reslice run past the capacity.
		b = slices.Grow(sep(b, r.Len), int(r.Len))
		at := len(b)
		b = b[:at+int(r.Len)]
		if err := m.ReadAt(b[at:], r.Off); err != nil {
			return b[:start], err
		}
	}
	return b, nil
}

// WriteMany writes every piece, in order, under one lock. Mode and all
// ranges are checked first: a bad one writes nothing. A fault part way
// gives ErrFault; the pieces before the faulting one are written, the
// faulting one may be partly written, and the ones after are not.
func (h *Handle) WriteMany(ws []Piece, wait bool) error {
	m, err := h.writer(wait)
	if err != nil {
		return err
	}
	defer h.mu.Unlock()
	for _, w := range ws {
		if err := m.Range(w.Off, uint64(len(w.Data))); err != nil {
			return err
		}
	}
	for _, w := range ws {
		if err := m.WriteAt(w.Data, w.Off); err != nil {
			return err
		}
	}
	return nil
}
