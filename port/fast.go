package port

import (
	"bytes"
	"encoding/binary"
	"math/big"

	"github.com/iommap/iommap/mmap"
	"github.com/okeuday/erlang_go/v2/erlang"
)

// fastDecode reads the commonest requests straight from the frame's bytes,
// in the shapes the Erlang side's encoder gives them:
//
//	{Id, pread, H, Off, Len}          {Id, pwrite, H, Off, Data}
//	{Id, pread_many, H, [{Off, Len}]} {Id, pwrite_many, H, [{Off, Data}]}
//
// It gives what decode would, without erlang_go: no walk, no copy of the
// data, no allocation beyond the argument list and a vector's typed list.
// erlang_go was most of the engine's cost of a small write (1.2 µs to
// decode against 0.3 µs for a read) and of a pwrite_many (22 µs for 64
// pieces of 64 B: a term and two allocations for every offset, tuple and
// binary). The lists of the two vectored requests come out typed, in
// req.ranges and req.pieces (args[1], the list, is then nil), and only up
// to fastVectorMax elements, so a fast decode stays cheap enough for the
// main loop. Any other frame, or any variation, gives ok false and goes
// the general way.
//
// Data points into f, which lives only until the next read of the input:
// a request that leaves the main loop must be owned() first.
func fastDecode(f []byte) (req request, ok bool) {
	c := cursor{f: f}
	if !c.next(tagVersion) || !c.next(tagSmallTuple) {
		return request{}, false
	}
	arity, _ := c.byte()
	id, ok := c.id()
	if !ok {
		return request{}, false
	}
	name, ok := c.atom()
	if !ok {
		return request{}, false
	}
	req = request{id: id}
	switch {
	case arity == 5 && bytes.Equal(name, opPread):
		req.op, req.args = "pread", make([]interface{}, 3)
		ok = c.boxedUint(&req.args[0]) && c.boxedUint(&req.args[1]) && c.boxedUint(&req.args[2])
	case arity == 5 && bytes.Equal(name, opPwrite):
		req.op, req.args = "pwrite", make([]interface{}, 3)
		ok = c.boxedUint(&req.args[0]) && c.boxedUint(&req.args[1])
		if ok {
			var d []byte
			d, ok = c.binary()
			req.args[2] = erlang.OtpErlangBinary{Value: d, Bits: 8}
		}
	case arity == 4 && bytes.Equal(name, opPreadMany):
		req.op, req.args = "pread_many", make([]interface{}, 2)
		if ok = c.boxedUint(&req.args[0]); ok {
			req.ranges, ok = listOf(&c, c.rangeElem)
		}
	case arity == 4 && bytes.Equal(name, opPwriteMany):
		req.op, req.args = "pwrite_many", make([]interface{}, 2)
		if ok = c.boxedUint(&req.args[0]); ok {
			req.pieces, ok = listOf(&c, c.pieceElem)
		}
	default:
		return request{}, false
	}
	if !ok || c.i != len(f) {
		return request{}, false
	}
	return req, true
}

var (
	opPread, opPwrite         = []byte("pread"), []byte("pwrite")
	opPreadMany, opPwriteMany = []byte("pread_many"), []byte("pwrite_many")
)

// fastVectorMax is the longest list fastDecode reads: about 10 µs of work
// on the main loop. A longer one goes the general way, and past
// inlineTerms off the main loop.
const fastVectorMax = 1024

// cursor reads terms from f at i; every read checks that the bytes are
// there and moves i past what it read.
type cursor struct {
	f []byte
	i int
}

func (c *cursor) byte() (byte, bool) {
	if c.i >= len(c.f) {
		return 0, false
	}
	c.i++
	return c.f[c.i-1], true
}

// next reads one byte that must be want.
func (c *cursor) next(want byte) bool {
	b, ok := c.byte()
	return ok && b == want
}

func (c *cursor) uint32() (uint32, bool) {
	if len(c.f)-c.i < 4 {
		return 0, false
	}
	c.i += 4
	return binary.BigEndian.Uint32(c.f[c.i-4:]), true
}

// id reads a request id: a positive SMALL_INTEGER_EXT or INTEGER_EXT.
func (c *cursor) id() (int32, bool) {
	tag, ok := c.byte()
	var id int32
	switch {
	case ok && tag == tagSmallInteger:
		var b byte
		b, ok = c.byte()
		id = int32(b)
	case ok && tag == tagInteger:
		var u uint32
		u, ok = c.uint32()
		id = int32(u)
	default:
		return 0, false
	}
	return id, ok && id > 0
}

// atom reads an atom's name. OTP 25 writes atoms as ATOM_EXT, OTP 26 and
// later as SMALL_ATOM_UTF8_EXT.
func (c *cursor) atom() ([]byte, bool) {
	tag, ok := c.byte()
	if !ok {
		return nil, false
	}
	var n int
	switch tag {
	case tagSmallAtomUTF8, tagSmallAtom:
		b, ok := c.byte()
		if !ok {
			return nil, false
		}
		n = int(b)
	case tagAtom, tagAtomUTF8:
		if len(c.f)-c.i < 2 {
			return nil, false
		}
		n = int(binary.BigEndian.Uint16(c.f[c.i:]))
		c.i += 2
	default:
		return nil, false
	}
	if n > len(c.f)-c.i {
		return nil, false
	}
	c.i += n
	return c.f[c.i-n : c.i], true
}

// uint reads a non-negative integer: SMALL_INTEGER_EXT, INTEGER_EXT or a
// SMALL_BIG_EXT of at most 8 digits. tag says which it was.
func (c *cursor) uint() (v uint64, tag byte, ok bool) {
	if tag, ok = c.byte(); !ok {
		return 0, 0, false
	}
	switch tag {
	case tagSmallInteger:
		b, ok := c.byte()
		return uint64(b), tag, ok
	case tagInteger:
		u, ok := c.uint32()
		return uint64(u), tag, ok && int32(u) >= 0
	case tagSmallBig:
		if len(c.f)-c.i < 2 {
			return 0, 0, false
		}
		n, sign := int(c.f[c.i]), c.f[c.i+1]
		c.i += 2
		if sign != 0 || n < 1 || n > 8 || n > len(c.f)-c.i {
			return 0, 0, false
		}
		for k := n - 1; k >= 0; k-- {
			v = v<<8 | uint64(c.f[c.i+k])
		}
		c.i += n
		return v, tag, true
	}
	return 0, 0, false
}

// boxedUint reads a non-negative integer into *dst as erlang_go gives it:
// uint8, int32 or *big.Int.
func (c *cursor) boxedUint(dst *interface{}) bool {
	v, tag, ok := c.uint()
	switch {
	case !ok:
		return false
	case tag == tagSmallInteger:
		*dst = uint8(v)
	case tag == tagInteger:
		*dst = int32(v)
	default:
		*dst = new(big.Int).SetUint64(v)
	}
	return true
}

// binary reads a BINARY_EXT; the bytes stay in f.
func (c *cursor) binary() ([]byte, bool) {
	if !c.next(tagBinary) {
		return nil, false
	}
	n, ok := c.uint32()
	if !ok || uint64(n) > uint64(len(c.f)-c.i) {
		return nil, false
	}
	c.i += int(n)
	return c.f[c.i-int(n) : c.i], true
}

// list reads the head of a proper list of at most fastVectorMax elements:
// NIL_EXT, or LIST_EXT and its length (its elements and the NIL_EXT tail
// follow, read by the caller).
func (c *cursor) list() (n int, nonEmpty bool, ok bool) {
	tag, ok := c.byte()
	switch {
	case ok && tag == tagNil:
		return 0, false, true
	case ok && tag == tagList:
		u, ok := c.uint32()
		return int(u), true, ok && u <= fastVectorMax
	}
	return 0, false, false
}

// listOf reads a proper list of at most fastVectorMax 2-tuples, each
// tuple's two elements read by elem into its element of the slice (never
// nil, so an empty list is told from none).
func listOf[T any](c *cursor, elem func(*T) bool) ([]T, bool) {
	n, nonEmpty, ok := c.list()
	if !ok {
		return nil, false
	}
	out := make([]T, n)
	for k := range out {
		if !c.next(tagSmallTuple) || !c.next(2) || !elem(&out[k]) {
			return nil, false
		}
	}
	return out, !nonEmpty || c.next(tagNil)
}

// rangeElem reads {Off, Len}'s elements.
func (c *cursor) rangeElem(r *mmap.Range) bool {
	var ok1, ok2 bool
	r.Off, _, ok1 = c.uint()
	r.Len, _, ok2 = c.uint()
	return ok1 && ok2
}

// pieceElem reads {Off, Data}'s elements; the data stays in f.
func (c *cursor) pieceElem(p *mmap.Piece) bool {
	var ok1, ok2 bool
	p.Off, _, ok1 = c.uint()
	p.Data, ok2 = c.binary()
	return ok1 && ok2
}

// owned gives the request its own copy of data that points into the input
// buffer (a fast-decoded pwrite's or pwrite_many's), before it leaves the
// main loop.
func (r request) owned() request {
	switch {
	case r.op == "pwrite" && len(r.args) == 3:
		if b, ok := r.args[2].(erlang.OtpErlangBinary); ok {
			args := append([]interface{}(nil), r.args...)
			args[2] = erlang.OtpErlangBinary{Value: bytes.Clone(b.Value), Bits: 8}
			r.args = args
		}
	case r.pieces != nil:
		total := 0
		for _, p := range r.pieces {
			total += len(p.Data)
		}
		buf := make([]byte, 0, total)
		ps := make([]mmap.Piece, len(r.pieces))
		for k, p := range r.pieces {
			buf = append(buf, p.Data...)
			ps[k] = mmap.Piece{Off: p.Off, Data: buf[len(buf)-len(p.Data):]}
		}
		r.pieces = ps
	}
	return r
}
