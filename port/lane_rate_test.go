//go:build linux

package port

import (
	"encoding/binary"
	"io"
	"os"
	"testing"
	"time"
)

// TestLaneRoundTripRate is a measurement, not a check: IOMMAP_LANE_RATE=1
// prints round trips per second through the port's pipes and through a
// lane, alternating, from one Go client (no BEAM).
func TestLaneRoundTripRate(t *testing.T) {
	if os.Getenv("IOMMAP_LANE_RATE") == "" {
		t.Skip("a measurement: set IOMMAP_LANE_RATE=1")
	}
	e := startEngine(t)
	h := openOver(t, e, e.in, e.out)
	body := enc(t, int32(3), atomT("pread"), h, 0, 64)
	frame := append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
	rate := func(w io.Writer, r io.Reader) int {
		buf := make([]byte, 4096)
		n, start := 0, time.Now()
		for time.Since(start) < 200*time.Millisecond {
			w.Write(frame)
			if _, err := io.ReadFull(r, buf[:4]); err != nil {
				t.Fatal(err)
			}
			io.ReadFull(r, buf[:binary.BigEndian.Uint32(buf)])
			n++
		}
		return int(float64(n) / time.Since(start).Seconds())
	}
	for range 3 {
		t.Logf("port, no lanes open: %d/s", rate(e.in, e.out))
	}
	c := dial(t, e.lanePath(os.Getpid()))
	for range 5 {
		t.Logf("port %d/s lane %d/s", rate(e.in, e.out), rate(c, c))
	}
}
