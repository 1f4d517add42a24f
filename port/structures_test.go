package port

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/iommap/iommap/mmap"
	"github.com/okeuday/erlang_go/v2/erlang"
)

// openFile opens a zero-filled file of size bytes through the server.
func openFile(t *testing.T, s *Server, size int) int32 {
	t.Helper()
	p := filepath.Join(t.TempDir(), "s")
	if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	b := runFrame(s, enc(t, int32(1), atomT("open"), []byte(p), atomT("read_write"), atomT("shared"), nil, nil, list()))
	res := frames(t, b)[0][1].(erlang.OtpErlangTuple)
	return int32(res[1].(uint8))
}

func bin(s string) erlang.OtpErlangBinary { return erlang.OtpErlangBinary{Value: []byte(s), Bits: 8} }

// The queue's and the block store's requests, through decode and run,
// answered in the shapes PROTOCOL.md gives; and none of them inline.
func TestStructureRequests(t *testing.T) {
	s := NewServer(DefaultConfig, -1, -1)
	defer s.reg.CloseAll()
	q := openFile(t, s, mmap.QueueHeader+64)
	_, _, size, _ := mmap.BlocksLayout(3, 2)
	bl := openFile(t, s, int(size))
	ok := atomT("ok")
	okOf := func(v interface{}) interface{} { return erlang.OtpErlangTuple{ok, v} }
	errOf := func(a string) interface{} { return erlang.OtpErlangTuple{atomT("error"), atomT(a)} }
	for i, c := range []struct {
		name string
		req  []interface{}
		want interface{}
	}{
		{"queue ops before format", []interface{}{atomT("queue_len"), q}, errOf("einval")},
		{"queue_format of the wrong capacity", []interface{}{atomT("queue_format"), q, 72}, errOf("einval")},
		{"queue_format", []interface{}{atomT("queue_format"), q, 64}, ok},
		{"queue_format again", []interface{}{atomT("queue_format"), q, 64}, errOf("einval")},
		{"queue_open", []interface{}{atomT("queue_open"), q}, okOf(uint8(64))},
		{"queue_pop of an empty queue", []interface{}{atomT("queue_pop"), q, atomT("cached"), 5}, okOf(erlang.OtpErlangList{Value: []interface{}{}})},
		{"queue_push", []interface{}{atomT("queue_push"), q, atomT("durable"), []byte("one")}, ok},
		{"queue_push_many", []interface{}{atomT("queue_push_many"), q, atomT("cached"), list([]byte("two"), []byte{})}, ok},
		{"queue_push_many of nothing", []interface{}{atomT("queue_push_many"), q, atomT("cached"), list()}, ok},
		{"queue_push when full", []interface{}{atomT("queue_push"), q, atomT("cached"), []byte("x")}, errOf("full")},
		{"queue_push with a bad durability", []interface{}{atomT("queue_push"), q, atomT("sync"), []byte("x")}, errOf("badarg")},
		{"queue_len", []interface{}{atomT("queue_len"), q}, okOf(uint8(3))},
		{"queue_peek", []interface{}{atomT("queue_peek"), q, 0, 2}, okOf(erlang.OtpErlangTuple{list(bin("one"), bin("two")), uint8(0), uint8(48)})},
		{"queue_peek from a cursor", []interface{}{atomT("queue_peek"), q, 48, 9}, okOf(erlang.OtpErlangTuple{list(bin("")), uint8(48), uint8(64)})},
		{"queue_peek past the tail", []interface{}{atomT("queue_peek"), q, 1000, 9}, okOf(erlang.OtpErlangTuple{erlang.OtpErlangList{Value: []interface{}{}}, uint8(64), uint8(64)})},
		{"queue_ack of the second", []interface{}{atomT("queue_ack"), q, atomT("cached"), 24}, errOf("einval")},
		{"queue_ack of the front", []interface{}{atomT("queue_ack"), q, atomT("cached"), 0}, ok},
		{"queue_ack again", []interface{}{atomT("queue_ack"), q, atomT("cached"), 0}, ok},
		{"queue_pop", []interface{}{atomT("queue_pop"), q, atomT("durable"), 5}, okOf(list(bin("two"), bin("")))},
		{"queue_len when empty", []interface{}{atomT("queue_len"), q}, okOf(uint8(0))},
		{"blocks_open of a queue", []interface{}{atomT("blocks_open"), q}, errOf("einval")},
		{"blocks_format", []interface{}{atomT("blocks_format"), bl, 3, 2}, ok},
		{"blocks_open", []interface{}{atomT("blocks_open"), bl}, okOf(erlang.OtpErlangTuple{uint8(3), uint8(2)})},
		{"queue_len of a block store", []interface{}{atomT("queue_len"), bl}, errOf("einval")},
		{"blocks_store", []interface{}{atomT("blocks_store"), bl, atomT("cached"), []byte("abc")}, okOf(uint8(0))},
		{"blocks_store of the wrong size", []interface{}{atomT("blocks_store"), bl, atomT("cached"), []byte("ab")}, errOf("badarg")},
		{"blocks_store durable", []interface{}{atomT("blocks_store"), bl, atomT("durable"), []byte("def")}, okOf(uint8(1))},
		{"blocks_store when full", []interface{}{atomT("blocks_store"), bl, atomT("cached"), []byte("ghi")}, errOf("full")},
		{"blocks_read", []interface{}{atomT("blocks_read"), bl, 1}, okOf(bin("def"))},
		{"blocks_read past the end", []interface{}{atomT("blocks_read"), bl, 2}, errOf("out_of_bounds")},
		{"blocks_scan", []interface{}{atomT("blocks_scan"), bl, 0, 10}, okOf(erlang.OtpErlangTuple{list(erlang.OtpErlangTuple{uint8(0), bin("abc")}, erlang.OtpErlangTuple{uint8(1), bin("def")}), uint8(2)})},
		{"blocks_scan of one", []interface{}{atomT("blocks_scan"), bl, 0, 1}, okOf(erlang.OtpErlangTuple{list(erlang.OtpErlangTuple{uint8(0), bin("abc")}), uint8(1)})},
		{"blocks_free", []interface{}{atomT("blocks_free"), bl, atomT("cached"), 0}, ok},
		{"blocks_free of a free block", []interface{}{atomT("blocks_free"), bl, atomT("cached"), 0}, errOf("einval")},
		{"blocks_read of a free block", []interface{}{atomT("blocks_read"), bl, 0}, errOf("einval")},
		{"blocks_scan from the end", []interface{}{atomT("blocks_scan"), bl, 2, 10}, okOf(erlang.OtpErlangTuple{erlang.OtpErlangList{Value: []interface{}{}}, uint8(2)})},
		{"close", []interface{}{atomT("close"), bl}, ok},
		{"blocks_read of a closed handle", []interface{}{atomT("blocks_read"), bl, 1}, errOf("closed")},
	} {
		t.Run(c.name, func(t *testing.T) {
			frame := enc(t, append([]interface{}{int32(i + 2)}, c.req...)...)
			if req, err := decode(frame, MaxVector); err == nil && s.inline(req) {
				t.Fatalf("runs on the main loop")
			}
			got := frames(t, runFrame(s, frame))
			if len(got) != 1 {
				t.Fatalf("frames %#v", got)
			}
			if !reflect.DeepEqual(got[0][1], c.want) {
				t.Fatalf("got %#v\nwant %#v", got[0][1], c.want)
			}
		})
	}
}
