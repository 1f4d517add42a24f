package mmap

import (
	"sync"

	"golang.org/x/sys/unix"
)

// Stage is a buffer in anonymous shared memory (a memfd) that carries the
// bytes of one bulk read or write between a mapping and one Erlang process,
// which opens the same memory as /proc/<engine pid>/fd/<Fd()> and reads or
// writes it with file:pread/file:pwrite. A pipe moves about 1.5 GB/s on the
// machines we measured; this moves the bytes with one copy on each side, at
// memory speed.
//
// The engine copies between the mapping and the stage under the handle's
// lock and the fault guard, exactly as for a reply buffer, so a staged read
// sees the same bytes and the same errors as a plain one. The Erlang side
// may shrink the file (to give memory back); the engine grows it again
// when it needs the room, and maps more than the file holds so that growing
// rarely means remapping.
type Stage struct {
	mu  sync.Mutex
	fd  int    // -1 once closed
	mem []byte // the mapping; its length is the capacity, not the file size
}

// stageChunk rounds the stage's mapping up so that sizes that vary a little
// do not remap every time. Only the file's size costs memory.
const stageChunk = 1 << 20

// NewStage creates an empty stage.
func NewStage() (*Stage, error) {
	fd, err := newStageFile()
	if err != nil {
		return nil, err
	}
	return &Stage{fd: fd}, nil
}

// Fd is the engine's descriptor of the stage's memfd.
func (s *Stage) Fd() int { return s.fd }

// take locks the stage for one copy of n bytes and returns its first n
// bytes of memory. With grow, a file smaller than n is extended (a read is
// about to fill it); without, a file smaller than n means the other side did
// not write what it announced, and is badarg. Call s.mu.Unlock when done.
func (s *Stage) take(n uint64, grow, wait bool) ([]byte, error) {
	if wait {
		s.mu.Lock()
	} else if !s.mu.TryLock() {
		return nil, ErrBusy
	}
	mem, err := s.room(n, grow)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	return mem, nil
}

func (s *Stage) room(n uint64, grow bool) ([]byte, error) {
	if s.fd < 0 {
		return nil, ErrClosed
	}
	if n == 0 {
		return nil, nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(s.fd, &st); err != nil {
		return nil, err
	}
	if uint64(st.Size) < n {
		if !grow {
			return nil, ErrBadArg
		}
		if err := unix.Ftruncate(s.fd, int64(n)); err != nil {
			return nil, err
		}
	}
	if uint64(len(s.mem)) < n {
		size := (n + stageChunk - 1) / stageChunk * stageChunk
		mem, err := unix.Mmap(s.fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			return nil, err
		}
		if s.mem != nil {
			unix.Munmap(s.mem)
		}
		s.mem = mem
	}
	return s.mem[:n], nil
}

// Close unmaps the stage and closes the engine's descriptor. The memory
// itself goes when the Erlang side closes its descriptor too.
func (s *Stage) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fd < 0 {
		return ErrClosed
	}
	if s.mem != nil {
		unix.Munmap(s.mem)
		s.mem = nil
	}
	err := unix.Close(s.fd)
	s.fd = -1
	return err
}

// ReadToStage copies n bytes at off from the mapping into the start of st.
// Errors come in the same order as for ReadAppend: closed, mode, bounds.
func (h *Handle) ReadToStage(st *Stage, off, n uint64, wait bool) error {
	m, err := h.reader(wait)
	if err != nil {
		return err
	}
	defer h.mu.RUnlock()
	if err := m.Range(off, n); err != nil {
		return err
	}
	mem, err := st.take(n, true, wait)
	if err != nil {
		return err
	}
	defer st.mu.Unlock()
	return m.ReadAt(mem, off)
}

// WriteFromStage copies the first n bytes of st into the mapping at off.
func (h *Handle) WriteFromStage(st *Stage, off, n uint64, wait bool) error {
	m, err := h.writer(wait)
	if err != nil {
		return err
	}
	defer h.mu.Unlock()
	if err := m.Range(off, n); err != nil {
		return err
	}
	mem, err := st.take(n, false, wait)
	if err != nil {
		return err
	}
	defer st.mu.Unlock()
	return m.WriteAt(mem, off)
}

// Stages maps stage ids to stages, like Registry for handles. Ids are never
// reused.
type Stages struct {
	t table[*Stage]
}

// NewStages returns an empty set.
func NewStages() *Stages { return &Stages{t: newTable[*Stage]()} }

// Open creates a stage and returns its id.
func (r *Stages) Open() (uint64, *Stage, error) {
	st, err := NewStage()
	if err != nil {
		return 0, nil, err
	}
	return r.t.add(st), st, nil
}

// Get returns the stage for id, or ErrClosed.
func (r *Stages) Get(id uint64) (*Stage, error) { return r.t.get(id) }

// Close removes id and closes its stage once a copy in progress is done.
func (r *Stages) Close(id uint64) error { return r.t.close(id) }

// Len is the number of open stages.
func (r *Stages) Len() int { return r.t.len() }

// CloseAll closes every stage.
func (r *Stages) CloseAll() { r.t.closeAll() }
