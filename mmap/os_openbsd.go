package mmap

import "golang.org/x/sys/unix"

// allocate: OpenBSD has no fallocate, so the tail is sparse and a full disk
// can still show later as sigbus on a write; freeSpace at least refuses
// what obviously cannot fit.
func allocate(fd int, size, n int64) error { return unix.Ftruncate(fd, n) }

func freeSpace(fd int) (uint64, bool) {
	var fs unix.Statfs_t
	if unix.Fstatfs(fd, &fs) != nil || fs.F_blocks == 0 || fs.F_bsize == 0 || fs.F_bavail < 0 {
		return 0, false
	}
	return uint64(fs.F_bavail) * uint64(fs.F_bsize), true
}

// noCache: accepted and does nothing, as in the NIF package.
func noCache(fd int) {}
