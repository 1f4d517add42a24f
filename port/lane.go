package port

import (
	"errors"
	"math"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// Lanes: a cheaper round trip for small calls.
//
// A call through the port costs a hop through the VM's port machinery on
// the way in and one through the process that owns the port on the way
// out. A lane is a Unix socket the calling Erlang process reads and writes
// itself (OTP's socket module, on a normal scheduler), polling for its
// reply, so neither hop happens. Frames on a lane are those of the port:
// a 4-byte big-endian length, then a term in the external term format.
//
// The engine listens in a directory of its own (0700), names the socket in
// the reply to {Id, lanes, VmOsPid}, and accepts a connection only from the
// VM that started it: the peer's credentials (its pid and uid) must be
// those of the VM as the VM stated them on stdin. Anything else that
// connects is closed at once. The same goroutine serves the port and every
// lane, as it served the port alone (see wait): no goroutine or thread per
// connection. Slow requests go to goroutines as before, and their replies
// go back on the lane they came from.

// laneMaxFrame bounds a frame on a lane. The Erlang side sends only small
// calls there; a lane that announces a longer frame is closed instead of
// making the engine hold it.
const laneMaxFrame = 16 << 20

// maxLanes bounds the connections the engine keeps; more are refused. The
// Erlang side opens a bounded pool of them (the app env key lanes), so this only stops a runaway one.
const maxLanes = 256

// laneInput is a lane's first input buffer: small calls need no more.
const laneInput = 64 << 10

// laneSocket is the name of the socket in the engine's private directory.
const laneSocket = "lane"

// ErrNoLanes: this system has no lanes (see lane_other.go).
var ErrNoLanes = unix.ENOSYS

type lanes struct {
	path  string // in the engine's private directory (see mmap.Stages.PrivatePath)
	ln    int    // the listening socket
	vm    int    // the pid allowed to connect
	conns []*conn
	// fds: the port's input, the listener, then one per conn, in order.
	fds       []unix.PollFd
	spin      time.Duration
	lastYield time.Time
}

// openLanes starts listening at path.
func openLanes(path string, spin time.Duration) (*lanes, error) {
	os.Remove(path) // a socket left by a failed start
	ln, err := listenLane(path)
	if err != nil {
		return nil, err
	}
	return &lanes{path: path, ln: ln, spin: spin}, nil
}

// {Id, lanes, VmOsPid} -> {ok, Path}: listen for lanes (once; a second
// request names the same socket) and accept them from VmOsPid only.
func (s *Server) openLanes(req request, b []byte, _ bool) ([]byte, bool) {
	if req.n == 0 || req.n > math.MaxInt32 {
		return appendError(b, req.id, "badarg"), false
	}
	if s.lanes == nil {
		path, err := s.stages.PrivatePath(laneSocket)
		if err != nil {
			return reply(b, req, err)
		}
		l, err := openLanes(path, s.cfg.Spin)
		if err != nil {
			return reply(b, req, err)
		}
		s.lanes = l
	}
	s.lanes.vm = int(req.n)
	return appendOKTerm(b, req.id, []byte(s.lanes.path)), false
}

// close closes every lane and the listener and removes the socket (the
// directory goes with the stages').
func (l *lanes) close() {
	if l == nil {
		return
	}
	for _, c := range l.conns {
		c.out.Close()
	}
	l.conns = nil
	unix.Close(l.ln)
	os.Remove(l.path)
}

// serve handles the frames each lane has buffered and writes their
// replies. A lane that fails (it sent a frame too long, or its reader has
// gone) is closed; the engine goes on.
func (l *lanes) serve(s *Server) {
	if l == nil {
		return
	}
	for i := 0; i < len(l.conns); i++ {
		c := l.conns[i]
		err := s.serve(c)
		if err == nil {
			err = c.flush()
		}
		if err != nil {
			l.drop(i)
			i--
		}
	}
}

// drop closes lane i. A goroutine still running one of its requests gets
// ErrClosedOutput when it writes the reply.
func (l *lanes) drop(i int) {
	l.conns[i].out.Close()
	l.conns = append(l.conns[:i], l.conns[i+1:]...)
	l.fds = l.fds[:0]
}

// wait reads what is there on the port and on every lane, first waiting
// until something is: a zero-timeout poll over all of them for the spin
// window (yielding as Input.spin does), then one blocking poll. It returns
// an error only for the port (its end is the engine's); the listener
// accepts, and a lane that ends or fails is dropped.
func (l *lanes) wait(s *Server) error {
	fds := l.pollSet(s)
	if pollNow(fds) == 0 && !l.spinOn(fds, s.busy) {
		for {
			_, err := unix.Poll(fds, -1)
			if err == nil {
				break
			}
			if err != unix.EINTR {
				return err
			}
		}
	}
	if fds[0].Revents != 0 {
		if _, err := s.port.in.ReadNow(); err != nil {
			return err
		}
	}
	// Backwards, so that dropping lane i leaves the indexes below it as
	// they were polled.
	for i := len(fds) - 3; i >= 0; i-- {
		if fds[2+i].Revents == 0 {
			continue
		}
		if _, err := l.conns[i].in.ReadNow(); err != nil {
			l.drop(i) // io.EOF: the VM closed it
		}
	}
	if fds[1].Revents&unix.POLLIN != 0 {
		l.accept()
		l.fds = l.fds[:0]
	}
	return nil
}

// pollSet gives the descriptors to poll, rebuilt when lanes come or go.
func (l *lanes) pollSet(s *Server) []unix.PollFd {
	if len(l.fds) != 2+len(l.conns) {
		l.fds = append(l.fds[:0], unix.PollFd{Fd: int32(s.port.in.fd), Events: unix.POLLIN},
			unix.PollFd{Fd: int32(l.ln), Events: unix.POLLIN})
		for _, c := range l.conns {
			l.fds = append(l.fds, unix.PollFd{Fd: int32(c.in.fd), Events: unix.POLLIN})
		}
	}
	for i := range l.fds {
		l.fds[i].Revents = 0
	}
	return l.fds
}

// spinOn polls fds without blocking until one is ready or the window
// closes; see Input.spin for why it yields when it does.
func (l *lanes) spinOn(fds []unix.PollFd, busy func() bool) bool {
	if l.spin <= 0 {
		if busy() {
			runtime.Gosched()
		}
		return false
	}
	start := time.Now()
	if start.Sub(l.lastYield) > time.Millisecond {
		runtime.Gosched()
		l.lastYield = start
	}
	b := busy()
	for time.Since(start) < l.spin {
		if b {
			runtime.Gosched()
			b = busy()
		}
		if pollNow(fds) > 0 {
			return true
		}
	}
	return false
}

// accept takes every pending connection, keeping those of the VM.
func (l *lanes) accept() {
	for {
		fd, err := acceptLane(l.ln, l.vm)
		switch {
		case errors.Is(err, errNotTheVM):
			continue // closed already
		case err != nil:
			return // EAGAIN: no more; anything else: try at the next wake-up
		}
		if len(l.conns) >= maxLanes {
			unix.Close(fd)
			continue
		}
		in := NewInput(fd, 0)
		in.buf = make([]byte, laneInput) // grown as a frame needs, as the port's
		in.Limit = laneMaxFrame
		out := NewOutput(fd)
		out.lane = true
		l.conns = append(l.conns, &conn{in: in, out: out})
	}
}

// errNotTheVM: a connection from another process than the VM, refused.
var errNotTheVM = errors.New("port: lane connection from another process")
