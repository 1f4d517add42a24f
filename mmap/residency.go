package mmap

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

var pageSize = uint64(os.Getpagesize())

// Hints beyond the NIF's: prefault pages for reading or writing
// (Linux 5.14 and later; older kernels give EINVAL).
const (
	PopulateRead  Advice = unix.MADV_POPULATE_READ
	PopulateWrite Advice = unix.MADV_POPULATE_WRITE
)

// cover returns the page-aligned start address and length that cover
// [off, off+n): msync and mincore want a page-aligned address.
func (m *Mapping) cover(off, n uint64) (uintptr, uintptr) {
	start := off &^ (pageSize - 1)
	base := uintptr(unsafe.Pointer(unsafe.SliceData(m.data)))
	return base + uintptr(start), uintptr(off + n - start)
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
	addr, length := m.cover(off, n)
	if _, _, e := unix.Syscall(unix.SYS_MSYNC, addr, length, uintptr(flags)); e != 0 {
		return e
	}
	return nil
}

// Resident counts the bytes of [off, off+n) that lie in pages resident in
// memory (mincore).
func (m *Mapping) Resident(off, n uint64) (uint64, error) {
	if err := m.Range(off, n); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	addr, length := m.cover(off, n)
	vec := make([]byte, (uint64(length)+pageSize-1)/pageSize)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, addr, length, uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		return 0, e
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

// Resident counts resident bytes (see Mapping.Resident).
func (h *Handle) Resident(off, n uint64) (uint64, error) {
	m, err := h.shared(true)
	if err != nil {
		return 0, err
	}
	defer h.mu.RUnlock()
	return m.Resident(off, n)
}
