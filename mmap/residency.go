package mmap

import (
	"os"

	"golang.org/x/sys/unix"
)

var pageSize = uint64(os.Getpagesize())

func (a Advice) populates() bool { return a == PopulateRead || a == PopulateWrite }

// cover returns the page-aligned start address and length that cover
// [off, off+n): msync and mincore want a page-aligned address.
func (m *Mapping) cover(off, n uint64) []byte {
	return m.data[off&^(pageSize-1) : off+n]
}

// SyncRange flushes the pages that cover [off, off+n), so one record can be
// made durable without flushing a whole large mapping.
func (m *Mapping) SyncRange(off, n uint64, async bool) error {
	if err := m.Range(off, n); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	flags := unix.MS_SYNC
	if async {
		flags = unix.MS_ASYNC
	}
	return unix.Msync(m.cover(off, n), flags)
}

// residentChunk is the most pages one mincore call covers: its vector is
// a byte a page, so this bounds the memory of a Resident call (64 KiB)
// however large the range, and how long the handle's lock is held at once.
const residentChunk = 1 << 16

// resident counts the bytes of [off, off+n) that lie in pages resident in
// memory (mincore), n covering at most len(vec) pages.
func (m *Mapping) resident(off, n uint64, vec []byte) (uint64, error) {
	if err := m.Range(off, n); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	b := m.cover(off, n)
	vec = vec[:(uint64(len(b))+pageSize-1)/pageSize]
	if err := mincore(b, vec); err != nil {
		return 0, err
	}
	first := off &^ (pageSize - 1)
	var total uint64
	for i, v := range vec {
		if v&1 == 0 {
			continue
		}
		lo := max(first+uint64(i)*pageSize, off)
		hi := min(first+uint64(i+1)*pageSize, off+n)
		total += hi - lo
	}
	return total, nil
}

// SyncRange flushes part of the mapping (see Mapping.SyncRange).
func (h *Handle) SyncRange(off, n uint64, async bool) error {
	m, err := h.shared(true)
	if err != nil {
		return err
	}
	defer h.mu.RUnlock()
	return m.SyncRange(off, n, async)
}

// Resident counts the bytes of [off, off+n) that lie in pages resident in
// memory. It works through the range a chunk at a time and lets go of the
// lock in between, so a huge sparse range neither allocates in proportion
// nor keeps truncate and close waiting until it is done; if the mapping
// shrinks or closes meanwhile, it answers as a new call would.
func (h *Handle) Resident(off, n uint64) (uint64, error) {
	vec := make([]byte, min(residentChunk, n/pageSize+2))
	span := residentChunk * pageSize
	var total uint64
	for {
		m, err := h.shared(true)
		if err != nil {
			return 0, err
		}
		if err := m.Range(off, n); err != nil {
			h.mu.RUnlock()
			return 0, err
		}
		// Up to the end of the chunk's last page, so chunks meet on a page.
		step := min(n, span-off%pageSize)
		got, err := m.resident(off, step, vec)
		h.mu.RUnlock()
		if err != nil {
			return 0, err
		}
		total += got
		off, n = off+step, n-step
		if n == 0 {
			return total, nil
		}
	}
}
