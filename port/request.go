package port

import (
	"encoding/binary"
	"errors"
	"math"
	"math/big"

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
}

// decode turns a frame into a request. erlang_go does the decoding; before
// it sees a frame, check walks the frame and proves every declared length
// fits in it and nesting stays shallow, because erlang_go allocates what a
// length says before reading, and recurses without a limit.
func decode(frame []byte) (request, error) {
	if len(frame) < 1 || frame[0] != tagVersion {
		return request{id: noID}, errMalformed
	}
	if end, err := check(frame, 1, 0); err != nil || end != len(frame) {
		return request{id: peekID(frame)}, errMalformed
	}
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
	if len(f) >= 8 && f[1] == tagSmallTuple && f[3] == tagSmallInteger {
		return int32(f[4])
	}
	if len(f) >= 8 && f[1] == tagSmallTuple && f[3] == tagInteger {
		if id := int32(binary.BigEndian.Uint32(f[4:])); id > 0 {
			return id
		}
	}
	return noID
}

const maxDepth = 8

// maxBigDigits bounds a LARGE_BIG_EXT: erlang_go decodes one with a shift
// and an add per byte, quadratic in its length, and nothing we take needs
// more than 64 bits. The Erlang side clamps bigger integers before sending.
const maxBigDigits = 1024

// check walks one term at f[i:] and returns the index after it. It accepts
// the term kinds a request can hold and nothing else.
func check(f []byte, i, depth int) (int, error) {
	if depth > maxDepth || i >= len(f) {
		return 0, errMalformed
	}
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
	case 118, 100: // ATOM_UTF8_EXT, ATOM_EXT
		if len(f)-i < 2 {
			return 0, errMalformed
		}
		n := int(binary.BigEndian.Uint16(f[i:]))
		i += 2
		return need(n)
	case tagSmallAtomUTF8, 115: // SMALL_ATOM_EXT
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
	case 106: // NIL_EXT
		return i, nil
	case 107: // STRING_EXT
		if len(f)-i < 2 {
			return 0, errMalformed
		}
		n := int(binary.BigEndian.Uint16(f[i:]))
		i += 2
		return need(n)
	case 108: // LIST_EXT: elements, then a tail
		if len(f)-i < 4 {
			return 0, errMalformed
		}
		n := int(binary.BigEndian.Uint32(f[i:]))
		i += 4
		if n > len(f)-i { // every element takes at least a byte
			return 0, errMalformed
		}
		for k := 0; k <= n; k++ {
			var err error
			if i, err = check(f, i, depth+1); err != nil {
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
			if i, err = check(f, i, depth+1); err != nil {
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
