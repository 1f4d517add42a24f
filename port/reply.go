package port

import (
	"encoding/binary"

	"github.com/okeuday/erlang_go/v2/erlang"
)

// The bytes before a reply's result: frame length, version, {2-tuple,
// INTEGER_EXT id.
const replyPrefixLength = 4 + 1 + 2 + 5

// Every reply is {Id, Result} with Id always as INTEGER_EXT, so the Erlang
// side can route a reply by matching its first nine bytes without decoding
// it. The common results are built by hand because they are fixed byte
// shapes, and because erlang_go copies a binary twice when it encodes one;
// a data reply is its header followed by the bytes copied straight from the
// mapping into the output buffer. Rarer results go through erlang_go.

// beginReply appends the frame length (filled in by endReply) and {Id, .
func beginReply(b []byte, id int32) ([]byte, int) {
	start := len(b)
	b = append(b, 0, 0, 0, 0, tagVersion, tagSmallTuple, 2, tagInteger)
	b = binary.BigEndian.AppendUint32(b, uint32(id))
	return b, start
}

func endReply(b []byte, start int) []byte {
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

func appendAtom(b []byte, name string) []byte {
	b = append(b, tagSmallAtomUTF8, byte(len(name)))
	return append(b, name...)
}

func appendOKTuple(b []byte) []byte {
	b = append(b, tagSmallTuple, 2)
	return appendAtom(b, "ok")
}

// appendOK appends the frame {Id, ok}.
func appendOK(b []byte, id int32) []byte {
	b, start := beginReply(b, id)
	return endReply(appendAtom(b, "ok"), start)
}

// appendError appends the frame {Id, {error, Reason}}.
func appendError(b []byte, id int32, reason string) []byte {
	b, start := beginReply(b, id)
	b = append(b, tagSmallTuple, 2)
	b = appendAtom(b, "error")
	return endReply(appendAtom(b, reason), start)
}

// appendOKUint appends the frame {Id, {ok, N}}.
func appendOKUint(b []byte, id int32, n uint64) []byte {
	b, start := beginReply(b, id)
	return endReply(appendUint(appendOKTuple(b), n), start)
}

func appendUint(b []byte, n uint64) []byte {
	switch {
	case n < 256:
		return append(b, tagSmallInteger, byte(n))
	case n < 1<<31:
		return binary.BigEndian.AppendUint32(append(b, tagInteger), uint32(n))
	}
	digits := 0
	for v := n; v > 0; v >>= 8 {
		digits++
	}
	b = append(b, tagSmallBig, byte(digits), 0)
	for ; n > 0; n >>= 8 {
		b = append(b, byte(n))
	}
	return b
}

// dataReplyHeader is the size of a data reply before its bytes.
const dataReplyHeader = replyPrefixLength + 2 + 4 + 1 + 4 // {ok, + BINARY_EXT + length

// appendDataHeader appends the frame header of {Id, {ok, <<Data>>}} for n
// bytes of data, which the caller appends next.
func appendDataHeader(b []byte, id int32, n int) []byte {
	start := len(b)
	b, _ = beginReply(b, id)
	b = append(appendOKTuple(b), tagBinary)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4+n))
	return b
}

// appendOKTerm appends {Id, {ok, Term}} for a term erlang_go can encode.
func appendOKTerm(b []byte, id int32, term interface{}) []byte {
	enc, err := erlang.TermToBinary(erlang.OtpErlangTuple{erlang.OtpErlangAtomUTF8("ok"), term}, -1)
	if err != nil {
		return appendError(b, id, "einval")
	}
	b, start := beginReply(b, id)
	return endReply(append(b, enc[1:]...), start)
}

// appendInt appends an integer term for a signed 64-bit value.
func appendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0 && v < 256:
		return append(b, tagSmallInteger, byte(v))
	case v >= -1<<31 && v < 1<<31:
		return binary.BigEndian.AppendUint32(append(b, tagInteger), uint32(int32(v)))
	}
	sign, mag := byte(0), uint64(v)
	if v < 0 {
		sign, mag = 1, uint64(-v) // -(-2^63) wraps to 2^63, the right magnitude
	}
	digits := 0
	for x := mag; x > 0; x >>= 8 {
		digits++
	}
	b = append(b, tagSmallBig, byte(digits), sign)
	for ; mag > 0; mag >>= 8 {
		b = append(b, byte(mag))
	}
	return b
}

// appendOKInt appends the frame {Id, {ok, V}} for a signed value.
func appendOKInt(b []byte, id int32, v int64) []byte {
	b, start := beginReply(b, id)
	return endReply(appendInt(appendOKTuple(b), v), start)
}

// appendMismatch appends {Id, {error, {mismatch, Current}}}.
func appendMismatch(b []byte, id int32, cur int64) []byte {
	b, start := beginReply(b, id)
	b = append(b, tagSmallTuple, 2)
	b = appendAtom(b, "error")
	b = append(b, tagSmallTuple, 2)
	b = appendAtom(b, "mismatch")
	return endReply(appendInt(b, cur), start)
}

// A list of binaries, {ok, [Bin, ...]}: LIST_EXT, then each element as
// BINARY_EXT, then NIL_EXT. The Erlang side matches this shape as bytes.

func putUint32(b []byte, v uint32) { binary.BigEndian.PutUint32(b, v) }

func appendBinaryHeader(b []byte, n uint64) []byte {
	return binary.BigEndian.AppendUint32(append(b, tagBinary), uint32(n))
}
