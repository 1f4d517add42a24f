package port

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// MaxFrame is the largest request or reply body the engine handles. The
// {packet,4} header allows 4 GiB; we stop at 2 GiB so a hostile length
// cannot make the engine allocate without bound, and the Erlang side refuses
// larger requests with enomem before sending them.
const MaxFrame = 1<<31 - 1

// ErrFrameTooLarge comes with the head of a frame longer than MaxFrame: the
// engine cannot hold it, so it answers it by the id in its head and throws
// the rest away, and serves the frames after it as usual.
var ErrFrameTooLarge = errors.New("port: frame larger than MaxFrame")

// oversizeHead is how much of an oversized frame is kept: enough for the
// version byte, the tuple header and a 4-byte id.
const oversizeHead = 16

// Input reads {packet,4} frames from a file descriptor set to non-blocking.
//
// Waking up after a blocking read costs a cross-CPU wake-up per round trip
// (tens of microseconds), so Fill first spins on a zero-timeout ppoll for a
// short window, yielding to the Go scheduler every millisecond so sysmon does
// not treat the goroutine as long-running, and only then blocks in poll.
// os.File is not used: on a non-blocking fd it returns EAGAIN as an error.
type Input struct {
	fd        int
	buf       []byte
	off, have int
	Spin      time.Duration
	lastYield time.Time
	skip      uint64 // bytes of an oversized frame still to throw away
	// Busy tells whether goroutines are running requests (see spin).
	Busy func() bool
	// Limit, if not 0, is the longest frame this input accepts: a longer
	// one is ErrFrameRefused, and the input is of no more use (a lane
	// that sends one is closed; see lanes).
	Limit uint32
}

// ErrFrameRefused: a frame longer than the input's Limit.
var ErrFrameRefused = errors.New("port: frame longer than the input allows")

// NewInput reads frames from fd, which the caller has made non-blocking.
func NewInput(fd int, spin time.Duration) *Input {
	return &Input{fd: fd, buf: make([]byte, defaultInput), Spin: spin}
}

// Frame returns the next complete frame body already buffered, if any. The
// slice is valid until the next call to Fill. For a frame longer than
// MaxFrame it returns the frame's first oversizeHead bytes, true and
// ErrFrameTooLarge, and then skips the rest of it.
func (in *Input) Frame() ([]byte, bool, error) {
	if in.skip > 0 {
		d := min(in.skip, uint64(in.have-in.off))
		in.off += int(d)
		in.skip -= d
		if in.skip > 0 {
			return nil, false, nil
		}
	}
	if in.have-in.off < 4 {
		return nil, false, nil
	}
	n := binary.BigEndian.Uint32(in.buf[in.off:])
	if in.Limit > 0 && n > in.Limit {
		return nil, false, fmt.Errorf("%w: %d bytes", ErrFrameRefused, n)
	}
	if n > MaxFrame {
		if in.have-in.off-4 < oversizeHead {
			return nil, false, nil
		}
		head := in.buf[in.off+4 : in.off+4+oversizeHead]
		in.off += 4 + oversizeHead
		in.skip = uint64(n) - oversizeHead
		return head, true, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, n)
	}
	if in.have-in.off-4 < int(n) {
		return nil, false, nil
	}
	f := in.buf[in.off+4 : in.off+4+int(n)]
	in.off += 4 + int(n)
	return f, true, nil
}

// Fill reads more input, making room first. It returns io.EOF when the
// other end has closed.
func (in *Input) Fill() error {
	for {
		got, err := in.ReadNow()
		if got || err != nil {
			return err
		}
		if !in.spin() {
			if err := waitReadable(in.fd); err != nil {
				return err
			}
		}
	}
}

// ReadNow reads what is there without waiting, making room first: it
// tells whether it read anything, and gives io.EOF when the other end has
// closed. The engine loop calls it for each descriptor poll found
// readable (see lanes).
func (in *Input) ReadNow() (bool, error) {
	in.makeRoom()
	for {
		n, err := unix.Read(in.fd, in.buf[in.have:])
		switch {
		case err == nil && n == 0:
			return false, io.EOF
		case err == nil:
			in.have += n
			return true, nil
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false, nil
		}
		return false, err
	}
}

// Buffered tells whether bytes are waiting in the buffer (a frame, or
// part of one).
func (in *Input) Buffered() bool { return in.have > in.off }

const defaultInput = 256 << 10

// makeRoom moves a partial frame to the front and grows the buffer when the
// frame in progress does not fit. Once a big frame has been handled, the
// buffer goes back to its usual size, so one 1 GiB pwrite does not pin
// 1 GiB for the life of the engine. Nothing points into the old buffer:
// decoding copies what it keeps.
func (in *Input) makeRoom() {
	if in.off == in.have {
		in.off, in.have = 0, 0
		if len(in.buf) > 4*defaultInput {
			in.buf = make([]byte, defaultInput)
		}
	}
	need := 64 << 10
	if in.have-in.off >= 4 && in.skip == 0 {
		// Room for the whole frame, unless it is one to skip.
		if n := int(binary.BigEndian.Uint32(in.buf[in.off:])) + 4; n > need && n <= MaxFrame+4 {
			need = n
		}
	}
	if len(in.buf)-in.off < need {
		nb := in.buf
		if len(nb) < need {
			nb = make([]byte, need)
		}
		in.have = copy(nb, in.buf[in.off:in.have])
		in.off = 0
		in.buf = nb
		return
	}
	if len(in.buf)-in.have < 64<<10 && in.off > 0 {
		in.have = copy(in.buf, in.buf[in.off:in.have])
		in.off = 0
	}
}

// spin polls fd without blocking until it is readable or the window closes.
// ppoll is used rather than read: a pipe's poll is lockless, its read takes
// the pipe mutex even when it finds nothing.
//
// While goroutines run slow requests (Busy), every turn yields to the Go
// scheduler: with one P, that is when they get to run, at once and on this
// CPU, instead of after sysmon takes the P back from a blocked poll (20 µs
// to 10 ms). Otherwise it yields once a millisecond, which keeps sysmon from
// treating this goroutine as long-running; a yield on every turn would cost
// the small calls a tenth of their speed.
func (in *Input) spin() bool {
	busy := in.Busy != nil && in.Busy()
	if in.Spin <= 0 {
		if busy {
			runtime.Gosched()
		}
		return false
	}
	start := time.Now()
	if start.Sub(in.lastYield) > time.Millisecond {
		runtime.Gosched()
		in.lastYield = start
	}
	fds := [1]unix.PollFd{{Fd: int32(in.fd), Events: unix.POLLIN}}
	for time.Since(start) < in.Spin {
		if busy {
			runtime.Gosched()
			busy = in.Busy()
		}
		if readableNow(&fds) {
			return true
		}
	}
	return false
}

func waitReadable(fd int) error {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err != unix.EINTR {
			return err
		}
	}
}
