package port

import (
	"bytes"
	"encoding/binary"
	"math/big"

	"github.com/okeuday/erlang_go/v2/erlang"
)

// fastDecode reads the two commonest requests, {Id, pread, H, Off, Len}
// and {Id, pwrite, H, Off, Data}, straight from the frame's bytes, in the
// shapes term_to_binary gives them (the Erlang side's encoder). It gives
// the same request decode would, without erlang_go: no walk, no copy of
// a pwrite's data, no allocation beyond the argument list. That was most
// of the engine's cost of a small write (1.2 µs to decode against 0.3 µs
// for a read). Any other frame, or any variation, gives ok false and goes
// the general way.
//
// A pwrite's data points into f, which lives only until the next read of
// the input: a request that leaves the main loop must be owned() first.
func fastDecode(f []byte) (req request, ok bool) {
	if len(f) < 12 || f[0] != tagVersion || f[1] != tagSmallTuple || f[2] != 5 {
		return request{}, false
	}
	i := 3
	var id int32
	switch f[i] {
	case tagSmallInteger:
		id, i = int32(f[i+1]), i+2
	case tagInteger:
		id, i = int32(binary.BigEndian.Uint32(f[i+1:])), i+5
	}
	if id <= 0 || i+3 > len(f) {
		return request{}, false
	}
	// OTP 25 writes atoms as ATOM_EXT, OTP 26 and later as SMALL_ATOM_UTF8_EXT.
	var n int
	switch f[i] {
	case tagSmallAtomUTF8, tagSmallAtom:
		n, i = int(f[i+1]), i+2
	case tagAtom, tagAtomUTF8:
		n, i = int(binary.BigEndian.Uint16(f[i+1:])), i+3
	default:
		return request{}, false
	}
	if i+n > len(f) {
		return request{}, false
	}
	name := f[i : i+n]
	i += n
	var op string
	switch {
	case bytes.Equal(name, opPread):
		op = "pread"
	case bytes.Equal(name, opPwrite):
		op = "pwrite"
	default:
		return request{}, false
	}
	args := make([]interface{}, 3)
	for k := 0; k < 2; k++ {
		if args[k], i, ok = fastUint(f, i); !ok {
			return request{}, false
		}
	}
	if op == "pread" {
		if args[2], i, ok = fastUint(f, i); !ok || i != len(f) {
			return request{}, false
		}
	} else {
		if i+5 > len(f) || f[i] != tagBinary || int(binary.BigEndian.Uint32(f[i+1:])) != len(f)-i-5 {
			return request{}, false
		}
		args[2] = erlang.OtpErlangBinary{Value: f[i+5:], Bits: 8}
	}
	return request{id: id, op: op, args: args}, true
}

var opPread, opPwrite = []byte("pread"), []byte("pwrite")

// fastUint reads a non-negative integer at f[i:] as erlang_go would give
// it: uint8, int32 or *big.Int (a SMALL_BIG_EXT of at most 8 digits).
func fastUint(f []byte, i int) (interface{}, int, bool) {
	if i >= len(f) {
		return nil, i, false
	}
	switch f[i] {
	case tagSmallInteger:
		if i+2 <= len(f) {
			return f[i+1], i + 2, true
		}
	case tagInteger:
		if i+5 <= len(f) {
			if v := int32(binary.BigEndian.Uint32(f[i+1:])); v >= 0 {
				return v, i + 5, true
			}
		}
	case tagSmallBig:
		if i+3 <= len(f) {
			n := int(f[i+1])
			if f[i+2] == 0 && n >= 1 && n <= 8 && i+3+n <= len(f) {
				var v uint64
				for k := n - 1; k >= 0; k-- {
					v = v<<8 | uint64(f[i+3+k])
				}
				return new(big.Int).SetUint64(v), i + 3 + n, true
			}
		}
	}
	return nil, i, false
}

// owned gives the request its own copy of data that points into the
// input buffer (a fast-decoded pwrite's), before it leaves the main loop.
func (r request) owned() request {
	if r.op == "pwrite" && len(r.args) == 3 {
		if b, ok := r.args[2].(erlang.OtpErlangBinary); ok {
			args := append([]interface{}(nil), r.args...)
			args[2] = erlang.OtpErlangBinary{Value: bytes.Clone(b.Value), Bits: 8}
			r.args = args
		}
	}
	return r
}
