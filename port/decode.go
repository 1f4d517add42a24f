package port

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/iommap/iommap/mmap"
)

// request is one frame {Id, Op, Args...}, decoded: the operation's row,
// and each argument in the typed field its kind names (see argKind). No
// argument is boxed, so a small request costs no allocation to decode.
//
// data and pieces point into the frame, which lives only until the next
// read of the input: a request that leaves the main loop is owned() first.
type request struct {
	id     int32
	op     *operation
	h      uint64       // argHandle
	stage  uint64       // argStage
	off    uint64       // argOff
	n      uint64       // argLen, argEnd, argSize: a count of bytes
	vals   [2]int64     // argValue, argValue2: an atomic's operands
	data   []byte       // argData, argPath
	mode   mmap.Mode    // argMode
	opts   mmap.Options // argSharing, argSize (Size), argPerm, argFlags
	async  bool         // argSyncMode
	write  bool         // argAccess
	hint   mmap.Advice  // argHint
	ranges []mmap.Range // argRanges
	pieces []mmap.Piece // argPieces; argBinaries (each at Off 0)

	durable bool // argDurable

	// handle is the registry's handle for h, looked up by run.
	handle *mmap.Handle
}

// argKind is what one argument of a request is: its term and the field of
// request it goes to. Each row of the operations table lists its
// arguments' kinds, in wire order.
type argKind uint8

const (
	argHandle   argKind = iota // non-negative integer: h
	argStage                   // non-negative integer: stage
	argOff                     // non-negative integer: off
	argLen                     // non-negative integer: n
	argEnd                     // non-negative integer: n
	argValue                   // signed 64-bit integer: vals[0]
	argValue2                  // signed 64-bit integer: vals[1]
	argData                    // binary: data
	argPath                    // binary without NUL: data
	argMode                    // read | write | read_write: mode
	argSharing                 // shared | private: opts.Private
	argSize                    // non-negative integer or undefined: opts.Size, n
	argPerm                    // integer 0..8#7777 or undefined: opts.Chmod, opts.Perm
	argFlags                   // list of atoms: opts (unknown ones ignored)
	argSyncMode                // sync | async: async
	argAccess                  // read | write: write
	argHint                    // an advice atom: hint
	argRanges                  // [{Off, Len}]: ranges
	argPieces                  // [{Off, Binary}]: pieces
	argDurable                 // durable | cached: durable
	argBinaries                // [Binary]: pieces, each at Off 0
)

var (
	// errMalformed: the frame is not a request of PROTOCOL.md (badarg).
	errMalformed = errors.New("port: malformed request")
	// errLongList: the frame holds a list longer than decode was allowed
	// to read; decode it again, off the main loop, with MaxVector.
	errLongList = errors.New("port: list too long for the main loop")
)

// noID marks a reply to a frame whose id could not be read.
const noID int32 = 0

// MaxVector is the longest list a request may hold: it bounds the ranges of
// one pread_many or pwrite_many, and with them the memory and time that
// decoding and checking one request can take. The Erlang side refuses
// longer lists with e2big before sending them.
const MaxVector = 1 << 16

// inlineList is the longest list decoded on the main loop: about 10 µs of
// work. A frame with a longer one is decoded again on its own goroutine, so
// it never holds up the small calls of other processes.
const inlineList = 1024

// decode reads a frame as a request of the operations table, in one pass.
// A list longer than maxList gives errLongList. On any error the request
// still carries the frame's id when it could be read, so the error reply
// is routed to its caller.
func decode(f []byte, maxList int) (req request, err error) {
	c := cursor{f: f}
	if !c.next(tagVersion) || !c.next(tagSmallTuple) {
		return request{id: peekID(f)}, errMalformed
	}
	arity, _ := c.byte()
	id, ok := c.id()
	if !ok {
		return request{}, errMalformed
	}
	req.id = id
	name, ok := c.atom()
	op := operationsByName[string(name)]
	if !ok || op == nil || int(arity) != 2+len(op.args) {
		return req, errMalformed
	}
	req.op = op
	for _, k := range op.args {
		if err := c.arg(k, &req, maxList); err != nil {
			return request{id: id}, err
		}
	}
	if c.i != len(f) {
		return request{id: id}, errMalformed
	}
	return req, nil
}

// arg reads one argument of kind k into its field of req.
func (c *cursor) arg(k argKind, req *request, maxList int) error {
	ok := false
	switch k {
	case argHandle:
		req.h, ok = c.uint()
	case argStage:
		req.stage, ok = c.uint()
	case argOff:
		req.off, ok = c.uint()
	case argLen, argEnd:
		req.n, ok = c.uint()
	case argValue:
		req.vals[0], ok = c.int64()
	case argValue2:
		req.vals[1], ok = c.int64()
	case argData:
		req.data, ok = c.binary()
	case argPath:
		req.data, ok = c.binary()
		for _, b := range req.data {
			ok = ok && b != 0
		}
	case argMode:
		ok = oneOf(c, modeAtoms, &req.mode)
	case argSharing:
		ok = oneOf(c, sharingAtoms, &req.opts.Private)
	case argSize:
		return c.size(req)
	case argPerm:
		return c.perm(&req.opts)
	case argFlags:
		return c.flags(&req.opts)
	case argSyncMode:
		ok = oneOf(c, syncAtoms, &req.async)
	case argAccess:
		ok = oneOf(c, accessAtoms, &req.write)
	case argHint:
		ok = oneOf(c, hintAtoms, &req.hint)
	case argRanges:
		var err error
		req.ranges, err = listOf(c, maxList, c.rangeElem)
		return err
	case argPieces:
		var err error
		req.pieces, err = listOf(c, maxList, c.pieceElem)
		return err
	case argDurable:
		ok = oneOf(c, durableAtoms, &req.durable)
	case argBinaries:
		var err error
		req.pieces, err = c.binaries(maxList)
		return err
	}
	if !ok {
		return errMalformed
	}
	return nil
}

// The atoms an argument may be, each with the value it stands for.
type atomValue[T any] struct {
	name  string
	value T
}

var (
	modeAtoms    = []atomValue[mmap.Mode]{{"read", mmap.Read}, {"write", mmap.Write}, {"read_write", mmap.ReadWrite}}
	sharingAtoms = []atomValue[bool]{{"shared", false}, {"private", true}}
	syncAtoms    = []atomValue[bool]{{"sync", false}, {"async", true}}
	accessAtoms  = []atomValue[bool]{{"read", false}, {"write", true}}
	durableAtoms = []atomValue[bool]{{"durable", true}, {"cached", false}}
	hintAtoms    = []atomValue[mmap.Advice]{{"normal", mmap.Normal}, {"random", mmap.Random},
		{"sequential", mmap.Sequential}, {"willneed", mmap.WillNeed}, {"dontneed", mmap.DontNeed},
		{"populate_read", mmap.PopulateRead}, {"populate_write", mmap.PopulateWrite}}
)

// size reads open's Size: a non-negative integer, or undefined (no size
// given: opts.Size -1). Past MaxInt64 no file can be that large: n keeps
// the value, so open can answer efbig.
func (c *cursor) size(req *request) error {
	start := c.i
	if name, ok := c.atom(); ok {
		if string(name) != "undefined" {
			return errMalformed
		}
		req.opts.Size = -1
		return nil
	}
	c.i = start
	n, ok := c.uint()
	if !ok {
		return errMalformed
	}
	req.n, req.opts.Size = n, int64(min(n, math.MaxInt64))
	return nil
}

// perm reads open's permission bits for a file it creates: an integer of
// at most 12 bits, or undefined (0644 less the umask).
func (c *cursor) perm(opts *mmap.Options) error {
	start := c.i
	if name, ok := c.atom(); ok {
		if string(name) != "undefined" {
			return errMalformed
		}
		return nil
	}
	c.i = start
	n, ok := c.uint()
	if !ok || n > 0o7777 {
		return errMalformed
	}
	opts.Chmod, opts.Perm = true, uint32(n)
	return nil
}

// flags reads open's list of flag atoms. Unknown atoms are ignored, as the
// Erlang side ignores unknown options.
func (c *cursor) flags(opts *mmap.Options) error {
	n, cons, err := c.list(inlineList)
	if err != nil {
		return err
	}
	for range n {
		name, ok := c.atom()
		if !ok {
			return errMalformed
		}
		switch string(name) {
		case "create":
			opts.Create = true
		case "truncate":
			opts.Truncate = true
		case "lock":
			opts.Lock = true
		case "populate":
			opts.Populate = true
		case "nocache":
			opts.NoCache = true
		case "delete_on_close":
			opts.DeleteOnClose = true
		}
	}
	return c.tail(cons)
}

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

// oneOf reads an atom that must be one of atoms, and sets *dst to its value.
func oneOf[T any](c *cursor, atoms []atomValue[T], dst *T) bool {
	name, ok := c.atom()
	if !ok {
		return false
	}
	for _, a := range atoms {
		if string(name) == a.name {
			*dst = a.value
			return true
		}
	}
	return false
}

// integer reads SMALL_INTEGER_EXT, INTEGER_EXT, SMALL_BIG_EXT or
// LARGE_BIG_EXT as a sign and a magnitude; over says the magnitude does not
// fit in 64 bits. A big integer's sign byte must be 0 or 1, as Erlang's
// binary_to_term requires: any other is not a term.
func (c *cursor) integer() (neg bool, mag uint64, over bool, ok bool) {
	tag, ok := c.byte()
	if !ok {
		return false, 0, false, false
	}
	var n int
	switch tag {
	case tagSmallInteger:
		b, ok := c.byte()
		return false, uint64(b), false, ok
	case tagInteger:
		u, ok := c.uint32()
		v := int64(int32(u))
		if v < 0 {
			return true, uint64(-v), false, ok
		}
		return false, uint64(v), false, ok
	case tagSmallBig:
		b, ok := c.byte()
		if !ok {
			return false, 0, false, false
		}
		n = int(b)
	case tagLargeBig:
		u, ok := c.uint32()
		if !ok || uint64(u) > uint64(len(c.f)) {
			return false, 0, false, false
		}
		n = int(u)
	default:
		return false, 0, false, false
	}
	sign, ok := c.byte()
	if !ok || sign > 1 || n > len(c.f)-c.i {
		return false, 0, false, false
	}
	digits := c.f[c.i : c.i+n]
	c.i += n
	for k := len(digits) - 1; k >= 0; k-- {
		if k >= 8 {
			over = over || digits[k] != 0
			continue
		}
		mag = mag<<8 | uint64(digits[k])
	}
	return sign == 1, mag, over, true
}

// uint reads a non-negative integer. One too big for 64 bits saturates: as
// an offset or a length it is out of bounds anyway.
func (c *cursor) uint() (uint64, bool) {
	neg, mag, over, ok := c.integer()
	switch {
	case !ok || (neg && (mag != 0 || over)):
		return 0, false
	case over:
		return math.MaxUint64, true
	}
	return mag, true
}

// int64 reads a signed 64-bit integer; one outside that range is not one.
func (c *cursor) int64() (int64, bool) {
	neg, mag, over, ok := c.integer()
	switch {
	case !ok || over:
		return 0, false
	case neg && mag <= 1<<63:
		return int64(-mag), true // -(2^63) wraps to itself: the right value
	case !neg && mag <= math.MaxInt64:
		return int64(mag), true
	}
	return 0, false
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

// list reads the head of a proper list: NIL_EXT (no elements, and no
// tail), or LIST_EXT and its length. The caller reads the elements, then
// tail(cons).
func (c *cursor) list(maxList int) (n int, cons bool, err error) {
	tag, ok := c.byte()
	switch {
	case ok && tag == tagNil:
		return 0, false, nil
	case ok && tag == tagList:
		u, ok := c.uint32()
		switch {
		case !ok || u > MaxVector || uint64(u) > uint64(len(c.f)-c.i): // an element takes a byte at least
			return 0, false, errMalformed
		case int(u) > maxList:
			return 0, false, errLongList
		}
		return int(u), true, nil
	}
	return 0, false, errMalformed
}

// tail reads the NIL_EXT that ends a LIST_EXT (a proper list).
func (c *cursor) tail(cons bool) error {
	if cons && !c.next(tagNil) {
		return errMalformed
	}
	return nil
}

// listOf reads a proper list of 2-tuples, each tuple's two elements read by
// elem into its element of the slice (never nil, so an empty list is told
// from none).
func listOf[T any](c *cursor, maxList int, elem func(*T) bool) ([]T, error) {
	n, cons, err := c.list(maxList)
	if err != nil {
		return nil, err
	}
	out := make([]T, n)
	for k := range out {
		if !c.next(tagSmallTuple) || !c.next(2) || !elem(&out[k]) {
			return nil, errMalformed
		}
	}
	return out, c.tail(cons)
}

// rangeElem reads {Off, Len}'s elements.
func (c *cursor) rangeElem(r *mmap.Range) bool {
	var ok1, ok2 bool
	r.Off, ok1 = c.uint()
	r.Len, ok2 = c.uint()
	return ok1 && ok2
}

// pieceElem reads {Off, Data}'s elements; the data stays in f.
func (c *cursor) pieceElem(p *mmap.Piece) bool {
	var ok1, ok2 bool
	p.Off, ok1 = c.uint()
	p.Data, ok2 = c.binary()
	return ok1 && ok2
}

// peekID reads the id of a frame that starts like a request, so that a
// request with bad arguments, or one too large to hold, still gets its
// reply routed.
func peekID(f []byte) int32 {
	c := cursor{f: f}
	if !c.next(tagVersion) || !c.next(tagSmallTuple) {
		return noID
	}
	c.byte()
	id, _ := c.id()
	return id
}

// owned gives the request its own copy of the bytes that point into the
// input buffer, before it leaves the main loop.
func (r request) owned() request {
	if r.data != nil {
		r.data = append([]byte(nil), r.data...)
	}
	if r.pieces != nil {
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

// binaries reads a proper list of binaries (a queue's records) as pieces
// at offset 0, so that owned() copies them as it copies pwrite_many's.
func (c *cursor) binaries(maxList int) ([]mmap.Piece, error) {
	n, cons, err := c.list(maxList)
	if err != nil {
		return nil, err
	}
	out := make([]mmap.Piece, n)
	for k := range out {
		var ok bool
		if out[k].Data, ok = c.binary(); !ok {
			return nil, errMalformed
		}
	}
	return out, c.tail(cons)
}
