package port

import (
	"errors"

	"github.com/iommap/iommap/mmap"
)

// operation is one request of PROTOCOL.md: how it runs, whether it may run
// on the main loop, and whether the fuzzer may run it. The table below is
// the one place that names them.
type operation struct {
	// run executes the request and appends its reply frame to b. With wait
	// false (the main loop) it gives up, returning busy and b unchanged,
	// rather than wait for a lock.
	run func(s *Server, req request, b []byte, wait bool) (out []byte, busy bool)
	// inline tells whether this request may run on the main loop: it must
	// be cheap (small, or constant work). nil: never.
	inline func(s *Server, req request) bool
	// fuzzable: FuzzRun may run it against its one live mapping (not one
	// that creates files, or closes or resizes what the fuzzer needs).
	fuzzable bool
}

// operations is filled in init: its entries refer to Server methods that
// look it up themselves.
var operations map[string]operation

func init() {
	operations = map[string]operation{
		"hello":            {run: (*Server).hello, fuzzable: true},
		"stats":            {run: (*Server).stats, fuzzable: true},
		"open":             {run: withID((*Server).open)},
		"close":            {run: withErr((*Server).close)},
		"pread":            {run: (*Server).pread, inline: sizedBy(2), fuzzable: true},
		"pwrite":           {run: withWait((*Server).pwrite), inline: dataSized, fuzzable: true},
		"sync":             {run: withErr((*Server).sync), fuzzable: true},
		"truncate":         {run: withErr((*Server).truncate)},
		"advise":           {run: withErr((*Server).advise), fuzzable: true},
		"position":         {run: (*Server).positionOp, inline: always, fuzzable: true},
		"info":             {run: (*Server).infoOp, fuzzable: true},
		"check":            {run: withErr((*Server).check), fuzzable: true},
		"pread_many":       {run: (*Server).preadMany, inline: vectorSized, fuzzable: true},
		"pwrite_many":      {run: withWait((*Server).pwriteMany), inline: vectorSized, fuzzable: true},
		"add":              {run: atomicOp(3), inline: always, fuzzable: true},
		"compare_exchange": {run: atomicOp(4), inline: always, fuzzable: true},
		"load":             {run: atomicOp(2), inline: always, fuzzable: true},
		"store":            {run: atomicOp(3), inline: always, fuzzable: true},
		"sync_range":       {run: withErr((*Server).syncRange), fuzzable: true},
		"resident":         {run: withID((*Server).resident), fuzzable: true},
		"stage_open":       {run: (*Server).stageOpenOp},
		"stage_close":      {run: withErr((*Server).stageClose)},
		"pread_staged":     {run: withWait((*Server).staged), inline: sizedBy(2), fuzzable: true},
		"pwrite_staged":    {run: withWait((*Server).staged), inline: sizedBy(2), fuzzable: true},
	}
}

// run executes req (see operation.run); an unknown op is badarg.
func (s *Server) run(req request, b []byte, wait bool) ([]byte, bool) {
	op, ok := operations[req.op]
	if !ok {
		return appendError(b, req.id, "badarg"), false
	}
	return op.run(s, req, b, wait)
}

// inline tells whether req may run on the main loop.
func (s *Server) inline(req request) bool {
	op, ok := operations[req.op]
	return ok && op.inline != nil && op.inline(s, req)
}

// Inline policies.

func always(*Server, request) bool { return true }

// sizedBy: the byte count in args[i] is at most InlineMax.
func sizedBy(i int) func(*Server, request) bool {
	return func(s *Server, req request) bool {
		n, ok := argUint(req, i)
		return ok && n <= uint64(s.cfg.InlineMax)
	}
}

// dataSized: a pwrite's data is at most InlineMax.
func dataSized(s *Server, req request) bool {
	if len(req.args) != 3 {
		return false
	}
	d, ok := binArg(req.args[2])
	return ok && len(d) <= s.cfg.InlineMax
}

func vectorSized(s *Server, req request) bool {
	return vectorSize(req) <= uint64(s.cfg.InlineMax)
}

// Adapters from the shapes the operations return to a reply.

// reply turns an error into the reply: busy, {error, R} or ok.
func reply(b []byte, req request, err error) ([]byte, bool) {
	switch {
	case errors.Is(err, mmap.ErrBusy):
		return b, true
	case err != nil:
		return appendError(b, req.id, mmap.Atom(err)), false
	}
	return appendOK(b, req.id), false
}

func withErr(f func(*Server, request) error) func(*Server, request, []byte, bool) ([]byte, bool) {
	return func(s *Server, req request, b []byte, _ bool) ([]byte, bool) { return reply(b, req, f(s, req)) }
}

func withWait(f func(*Server, request, bool) error) func(*Server, request, []byte, bool) ([]byte, bool) {
	return func(s *Server, req request, b []byte, wait bool) ([]byte, bool) {
		return reply(b, req, f(s, req, wait))
	}
}

// withID: an operation answering {ok, N}.
func withID(f func(*Server, request) (uint64, error)) func(*Server, request, []byte, bool) ([]byte, bool) {
	return func(s *Server, req request, b []byte, _ bool) ([]byte, bool) {
		n, err := f(s, req)
		if err != nil {
			return reply(b, req, err)
		}
		return appendOKUint(b, req.id, n), false
	}
}

func atomicOp(nargs int) func(*Server, request, []byte, bool) ([]byte, bool) {
	return func(s *Server, req request, b []byte, wait bool) ([]byte, bool) {
		return s.atomic(req, b, nargs, wait)
	}
}

// {Id, hello} -> {ok, {ProtocolVersion, Version}}
func (s *Server) hello(req request, b []byte, _ bool) ([]byte, bool) {
	return appendOKTerm(b, req.id, []interface{}{ProtocolVersion, []byte(Version)}), false
}

// {Id, stats} -> {ok, #{handles, in_flight, stages}}
func (s *Server) stats(req request, b []byte, _ bool) ([]byte, bool) {
	return appendOKTerm(b, req.id, map[interface{}]interface{}{
		atom("handles"):   s.reg.Len(),
		atom("in_flight"): int(s.inFlight.Load()),
		atom("stages"):    s.stages.Len(),
	}), false
}

func (s *Server) positionOp(req request, b []byte, wait bool) ([]byte, bool) {
	n, err := s.position(req, wait)
	if err != nil {
		return reply(b, req, err)
	}
	return appendOKUint(b, req.id, uint64(n)), false
}

func (s *Server) infoOp(req request, b []byte, _ bool) ([]byte, bool) {
	info, err := s.info(req)
	if err != nil {
		return reply(b, req, err)
	}
	return appendOKTerm(b, req.id, info), false
}

func (s *Server) stageOpenOp(req request, b []byte, _ bool) ([]byte, bool) {
	return s.stageOpen(req, b), false
}
