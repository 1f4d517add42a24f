package port

import (
	"bytes"
	"encoding/binary"
	"fmt"
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

func TestDecodeRejectsHostileLengthsBeforeErlangGoSeesThem(t *testing.T) {
	cases := map[string][]byte{
		"binary of 4 GiB":          {131, 104, 2, 97, 1, 109, 255, 255, 255, 255},
		"list of 4G elements":      {131, 104, 2, 97, 1, 108, 255, 255, 255, 255, 106},
		"atom longer than frame":   {131, 104, 2, 97, 1, 118, 255, 255},
		"deep nesting":             append([]byte{131}, bytes.Repeat([]byte{104, 1}, 100)...),
		"compressed term":          {131, 80, 0, 0, 0, 10, 1, 2},
		"trailing bytes":           {131, 104, 2, 97, 1, 119, 1, 'a', 0},
		"map with undefined key":   {131, 116, 0, 0, 0, 1, 119, 9, 'u', 'n', 'd', 'e', 'f', 'i', 'n', 'e', 'd', 97, 1},
		"id zero is no id":         {131, 104, 2, 97, 0, 119, 1, 'a'},
		"negative id":              {131, 104, 2, 98, 255, 255, 255, 255, 119, 1, 'a'},
		"op that is not an atom":   {131, 104, 2, 97, 1, 97, 1},
		"tuple of one":             {131, 104, 1, 97, 1},
		"version byte missing":     {104, 2, 97, 1, 119, 1, 'a'},
		"small big longer than it": {131, 104, 2, 97, 1, 110, 200, 0},
		"large big of 4096 digits": append([]byte{131, 104, 2, 97, 1, 111, 0, 0, 16, 0, 0}, make([]byte, 4096)...),
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := decode(f); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestDecodeKeepsTheIdOfABadRequest(t *testing.T) {
	req, err := decode([]byte{131, 104, 3, 98, 0, 0, 1, 0, 119, 1, 'x', 109, 255, 255, 255, 255})
	if err == nil || req.id != 256 {
		t.Fatalf("id %d err %v", req.id, err)
	}
}

func newTestServer(t testing.TB) (*Server, uint64) {
	s := NewServer(DefaultConfig, -1, -1)
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, bytes.Repeat([]byte("a"), 8192), 0o644)
	req, err := decode(enc(t, int32(1), atomT("open"), []byte(p), atomT("read_write"), atomT("shared"), nil, erlang.OtpErlangList{}))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.run(req, nil, true)
	res := frames(t, b)[0][1].(erlang.OtpErlangTuple)
	return s, uint64(res[1].(uint8))
}

func TestRunAnswersEveryOperation(t *testing.T) {
	s, h := newTestServer(t)
	defer s.reg.CloseAll()
	hid := int32(h)
	ok := atomT("ok")
	cases := []struct {
		name string
		req  []interface{}
		want interface{}
	}{
		{"pwrite", []interface{}{atomT("pwrite"), hid, 0, []byte("xyz")}, ok},
		{"pread", []interface{}{atomT("pread"), hid, 0, 3}, erlang.OtpErlangTuple{ok, erlang.OtpErlangBinary{Value: []byte("xyz"), Bits: 8}}},
		{"pread out of bounds", []interface{}{atomT("pread"), hid, 8190, 3}, erlang.OtpErlangTuple{atomT("error"), atomT("out_of_bounds")}},
		{"position", []interface{}{atomT("position"), hid}, erlang.OtpErlangTuple{ok, int32(8192)}},
		{"sync", []interface{}{atomT("sync"), hid, atomT("sync")}, ok},
		{"sync with a bad mode", []interface{}{atomT("sync"), hid, atomT("later")}, erlang.OtpErlangTuple{atomT("error"), atomT("badarg")}},
		{"advise", []interface{}{atomT("advise"), hid, 0, 4096, atomT("random")}, ok},
		{"truncate", []interface{}{atomT("truncate"), hid, 4096}, ok},
		{"negative offset", []interface{}{atomT("pread"), hid, -1, 3}, erlang.OtpErlangTuple{atomT("error"), atomT("badarg")}},
		{"offset of 2^3000 (LARGE_BIG_EXT)", []interface{}{atomT("pread"), hid, new(big.Int).Lsh(big.NewInt(1), 3000), 0}, erlang.OtpErlangTuple{atomT("error"), atomT("out_of_bounds")}},
		{"unknown handle", []interface{}{atomT("position"), 999}, erlang.OtpErlangTuple{atomT("error"), atomT("closed")}},
		{"pread_many", []interface{}{atomT("pread_many"), hid, erlang.OtpErlangList{Value: []interface{}{erlang.OtpErlangTuple{0, 2}, erlang.OtpErlangTuple{1, 1}}}},
			erlang.OtpErlangTuple{ok, erlang.OtpErlangList{Value: []interface{}{erlang.OtpErlangBinary{Value: []byte("xy"), Bits: 8}, erlang.OtpErlangBinary{Value: []byte("y"), Bits: 8}}}}},
		{"pread_many of nothing", []interface{}{atomT("pread_many"), hid, erlang.OtpErlangList{}}, erlang.OtpErlangTuple{ok, erlang.OtpErlangList{Value: []interface{}{}}}},
		{"pwrite_many", []interface{}{atomT("pwrite_many"), hid, erlang.OtpErlangList{Value: []interface{}{erlang.OtpErlangTuple{8, []byte("ab")}}}}, ok},
		{"store zero", []interface{}{atomT("store"), hid, 16, 0}, ok},
		{"add", []interface{}{atomT("add"), hid, 16, -5}, erlang.OtpErlangTuple{ok, uint8(0)}},
		{"load", []interface{}{atomT("load"), hid, 16}, erlang.OtpErlangTuple{ok, int32(-5)}},
		{"compare_exchange that fails", []interface{}{atomT("compare_exchange"), hid, 16, 0, 1}, erlang.OtpErlangTuple{atomT("error"), erlang.OtpErlangTuple{atomT("mismatch"), int32(-5)}}},
		{"compare_exchange", []interface{}{atomT("compare_exchange"), hid, 16, -5, 1}, ok},
		{"store", []interface{}{atomT("store"), hid, 16, 9}, ok},
		{"unaligned load", []interface{}{atomT("load"), hid, 3}, erlang.OtpErlangTuple{atomT("error"), atomT("einval")}},
		{"sync_range", []interface{}{atomT("sync_range"), hid, 10, 10, atomT("sync")}, ok},
		{"resident", []interface{}{atomT("resident"), hid, 0, 0}, erlang.OtpErlangTuple{ok, uint8(0)}},
		{"close", []interface{}{atomT("close"), hid}, ok},
		{"close again", []interface{}{atomT("close"), hid}, erlang.OtpErlangTuple{atomT("error"), atomT("closed")}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := decode(enc(t, append([]interface{}{int32(i + 2)}, c.req...)...))
			if err != nil {
				t.Fatal(err)
			}
			b, busy := s.run(req, nil, true)
			got := frames(t, b)
			if busy || len(got) != 1 || got[0][0] != uint8(i+2) && got[0][0] != int32(i+2) {
				t.Fatalf("busy %v frames %#v", busy, got)
			}
			if !reflect.DeepEqual(got[0][1], c.want) {
				t.Fatalf("got %#v want %#v", got[0][1], c.want)
			}
		})
	}
}

// The seeds are the request shapes of PROTOCOL.md.
func seeds(f *testing.F) {
	sh := []interface{}{atomT("shared")}
	for _, terms := range [][]interface{}{
		{int32(1), atomT("hello")},
		{int32(2), atomT("open"), []byte("/nonexistent/x"), atomT("read"), sh[0], nil, erlang.OtpErlangList{Value: []interface{}{atomT("create")}}},
		{int32(3), atomT("pread"), int32(1), 0, 10},
		{int32(4), atomT("pwrite"), int32(1), 5, []byte("data")},
		{int32(5), atomT("sync"), int32(1), atomT("async")},
		{int32(6), atomT("truncate"), int32(1), 100},
		{int32(7), atomT("advise"), int32(1), 0, 4096, atomT("willneed")},
		{int32(8), atomT("position"), int32(1)},
		{int32(9), atomT("info"), int32(1)},
		{int32(10), atomT("close"), int32(1)},
		{int32(11), atomT("stats")},
		{int32(12), atomT("pread_many"), int32(1), erlang.OtpErlangList{Value: []interface{}{erlang.OtpErlangTuple{0, 8}}}},
		{int32(13), atomT("pwrite_many"), int32(1), erlang.OtpErlangList{Value: []interface{}{erlang.OtpErlangTuple{0, []byte("w")}}}},
		{int32(14), atomT("add"), int32(1), 8, 1},
		{int32(15), atomT("compare_exchange"), int32(1), 8, 1, 2},
		{int32(16), atomT("load"), int32(1), 8},
		{int32(17), atomT("store"), int32(1), 8, -1},
		{int32(18), atomT("sync_range"), int32(1), 0, 100, atomT("async")},
		{int32(19), atomT("resident"), int32(1), 0, 4096},
		{int32(20), atomT("stage_open")},
		{int32(21), atomT("stage_close"), int32(1)},
		{int32(22), atomT("pread_staged"), int32(1), 0, 100, int32(1)},
		{int32(23), atomT("pwrite_staged"), int32(1), 0, 0, int32(1)},
	} {
		f.Add(enc(f, terms...))
	}
}

func FuzzDecode(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, frame []byte) {
		req, err := decode(frame)
		if err == nil && req.id <= 0 {
			t.Fatalf("accepted a request without an id: %#v", req)
		}
		// The hand decoder accepts only what decode reads the same way.
		if fast, ok := fastDecode(frame); ok && (err != nil || !reflect.DeepEqual(fast, typed(req))) {
			t.Fatalf("fastDecode %#v, decode %#v %v", fast, req, err)
		}
	})
}

// typed gives a request from decode the shape fastDecode gives it: the
// list of a pread_many or pwrite_many typed, args[1] nil. A list that does
// not read as ranges or pieces is left as it is, so it cannot compare equal.
func typed(req request) request {
	if len(req.args) != 2 {
		return req
	}
	switch req.op {
	case "pread_many":
		if rs, ok := ranges(req); ok {
			req.args, req.ranges = []interface{}{req.args[0], nil}, rs
		}
	case "pwrite_many":
		if ps, ok := pieces(req); ok {
			req.args, req.pieces = []interface{}{req.args[0], nil}, ps
		}
	}
	return req
}

// Frames as OTP 25's term_to_binary writes them (printed by erl).
func TestFastDecodeReadsOTPFrames(t *testing.T) {
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
		fast, ok := fastDecode(frame)
		req, err := decode(frame)
		if !ok || err != nil || !reflect.DeepEqual(fast, typed(req)) {
			t.Fatalf("fastDecode %#v %v, decode %#v %v", fast, ok, req, err)
		}
	}
}

func TestFastDecodeAgreesWithDecode(t *testing.T) {
	big64 := new(big.Int).SetUint64(1 << 63)
	for _, c := range []struct {
		name string
		args []interface{}
		fast bool
	}{
		{"a small pread", []interface{}{int32(7), atomT("pread"), 1, 0, 64}, true},
		{"a pread with 4-byte integers", []interface{}{int32(70000), atomT("pread"), int32(300), int32(1 << 30), int32(4096)}, true},
		{"a pread past 2^31", []interface{}{int32(9), atomT("pread"), 1, big64, 1}, true},
		{"a pwrite", []interface{}{int32(8), atomT("pwrite"), 2, 10, []byte("data")}, true},
		{"an empty pwrite", []interface{}{int32(8), atomT("pwrite"), 2, 10, []byte{}}, true},
		{"a negative offset goes the general way", []interface{}{int32(8), atomT("pread"), 2, int32(-1), 1}, false},
		{"a pwrite of a list goes the general way", []interface{}{int32(8), atomT("pwrite"), 2, 0, erlang.OtpErlangList{}}, false},
		{"another op goes the general way", []interface{}{int32(8), atomT("truncate"), 2, 10, 1}, false},
		{"a pread with too many arguments", []interface{}{int32(8), atomT("pread"), 2, 10, 1, 1}, false},
		{"OTP 25's ATOM_EXT", []interface{}{int32(8), erlang.OtpErlangAtom("pwrite"), 2, 10, []byte("x")}, true},
		{"a pread_many", []interface{}{int32(8), atomT("pread_many"), 2, list(erlang.OtpErlangTuple{0, 8}, erlang.OtpErlangTuple{int32(70000), big64})}, true},
		{"an empty pread_many", []interface{}{int32(8), atomT("pread_many"), 2, list()}, true},
		{"a pwrite_many", []interface{}{int32(8), atomT("pwrite_many"), 2, list(erlang.OtpErlangTuple{0, []byte("ab")}, erlang.OtpErlangTuple{big64, []byte{}}, erlang.OtpErlangTuple{9, []byte("c")})}, true},
		{"an empty pwrite_many", []interface{}{int32(8), atomT("pwrite_many"), 2, list()}, true},
		{"a pwrite_many of a list of bytes goes the general way", []interface{}{int32(8), atomT("pwrite_many"), 2, list(erlang.OtpErlangTuple{0, list(uint8(1))})}, false},
		{"a pread_many with a 3-tuple goes the general way", []interface{}{int32(8), atomT("pread_many"), 2, list(erlang.OtpErlangTuple{0, 8, 1})}, false},
		{"an improper list goes the general way", []interface{}{int32(8), atomT("pread_many"), 2, erlang.OtpErlangList{Value: []interface{}{erlang.OtpErlangTuple{0, 8}, 1}, Improper: true}}, false},
		{"a list longer than fastVectorMax goes the general way", []interface{}{int32(8), atomT("pread_many"), 2, list(manyRanges(fastVectorMax + 1)...)}, false},
		{"a list of fastVectorMax is read", []interface{}{int32(8), atomT("pread_many"), 2, list(manyRanges(fastVectorMax)...)}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			frame := enc(t, c.args...)
			fast, ok := fastDecode(frame)
			if ok != c.fast {
				t.Fatalf("fast %v, want %v", ok, c.fast)
			}
			if !ok {
				return
			}
			req, err := decode(frame)
			if err != nil || !reflect.DeepEqual(fast, typed(req)) {
				t.Fatalf("fastDecode %#v, decode %#v %v", fast, req, err)
			}
			// What the owned request holds must not change with the input
			// buffer it was read from.
			want := fmt.Sprint(fast.owned())
			owned := fast.owned()
			for i := range frame {
				frame[i] ^= 0xff
			}
			if got := fmt.Sprint(owned); got != want {
				t.Fatalf("owned request changed with the frame: %s, was %s", got, want)
			}
		})
	}
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

// FuzzRun: any frame, run against a live mapping, gives exactly one
// well-formed reply frame {Id, Result} and never panics. open is left out:
// a fuzzed open could create files anywhere.
func FuzzRun(f *testing.F) {
	seeds(f)
	s, _ := newTestServer(f)
	// one stage, id 1, for the staged requests; opening more per input would
	// only pile up memfds
	if _, _, err := s.stages.Open(); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		req, err := decode(frame)
		var b []byte
		switch {
		case err != nil:
			b = appendError(nil, req.id, "badarg")
		case !operations[req.op].fuzzable && operations[req.op].run != nil:
			return // it would create files, or close or resize the fuzzer's own
		default:
			b, _ = s.run(req, nil, true)
		}
		got := frames(t, b)
		if len(got) != 1 {
			t.Fatalf("%d replies", len(got))
		}
		// The same request as the hand decoder reads it gets the same reply
		// (the four requests it reads give the same answer when repeated).
		if fast, ok := fastDecode(frame); ok {
			if fb, _ := s.run(fast, nil, true); !bytes.Equal(fb, b) {
				t.Fatalf("fast request replied %q, the decoded one %q", fb, b)
			}
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
		req, err := decode(enc(t, append([]interface{}{int32(9)}, args...)...))
		if err != nil {
			t.Fatal(err)
		}
		b, busy := s.run(req, nil, true)
		got := frames(t, b)
		if busy || len(got) != 1 {
			t.Fatalf("busy %v frames %#v", busy, got)
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
// same requests.
func TestOperationsAreThoseOfTheProtocol(t *testing.T) {
	doc, err := os.ReadFile("PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `\\{Id, ([a-z_]+)").FindAllSubmatch(doc, -1) {
		documented[string(m[1])] = true
	}
	for op := range operations {
		if !documented[op] {
			t.Errorf("%s runs but PROTOCOL.md does not list it", op)
		}
	}
	for op := range documented {
		if _, ok := operations[op]; !ok {
			t.Errorf("PROTOCOL.md lists %s but no operation runs it", op)
		}
	}
	if len(documented) < 20 {
		t.Fatalf("read only %d requests from PROTOCOL.md", len(documented))
	}
}

// A request that never finishes (here, one the test holds open) must not
// keep the engine once its input has ended: Serve gives it exitGrace, then
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
	case <-time.After(exitGrace + 5*time.Second):
		t.Fatal("Serve waits for a stuck request without end")
	}
	if waited := time.Since(start); waited < exitGrace {
		t.Fatalf("returned after %v, before the grace of %v", waited, exitGrace)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("stage directory left: %v", err)
	}
}

// Whether a request runs on the main loop depends on the bytes it moves,
// not on which decoder read it: a fast-decoded vector over InlineMax must
// go to a goroutine as the general one does.
func TestInlineBySizeWhicheverDecoderReadIt(t *testing.T) {
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
	} {
		t.Run(c.name, func(t *testing.T) {
			frame := enc(t, append([]interface{}{int32(5)}, c.args...)...)
			fast, ok := fastDecode(frame)
			if !ok {
				t.Fatal("not read by the hand decoder")
			}
			general, err := decode(frame)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.inline(fast); got != c.inline {
				t.Fatalf("hand-decoded: inline %v, want %v", got, c.inline)
			}
			if got := s.inline(general); got != c.inline {
				t.Fatalf("decoded: inline %v, want %v", got, c.inline)
			}
		})
	}
}
