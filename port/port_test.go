package port

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/iommap/iommap/mmap"
	"github.com/okeuday/erlang_go/v2/erlang"
	"golang.org/x/sys/unix"
)

type atomT = erlang.OtpErlangAtomUTF8

func enc(t testing.TB, terms ...interface{}) []byte {
	b, err := erlang.TermToBinary(erlang.OtpErlangTuple(terms), -1)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// frames splits b into reply bodies and decodes each with erlang_go.
func frames(t testing.TB, b []byte) []erlang.OtpErlangTuple {
	var out []erlang.OtpErlangTuple
	for len(b) > 0 {
		if len(b) < 4 {
			t.Fatalf("trailing %d bytes", len(b))
		}
		n := int(binary.BigEndian.Uint32(b))
		if len(b) < 4+n {
			t.Fatalf("frame of %d bytes, %d left", n, len(b)-4)
		}
		term, err := erlang.BinaryToTerm(b[4 : 4+n])
		if err != nil {
			t.Fatalf("reply is not ETF: %v", err)
		}
		tup, ok := term.(erlang.OtpErlangTuple)
		if !ok || len(tup) != 2 {
			t.Fatalf("reply is not {Id, Result}: %#v", term)
		}
		out = append(out, tup)
		b = b[4+n:]
	}
	return out
}

func TestReplyShapesDecodeAsTheyShould(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
		want interface{}
	}{
		{"ok", appendOK(nil, 7), atomT("ok")},
		{"error", appendError(nil, 300, "out_of_bounds"), erlang.OtpErlangTuple{atomT("error"), atomT("out_of_bounds")}},
		{"small int", appendOKUint(nil, 1, 200), erlang.OtpErlangTuple{atomT("ok"), uint8(200)}},
		{"int", appendOKUint(nil, 1, 70000), erlang.OtpErlangTuple{atomT("ok"), int32(70000)}},
		{"data", append(appendDataHeader(nil, 1, 3), "abc"...), erlang.OtpErlangTuple{atomT("ok"), erlang.OtpErlangBinary{Value: []byte("abc"), Bits: 8}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := frames(t, c.b)
			if len(got) != 1 || !reflect.DeepEqual(got[0][1], c.want) {
				t.Fatalf("got %#v want %#v", got, c.want)
			}
		})
	}
	big := frames(t, appendOKUint(nil, 1, 1<<40))[0][1].(erlang.OtpErlangTuple)[1]
	if big.(interface{ String() string }).String() != "1099511627776" {
		t.Fatalf("bignum %v", big)
	}
}

// runFrame answers a frame as the main loop would, but always here and
// waiting for locks: decode, then run, or badarg.
func runFrame(s *Server, f []byte) []byte {
	req, err := decode(f, MaxVector)
	if err != nil {
		return appendError(nil, req.id, "badarg")
	}
	b, _ := s.run(req, nil, true)
	return b
}

func TestDecodeRejectsMalformedFrames(t *testing.T) {
	cases := map[string][]byte{
		"binary of 4 GiB":                 {131, 104, 5, 97, 1, 119, 6, 'p', 'w', 'r', 'i', 't', 'e', 97, 1, 97, 0, 109, 255, 255, 255, 255},
		"list of 4G elements":             {131, 104, 4, 97, 1, 119, 10, 'p', 'r', 'e', 'a', 'd', '_', 'm', 'a', 'n', 'y', 97, 1, 108, 255, 255, 255, 255, 106},
		"atom longer than frame":          {131, 104, 2, 97, 1, 118, 255, 255},
		"compressed term":                 {131, 80, 0, 0, 0, 10, 1, 2},
		"trailing bytes":                  {131, 104, 2, 97, 1, 119, 5, 'h', 'e', 'l', 'l', 'o', 0},
		"id zero is no id":                {131, 104, 2, 97, 0, 119, 5, 'h', 'e', 'l', 'l', 'o'},
		"negative id":                     {131, 104, 2, 98, 255, 255, 255, 255, 119, 5, 'h', 'e', 'l', 'l', 'o'},
		"op that is not an atom":          {131, 104, 2, 97, 1, 97, 1},
		"unknown op":                      {131, 104, 2, 97, 1, 119, 4, 'h', 'a', 'l', 't'},
		"hello with an argument":          {131, 104, 3, 97, 1, 119, 5, 'h', 'e', 'l', 'l', 'o', 97, 1},
		"tuple of one":                    {131, 104, 1, 97, 1},
		"version byte missing":            {104, 2, 97, 1, 119, 5, 'h', 'e', 'l', 'l', 'o'},
		"small big longer than the frame": {131, 104, 3, 97, 1, 119, 8, 'p', 'o', 's', 'i', 't', 'i', 'o', 'n', 110, 200, 0},
		// Erlang reads a big integer only with sign byte 0 or 1; erlang_go
		// took 2 for positive, and {Id, pwrite, -2, -7, ...} wrote into
		// handle 2 at offset 7.
		"big integer with sign byte 2": {131, 104, 3, 97, 1, 119, 8, 'p', 'o', 's', 'i', 't', 'i', 'o', 'n', 110, 1, 2, 2},
		"bit binary":                   {131, 104, 5, 97, 1, 119, 6, 'p', 'w', 'r', 'i', 't', 'e', 97, 1, 97, 0, 77, 0, 0, 0, 1, 3, 0xe0},
		"improper list":                {131, 104, 4, 97, 1, 119, 10, 'p', 'r', 'e', 'a', 'd', '_', 'm', 'a', 'n', 'y', 97, 1, 108, 0, 0, 0, 1, 104, 2, 97, 0, 97, 1, 97, 1},
		"path with a NUL":              enc(t, int32(1), atomT("open"), []byte("/tmp/a\x00b"), atomT("read"), atomT("shared"), nil, nil, list()),
		"permission bits past 8#7777":  enc(t, int32(1), atomT("open"), []byte("/tmp/a"), atomT("read"), atomT("shared"), nil, int32(0o10000), list()),
		"unknown sync mode":            enc(t, int32(1), atomT("sync"), 1, atomT("later")),
		"a 3-tuple among ranges":       enc(t, int32(1), atomT("pread_many"), 1, list(erlang.OtpErlangTuple{0, 8, 1})),
		"a list of bytes as data":      enc(t, int32(1), atomT("pwrite_many"), 1, list(erlang.OtpErlangTuple{0, list(uint8(1))})),
		"a value past 2^63":            enc(t, int32(1), atomT("store"), 1, 8, new(big.Int).Lsh(big.NewInt(1), 63)),
		"a negative offset":            enc(t, int32(1), atomT("pread"), 1, int32(-1), 1),
		"a flag that is not an atom":   enc(t, int32(1), atomT("open"), []byte("/x"), atomT("read"), atomT("shared"), nil, nil, list(1)),
		"a list past MaxVector":        enc(t, int32(1), atomT("pread_many"), 1, list(manyRanges(MaxVector+1)...)),
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := decode(f, MaxVector); !errors.Is(err, errMalformed) {
				t.Fatalf("err %v", err)
			}
		})
	}
}

func TestDecodeKeepsTheIdOfABadRequest(t *testing.T) {
	req, err := decode([]byte{131, 104, 5, 98, 0, 0, 1, 0, 119, 5, 'p', 'r', 'e', 'a', 'd', 97, 1, 97, 0, 109, 255, 255, 255, 255}, MaxVector)
	if err == nil || req.id != 256 {
		t.Fatalf("id %d err %v", req.id, err)
	}
}

func TestDecodeFillsTheTypedFields(t *testing.T) {
	big64 := new(big.Int).SetUint64(1 << 63)
	huge := new(big.Int).Lsh(big.NewInt(1), 3000)
	for _, c := range []struct {
		name string
		args []interface{}
		want request
	}{
		{"pread", []interface{}{atomT("pread"), 3, int32(70000), big64}, request{h: 3, off: 70000, n: 1 << 63}},
		{"pread past 64 bits saturates", []interface{}{atomT("pread"), 3, huge, 0}, request{h: 3, off: math.MaxUint64}},
		{"pwrite", []interface{}{atomT("pwrite"), 3, 10, []byte("data")}, request{h: 3, off: 10, data: []byte("data")}},
		{"store of -2^63", []interface{}{atomT("store"), 3, 8, new(big.Int).Neg(big64)}, request{h: 3, off: 8, vals: [2]int64{math.MinInt64}}},
		{"compare_exchange", []interface{}{atomT("compare_exchange"), 3, 8, int32(-5), 7}, request{h: 3, off: 8, vals: [2]int64{-5, 7}}},
		{"open", []interface{}{atomT("open"), []byte("/f"), atomT("write"), atomT("private"), 4096, int32(0o600), list(atomT("create"), atomT("bogus"), atomT("lock"), atomT("delete_on_close"))},
			request{data: []byte("/f"), mode: mmap.Write, n: 4096, opts: mmap.Options{Private: true, Size: 4096, Create: true, Lock: true, Chmod: true, Perm: 0o600, DeleteOnClose: true}}},
		{"open without a size", []interface{}{atomT("open"), []byte("/f"), atomT("read"), atomT("shared"), nil, nil, list()},
			request{data: []byte("/f"), mode: mmap.Read, opts: mmap.Options{Size: -1}}},
		{"advise", []interface{}{atomT("advise"), 3, 0, 4096, atomT("dontneed")}, request{h: 3, n: 4096, hint: mmap.DontNeed}},
		{"check", []interface{}{atomT("check"), 3, atomT("write"), 100}, request{h: 3, write: true, n: 100}},
		{"sync", []interface{}{atomT("sync"), 3, atomT("async")}, request{h: 3, async: true}},
		{"pread_many", []interface{}{atomT("pread_many"), 3, list(erlang.OtpErlangTuple{0, 8}, erlang.OtpErlangTuple{big64, 1})},
			request{h: 3, ranges: []mmap.Range{{Off: 0, Len: 8}, {Off: 1 << 63, Len: 1}}}},
		{"pwrite_many", []interface{}{atomT("pwrite_many"), 3, list(erlang.OtpErlangTuple{5, []byte("ab")})},
			request{h: 3, pieces: []mmap.Piece{{Off: 5, Data: []byte("ab")}}}},
		{"an empty pread_many", []interface{}{atomT("pread_many"), 3, list()}, request{h: 3, ranges: []mmap.Range{}}},
		{"pread_staged", []interface{}{atomT("pread_staged"), 3, 1, 2, 9}, request{h: 3, off: 1, n: 2, stage: 9}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := decode(enc(t, append([]interface{}{int32(77)}, c.args...)...), MaxVector)
			if err != nil {
				t.Fatal(err)
			}
			c.want.id, c.want.op = 77, operationsByName[string(c.args[0].(atomT))]
			if !sameRequest(got, c.want) {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// Frames as OTP 25's term_to_binary writes them (printed by erl), ATOM_EXT
// and all, read as the oracle reads them.
func TestDecodeReadsOTPFrames(t *testing.T) {
	for _, frame := range [][]byte{
		{131, 104, 5, 97, 7, 100, 0, 5, 112, 114, 101, 97, 100, 97, 1, 97, 0, 97, 64},
		{131, 104, 5, 98, 0, 1, 17, 112, 100, 0, 6, 112, 119, 114, 105, 116, 101, 97, 1, 110, 6, 0, 0, 0, 0, 0, 0, 1, 109, 0, 0, 0, 2, 97, 98},
		// iommap_codec:encode/2 of pwrite_many [{0, <<"ab">>}, {300, <<>>}, {1 bsl 40, [<<"c">>, $d]}]
		{131, 104, 4, 97, 7, 100, 0, 11, 112, 119, 114, 105, 116, 101, 95, 109, 97, 110, 121, 97, 1, 108, 0, 0, 0, 3, 104, 2, 97, 0, 109, 0, 0, 0, 2, 97, 98, 104, 2, 98, 0, 0, 1, 44, 109, 0, 0, 0, 0, 104, 2, 110, 6, 0, 0, 0, 0, 0, 0, 1, 109, 0, 0, 0, 2, 99, 100, 106},
		// pread_many [{0, 2}, {70000, 1}, {1 bsl 40, 300}]
		{131, 104, 4, 98, 0, 1, 17, 112, 100, 0, 10, 112, 114, 101, 97, 100, 95, 109, 97, 110, 121, 97, 3, 108, 0, 0, 0, 3, 104, 2, 97, 0, 97, 2, 104, 2, 98, 0, 1, 17, 112, 97, 1, 104, 2, 110, 6, 0, 0, 0, 0, 0, 0, 1, 98, 0, 0, 1, 44, 106},
		// pwrite_many [] and pread_many []
		{131, 104, 4, 97, 7, 100, 0, 11, 112, 119, 114, 105, 116, 101, 95, 109, 97, 110, 121, 97, 1, 108, 0, 0, 0, 0, 106},
		{131, 104, 4, 97, 7, 100, 0, 10, 112, 114, 101, 97, 100, 95, 109, 97, 110, 121, 97, 1, 106},
	} {
		req, err := decode(frame, MaxVector)
		want, ok := oracle(frame)
		if err != nil || !ok || !sameRequest(req, want) {
			t.Fatalf("decode %+v %v, oracle %+v %v", req, err, want, ok)
		}
	}
}

// Every argument of every row, replaced by each of a menu of terms: decode
// and the oracle accept the same frames and read the same values.
func TestDecodeAgreesWithTheOracleOnEveryRow(t *testing.T) {
	menu := []interface{}{
		uint8(0), uint8(255), int32(-1), int32(1 << 30), int32(math.MinInt32),
		new(big.Int).SetUint64(math.MaxUint64), new(big.Int).Lsh(big.NewInt(1), 64), new(big.Int).Lsh(big.NewInt(1), 700),
		new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), 63)), new(big.Int).Neg(new(big.Int).Lsh(big.NewInt(1), 64)),
		atomT("read"), atomT("write"), atomT("private"), atomT("async"), atomT("willneed"), atomT("undefined"),
		erlang.OtpErlangAtom("read_write"), true, nil,
		[]byte{}, []byte("/a/b"), []byte("a\x00"), erlang.OtpErlangBinary{Value: []byte{1}, Bits: 3},
		list(), list(atomT("create"), atomT("x")), list(1), list(erlang.OtpErlangTuple{1, 2}),
		list(erlang.OtpErlangTuple{1, []byte("z")}), list(erlang.OtpErlangTuple{1, 2, 3}),
		erlang.OtpErlangList{Value: []interface{}{erlang.OtpErlangTuple{1, 2}, 1}, Improper: true},
		erlang.OtpErlangTuple{1, 2}, 1.5,
	}
	n := 0
	for _, op := range operations {
		base := []interface{}{int32(5), atomT(op.name)}
		for _, k := range op.args {
			base = append(base, sample(k))
		}
		for pos := 2; pos < len(base); pos++ {
			for _, v := range menu {
				args := append([]interface{}(nil), base...)
				args[pos] = v
				frame := enc(t, args...)
				got, err := decode(frame, MaxVector)
				want, ok := oracle(frame)
				n++
				if (err == nil) != ok || ok && !sameRequest(got, want) {
					t.Errorf("%s arg %d = %#v: decode %+v %v, oracle %+v %v", op.name, pos-2, v, got, err, want, ok)
				}
			}
		}
	}
	if n < 1000 {
		t.Fatalf("only %d frames", n)
	}
}

// sample is a valid term for an argument of kind k.
func sample(k argKind) interface{} {
	switch k {
	case argValue, argValue2:
		return int32(-1)
	case argData:
		return []byte("data")
	case argPath:
		return []byte("/nonexistent/x")
	case argMode, argAccess:
		return atomT("read")
	case argSharing:
		return atomT("shared")
	case argSize:
		return nil
	case argFlags:
		return list(atomT("create"))
	case argSyncMode:
		return atomT("async")
	case argHint:
		return atomT("willneed")
	case argRanges:
		return list(erlang.OtpErlangTuple{0, 8})
	case argPieces:
		return list(erlang.OtpErlangTuple{0, []byte("w")})
	case argDurable:
		return atomT("durable")
	case argBinaries:
		return list([]byte("r"), []byte{})
	}
	return 1 // handles, stages, offsets, lengths
}

func newTestServer(t testing.TB) (*Server, uint64) {
	s := NewServer(DefaultConfig, -1, -1)
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, bytes.Repeat([]byte("a"), 8192), 0o644)
	b := runFrame(s, enc(t, int32(1), atomT("open"), []byte(p), atomT("read_write"), atomT("shared"), nil, nil, erlang.OtpErlangList{}))
	res := frames(t, b)[0][1].(erlang.OtpErlangTuple)
	return s, uint64(res[1].(uint8))
}

func TestRunAnswersEveryOperation(t *testing.T) {
	s, h := newTestServer(t)
	defer s.reg.CloseAll()
	hid := int32(h)
	ok := atomT("ok")
	errOf := func(a string) interface{} { return erlang.OtpErlangTuple{atomT("error"), atomT(a)} }
	cases := []struct {
		name string
		req  []interface{}
		want interface{}
	}{
		{"pwrite", []interface{}{atomT("pwrite"), hid, 0, []byte("xyz")}, ok},
		{"pread", []interface{}{atomT("pread"), hid, 0, 3}, erlang.OtpErlangTuple{ok, erlang.OtpErlangBinary{Value: []byte("xyz"), Bits: 8}}},
		{"pread out of bounds", []interface{}{atomT("pread"), hid, 8190, 3}, errOf("out_of_bounds")},
		{"position", []interface{}{atomT("position"), hid}, erlang.OtpErlangTuple{ok, int32(8192)}},
		{"sync", []interface{}{atomT("sync"), hid, atomT("sync")}, ok},
		{"sync with a bad mode", []interface{}{atomT("sync"), hid, atomT("later")}, errOf("badarg")},
		{"advise", []interface{}{atomT("advise"), hid, 0, 4096, atomT("random")}, ok},
		{"check a read in bounds", []interface{}{atomT("check"), hid, atomT("read"), 8192}, ok},
		{"check a write past the end", []interface{}{atomT("check"), hid, atomT("write"), 8193}, errOf("out_of_bounds")},
		{"truncate", []interface{}{atomT("truncate"), hid, 4096}, ok},
		{"truncate to undefined", []interface{}{atomT("truncate"), hid, nil}, errOf("badarg")},
		{"negative offset", []interface{}{atomT("pread"), hid, -1, 3}, errOf("badarg")},
		{"offset of 2^3000 (LARGE_BIG_EXT)", []interface{}{atomT("pread"), hid, new(big.Int).Lsh(big.NewInt(1), 3000), 0}, errOf("out_of_bounds")},
		{"unknown handle", []interface{}{atomT("position"), 999}, errOf("closed")},
		{"pread_many", []interface{}{atomT("pread_many"), hid, list(erlang.OtpErlangTuple{0, 2}, erlang.OtpErlangTuple{1, 1})},
			erlang.OtpErlangTuple{ok, list(erlang.OtpErlangBinary{Value: []byte("xy"), Bits: 8}, erlang.OtpErlangBinary{Value: []byte("y"), Bits: 8})}},
		{"pread_many of nothing", []interface{}{atomT("pread_many"), hid, erlang.OtpErlangList{}}, erlang.OtpErlangTuple{ok, erlang.OtpErlangList{Value: []interface{}{}}}},
		{"pwrite_many", []interface{}{atomT("pwrite_many"), hid, list(erlang.OtpErlangTuple{8, []byte("ab")})}, ok},
		{"store zero", []interface{}{atomT("store"), hid, 16, 0}, ok},
		{"add", []interface{}{atomT("add"), hid, 16, -5}, erlang.OtpErlangTuple{ok, uint8(0)}},
		{"load", []interface{}{atomT("load"), hid, 16}, erlang.OtpErlangTuple{ok, int32(-5)}},
		{"compare_exchange that fails", []interface{}{atomT("compare_exchange"), hid, 16, 0, 1}, erlang.OtpErlangTuple{atomT("error"), erlang.OtpErlangTuple{atomT("mismatch"), int32(-5)}}},
		{"compare_exchange", []interface{}{atomT("compare_exchange"), hid, 16, -5, 1}, ok},
		{"store", []interface{}{atomT("store"), hid, 16, 9}, ok},
		{"sub", []interface{}{atomT("sub"), hid, 16, 10}, erlang.OtpErlangTuple{ok, uint8(9)}},
		{"bit_or", []interface{}{atomT("bit_or"), hid, 16, 6}, erlang.OtpErlangTuple{ok, int32(-1)}},
		{"bit_and", []interface{}{atomT("bit_and"), hid, 16, 12}, erlang.OtpErlangTuple{ok, int32(-1)}},
		{"bit_xor", []interface{}{atomT("bit_xor"), hid, 16, 5}, erlang.OtpErlangTuple{ok, uint8(12)}},
		{"exchange", []interface{}{atomT("exchange"), hid, 16, 3}, erlang.OtpErlangTuple{ok, uint8(9)}},
		{"load after exchange", []interface{}{atomT("load"), hid, 16}, erlang.OtpErlangTuple{ok, uint8(3)}},
		{"unaligned load", []interface{}{atomT("load"), hid, 3}, errOf("einval")},
		{"sync_range", []interface{}{atomT("sync_range"), hid, 10, 10, atomT("sync")}, ok},
		{"resident", []interface{}{atomT("resident"), hid, 0, 0}, erlang.OtpErlangTuple{ok, uint8(0)}},
		{"info", []interface{}{atomT("info"), hid}, nil},
		{"region", []interface{}{atomT("region"), hid}, nil},
		{"close", []interface{}{atomT("close"), hid}, ok},
		{"region of a closed handle", []interface{}{atomT("region"), hid}, errOf("closed")},
		{"close again", []interface{}{atomT("close"), hid}, errOf("closed")},
		{"check a closed handle", []interface{}{atomT("check"), hid, atomT("read"), 0}, errOf("closed")},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := frames(t, runFrame(s, enc(t, append([]interface{}{int32(i + 2)}, c.req...)...)))
			if len(got) != 1 || got[0][0] != uint8(i+2) && got[0][0] != int32(i+2) {
				t.Fatalf("frames %#v", got)
			}
			if c.want == nil && c.req[0] == atomT("region") { // {ok, {Addr, Size, Fd}}: address and fd vary
				r := got[0][1].(erlang.OtpErlangTuple)[1].(erlang.OtpErlangTuple)
				if fd, ok := r[2].(uint8); len(r) != 3 || r[1] != int32(4096) || reflect.DeepEqual(r[0], uint8(0)) || !ok || fd < 3 {
					t.Fatalf("region %#v", r)
				}
				return
			}
			if c.want == nil { // info: a map with the size truncate gave
				m := got[0][1].(erlang.OtpErlangTuple)[1].(erlang.OtpErlangMap)
				if m[atomT("size")] != int32(4096) || m[atomT("mode")] != atomT("read_write") {
					t.Fatalf("info %#v", m)
				}
				return
			}
			if !reflect.DeepEqual(got[0][1], c.want) {
				t.Fatalf("got %#v want %#v", got[0][1], c.want)
			}
		})
	}
}

// The seeds are the table's rows, each with valid arguments of its kinds.
func seeds(f *testing.F) {
	for i, op := range operations {
		terms := []interface{}{int32(i + 1), atomT(op.name)}
		for _, k := range op.args {
			terms = append(terms, sample(k))
		}
		f.Add(enc(f, terms...))
	}
}

// FuzzDecode: decode never panics, never accepts a frame without an id,
// and what it accepts, erlang_go reads the same way (the frame is then
// well-formed and bounded, so safe to give erlang_go). With the main
// loop's list bound it reads the same or defers.
func FuzzDecode(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, frame []byte) {
		req, err := decode(frame, MaxVector)
		if err != nil {
			return
		}
		if req.id <= 0 {
			t.Fatalf("accepted a request without an id: %+v", req)
		}
		if want, ok := oracle(frame); !ok || !sameRequest(req, want) {
			t.Fatalf("decode %+v, oracle %+v %v", req, want, ok)
		}
		if inl, err := decode(frame, inlineList); !errors.Is(err, errLongList) && (err != nil || !sameRequest(inl, req)) {
			t.Fatalf("with inlineList: %+v %v", inl, err)
		}
	})
}

func list(elems ...interface{}) erlang.OtpErlangList {
	return erlang.OtpErlangList{Value: elems}
}

func manyRanges(n int) []interface{} {
	rs := make([]interface{}, n)
	for i := range rs {
		rs[i] = erlang.OtpErlangTuple{i, 1}
	}
	return rs
}

// The bytes an owned request holds do not change with the input buffer it
// was read from.
func TestOwnedRequestsDoNotShareTheFrame(t *testing.T) {
	for _, args := range [][]interface{}{
		{atomT("pwrite"), 2, 10, []byte("data")},
		{atomT("pwrite_many"), 2, list(erlang.OtpErlangTuple{0, []byte("ab")}, erlang.OtpErlangTuple{9, []byte("c")})},
		{atomT("open"), []byte("/some/path"), atomT("read"), atomT("shared"), nil, nil, list()},
	} {
		frame := enc(t, append([]interface{}{int32(8)}, args...)...)
		req, err := decode(frame, MaxVector)
		if err != nil {
			t.Fatal(err)
		}
		owned := req.owned()
		want := fmt.Sprint(owned)
		for i := range frame {
			frame[i] ^= 0xff
		}
		if got := fmt.Sprint(owned); got != want {
			t.Fatalf("%s: owned request changed with the frame: %s, was %s", args[0], got, want)
		}
		if fmt.Sprint(req) == want {
			t.Fatalf("%s: the test does not change the frame's bytes", args[0])
		}
	}
}

// A small request costs no allocation beyond its reply: decode boxes
// nothing, and the reply goes into the batch (grown once, then reused).
func TestSmallRequestsAllocateNothing(t *testing.T) {
	s, h := newTestServer(t)
	defer s.reg.CloseAll()
	hid := int32(h)
	for _, c := range []struct {
		name string
		req  []interface{}
	}{
		{"pread 64 B", []interface{}{atomT("pread"), hid, 100, 64}},
		{"pread 4 KiB", []interface{}{atomT("pread"), hid, int32(4096), int32(4096)}},
		{"pwrite 64 B", []interface{}{atomT("pwrite"), hid, 100, make([]byte, 64)}},
		{"position", []interface{}{atomT("position"), hid}},
		{"add", []interface{}{atomT("add"), hid, 8, 1}},
	} {
		frame := enc(t, append([]interface{}{int32(1000)}, c.req...)...)
		allocs := testing.AllocsPerRun(100, func() {
			s.port.batch = s.port.batch[:0]
			s.handle(frame)
		})
		if allocs != 0 || s.inFlight.Load() != 0 || bytes.Contains(s.port.batch, []byte("error")) {
			t.Errorf("%s: %v allocations, in flight %d, reply %q", c.name, allocs, s.inFlight.Load(), s.port.batch)
		}
	}
}

// FuzzRun: any frame, run against a live mapping, gives exactly one
// well-formed reply frame {Id, Result} and never panics. Rows that are not
// fuzzable are left out: a fuzzed open could create files anywhere.
func FuzzRun(f *testing.F) {
	seeds(f)
	s, _ := newTestServer(f)
	// one stage, id 1, for the staged requests; opening more per input would
	// only pile up memfds
	if _, _, err := s.stages.Open(); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		if req, err := decode(frame, MaxVector); err == nil && !req.op.fuzzable {
			return // it would create files, or close or resize the fuzzer's own
		}
		got := frames(t, runFrame(s, frame))
		if len(got) != 1 {
			t.Fatalf("%d replies", len(got))
		}
		if s.reg.Len() != 1 || s.stages.Len() != 1 {
			t.Fatalf("registry has %d handles, %d stages", s.reg.Len(), s.stages.Len())
		}
	})
}

func TestStagedOps(t *testing.T) {
	s, h := newTestServer(t)
	defer s.reg.CloseAll()
	defer s.stages.CloseAll()
	hid := int32(h)
	call := func(args ...interface{}) interface{} {
		t.Helper()
		got := frames(t, runFrame(s, enc(t, append([]interface{}{int32(9)}, args...)...)))
		if len(got) != 1 {
			t.Fatalf("frames %#v", got)
		}
		return got[0][1]
	}
	open := call(atomT("stage_open")).(erlang.OtpErlangTuple)
	sf := open[1].(erlang.OtpErlangTuple)
	sid, path := sf[0].(uint8), sf[1].(erlang.OtpErlangBinary)
	peer, err := os.OpenFile(string(path.Value), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()

	ok := atomT("ok")
	errOf := func(a string) interface{} { return erlang.OtpErlangTuple{atomT("error"), atomT(a)} }
	peer.WriteAt([]byte("staged!"), 0)
	if got := call(atomT("pwrite_staged"), hid, 100, 7, int32(sid)); got != ok {
		t.Fatalf("pwrite_staged: %#v", got)
	}
	if got := call(atomT("pread"), hid, 100, 7); !reflect.DeepEqual(got, erlang.OtpErlangTuple{ok, erlang.OtpErlangBinary{Value: []byte("staged!"), Bits: 8}}) {
		t.Fatalf("the staged write is not in the mapping: %#v", got)
	}
	if got := call(atomT("pread_staged"), hid, 98, 5, int32(sid)); got != ok {
		t.Fatalf("pread_staged: %#v", got)
	}
	buf := make([]byte, 5)
	peer.ReadAt(buf, 0)
	if string(buf) != "aasta" {
		t.Fatalf("stage holds %q", buf)
	}
	for name, c := range map[string]struct {
		args []interface{}
		want interface{}
	}{
		"out of bounds":    {[]interface{}{atomT("pread_staged"), hid, 8190, 3, int32(sid)}, errOf("out_of_bounds")},
		"unknown handle":   {[]interface{}{atomT("pread_staged"), 999, 0, 3, int32(sid)}, errOf("closed")},
		"unknown stage":    {[]interface{}{atomT("pwrite_staged"), hid, 0, 3, 77}, errOf("badarg")},
		"missing argument": {[]interface{}{atomT("pread_staged"), hid, 0, 3}, errOf("badarg")},
		"stage_open args":  {[]interface{}{atomT("stage_open"), 1}, errOf("badarg")},
	} {
		if got := call(c.args...); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %#v want %#v", name, got, c.want)
		}
	}
	if got := call(atomT("stage_close"), int32(sid)); got != ok {
		t.Fatalf("stage_close: %#v", got)
	}
	if got := call(atomT("stage_close"), int32(sid)); !reflect.DeepEqual(got, errOf("closed")) {
		t.Fatalf("second stage_close: %#v", got)
	}
	if got := call(atomT("pread_staged"), hid, 0, 3, int32(sid)); !reflect.DeepEqual(got, errOf("badarg")) {
		t.Fatalf("pread_staged on a closed stage: %#v", got)
	}
}

// The table of operations and PROTOCOL.md's table of requests name the
// same requests, with the same number of arguments.
func TestOperationsAreThoseOfTheProtocol(t *testing.T) {
	doc, err := os.ReadFile("PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]int{}
	for _, m := range regexp.MustCompile("(?m)^\\| `\\{Id, ([a-z_]+)(.*?)\\}` \\|").FindAllSubmatch(doc, -1) {
		documented[string(m[1])] = topLevelArgs(string(m[2]))
	}
	for _, op := range operations {
		n, ok := documented[op.name]
		switch {
		case !ok:
			t.Errorf("%s runs but PROTOCOL.md does not list it", op.name)
		case n != len(op.args):
			t.Errorf("%s takes %d arguments, PROTOCOL.md shows %d", op.name, len(op.args), n)
		}
	}
	for name := range documented {
		if operationsByName[name] == nil {
			t.Errorf("PROTOCOL.md lists %s but no operation runs it", name)
		}
	}
	if len(documented) < 20 {
		t.Fatalf("read only %d requests from PROTOCOL.md", len(documented))
	}
}

// topLevelArgs counts the arguments in ", A, [{B, C}], D" (commas inside
// brackets do not count).
func topLevelArgs(s string) int {
	n, depth := 0, 0
	for _, r := range s {
		switch r {
		case '[', '{':
			depth++
		case ']', '}':
			depth--
		case ',':
			if depth == 0 {
				n++
			}
		}
	}
	return n
}

// A request that never finishes (here, one the test holds open) must not
// keep the engine once its input has ended: Serve gives it ExitGrace, then
// returns, and the directory of file stages goes all the same.
func TestServeEndsAfterTheGraceWhenARequestHangs(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	unix.SetNonblock(int(r.Fd()), true)
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cfg := DefaultConfig
	cfg.Stages = mmap.FileStages
	cfg.ExitGrace = 100 * time.Millisecond
	s := NewServer(cfg, int(r.Fd()), int(out.Fd()))
	_, st, err := s.stages.Open()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(st.Path())
	s.wg.Add(1) // the stuck request
	defer s.wg.Done()
	w.Close()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- s.Serve() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(cfg.ExitGrace + 5*time.Second):
		t.Fatal("Serve waits for a stuck request without end")
	}
	if waited := time.Since(start); waited < cfg.ExitGrace {
		t.Fatalf("returned after %v, before the grace of %v", waited, cfg.ExitGrace)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("stage directory left: %v", err)
	}
}

// Whether a request runs on the main loop depends on the bytes it moves.
func TestInlineBySize(t *testing.T) {
	s := NewServer(DefaultConfig, -1, -1)
	max := s.cfg.InlineMax
	piece := func(n int) erlang.OtpErlangTuple { return erlang.OtpErlangTuple{0, make([]byte, n)} }
	rng := func(n int) erlang.OtpErlangTuple { return erlang.OtpErlangTuple{0, int32(n)} }
	for _, c := range []struct {
		name   string
		args   []interface{}
		inline bool
	}{
		{"a pread of InlineMax runs inline", []interface{}{atomT("pread"), 1, 0, int32(max)}, true},
		{"a pread past InlineMax does not", []interface{}{atomT("pread"), 1, 0, int32(max + 1)}, false},
		{"a pwrite of InlineMax runs inline", []interface{}{atomT("pwrite"), 1, 0, make([]byte, max)}, true},
		{"a pwrite past InlineMax does not", []interface{}{atomT("pwrite"), 1, 0, make([]byte, max+1)}, false},
		{"pread_many ranges adding up to InlineMax run inline", []interface{}{atomT("pread_many"), 1, list(rng(max/2), rng(max/2))}, true},
		{"pread_many ranges adding up past it do not", []interface{}{atomT("pread_many"), 1, list(rng(max/2), rng(max/2+1))}, false},
		{"pwrite_many pieces adding up to InlineMax run inline", []interface{}{atomT("pwrite_many"), 1, list(piece(max/2), piece(max/2))}, true},
		{"pwrite_many pieces adding up past it do not", []interface{}{atomT("pwrite_many"), 1, list(piece(max/2), piece(max/2+1))}, false},
		{"an empty pwrite_many runs inline", []interface{}{atomT("pwrite_many"), 1, list()}, true},
		{"a staged read of a small range runs inline", []interface{}{atomT("pread_staged"), 1, 0, 10, 1}, true},
		{"a truncate never does", []interface{}{atomT("truncate"), 1, 10}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, err := decode(enc(t, append([]interface{}{int32(5)}, c.args...)...), MaxVector)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.inline(req); got != c.inline {
				t.Fatalf("inline %v, want %v", got, c.inline)
			}
		})
	}
}

// A frame whose list is longer than the main loop decodes goes to a
// goroutine, and is answered from there.
func TestLongListsAreDecodedAside(t *testing.T) {
	frame := enc(t, int32(5), atomT("pread_many"), 1, list(manyRanges(inlineList+1)...))
	if _, err := decode(frame, inlineList); !errors.Is(err, errLongList) {
		t.Fatalf("decode on the main loop: %v", err)
	}
	if _, err := decode(enc(t, int32(5), atomT("pread_many"), 1, list(manyRanges(inlineList)...)), inlineList); err != nil {
		t.Fatalf("a list of inlineList: %v", err)
	}
}
