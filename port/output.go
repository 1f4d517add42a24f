package port

import (
	"errors"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrClosedOutput means the reader of our replies has gone (EPIPE: the port
// was closed). Port programs inherit SIGPIPE ignored, so this is how the end
// shows on the write side.
var ErrClosedOutput = errors.New("port: output closed")

// Output writes whole frames to a file descriptor. The main loop and the
// goroutines that run slow requests share it; the lock keeps frames whole.
type Output struct {
	mu sync.Mutex
	fd int
	// lane: a reader that does not take its replies must not stall the
	// engine, so a write that would block shuts the lane down instead
	// (its caller sees it closed; the main loop then drops it).
	lane bool
}

// NewOutput writes to fd.
func NewOutput(fd int) *Output { return &Output{fd: fd} }

// Close closes the descriptor. A goroutine that finishes a slow request
// later gets ErrClosedOutput from Write, never a write to a descriptor
// number the kernel has given to something else meanwhile.
func (o *Output) Close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fd >= 0 {
		unix.Close(o.fd)
		o.fd = -1
	}
}

// Write writes b, which holds one or more complete frames, in full.
func (o *Output) Write(b []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fd < 0 && len(b) > 0 {
		return ErrClosedOutput
	}
	for len(b) > 0 {
		n, err := unix.Write(o.fd, b)
		switch {
		case err == nil:
			b = b[n:]
		case err == unix.EINTR:
		case err == unix.EAGAIN && o.lane:
			unix.Shutdown(o.fd, unix.SHUT_RDWR)
			return ErrClosedOutput
		case err == unix.EAGAIN: // a non-blocking fd shared with a terminal
			fds := []unix.PollFd{{Fd: int32(o.fd), Events: unix.POLLOUT}}
			unix.Poll(fds, -1)
		case err == unix.EPIPE:
			return ErrClosedOutput
		default:
			return err
		}
	}
	return nil
}
