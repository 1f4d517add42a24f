//go:build darwin || freebsd || openbsd

package port

import "golang.org/x/sys/unix"

// readableNow polls without blocking (poll with a zero timeout; macOS has
// no ppoll).
func readableNow(fds *[1]unix.PollFd) bool {
	n, err := unix.Poll(fds[:], 0)
	return err == nil && n > 0
}
