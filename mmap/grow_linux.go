package mmap

import (
	"errors"

	"golang.org/x/sys/unix"
)

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

// enoughSpace: can the file system hold n bytes for this file, counting
// the blocks the file already has? A file system that reports no size
// (some FUSE, proc-like ones) is given the benefit of the doubt.
func enoughSpace(fd int, st *unix.Stat_t, n int64) error {
	var fs unix.Statfs_t
	if unix.Fstatfs(fd, &fs) != nil || fs.Blocks == 0 || fs.Bsize <= 0 {
		return nil
	}
	free := fs.Bavail
	if unix.Geteuid() == 0 {
		free = fs.Bfree // root may use the reserved blocks
	}
	have := free*uint64(fs.Bsize) + uint64(st.Blocks)*512
	if uint64(n) > have {
		return unix.ENOSPC
	}
	return nil
}
