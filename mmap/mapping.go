// Package mmap owns memory-mapped files: opening and growing the file,
// mapping it, every touch of the mapped bytes (under one fault guard), the
// registry of open handles, and the stages that carry bulk bytes to and from
// another process. It knows nothing about Erlang or the port.
package mmap

import (
	"errors"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmapFile is unix.Mmap, a variable so that tests can make the mapping step
// fail.
var mmapFile = unix.Mmap

// Mapping is one file mapped into memory. It is not safe for concurrent use:
// Handle adds the lock.
type Mapping struct {
	fd   int
	data []byte
	mode Mode
	opts Options
	path string
}

// Open opens (or creates) the file at path and maps all of it.
//
// Everything that can be rejected is rejected before the disk is touched, so
// a failed open leaves the file as it was: read mode with create or
// truncate, {size, 0}, a missing file with create but no size, and truncate
// with no size (it would leave an empty file, which cannot be mapped).
func Open(path string, mode Mode, opts Options) (*Mapping, error) {
	if mode&ReadWrite == 0 || mode&^ReadWrite != 0 {
		return nil, ErrBadArg
	}
	if !mode.CanWrite() && (opts.Create || opts.Truncate) {
		return nil, unix.EINVAL
	}
	if opts.Size == 0 || (opts.Truncate && opts.Size < 0) {
		return nil, unix.EINVAL
	}
	fd, created, err := openFile(path, mode, opts)
	if err != nil {
		return nil, err
	}
	m, err := mapFile(fd, path, mode, opts)
	if err != nil {
		unix.Close(fd)
		if created {
			// We made this file: take it away again so the disk is as it was.
			os.Remove(path)
		}
		return nil, err
	}
	return m, nil
}

// openFile opens without O_CREAT first, so that a create that must fail
// (no size) fails before a file exists.
func openFile(path string, mode Mode, opts Options) (fd int, created bool, err error) {
	fd, err = unix.Open(path, mode.openFlags(), 0)
	if err == nil || !errors.Is(err, unix.ENOENT) || !opts.Create {
		return fd, false, err
	}
	if opts.Size < 0 {
		return -1, false, unix.EINVAL // it would be empty
	}
	fd, err = unix.Open(path, mode.openFlags()|unix.O_CREAT|unix.O_EXCL, 0o644)
	if errors.Is(err, unix.EEXIST) { // lost a race with another creator: use theirs
		fd, err = unix.Open(path, mode.openFlags(), 0)
		return fd, false, err
	}
	if err == nil && opts.Chmod {
		if err = unix.Fchmod(fd, opts.Perm); err != nil {
			unix.Close(fd)
			os.Remove(path)
			return -1, false, err
		}
	}
	return fd, err == nil, err
}

func mapFile(fd int, path string, mode Mode, opts Options) (*Mapping, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		return nil, unix.EISDIR
	default:
		return nil, unix.ENODEV
	}
	size := st.Size
	if opts.Size > size && !mode.CanWrite() {
		return nil, unix.EINVAL // a read-only descriptor cannot grow the file
	}
	if opts.Truncate || opts.Size > size {
		// Refuse a size the file cannot reach before anything changes: once
		// truncate has cut the file, a failing grow cannot give it back.
		if err := reachable(fd, &st, opts.Size); err != nil {
			return nil, err
		}
	}
	if opts.Truncate {
		if err := unix.Ftruncate(fd, 0); err != nil {
			return nil, err
		}
		size = 0
	}
	if opts.Size > size {
		if err := grow(fd, size, opts.Size); err != nil {
			return nil, err
		}
		size = opts.Size
	}
	if size == 0 {
		return nil, unix.EINVAL
	}
	if size != int64(int(size)) {
		return nil, unix.ENOMEM
	}
	data, err := mmapFile(fd, 0, int(size), mode.prot(), opts.mapFlags())
	if err != nil {
		return nil, err
	}
	if opts.Lock {
		_ = unix.Mlock(data) // a hint: RLIMIT_MEMLOCK may refuse it
	}
	if opts.NoCache {
		noCache(fd)
	}
	if opts.Populate && populateByHint {
		_ = unix.Madvise(data, unix.MADV_WILLNEED) // best effort where mmap cannot prefault
	}
	return &Mapping{fd: fd, data: data, mode: mode, opts: opts, path: path}, nil
}

// grow extends the file from size to n with its blocks allocated, so a full
// disk fails here with ENOSPC rather than later as SIGBUS on a write. Where
// the file system cannot allocate (tmpfs on old kernels, some FUSE), it falls
// back to ftruncate, which makes a sparse tail. A failed allocation can leave
// the file longer than it was (ext4 extends it chunk by chunk), so the old
// size is put back.
func grow(fd int, size, n int64) error {
	err := allocate(fd, size, n)
	if err != nil {
		_ = unix.Ftruncate(fd, size)
	}
	return err
}

// reachable tells, without changing the file, whether it can be made n
// bytes long: not past the process's RLIMIT_FSIZE (past it the kernel would
// also send SIGXFSZ), not past the file system's largest file (lseek refuses
// an offset beyond it), and not past the free space plus the file's own
// blocks (a truncate frees them first). The space check is an estimate; the
// allocation itself still decides, but an obviously impossible size no
// longer costs the caller the file's contents.
func reachable(fd int, st *unix.Stat_t, n int64) error {
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_FSIZE, &lim) == nil && uint64(lim.Cur) != uint64(unix.RLIM_INFINITY) && uint64(n) > uint64(lim.Cur) {
		return unix.EFBIG
	}
	if _, err := unix.Seek(fd, n, 0); err != nil {
		if errors.Is(err, unix.EINVAL) {
			return unix.EFBIG
		}
		return err
	}
	if free, ok := freeSpace(fd); ok && uint64(n) > free+uint64(st.Blocks)*512 {
		return unix.ENOSPC
	}
	return nil
}

// Len is the size of the mapping in bytes.
func (m *Mapping) Len() int { return len(m.data) }

// Addr is the address of the mapping's first byte (0 once closed).
func (m *Mapping) Addr() uintptr {
	if len(m.data) == 0 {
		return 0
	}
	return uintptr(unsafe.Pointer(&m.data[0]))
}

// Mode is what the mapping was opened for.
func (m *Mapping) Mode() Mode { return m.mode }

// Path is the file name the mapping was opened with.
func (m *Mapping) Path() string { return m.path }

// Options are the options the mapping was opened with.
func (m *Mapping) Options() Options { return m.opts }

// Range checks off and n against the mapping without overflow: the range is
// valid iff off <= size and n <= size - off.
func (m *Mapping) Range(off, n uint64) error {
	size := uint64(len(m.data))
	if off > size || n > size-off {
		return ErrBounds
	}
	return nil
}

// ReadAt copies len(dst) bytes at off into dst.
func (m *Mapping) ReadAt(dst []byte, off uint64) (err error) {
	if !m.mode.CanRead() {
		return ErrNoAccess
	}
	if err := m.Range(off, uint64(len(dst))); err != nil {
		return err
	}
	defer unprotect(protect(), &err)
	copyCached(dst, m.data[off:])
	return nil
}

// copyChunk keeps each copy under the size (1 MiB) from which Go's memmove
// on amd64 switches to non-temporal stores. Those bypass the cache, and the
// bytes we copy are read again at once: by the write to the pipe, or by the
// Erlang side out of a stage.
const copyChunk = 512 << 10

// copyCached is copy(dst, src) in chunks below copyChunk.
func copyCached(dst, src []byte) {
	for len(dst) > copyChunk && len(src) > copyChunk {
		copy(dst[:copyChunk], src)
		dst, src = dst[copyChunk:], src[copyChunk:]
	}
	copy(dst, src)
}

// WriteAt copies src into the mapping at off.
func (m *Mapping) WriteAt(src []byte, off uint64) (err error) {
	if !m.mode.CanWrite() {
		return ErrNoAccess
	}
	if err := m.Range(off, uint64(len(src))); err != nil {
		return err
	}
	defer unprotect(protect(), &err)
	copy(m.data[off:], src)
	return nil
}

// Sync flushes the whole mapping: MS_SYNC waits for the disk, MS_ASYNC
// schedules the write-back.
func (m *Mapping) Sync(async bool) error {
	flags := unix.MS_SYNC
	if async {
		flags = unix.MS_ASYNC
	}
	return unix.Msync(m.data, flags)
}

// Advise passes a madvise hint for [off, off+n). The kernel wants off page
// aligned and gives EINVAL otherwise; a length of 0 is answered here the
// way the kernel would (x/sys's Madvise cannot pass an empty range).
func (m *Mapping) Advise(off, n uint64, hint Advice) error {
	if err := m.Range(off, n); err != nil {
		return err
	}
	if hint < 0 || off%pageSize != 0 {
		return unix.EINVAL // unaligned, or a hint this system does not have
	}
	if n == 0 {
		return nil
	}
	err := unix.Madvise(m.data[off:off+n], int(hint))
	if errors.Is(err, unix.EFAULT) && hint.populates() {
		// The populate hints report a page past the end of the file (it
		// shrank under the mapping) as EFAULT: the same fault a read or
		// write of it gives, so the same answer.
		return ErrFault
	}
	return err
}

// Truncate resizes the file to n and maps it afresh. Growing allocates the
// new blocks (see grow) and reads as zeros; shrinking drops the tail. A
// private mapping is re-read from the file, so its unsaved changes are lost.
//
// A failed Truncate leaves the file at its old size and the mapping as it
// was (the same length and bytes, a private one's changes kept). The steps
// are ordered for that: a shrink maps the new size before it cuts the file,
// since a cut cannot be undone; a grow that cannot be mapped puts the old
// size back. Only if that ftruncate failed too would the file stay longer,
// zeros past its old end, with the mapping still as it was.
func (m *Mapping) Truncate(n uint64) error {
	if !m.mode.CanWrite() {
		return ErrNoAccess
	}
	if n == 0 {
		return unix.EINVAL
	}
	if n != uint64(int(n)) || int64(n) < 0 {
		return unix.EFBIG
	}
	var st unix.Stat_t
	if err := unix.Fstat(m.fd, &st); err != nil {
		return err
	}
	size := int64(n)
	if size > st.Size {
		if err := grow(m.fd, st.Size, size); err != nil {
			return err // grow put the old size back
		}
	}
	data, err := mmapFile(m.fd, 0, int(n), m.mode.prot(), m.opts.mapFlags())
	if err != nil {
		if size > st.Size {
			_ = unix.Ftruncate(m.fd, st.Size)
		}
		return err
	}
	if size < st.Size {
		if err := unix.Ftruncate(m.fd, size); err != nil {
			unix.Munmap(data)
			return err
		}
	}
	if m.opts.Lock {
		_ = unix.Mlock(data)
	}
	old := m.data
	m.data = data
	return unix.Munmap(old)
}

// Close unmaps and closes the file, and with DeleteOnClose removes its
// path (a file already gone is no error). The Mapping must not be used
// after.
func (m *Mapping) Close() error {
	err := unix.Munmap(m.data)
	m.data = nil
	if cerr := unix.Close(m.fd); err == nil {
		err = cerr
	}
	if m.opts.DeleteOnClose {
		if uerr := unix.Unlink(m.path); err == nil && !errors.Is(uerr, unix.ENOENT) {
			err = uerr
		}
	}
	return err
}
