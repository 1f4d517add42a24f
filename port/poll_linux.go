package port

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

var zeroTimeout unix.Timespec

// readableNow polls without blocking. On Linux it is a raw ppoll: no
// allocation, no trip through the runtime's syscall bookkeeping beyond
// Syscall6, which matters in a loop that spins for tens of microseconds.
func readableNow(fds *[1]unix.PollFd) bool {
	r, _, e := unix.Syscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), 1,
		uintptr(unsafe.Pointer(&zeroTimeout)), 0, 0, 0)
	return e == 0 && r > 0
}
