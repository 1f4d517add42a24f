package port

import (
	"errors"
	"math"
	"math/big"

	"github.com/iommap/iommap/mmap"
	"github.com/okeuday/erlang_go/v2/erlang"
)

// The operations beyond the NIF: vectored I/O, atomics, range sync and
// residency (PROTOCOL.md, version 2).

// intArg reads a signed 64-bit integer.
func intArg(v interface{}) (int64, bool) {
	switch n := v.(type) {
	case uint8:
		return int64(n), true
	case int32:
		return int64(n), true
	case *big.Int:
		return n.Int64(), n.IsInt64()
	}
	return 0, false
}

// pairs reads a list of 2-tuples whose first element is an offset.
func pairs(v interface{}) ([]erlang.OtpErlangTuple, bool) {
	l, ok := listArg(v)
	if !ok {
		return nil, false
	}
	out := make([]erlang.OtpErlangTuple, len(l))
	for i, e := range l {
		t, ok := e.(erlang.OtpErlangTuple)
		if !ok || len(t) != 2 {
			return nil, false
		}
		out[i] = t
	}
	return out, true
}

func ranges(req request) ([]mmap.Range, bool) {
	if req.ranges != nil {
		return req.ranges, len(req.args) == 2
	}
	if len(req.args) != 2 {
		return nil, false
	}
	ps, ok := pairs(req.args[1])
	if !ok {
		return nil, false
	}
	rs := make([]mmap.Range, len(ps))
	for i, p := range ps {
		off, ok1 := uintArg(p[0])
		n, ok2 := uintArg(p[1])
		if !ok1 || !ok2 {
			return nil, false
		}
		rs[i] = mmap.Range{Off: off, Len: n}
	}
	return rs, true
}

func pieces(req request) ([]mmap.Piece, bool) {
	if req.pieces != nil {
		return req.pieces, len(req.args) == 2
	}
	if len(req.args) != 2 {
		return nil, false
	}
	ps, ok := pairs(req.args[1])
	if !ok {
		return nil, false
	}
	ws := make([]mmap.Piece, len(ps))
	for i, p := range ps {
		off, ok1 := uintArg(p[0])
		d, ok2 := binArg(p[1])
		if !ok1 || !ok2 {
			return nil, false
		}
		ws[i] = mmap.Piece{Off: off, Data: d}
	}
	return ws, true
}

// {Id, pread_many, H, [{Off, Len}]} -> {ok, [Binary]}
func (s *Server) preadMany(req request, b []byte, wait bool) ([]byte, bool) {
	h, err := s.handleArg(req, 2)
	rs, ok := ranges(req)
	overhead := uint64(64 + 5*len(rs)) // reply header, and a BINARY_EXT header each
	switch {
	case err != nil:
	case !ok:
		err = mmap.ErrBadArg
	case overhead > MaxFrame:
		err = mmap.ErrNoMemory
	}
	if err != nil {
		return appendError(b, req.id, mmap.Atom(err)), false
	}
	mark := len(b)
	b, start := beginReply(b, req.id)
	b = appendOKTuple(b)
	if len(rs) > 0 {
		b = append(b, tagList, 0, 0, 0, 0)
		putUint32(b[len(b)-4:], uint32(len(rs)))
	}
	b, err = h.ReadMany(b, rs, MaxFrame-overhead, appendBinaryHeader, wait)
	switch {
	case errors.Is(err, mmap.ErrBusy):
		return b[:mark], true
	case err != nil:
		return appendError(b[:mark], req.id, mmap.Atom(err)), false
	}
	return endReply(append(b, tagNil), start), false
}

// {Id, pwrite_many, H, [{Off, Binary}]} -> ok
func (s *Server) pwriteMany(req request, wait bool) error {
	h, err := s.handleArg(req, 2)
	if err != nil {
		return err
	}
	ws, ok := pieces(req)
	if !ok {
		return mmap.ErrBadArg
	}
	return h.WriteMany(ws, wait)
}

// {Id, add, H, Off, Incr} -> {ok, Old}
// {Id, compare_exchange, H, Off, Expected, New} -> ok | {error, {mismatch, Current}}
// {Id, load, H, Off} -> {ok, Value}
// {Id, store, H, Off, Value} -> ok
//
// With wait false (the main loop) a held lock gives busy, b unchanged, and
// the request goes to a goroutine: an atomic behind a truncate or a big
// write must not stall the engine for every other handle.
func (s *Server) atomic(req request, b []byte, nargs int, wait bool) ([]byte, bool) {
	h, err := s.handleArg(req, nargs)
	if err != nil {
		return appendError(b, req.id, mmap.Atom(err)), false
	}
	off, ok := argUint(req, 1)
	vals := make([]int64, 0, 2)
	for _, a := range req.args[2:] {
		v, okv := intArg(a)
		ok = ok && okv
		vals = append(vals, v)
	}
	if !ok {
		return appendError(b, req.id, "badarg"), false
	}
	var v int64
	switch req.op {
	case "add":
		v, err = h.Add(off, vals[0], wait)
	case "load":
		v, err = h.Load(off, wait)
	case "store":
		if err = h.Store(off, vals[0], wait); err == nil {
			return appendOK(b, req.id), false
		}
	case "compare_exchange":
		if v, err = h.CompareExchange(off, vals[0], vals[1], wait); err == nil {
			if v == vals[0] {
				return appendOK(b, req.id), false
			}
			return appendMismatch(b, req.id, v), false
		}
	}
	switch {
	case errors.Is(err, mmap.ErrBusy):
		return b, true
	case err != nil:
		return appendError(b, req.id, mmap.Atom(err)), false
	}
	return appendOKInt(b, req.id, v), false
}

// {Id, sync_range, H, Off, Len, sync | async} -> ok
func (s *Server) syncRange(req request) error {
	h, err := s.handleArg(req, 4)
	if err != nil {
		return err
	}
	off, ok1 := argUint(req, 1)
	n, ok2 := argUint(req, 2)
	mode, _ := argAtom(req, 3)
	if !ok1 || !ok2 || (mode != "sync" && mode != "async") {
		return mmap.ErrBadArg
	}
	return h.SyncRange(off, n, mode == "async")
}

// {Id, resident, H, Off, Len} -> {ok, Bytes}
func (s *Server) resident(req request) (uint64, error) {
	h, err := s.handleArg(req, 3)
	if err != nil {
		return 0, err
	}
	off, ok1 := argUint(req, 1)
	n, ok2 := argUint(req, 2)
	if !ok1 || !ok2 {
		return 0, mmap.ErrBadArg
	}
	return h.Resident(off, n)
}

// vectorSize is the bytes a vectored request moves, or MaxUint64 if its
// arguments cannot be read (it is then not run inline). It walks the list
// without building anything: run parses it properly.
func vectorSize(req request) uint64 {
	var total uint64
	for _, r := range req.ranges {
		total += min(r.Len, math.MaxUint32)
	}
	for _, p := range req.pieces {
		total += uint64(len(p.Data))
	}
	if req.ranges != nil || req.pieces != nil {
		return total
	}
	if len(req.args) != 2 {
		return math.MaxUint64
	}
	l, ok := listArg(req.args[1])
	if !ok {
		return math.MaxUint64
	}
	for _, e := range l {
		t, ok := e.(erlang.OtpErlangTuple)
		if !ok || len(t) != 2 {
			return math.MaxUint64
		}
		if req.op == "pread_many" {
			n, ok := uintArg(t[1])
			if !ok {
				return math.MaxUint64
			}
			total += min(n, math.MaxUint32)
		} else {
			d, ok := binArg(t[1])
			if !ok {
				return math.MaxUint64
			}
			total += uint64(len(d))
		}
	}
	return total
}
