//go:build linux

package port

import (
	"encoding/binary"
	"io"
	"os"
	"testing"
)

// BenchmarkLaneRoundTrip: a 64 B pread's round trip through the port's
// pipes and through a lane, from one Go client (no BEAM).
func BenchmarkLaneRoundTrip(b *testing.B) {
	e := startEngine(b)
	h := openOver(b, e, e.in, e.out)
	body := enc(b, int32(3), atomT("pread"), h, 0, 64)
	frame := append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
	roundTrips := func(b *testing.B, w io.Writer, r io.Reader) {
		buf := make([]byte, 4096)
		for range b.N {
			if _, err := w.Write(frame); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(r, buf[:4]); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadFull(r, buf[:binary.BigEndian.Uint32(buf)]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("port", func(b *testing.B) { roundTrips(b, e.in, e.out) })
	c := dial(b, e.lanePath(os.Getpid()))
	b.Run("lane", func(b *testing.B) { roundTrips(b, c, c) })
}
