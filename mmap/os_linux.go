package mmap

import (
	"errors"

	"golang.org/x/sys/unix"
)

// What Linux has that the other systems do not: fallocate, MAP_POPULATE,
// the populate hints and memfd. The other systems' versions are in
// os_darwin.go, os_freebsd.go and os_openbsd.go.

// allocate extends the file from size to n with its blocks allocated
// (fallocate), falling back to ftruncate where the file system cannot
// allocate (tmpfs on old kernels, some FUSE).
func allocate(fd int, size, n int64) error {
	err := unix.Fallocate(fd, 0, size, n-size)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		err = unix.Ftruncate(fd, n)
	}
	return err
}

// freeSpace is what the file system can still give this process, in bytes;
// ok is false where it reports no size (some FUSE, proc-like ones).
func freeSpace(fd int) (free uint64, ok bool) {
	var fs unix.Statfs_t
	if unix.Fstatfs(fd, &fs) != nil || fs.Blocks == 0 || fs.Bsize <= 0 {
		return 0, false
	}
	blocks := fs.Bavail
	if unix.Geteuid() == 0 {
		blocks = fs.Bfree // root may use the reserved blocks
	}
	return blocks * uint64(fs.Bsize), true
}

// mapPopulate prefaults the whole mapping as mmap makes it.
const mapPopulate = unix.MAP_POPULATE

// Hints beyond the NIF's: prefault pages for reading or writing
// (Linux 5.14 and later; older kernels give EINVAL).
const (
	PopulateRead  Advice = unix.MADV_POPULATE_READ
	PopulateWrite Advice = unix.MADV_POPULATE_WRITE
)

// newStageFile makes the anonymous memory file behind a Stage, which the
// Erlang side opens as /proc/<engine pid>/fd/<fd>.
func newStageFile() (int, error) {
	return unix.MemfdCreate("iommap-stage", unix.MFD_CLOEXEC)
}

// DefaultStageKind: memfd, the fastest, is there on Linux.
const DefaultStageKind = MemfdStages

// noCache: Linux has no per-file switch for the page cache; nocache is
// accepted and does nothing, as in the NIF package.
func noCache(fd int) {}
