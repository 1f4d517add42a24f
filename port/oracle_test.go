package port

import (
	"bytes"
	"math"
	"math/big"
	"reflect"

	"github.com/iommap/iommap/mmap"
	"github.com/okeuday/erlang_go/v2/erlang"
)

// oracle reads a frame as the protocol describes it, with erlang_go doing
// the term decoding: the independent reading that decode must agree with.
// It is only run on frames that are safe to give erlang_go (it allocates
// what a length says before reading, and panics on some input).
func oracle(frame []byte) (req request, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	term, err := erlang.BinaryToTerm(frame)
	if err != nil {
		return request{}, false
	}
	tup, isTuple := term.(erlang.OtpErlangTuple)
	if !isTuple || len(tup) < 2 {
		return request{}, false
	}
	switch id := tup[0].(type) {
	case uint8:
		req.id = int32(id)
	case int32:
		req.id = id
	}
	name, isAtom := oracleAtom(tup[1])
	op := operationsByName[name]
	if req.id <= 0 || !isAtom || op == nil || len(tup) != 2+len(op.args) {
		return request{}, false
	}
	req.op = op
	for i, k := range op.args {
		if !oracleArg(k, tup[2+i], &req) {
			return request{}, false
		}
	}
	return req, true
}

func oracleArg(k argKind, v interface{}, req *request) bool {
	ok := false
	switch k {
	case argHandle:
		req.h, ok = oracleUint(v)
	case argStage:
		req.stage, ok = oracleUint(v)
	case argOff:
		req.off, ok = oracleUint(v)
	case argLen, argEnd:
		req.n, ok = oracleUint(v)
	case argValue:
		req.vals[0], ok = oracleInt(v)
	case argValue2:
		req.vals[1], ok = oracleInt(v)
	case argData:
		req.data, ok = oracleBinary(v)
	case argPath:
		req.data, ok = oracleBinary(v)
		ok = ok && !bytes.Contains(req.data, []byte{0})
	case argMode:
		ok = oracleOneOf(v, map[string]func(){"read": func() { req.mode = mmap.Read },
			"write": func() { req.mode = mmap.Write }, "read_write": func() { req.mode = mmap.ReadWrite }})
	case argSharing:
		ok = oracleOneOf(v, map[string]func(){"shared": func() {}, "private": func() { req.opts.Private = true }})
	case argSyncMode:
		ok = oracleOneOf(v, map[string]func(){"sync": func() {}, "async": func() { req.async = true }})
	case argAccess:
		ok = oracleOneOf(v, map[string]func(){"read": func() {}, "write": func() { req.write = true }})
	case argHint:
		fs := map[string]func(){}
		for i, n := range []string{"normal", "random", "sequential", "willneed", "dontneed", "populate_read", "populate_write"} {
			fs[n] = func() {
				req.hint = []mmap.Advice{mmap.Normal, mmap.Random, mmap.Sequential, mmap.WillNeed, mmap.DontNeed, mmap.PopulateRead, mmap.PopulateWrite}[i]
			}
		}
		ok = oracleOneOf(v, fs)
	case argSize:
		if v == nil { // erlang_go's undefined
			req.opts.Size = -1
			return true
		}
		req.n, ok = oracleUint(v)
		req.opts.Size = int64(min(req.n, math.MaxInt64))
	case argPerm:
		if v == nil {
			return true
		}
		var n uint64
		n, ok = oracleUint(v)
		ok = ok && n <= 0o7777
		req.opts.Chmod, req.opts.Perm = ok, uint32(n)
	case argFlags:
		var l []interface{}
		if l, ok = oracleList(v); ok {
			for _, e := range l {
				name, isAtom := oracleAtom(e)
				ok = ok && isAtom
				switch name {
				case "create":
					req.opts.Create = true
				case "truncate":
					req.opts.Truncate = true
				case "lock":
					req.opts.Lock = true
				case "populate":
					req.opts.Populate = true
				case "nocache":
					req.opts.NoCache = true
				case "delete_on_close":
					req.opts.DeleteOnClose = true
				}
			}
		}
	case argDurable:
		ok = oracleOneOf(v, map[string]func(){"durable": func() { req.durable = true }, "cached": func() {}})
	case argBinaries:
		var l []interface{}
		if l, ok = oracleList(v); !ok {
			return false
		}
		req.pieces = make([]mmap.Piece, len(l))
		for i, e := range l {
			if req.pieces[i].Data, ok = oracleBinary(e); !ok {
				return false
			}
		}
	case argRanges, argPieces:
		var l []interface{}
		if l, ok = oracleList(v); !ok {
			return false
		}
		if k == argRanges {
			req.ranges = make([]mmap.Range, len(l))
		} else {
			req.pieces = make([]mmap.Piece, len(l))
		}
		for i, e := range l {
			t, isPair := e.(erlang.OtpErlangTuple)
			if !isPair || len(t) != 2 {
				return false
			}
			off, ok1 := oracleUint(t[0])
			ok2 := false
			if k == argRanges {
				req.ranges[i].Off = off
				req.ranges[i].Len, ok2 = oracleUint(t[1])
			} else {
				req.pieces[i].Off = off
				req.pieces[i].Data, ok2 = oracleBinary(t[1])
			}
			if !ok1 || !ok2 {
				return false
			}
		}
	}
	return ok
}

// oracleAtom: erlang_go gives true and false as bools and undefined as nil.
func oracleAtom(v interface{}) (string, bool) {
	switch a := v.(type) {
	case erlang.OtpErlangAtom:
		return string(a), true
	case erlang.OtpErlangAtomUTF8:
		return string(a), true
	case bool:
		if a {
			return "true", true
		}
		return "false", true
	case nil:
		return "undefined", true
	}
	return "", false
}

func oracleOneOf(v interface{}, fs map[string]func()) bool {
	name, ok := oracleAtom(v)
	f, known := fs[name]
	if ok && known {
		f()
	}
	return ok && known
}

func oracleUint(v interface{}) (uint64, bool) {
	switch n := v.(type) {
	case uint8:
		return uint64(n), true
	case int32:
		return uint64(n), n >= 0
	case *big.Int:
		switch {
		case n.Sign() < 0:
			return 0, false
		case !n.IsUint64():
			return math.MaxUint64, true
		}
		return n.Uint64(), true
	}
	return 0, false
}

func oracleInt(v interface{}) (int64, bool) {
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

func oracleBinary(v interface{}) ([]byte, bool) {
	b, ok := v.(erlang.OtpErlangBinary)
	return b.Value, ok && b.Bits == 8
}

// oracleList: a proper list, at most MaxVector long. (erlang_go reads a
// STRING_EXT as a Go string: never a list of atoms or tuples.)
func oracleList(v interface{}) ([]interface{}, bool) {
	l, ok := v.(erlang.OtpErlangList)
	return l.Value, ok && !l.Improper && len(l.Value) <= MaxVector
}

// sameRequest compares two decoded requests field by field (an empty byte
// string is one whichever way it was read).
func sameRequest(a, b request) bool {
	norm := func(r request) request {
		if len(r.data) == 0 {
			r.data = nil
		}
		ps := make([]mmap.Piece, len(r.pieces))
		for i, p := range r.pieces {
			ps[i] = p
			if len(p.Data) == 0 {
				ps[i].Data = nil
			}
		}
		if r.pieces != nil {
			r.pieces = ps
		}
		return r
	}
	return reflect.DeepEqual(norm(a), norm(b))
}
