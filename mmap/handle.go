package mmap

import (
	"errors"
	"slices"
	"sync"
)

// ErrBusy is returned by a non-waiting call when the handle's lock is held
// by someone else. The engine's main loop uses it to hand the request to a
// goroutine instead of stalling every other handle behind this one.
var ErrBusy = errors.New("mmap: handle busy")

// Handle is a Mapping behind a read-write lock. Reads, sync, advise and
// position share it; writes, truncate and close take it alone. After Close
// every call returns ErrClosed.
type Handle struct {
	mu sync.RWMutex
	m  *Mapping // nil once closed
}

// NewHandle wraps m.
func NewHandle(m *Mapping) *Handle { return &Handle{m: m} }

// shared takes the read lock; with wait false it gives up with ErrBusy.
func (h *Handle) shared(wait bool) (*Mapping, error) {
	if wait {
		h.mu.RLock()
	} else if !h.mu.TryRLock() {
		return nil, ErrBusy
	}
	if h.m == nil {
		h.mu.RUnlock()
		return nil, ErrClosed
	}
	return h.m, nil
}

func (h *Handle) exclusive(wait bool) (*Mapping, error) {
	if wait {
		h.mu.Lock()
	} else if !h.mu.TryLock() {
		return nil, ErrBusy
	}
	if h.m == nil {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	return h.m, nil
}

// reader takes the shared lock for reading bytes and checks the mode.
// When err is nil the caller must h.mu.RUnlock().
func (h *Handle) reader(wait bool) (*Mapping, error) {
	m, err := h.shared(wait)
	if err != nil {
		return nil, err
	}
	if !m.mode.CanRead() {
		h.mu.RUnlock()
		return nil, ErrNoAccess
	}
	return m, nil
}

// writer takes the lock alone for writing bytes and checks the mode.
// When err is nil the caller must h.mu.Unlock().
func (h *Handle) writer(wait bool) (*Mapping, error) {
	m, err := h.exclusive(wait)
	if err != nil {
		return nil, err
	}
	if !m.mode.CanWrite() {
		h.mu.Unlock()
		return nil, ErrNoAccess
	}
	return m, nil
}

// ReadAt fills dst from the mapping at off.
func (h *Handle) ReadAt(dst []byte, off uint64, wait bool) error {
	m, err := h.shared(wait)
	if err != nil {
		return err
	}
	defer h.mu.RUnlock()
	return m.ReadAt(dst, off)
}

// WriteAt copies src into the mapping at off.
func (h *Handle) WriteAt(src []byte, off uint64, wait bool) error {
	m, err := h.exclusive(wait)
	if err != nil {
		return err
	}
	defer h.mu.Unlock()
	return m.WriteAt(src, off)
}

// Len is the current size of the mapping.
func (h *Handle) Len(wait bool) (int, error) {
	m, err := h.shared(wait)
	if err != nil {
		return 0, err
	}
	defer h.mu.RUnlock()
	return m.Len(), nil
}

// Sync flushes the mapping (see Mapping.Sync). It shares the lock so reads
// go on while the disk works.
func (h *Handle) Sync(async bool) error {
	m, err := h.shared(true)
	if err != nil {
		return err
	}
	defer h.mu.RUnlock()
	return m.Sync(async)
}

// Advise passes a madvise hint (see Mapping.Advise).
func (h *Handle) Advise(off, n uint64, hint Advice) error {
	m, err := h.shared(true)
	if err != nil {
		return err
	}
	defer h.mu.RUnlock()
	return m.Advise(off, n, hint)
}

// Truncate resizes the file and remaps (see Mapping.Truncate).
func (h *Handle) Truncate(n uint64) error {
	m, err := h.exclusive(true)
	if err != nil {
		return err
	}
	defer h.mu.Unlock()
	return m.Truncate(n)
}

// Check answers what a read (or with write, a write) of the bytes up to end
// would be answered before it touched memory: ErrClosed, ErrNoAccess or
// ErrBounds, else nil.
func (h *Handle) Check(write bool, end uint64) error {
	m, err := h.shared(true)
	if err != nil {
		return err
	}
	defer h.mu.RUnlock()
	if (write && !m.mode.CanWrite()) || (!write && !m.mode.CanRead()) {
		return ErrNoAccess
	}
	return m.Range(0, end)
}

// Region is where a shared mapping's bytes can be read from another
// process, with no request: at Addr through /proc/<pid>/mem, or in the
// file itself through /proc/<pid>/fd/<Fd>, the descriptor the mapping
// holds (the same inode after a rename or an unlink). A reader must not
// trust Addr once the handle has been truncated or closed (the mapping
// moves or goes, and the address may be reused at once), nor open Fd once
// the handle has been closed (the number may be reused at once).
type Region struct {
	Addr uintptr
	Size int
	Fd   int
}

// Region tells where the mapping lies now (see the type).
func (h *Handle) Region() (Region, error) {
	m, err := h.shared(true)
	if err != nil {
		return Region{}, err
	}
	defer h.mu.RUnlock()
	return Region{Addr: m.Addr(), Size: m.Len(), Fd: m.fd}, nil
}

// Info describes the mapping for introspection.
type Info struct {
	Path string
	Mode Mode
	Opts Options
	Size int
}

// Info reports what the handle maps.
func (h *Handle) Info() (Info, error) {
	m, err := h.shared(true)
	if err != nil {
		return Info{}, err
	}
	defer h.mu.RUnlock()
	return Info{Path: m.path, Mode: m.mode, Opts: m.opts, Size: m.Len()}, nil
}

// Close waits for the operations in progress, then unmaps. A second Close
// returns ErrClosed.
func (h *Handle) Close() error {
	m, err := h.exclusive(true)
	if err != nil {
		return err
	}
	defer h.mu.Unlock()
	h.m = nil
	return m.Close()
}

// ReadAppend appends n bytes read at off to b. Mode and bounds are checked
// before b grows, so a huge n that is out of bounds allocates nothing; a
// valid n above limit (what the caller can carry) gives ErrNoMemory. On
// error b comes back as it was.
func (h *Handle) ReadAppend(b []byte, off, n, limit uint64, wait bool) ([]byte, error) {
	m, err := h.reader(wait)
	if err != nil {
		return b, err
	}
	defer h.mu.RUnlock()
	if err := m.Range(off, n); err != nil {
		return b, err
	}
	if n > limit {
		return b, ErrNoMemory
	}
	start := len(b)
	b = slices.Grow(b, int(n))[:start+int(n)]
	if err := m.ReadAt(b[start:], off); err != nil {
		return b[:start], err
	}
	return b, nil
}
