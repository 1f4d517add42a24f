package port

import (
	"testing"

	"github.com/okeuday/erlang_go/v2/erlang"
)

// The engine's own cost of one request on the main loop, from the frame's
// bytes to the reply in the batch: decode, checks, the copy, the reply. No
// pipe and no Erlang side. The mapping is 8 KiB and touched, so no page
// faults are counted.
//
//	go test -run XXX -bench Handle ./port
func BenchmarkHandle(b *testing.B) {
	s, h := newTestServer(b)
	defer s.reg.CloseAll()
	hid := int32(h)
	data64, data4k := make([]byte, 64), make([]byte, 4096)
	pieces := make([]interface{}, 64)
	ranges := make([]interface{}, 64)
	for i := range pieces {
		pieces[i] = erlang.OtpErlangTuple{int32(i * 64), data64}
		ranges[i] = erlang.OtpErlangTuple{int32(i * 64), 64}
	}
	for _, c := range []struct {
		name string
		req  []interface{}
	}{
		{"pread 64 B", []interface{}{int32(1000), atomT("pread"), hid, 100, 64}},
		{"pwrite 64 B", []interface{}{int32(1000), atomT("pwrite"), hid, 100, data64}},
		{"pread 4 KiB", []interface{}{int32(1000), atomT("pread"), hid, int32(4096), int32(4096)}},
		{"pwrite 4 KiB", []interface{}{int32(1000), atomT("pwrite"), hid, int32(4096), data4k}},
		{"pread_many 64 x 64 B", []interface{}{int32(1000), atomT("pread_many"), hid, erlang.OtpErlangList{Value: ranges}}},
		{"pwrite_many 64 x 64 B", []interface{}{int32(1000), atomT("pwrite_many"), hid, erlang.OtpErlangList{Value: pieces}}},
	} {
		frame := enc(b, c.req...)
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				s.port.batch = s.port.batch[:0]
				s.handle(frame)
			}
			if s.inFlight.Load() != 0 || len(s.port.batch) == 0 || s.port.batch[len(s.port.batch)-1] == 'r' {
				b.Fatalf("not answered on the main loop, or an error: %q", s.port.batch)
			}
		})
	}
}
