// Package port is the engine's side of the Erlang port: {packet,4} frames on
// two file descriptors, requests decoded from the external term format,
// dispatch to the mmap registry, and replies written back. The protocol is
// written down in PROTOCOL.md.
package port

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iommap/iommap/mmap"
)

// Version is the engine's release. It is not written here: the build
// stamps it from the Erlang application's vsn (erlang/build_engine.sh), so
// the two cannot disagree.
var Version = "dev"

// ProtocolVersion changes whenever a request or reply shape in PROTOCOL.md
// does; the Erlang side refuses an engine with another one.
const ProtocolVersion = 9

// Config tunes the main loop.
type Config struct {
	// Spin is how long to poll stdin before blocking (see Input).
	Spin time.Duration
	// InlineMax is the largest pread or pwrite run on the main loop; bigger
	// ones, and every slow operation, run on their own goroutine so that
	// small calls on other handles never wait behind them.
	InlineMax int
	// Stages is where stages live (see mmap.StageKind).
	Stages mmap.StageKind
	// ExitGrace bounds how long the engine waits, once its input has
	// ended, for the requests it started. Nobody can read their replies
	// any more; the wait only lets writes in progress finish. A request
	// stuck in the kernel (a file system that does not answer) must not
	// keep the engine, and the mappings it holds, alive after the VM is
	// gone.
	ExitGrace time.Duration
}

// DefaultConfig is what the engine runs with unless told otherwise.
var DefaultConfig = Config{Spin: 50 * time.Microsecond, InlineMax: 64 << 10, Stages: mmap.DefaultStageKind, ExitGrace: 2 * time.Second}

// flushAt bounds how many reply bytes the main loop gathers before writing.
const flushAt = 1 << 20

// Server runs requests from in against a registry and writes replies to out.
type Server struct {
	cfg      Config
	reg      *mmap.Registry
	stages   *mmap.Stages
	port     conn  // stdin and stdout: the control lane, and every call's fallback
	cur      *conn // the connection whose frame is being handled
	lanes    *lanes
	wg       sync.WaitGroup
	inFlight atomic.Int64
}

// conn is one stream of frames the main loop serves: the port, or a lane.
// Its replies are answered on it: those of the main loop gather in batch,
// those of goroutines are written to out directly.
type conn struct {
	in    *Input
	out   *Output
	batch []byte // replies of the main loop not yet written
}

// NewServer serves the {packet,4} stream on inFd (non-blocking) and outFd.
func NewServer(cfg Config, inFd, outFd int) *Server {
	s := &Server{
		cfg:    cfg,
		reg:    mmap.NewRegistry(),
		stages: mmap.NewStagesOf(cfg.Stages),
		port:   conn{in: NewInput(inFd, cfg.Spin), out: NewOutput(outFd)},
	}
	s.cur = &s.port
	s.port.in.Busy = s.busy
	return s
}

// busy tells whether goroutines are running requests.
func (s *Server) busy() bool { return s.inFlight.Load() > 0 }

// Serve runs until the input ends. Requests already started get up to
// ExitGrace to finish, then every mapping is closed (or, if some are still
// in use, left to the exit that follows); io.EOF is a clean end and gives
// nil.
func (s *Server) Serve() error {
	err := s.loop()
	// The VM is gone: nobody is left to use the lanes. They are closed
	// after the mappings, which the VM may be waiting to see gone (a
	// delete_on_close file at application stop).
	defer s.lanes.close()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.reg.CloseAll()
		s.stages.CloseAll()
	case <-time.After(s.cfg.ExitGrace):
		s.stages.RemoveDir()
	}
	if errors.Is(err, io.EOF) || errors.Is(err, ErrClosedOutput) {
		return nil
	}
	return err
}

// loop is the data path: read a frame, handle it (decode, then run it here
// or on a goroutine), and write the replies. Replies of the main loop
// gather in one batch per connection, written when no complete frame is
// left to read (or at flushAt), so with many callers one write carries
// many replies. Once lanes are open, the same goroutine serves them too,
// and waits for input on all the connections at once (see lanes.wait).
func (s *Server) loop() error {
	for {
		if err := s.serve(&s.port); err != nil {
			return err
		}
		s.lanes.serve(s)
		if err := s.port.flush(); err != nil {
			return err
		}
		var err error
		if s.lanes == nil {
			err = s.port.in.Fill()
		} else {
			err = s.lanes.wait(s)
		}
		if err != nil {
			return err
		}
	}
}

// serve handles the frames of c that are already read.
func (s *Server) serve(c *conn) error {
	s.cur = c
	defer func() { s.cur = &s.port }()
	for {
		f, ok, err := c.in.Frame()
		if errors.Is(err, ErrFrameTooLarge) {
			// Only its head was read: answer it, the rest is skipped.
			c.batch = appendError(c.batch, peekID(f), "enomem")
			continue
		}
		if err != nil || !ok {
			return err
		}
		s.handle(f)
		if len(c.batch) >= flushAt {
			if err := c.flush(); err != nil {
				return err
			}
		}
	}
}

// handle decodes a frame and dispatches the request. A frame that is not a
// request is answered badarg at once; one whose list is too long for the
// main loop is decoded again on a goroutine.
func (s *Server) handle(f []byte) {
	req, err := decode(f, inlineList)
	switch {
	case errors.Is(err, errLongList):
		s.decodeAside(f)
	case err != nil:
		s.cur.batch = appendError(s.cur.batch, req.id, "badarg")
	default:
		s.dispatch(req)
	}
}

func (c *conn) flush() error {
	if len(c.batch) == 0 {
		return nil
	}
	err := c.out.Write(c.batch)
	c.batch = c.batch[:0]
	return err
}

// dispatch runs a request on the main loop when it is cheap and its
// handle's lock is free; otherwise it hands it to a goroutine.
func (s *Server) dispatch(req request) {
	if s.inline(req) {
		b, busy := s.run(req, s.cur.batch, false)
		if !busy {
			s.cur.batch = b
			return
		}
	}
	s.runAside(req.owned())
}

// runAside runs req on its own goroutine. (A function of its own, so that
// only this path moves the request to the heap.)
func (s *Server) runAside(req request) {
	s.spawn(func() []byte {
		b, _ := s.run(req, nil, true)
		return b
	})
}

// decodeAside decodes and runs, on its own goroutine, a frame whose list is
// too long for the main loop.
func (s *Server) decodeAside(f []byte) {
	f = bytes.Clone(f) // the frame lives in the input buffer only until the next read
	s.spawn(func() []byte {
		req, err := decode(f, MaxVector)
		if err != nil {
			return appendError(nil, req.id, "badarg")
		}
		b, _ := s.run(req, nil, true)
		return b
	})
}

// spawn runs work on its own goroutine and writes the reply it returns on
// the connection the request came from.
func (s *Server) spawn(work func() []byte) {
	out := s.cur.out
	s.inFlight.Add(1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.inFlight.Add(-1)
		// An error here means the Erlang side is gone (or, on a lane, that
		// the lane was closed); the main loop sees the same on its next
		// read or write and ends the engine (or drops the lane).
		_ = out.Write(work())
	}()
}
