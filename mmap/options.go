package mmap

import "golang.org/x/sys/unix"

// Mode is what a handle may do to its mapping.
type Mode uint8

const (
	Read      Mode = 1 << iota // PROT_READ, file opened O_RDONLY
	Write                      // PROT_WRITE only, file opened O_RDWR
	ReadWrite = Read | Write
)

// CanRead and CanWrite are the mode checks every operation makes.
func (m Mode) CanRead() bool  { return m&Read != 0 }
func (m Mode) CanWrite() bool { return m&Write != 0 }

func (m Mode) String() string {
	switch m {
	case Read:
		return "read"
	case Write:
		return "write"
	case ReadWrite:
		return "read_write"
	}
	return "invalid"
}

// Options are the open options after the Erlang side has resolved repeats
// (the last shared/private and the last {size, N} win).
type Options struct {
	Private  bool  // MAP_PRIVATE instead of MAP_SHARED
	Size     int64 // grow the file to at least this; -1 when not given
	Create   bool
	Truncate bool
	Lock     bool // mlock; failure is ignored
	Populate bool // MAP_POPULATE on Linux, a WILLNEED hint elsewhere
	// NoCache is F_NOCACHE on macOS, as in the NIF package; elsewhere it
	// is accepted and does nothing.
	NoCache bool
	// Chmod sets the permission bits of a file that Create makes to Perm,
	// exactly (fchmod, so the umask does not apply). Without it such a
	// file is created 0644, less the umask.
	Chmod bool
	Perm  uint32
	// DeleteOnClose unlinks the file's path when the mapping is closed.
	DeleteOnClose bool
}

func (m Mode) prot() int {
	p := 0
	if m.CanRead() {
		p |= unix.PROT_READ
	}
	if m.CanWrite() {
		p |= unix.PROT_WRITE
	}
	return p
}

// openFlags: PROT_WRITE on a shared mapping needs a descriptor opened for
// writing, so write mode opens O_RDWR like read_write. O_NONBLOCK because
// the open runs before we know the file's type: a FIFO or a device would
// otherwise block the open (forever, for a FIFO nobody writes) and keep the
// engine from exiting; a regular file ignores the flag. O_NOCTTY so a
// terminal never becomes the engine's controlling terminal.
func (m Mode) openFlags() int {
	const always = unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY
	if m.CanWrite() {
		return unix.O_RDWR | always
	}
	return unix.O_RDONLY | always
}

// populateByHint: the system's mmap cannot prefault, so populate is a
// WILLNEED hint after mapping. A variable so that the Linux tests can run
// the other systems' way too.
var populateByHint = mapPopulate == 0

func (o Options) mapFlags() int {
	f := unix.MAP_SHARED
	if o.Private {
		f = unix.MAP_PRIVATE
	}
	if o.Populate && !populateByHint {
		f |= mapPopulate
	}
	return f
}

// Advice names the madvise hints of the API.
type Advice int

const (
	Normal     Advice = unix.MADV_NORMAL
	Random     Advice = unix.MADV_RANDOM
	Sequential Advice = unix.MADV_SEQUENTIAL
	WillNeed   Advice = unix.MADV_WILLNEED
	DontNeed   Advice = unix.MADV_DONTNEED
)
