package port

import (
	"encoding/binary"
	"errors"
	"math"
	"math/big"

	"github.com/iommap/iommap/mmap"
	"github.com/okeuday/erlang_go/v2/erlang"
)

// errMalformed: the frame is not a request of PROTOCOL.md.
var errMalformed = errors.New("port: malformed request")

// noID marks a reply to a frame whose id could not be read.
const noID int32 = 0

// request is a decoded frame: {Id, Op, Args...}.
type request struct {
	id   int32
	op   string
	args []interface{}
	// The list of a pread_many or pwrite_many that fastDecode read, typed.
	// args[1], where decode puts the list, is then nil. Both are nil when
	// decode read the request.
	ranges []mmap.Range
	pieces []mmap.Piece
}

// decode turns a frame into a request: scan, then decodeScanned.
func decode(frame []byte) (request, error) {
	if _, err := scan(frame); err != nil {
		return request{id: peekID(frame)}, err
	}
	return decodeScanned(frame)
}

// scan walks a frame before erlang_go sees it and proves that every
// declared length fits in it, that nesting stays shallow and lists short,
// because erlang_go allocates what a length says before reading, and
// recurses without a limit. It returns how many terms the frame holds: the
// work of decoding it, which the server uses to keep big decodes off its
// main loop.
func scan(frame []byte) (terms int, err error) {
	if len(frame) < 1 || frame[0] != tagVersion {
		return 0, errMalformed
	}
	c := checker{f: frame}
	if end, err := c.check(1, 0); err != nil || end != len(frame) {
		return 0, errMalformed
	}
	return c.terms, nil
}

// decodeScanned decodes a frame that scan has accepted.
func decodeScanned(frame []byte) (request, error) {
	term, err := safeBinaryToTerm(frame)
	if err != nil {
		return request{id: peekID(frame)}, errMalformed
	}
	tup, ok := term.(erlang.OtpErlangTuple)
	if !ok || len(tup) < 2 {
		return request{id: noID}, errMalformed
	}
	id, ok := idArg(tup[0])
	if !ok {
		return request{id: noID}, errMalformed
	}
	op, ok := atomArg(tup[1])
	if !ok {
		return request{id: id}, errMalformed
	}
	return request{id: id, op: op, args: tup[2:]}, nil
}

// safeBinaryToTerm recovers from a panic inside erlang_go (a map with an
// undefined key makes it panic) and reports it as a decoding error.
func safeBinaryToTerm(frame []byte) (term interface{}, err error) {
	defer func() {
		if recover() != nil {
			err = errMalformed
		}
	}()
	return erlang.BinaryToTerm(frame)
}

// peekID reads the id of a frame that starts like a request, so that a
// request with bad arguments still gets its reply routed.
func peekID(f []byte) int32 {
	if len(f) < 8 || f[0] != tagVersion {
		return noID
	}
	if f[1] == tagSmallTuple && f[3] == tagSmallInteger {
		return int32(f[4])
	}
	if f[1] == tagSmallTuple && f[3] == tagInteger {
		if id := int32(binary.BigEndian.Uint32(f[4:])); id > 0 {
			return id
		}
	}
	return noID
}

const maxDepth = 8

// MaxVector is the longest list a request may hold: it bounds the ranges of
// one pread_many or pwrite_many, and with them the memory and time that
// decoding and checking one request can take (erlang_go spends about 100
// bytes and 0.2 µs on each element). The Erlang side refuses longer lists
// with e2big before sending them.
const MaxVector = 1 << 16

// maxBigDigits bounds a LARGE_BIG_EXT: erlang_go decodes one with a shift
// and an add per byte, quadratic in its length, and nothing we take needs
// more than 64 bits. The Erlang side clamps bigger integers before sending.
const maxBigDigits = 1024

// checker walks the terms of one frame, counting them.
type checker struct {
	f     []byte
	terms int
}

// check walks one term at f[i:] and returns the index after it. It accepts
// the term kinds a request can hold and nothing else.
func (c *checker) check(i, depth int) (int, error) {
	f := c.f
	if depth > maxDepth || i >= len(f) {
		return 0, errMalformed
	}
	c.terms++
	need := func(n int) (int, error) {
		if n < 0 || n > len(f)-i {
			return 0, errMalformed
		}
		return i + n, nil
	}
	tag := f[i]
	i++
	switch tag {
	case tagSmallInteger:
		return need(1)
	case tagInteger:
		return need(4)
	case tagSmallBig:
		if i >= len(f) {
			return 0, errMalformed
		}
		n := int(f[i])
		i++
		return need(1 + n)
	case tagLargeBig: // an offset past 2^2040 is still an integer: out of bounds
		if len(f)-i < 4 {
			return 0, errMalformed
		}
		n := int(binary.BigEndian.Uint32(f[i:]))
		i += 4
		if n > maxBigDigits {
			return 0, errMalformed
		}
		return need(1 + n)
	case tagAtomUTF8, tagAtom:
		if len(f)-i < 2 {
			return 0, errMalformed
		}
		n := int(binary.BigEndian.Uint16(f[i:]))
		i += 2
		return need(n)
	case tagSmallAtomUTF8, tagSmallAtom:
		if i >= len(f) {
			return 0, errMalformed
		}
		n := int(f[i])
		i++
		return need(n)
	case tagBinary:
		if len(f)-i < 4 {
			return 0, errMalformed
		}
		n := int(binary.BigEndian.Uint32(f[i:]))
		i += 4
		return need(n)
	case tagNil:
		return i, nil
	case tagString:
		if len(f)-i < 2 {
			return 0, errMalformed
		}
		n := int(binary.BigEndian.Uint16(f[i:]))
		i += 2
		return need(n)
	case tagList: // elements, then a tail
		if len(f)-i < 4 {
			return 0, errMalformed
		}
		n := int(binary.BigEndian.Uint32(f[i:]))
		i += 4
		if n > len(f)-i || n > MaxVector { // every element takes at least a byte
			return 0, errMalformed
		}
		for k := 0; k <= n; k++ {
			var err error
			if i, err = c.check(i, depth+1); err != nil {
				return 0, err
			}
		}
		return i, nil
	case tagSmallTuple:
		if i >= len(f) {
			return 0, errMalformed
		}
		n := int(f[i])
		i++
		for k := 0; k < n; k++ {
			var err error
			if i, err = c.check(i, depth+1); err != nil {
				return 0, err
			}
		}
		return i, nil
	}
	return 0, errMalformed
}

func idArg(v interface{}) (int32, bool) {
	switch n := v.(type) {
	case uint8:
		return int32(n), n > 0
	case int32:
		return n, n > 0
	}
	return 0, false
}

func atomArg(v interface{}) (string, bool) {
	switch a := v.(type) {
	case erlang.OtpErlangAtom:
		return string(a), true
	case erlang.OtpErlangAtomUTF8:
		return string(a), true
	case bool: // erlang_go turns true and false into bool
		if a {
			return "true", true
		}
		return "false", true
	case nil: // and undefined into nil
		return "undefined", true
	}
	return "", false
}

// uintArg reads a non-negative integer. An integer too big for 64 bits
// saturates: as an offset or length it is out of bounds anyway.
func uintArg(v interface{}) (uint64, bool) {
	switch n := v.(type) {
	case uint8:
		return uint64(n), true
	case int32:
		return uint64(n), n >= 0
	case *big.Int:
		if n.Sign() < 0 {
			return 0, false
		}
		if !n.IsUint64() {
			return math.MaxUint64, true
		}
		return n.Uint64(), true
	}
	return 0, false
}

func binArg(v interface{}) ([]byte, bool) {
	b, ok := v.(erlang.OtpErlangBinary)
	return b.Value, ok && b.Bits == 8
}

// listArg reads a proper list; erlang_go decodes a list of small integers
// (STRING_EXT) as a Go string.
func listArg(v interface{}) ([]interface{}, bool) {
	switch l := v.(type) {
	case erlang.OtpErlangList:
		return l.Value, !l.Improper
	case string:
		out := make([]interface{}, len(l))
		for i := range len(l) {
			out[i] = uint8(l[i])
		}
		return out, true
	}
	return nil, false
}
