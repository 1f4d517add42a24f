package mmap

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Atomics on 64-bit words of a shared mapping: counters and flags that
// several OS processes update. A word is 8 bytes at an 8-aligned offset, in
// the host's byte order, which is little-endian on every platform Go and
// this engine run on (amd64, arm64). The operations are the CPU's atomic
// instructions on the mapped page, so they are atomic against every other
// process mapping the same file, not only against this engine. They share
// the handle's lock: they exclude truncate and close, not one another.

// word checks mode, alignment and bounds and returns the word's address.
func (m *Mapping) word(off uint64, read, write bool) (*uint64, error) {
	if (read && !m.mode.CanRead()) || (write && !m.mode.CanWrite()) {
		return nil, ErrNoAccess
	}
	if err := m.Range(off, 8); err != nil {
		return nil, err
	}
	if off%8 != 0 {
		return nil, unix.EINVAL
	}
	return (*uint64)(unsafe.Pointer(&m.data[off])), nil
}

// word takes the shared lock and finds the word at off. On success the
// caller holds the lock and must release it; on error it is released.
// With wait false it gives up with ErrBusy instead of waiting for the lock,
// as every call the engine's main loop makes does.
func (h *Handle) word(off uint64, read, write, wait bool) (*uint64, error) {
	m, err := h.shared(wait)
	if err != nil {
		return nil, err
	}
	w, err := m.word(off, read, write)
	if err != nil {
		h.mu.RUnlock()
		return nil, err
	}
	return w, nil
}

// RMW is a read-modify-write of a word: the word becomes op(old, v).
type RMW uint8

// The read-modify-writes of the API. Arithmetic wraps (two's complement).
const (
	RMWAdd RMW = iota
	RMWSub
	RMWAnd
	RMWOr
	RMWXor
	RMWExchange
)

// Modify applies op with v to the word at off in one atomic step and
// returns the old value.
func (h *Handle) Modify(off uint64, op RMW, v int64, wait bool) (old int64, err error) {
	w, err := h.word(off, true, true, wait)
	if err != nil {
		return 0, err
	}
	defer h.mu.RUnlock()
	defer unprotect(protect(), &err)
	u := uint64(v)
	switch op {
	case RMWAdd:
		return int64(atomic.AddUint64(w, u) - u), nil
	case RMWSub:
		return int64(atomic.AddUint64(w, -u) + u), nil
	case RMWAnd:
		return int64(atomic.AndUint64(w, u)), nil
	case RMWOr:
		return int64(atomic.OrUint64(w, u)), nil
	case RMWExchange:
		return int64(atomic.SwapUint64(w, u)), nil
	}
	for { // RMWXor: no instruction for it; a strong compare-and-swap loop
		old := atomic.LoadUint64(w)
		if atomic.CompareAndSwapUint64(w, old, old^u) {
			return int64(old), nil
		}
	}
}

// Add adds incr (wrapping) and returns the old value.
func (h *Handle) Add(off uint64, incr int64, wait bool) (old int64, err error) {
	return h.Modify(off, RMWAdd, incr, wait)
}

// CompareExchange stores new if the word holds expected. It returns the
// value it found: equal to expected if and only if it swapped.
func (h *Handle) CompareExchange(off uint64, expected, new int64, wait bool) (current int64, err error) {
	w, err := h.word(off, true, true, wait)
	if err != nil {
		return 0, err
	}
	defer h.mu.RUnlock()
	defer unprotect(protect(), &err)
	for {
		if atomic.CompareAndSwapUint64(w, uint64(expected), uint64(new)) {
			return expected, nil
		}
		// Read what made it fail; if it changed back meanwhile, try again,
		// so a mismatch always reports a value that differs from expected.
		if cur := int64(atomic.LoadUint64(w)); cur != expected {
			return cur, nil
		}
	}
}

// Load reads the word atomically.
func (h *Handle) Load(off uint64, wait bool) (v int64, err error) {
	w, err := h.word(off, true, false, wait)
	if err != nil {
		return 0, err
	}
	defer h.mu.RUnlock()
	defer unprotect(protect(), &err)
	return int64(atomic.LoadUint64(w)), nil
}

// Store writes the word atomically.
func (h *Handle) Store(off uint64, v int64, wait bool) (err error) {
	w, err := h.word(off, false, true, wait)
	if err != nil {
		return err
	}
	defer h.mu.RUnlock()
	defer unprotect(protect(), &err)
	atomic.StoreUint64(w, uint64(v))
	return nil
}
