package mmap

import "golang.org/x/sys/unix"

// allocate uses posix_fallocate (no wrapper in x/sys), falling back to
// ftruncate where the file system cannot allocate (ZFS answers EINVAL).
// The call returns its error as its value and leaves errno alone
// (posix_fallocate(2); Go's internal/syscall/unix reads it the same way):
// reading only errno took every failure for success, and on ZFS left the
// file short of the mapping.
func allocate(fd int, size, n int64) error {
	r, _, e := unix.Syscall(unix.SYS_POSIX_FALLOCATE, uintptr(fd), uintptr(size), uintptr(n-size))
	if e == 0 {
		e = unix.Errno(r)
	}
	switch e {
	case 0:
		return nil
	case unix.EINVAL, unix.EOPNOTSUPP, unix.ENODEV:
		return unix.Ftruncate(fd, n)
	}
	return e
}

func freeSpace(fd int) (uint64, bool) {
	var fs unix.Statfs_t
	if unix.Fstatfs(fd, &fs) != nil || fs.Blocks == 0 || fs.Bsize == 0 || fs.Bavail < 0 {
		return 0, false
	}
	return uint64(fs.Bavail) * fs.Bsize, true
}

// noCache: accepted and does nothing, as in the NIF package.
func noCache(fd int) {}
