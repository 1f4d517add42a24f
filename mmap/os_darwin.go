package mmap

import "golang.org/x/sys/unix"

// allocate reserves the blocks with F_PREALLOCATE (contiguous if it can,
// else anywhere), then sets the size, so a full disk fails here as ENOSPC.
func allocate(fd int, size, n int64) error {
	st := unix.Fstore_t{Flags: unix.F_ALLOCATECONTIG, Posmode: unix.F_PEOFPOSMODE, Length: n - size}
	if err := unix.FcntlFstore(uintptr(fd), unix.F_PREALLOCATE, &st); err != nil {
		st.Flags = unix.F_ALLOCATEALL
		if err := unix.FcntlFstore(uintptr(fd), unix.F_PREALLOCATE, &st); err != nil && err != unix.ENOTSUP {
			return err
		}
	}
	return unix.Ftruncate(fd, n)
}

func freeSpace(fd int) (uint64, bool) {
	var fs unix.Statfs_t
	if unix.Fstatfs(fd, &fs) != nil || fs.Blocks == 0 || fs.Bsize == 0 {
		return 0, false
	}
	return fs.Bavail * uint64(fs.Bsize), true
}

// noCache turns off the unified buffer cache's caching of the file's data
// (F_NOCACHE), as the NIF package does for the nocache option; a hint.
func noCache(fd int) { _, _ = unix.FcntlInt(uintptr(fd), unix.F_NOCACHE, 1) }
