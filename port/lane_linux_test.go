package port

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/okeuday/erlang_go/v2/erlang"
	"golang.org/x/sys/unix"
)

// engineUnderTest runs a Server on two pipes, as the VM runs the engine.
type engineUnderTest struct {
	t    testing.TB
	in   *os.File // the engine's stdin, our end
	out  *os.File // the engine's stdout, our end
	done chan error
}

func startEngine(t testing.TB) *engineUnderTest {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.SetNonblock(int(inR.Fd()), true); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig
	cfg.ExitGrace = time.Second
	s := NewServer(cfg, int(inR.Fd()), int(outW.Fd()))
	e := &engineUnderTest{t: t, in: inW, out: outR, done: make(chan error, 1)}
	go func() {
		err := s.Serve()
		inR.Close()
		outW.Close()
		e.done <- err
	}()
	t.Cleanup(func() {
		e.stop()
		outR.Close()
	})
	return e
}

// stop closes the engine's stdin and waits for it to end.
func (e *engineUnderTest) stop() {
	e.in.Close()
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("Serve: %v", err)
		}
		e.done <- nil
	case <-time.After(10 * time.Second):
		e.t.Fatal("the engine did not end after its stdin closed")
	}
}

func writeFrame(t testing.TB, w io.Writer, body []byte) {
	t.Helper()
	if _, err := w.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)); err != nil {
		t.Fatal(err)
	}
}

func readReply(t testing.TB, r io.Reader) erlang.OtpErlangTuple {
	t.Helper()
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatal(err)
	}
	return frames(t, append(hdr[:], body...))[0]
}

// call sends a request on w and reads its reply on r.
func call(t testing.TB, w io.Writer, r io.Reader, terms ...interface{}) erlang.OtpErlangTuple {
	t.Helper()
	writeFrame(t, w, enc(t, terms...))
	return readReply(t, r)
}

// lanePath asks the engine for lanes, for the VM of pid vm.
func (e *engineUnderTest) lanePath(vm int) string {
	rep := call(e.t, e.in, e.out, int32(1), atomT("lanes"), vm)
	res, ok := rep[1].(erlang.OtpErlangTuple)
	if !ok || res[0] != atomT("ok") {
		e.t.Fatalf("lanes: %#v", rep)
	}
	return string(res[1].(erlang.OtpErlangBinary).Value)
}

func dial(t testing.TB, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// openOver opens a file of 8 KiB through the engine, on w and r (the port or a lane).
func openOver(t testing.TB, e *engineUnderTest, w io.Writer, r io.Reader) int32 {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, bytes.Repeat([]byte("abcdefgh"), 1024), 0o644)
	rep := call(t, w, r, int32(2), atomT("open"), []byte(p), atomT("read_write"), atomT("shared"), nil, nil, erlang.OtpErlangList{})
	return int32(rep[1].(erlang.OtpErlangTuple)[1].(uint8))
}

func okBin(s string) erlang.OtpErlangTuple {
	return erlang.OtpErlangTuple{atomT("ok"), erlang.OtpErlangBinary{Value: []byte(s), Bits: 8}}
}

func expectReply(t *testing.T, what string, got erlang.OtpErlangTuple, id int32, want interface{}) {
	t.Helper()
	if got[0] != id || !equalTerm(got[1], want) {
		t.Fatalf("%s: got %#v, want {%d, %#v}", what, got, id, want)
	}
}

func equalTerm(a, b interface{}) bool {
	ea, err1 := erlang.TermToBinary(a, -1)
	eb, err2 := erlang.TermToBinary(b, -1)
	return err1 == nil && err2 == nil && bytes.Equal(ea, eb)
}

func TestALaneAnswersOnItselfAndThePortGoesOn(t *testing.T) {
	e := startEngine(t)
	path := e.lanePath(os.Getpid())
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("lanes directory: %v, %v", fi, err)
	}
	h := openOver(t, e, e.in, e.out)
	a, b := dial(t, path), dial(t, path)
	for i := int32(10); i < 200; i++ {
		expectReply(t, "pread on lane a", call(t, a, a, i, atomT("pread"), h, 8, 8), i, okBin("abcdefgh"))
		expectReply(t, "pread on lane b", call(t, b, b, i+1000, atomT("pread"), h, 0, 3), i+1000, okBin("abc"))
		expectReply(t, "pread on the port", call(t, e.in, e.out, i+2000, atomT("pread"), h, 4, 4), i+2000, okBin("efgh"))
	}
	// A slow request runs on a goroutine; its reply comes back on its lane.
	expectReply(t, "sync on lane b", call(t, b, b, int32(7), atomT("sync"), h, atomT("sync")), 7, atomT("ok"))
	// Pipelined on one lane: every reply, in some order, on that lane.
	for i := int32(1); i <= 100; i++ {
		writeFrame(t, a, enc(t, i, atomT("add"), h, 64, 1))
	}
	seen := map[int32]bool{}
	for range 100 {
		seen[readReply(t, a)[0].(int32)] = true
	}
	if len(seen) != 100 {
		t.Fatalf("%d distinct replies of 100", len(seen))
	}
	e.stop()
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Fatalf("the lanes directory is left after the engine ended: %v", err)
	}
	// The engine has closed the lane.
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := a.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("lane after the engine ended: %d bytes, %v", n, err)
	}
}

// refused tells whether the engine closed c without answering.
func refused(t *testing.T, c net.Conn) bool {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	body := enc(t, int32(5), atomT("hello"))
	if _, err := c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)); err != nil {
		return !os.IsTimeout(err) // closed already
	}
	n, err := c.Read(make([]byte, 64))
	return n == 0 && err != nil && !os.IsTimeout(err)
}

func TestALaneFromAnotherProcessIsRefused(t *testing.T) {
	e := startEngine(t)
	// The VM the engine is told of is another process: this one is refused.
	path := e.lanePath(os.Getppid())
	if !refused(t, dial(t, path)) {
		t.Fatal("a connection from a process other than the VM was kept")
	}
	// Now the VM is this process: another process that connects (a child
	// of this one, running this test binary) is refused...
	path = e.lanePath(os.Getpid())
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperConnectsToALane$")
	cmd.Env = append(os.Environ(), "IOMMAP_LANE_HELPER="+path)
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("REFUSED")) {
		t.Fatalf("the other process was not refused: %v\n%s", err, out)
	}
	// ...and this one is served, as is the port.
	c := dial(t, path)
	expectReply(t, "hello on the lane", call(t, c, c, int32(6), atomT("hello")), 6,
		erlang.OtpErlangTuple{atomT("ok"), erlang.OtpErlangTuple{ProtocolVersion, erlang.OtpErlangBinary{Value: []byte(Version), Bits: 8}}})
	expectReply(t, "hello on the port", call(t, e.in, e.out, int32(7), atomT("hello")), 7,
		erlang.OtpErlangTuple{atomT("ok"), erlang.OtpErlangTuple{ProtocolVersion, erlang.OtpErlangBinary{Value: []byte(Version), Bits: 8}}})
}

// Not a test of its own: the other process of TestALaneFromAnotherProcessIsRefused.
func TestHelperConnectsToALane(t *testing.T) {
	path := os.Getenv("IOMMAP_LANE_HELPER")
	if path == "" {
		t.Skip("run by TestALaneFromAnotherProcessIsRefused")
	}
	if refused(t, dial(t, path)) {
		os.Stdout.WriteString("REFUSED\n")
	}
}

func TestHostileBytesOnALaneLeaveTheEngineUp(t *testing.T) {
	e := startEngine(t)
	path := e.lanePath(os.Getpid())
	h := openOver(t, e, e.in, e.out)

	// A frame that is not a request: badarg, and the lane goes on.
	c := dial(t, path)
	writeFrame(t, c, []byte{131, 104, 2, 98, 0, 0, 0, 9, 200, 1, 2})
	expectReply(t, "garbage", readReply(t, c), 9, erlang.OtpErlangTuple{atomT("error"), atomT("badarg")})
	writeFrame(t, c, []byte("not a term at all"))
	expectReply(t, "no term", readReply(t, c), 0, erlang.OtpErlangTuple{atomT("error"), atomT("badarg")})
	expectReply(t, "after garbage", call(t, c, c, int32(3), atomT("pread"), h, 0, 2), 3, okBin("ab"))

	// A length past what a lane may send: that lane is closed.
	g := dial(t, path)
	g.Write([]byte{0x7f, 0xff, 0xff, 0xff, 1, 2, 3})
	g.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := g.Read(make([]byte, 8)); n != 0 || err == nil || os.IsTimeout(err) {
		t.Fatalf("a lane that sent a 2 GiB length: %d bytes, %v", n, err)
	}
	// A lane that sends half a frame and goes away.
	p := dial(t, path)
	p.Write([]byte{0, 0, 0, 100, 131})
	p.Close()

	// The engine, the port and the other lane are all still there.
	expectReply(t, "port", call(t, e.in, e.out, int32(4), atomT("pread"), h, 0, 2), 4, okBin("ab"))
	expectReply(t, "lane", call(t, c, c, int32(5), atomT("pread"), h, 2, 2), 5, okBin("cd"))
}

func TestManyLanesAndThePortAtOnce(t *testing.T) {
	e := startEngine(t)
	path := e.lanePath(os.Getpid())
	h := openOver(t, e, e.in, e.out)
	const lanes, calls = 8, 2000
	for l := 0; l <= lanes; l++ {
		call(t, e.in, e.out, int32(8), atomT("store"), h, 8*l, 0)
	}
	errs := make(chan error, lanes)
	for l := 0; l < lanes; l++ {
		c := dial(t, path)
		go func() {
			var hdr [4]byte
			for i := 0; i < calls; i++ {
				id := int32(l*calls + i + 1)
				body, _ := erlang.TermToBinary(erlang.OtpErlangTuple{id, atomT("add"), h, 8 * (l + 1), 1}, -1)
				if _, err := c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)); err != nil {
					errs <- err
					return
				}
				if _, err := io.ReadFull(c, hdr[:]); err != nil {
					errs <- err
					return
				}
				rep := make([]byte, binary.BigEndian.Uint32(hdr[:]))
				if _, err := io.ReadFull(c, rep); err != nil {
					errs <- err
					return
				}
				if got := int32(binary.BigEndian.Uint32(rep[4:])); got != id {
					errs <- io.ErrUnexpectedEOF
					return
				}
			}
			errs <- nil
		}()
	}
	for i := int32(0); i < calls; i++ {
		call(t, e.in, e.out, 100000+i, atomT("add"), h, 0, 1)
	}
	for l := 0; l < lanes; l++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for l := 0; l <= lanes; l++ {
		rep := call(t, e.in, e.out, int32(9), atomT("load"), h, 8*l)
		if !equalTerm(rep[1], erlang.OtpErlangTuple{atomT("ok"), calls}) {
			t.Fatalf("word %d: %#v", l, rep[1])
		}
	}
}

// A lane whose reader sends and never reads must not stall the engine: once
// its replies no longer fit in the socket, the lane is shut down, and the
// port and the other lanes go on.
func TestALaneThatDoesNotReadIsShutNotWaitedFor(t *testing.T) {
	e := startEngine(t)
	path := e.lanePath(os.Getpid())
	h := openOver(t, e, e.in, e.out)
	c := dial(t, path)
	frame := enc(t, int32(1), atomT("pread"), h, 0, 8192)
	stuck := make(chan error, 1)
	go func() {
		for {
			if _, err := c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(frame))), frame...)); err != nil {
				stuck <- err
				return
			}
		}
	}()
	select {
	case <-stuck:
	case <-time.After(20 * time.Second):
		t.Fatal("the lane was never shut")
	}
	expectReply(t, "the port", call(t, e.in, e.out, int32(4), atomT("pread"), h, 0, 2), 4, okBin("ab"))
	d := dial(t, path)
	expectReply(t, "another lane", call(t, d, d, int32(5), atomT("pread"), h, 2, 2), 5, okBin("cd"))
}
