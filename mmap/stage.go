package mmap

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Stage is a buffer of shared memory (a memfd, or a file: see StageKind)
// that carries the bytes of one bulk read or write between a mapping and
// one Erlang process, which opens the same memory by Path() and reads or
// writes it with file:pread/file:pwrite. A pipe moves about 1.5 GB/s on the
// machines we measured; this moves the bytes with one copy on each side, at
// memory speed.
//
// The engine copies between the mapping and the stage under the handle's
// lock and the fault guard, exactly as for a reply buffer, so a staged read
// sees the same bytes and the same errors as a plain one, plus the stage's
// own, which are never sigbus: a stage that cannot get its memory (its file
// system is full) is ENOSPC, one cut short under a write's copy EIO. The
// Erlang side may shrink the file (to give memory back); the engine grows
// it again when it needs the room, and maps more than the file holds so
// that growing rarely means remapping.
type Stage struct {
	mu     sync.Mutex
	fd     int    // -1 once closed
	mem    []byte // the mapping; its length is the capacity, not the file size
	path   string // what the other process opens
	unlink string // a file stage's name, until it is removed (see take)
}

// StageKind is where a stage's memory lives.
type StageKind int

const (
	// MemfdStages: anonymous memory (memfd) that the other process opens
	// as /proc/<engine pid>/fd/<fd>. Linux only, and the fastest.
	MemfdStages StageKind = iota
	// FileStages: a file in a directory of the engine's own (mode 0700),
	// which the other process opens by name; the engine removes the name at
	// the first transfer, so it lives on only as the two open descriptors.
	// Works wherever files do; the file's pages are in the page cache, and
	// the file system may write some of them to disk.
	FileStages
	// NoStages: every transfer goes through the pipe.
	NoStages
)

// ParseStageKind reads the names the engine's -stages flag takes.
func ParseStageKind(s string) (StageKind, error) {
	switch s {
	case "memfd":
		return MemfdStages, nil
	case "file":
		return FileStages, nil
	case "none":
		return NoStages, nil
	case "":
		return DefaultStageKind, nil
	}
	return 0, fmt.Errorf("unknown stage kind %q (memfd, file or none)", s)
}

// stageChunk rounds the stage's mapping up so that sizes that vary a little
// do not remap every time. Only the file's size costs memory.
const stageChunk = 1 << 20

// newMemfdStage creates an empty memfd stage.
func newMemfdStage() (*Stage, error) {
	fd, err := newStageFile()
	if err != nil {
		return nil, err
	}
	return &Stage{fd: fd, path: fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), fd)}, nil
}

// newFileStage creates an empty file stage named name.
func newFileStage(name string) (*Stage, error) {
	fd, err := unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	return &Stage{fd: fd, path: name, unlink: name}, nil
}

// Fd is the engine's descriptor of the stage's memory.
func (s *Stage) Fd() int { return s.fd }

// Path is the name the other process opens the stage by.
func (s *Stage) Path() string { return s.path }

// forget removes a file stage's name: by the first transfer the other
// process has it open, and a name nobody needs is one a crash could leave.
func (s *Stage) forget() {
	if s.unlink != "" {
		_ = unix.Unlink(s.unlink)
		s.unlink = ""
	}
}

// take locks the stage for one copy of n bytes and returns its first n
// bytes of memory. With extend, a file smaller than n is extended (a read is
// about to fill it); without, a file smaller than n means the other side did
// not write what it announced, and is badarg. Call s.mu.Unlock when done.
func (s *Stage) take(n uint64, extend, wait bool) ([]byte, error) {
	if wait {
		s.mu.Lock()
	} else if !s.mu.TryLock() {
		return nil, ErrBusy
	}
	mem, err := s.room(n, extend)
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	return mem, nil
}

func (s *Stage) room(n uint64, extend bool) ([]byte, error) {
	if s.fd < 0 {
		return nil, ErrClosed
	}
	s.forget()
	if n == 0 {
		return nil, nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(s.fd, &st); err != nil {
		return nil, err
	}
	if uint64(st.Size) < n {
		if !extend {
			return nil, ErrBadArg
		}
		// With its blocks, not sparse: a file system without the room
		// answers ENOSPC here (the Erlang side can use the pipe) rather
		// than SIGBUS in the middle of the copy.
		if err := grow(s.fd, st.Size, int64(n)); err != nil {
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
	s.forget()
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
	return st.own(m.ReadAt(mem, off), unix.ENOSPC)
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
	return st.own(m.WriteAt(mem, off), unix.EIO)
}

// own answers for a fault in the stage's own memory during a copy. The
// guard reports every fault as ErrFault, which means the user's file shrank
// (sigbus): a fault in the stage is not that, and must not read as data
// lost. Writing into the stage, it is a hole its file system had no page
// for (full: room allocates to prevent it, but not every system can);
// reading from it, the stage was cut short under the copy. stageErr is the
// answer for the stage's fault. Call with s.mu held.
func (s *Stage) own(err, stageErr error) error {
	var f faultError
	if !errors.As(err, &f) || len(s.mem) == 0 {
		return err
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(s.mem)))
	if f.addr >= start && f.addr-start < uintptr(len(s.mem)) {
		return stageErr
	}
	return err
}

// Stages maps stage ids to stages, like Registry for handles. Ids are never
// reused.
type Stages struct {
	t    table[*Stage]
	kind StageKind
	mu   sync.Mutex
	dir  string   // of file stages, made at the first one (stagedir.go)
	lock *os.File // held on dir's lock file while dir is ours
	n    int      // file stages made, for their names
	tmp  string   // where dir is made: os.TempDir() if empty (tests set it)
}

// NewStages returns an empty set of this system's default kind.
func NewStages() *Stages { return NewStagesOf(DefaultStageKind) }

// NewStagesOf returns an empty set whose stages are of kind k.
func NewStagesOf(k StageKind) *Stages { return &Stages{t: newTable[*Stage](), kind: k} }

// Open creates a stage and returns its id.
func (r *Stages) Open() (uint64, *Stage, error) {
	var st *Stage
	var err error
	switch r.kind {
	case MemfdStages:
		st, err = newMemfdStage()
	case FileStages:
		var name string
		if name, err = r.fileName(); err == nil {
			st, err = newFileStage(name)
		}
	default:
		err = unix.ENOSYS
	}
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

// CloseAll closes every stage, and removes the directory of file stages.
func (r *Stages) CloseAll() {
	r.t.closeAll()
	r.RemoveDir()
}
