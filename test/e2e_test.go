// Package e2e drives the real engine binary through the real protocol,
// without Erlang: frames of the external term format on its stdin/stdout.
package e2e

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/okeuday/erlang_go/v2/erlang"
)

type atom = erlang.OtpErlangAtomUTF8

var engine string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "iommap-e2e")
	if err != nil {
		panic(err)
	}
	engine = filepath.Join(dir, "iommap_port")
	build := exec.Command("go", "build", "-o", engine, "../cmd/iommap_port")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type proc struct {
	t   *testing.T
	cmd *exec.Cmd
	in  io.WriteCloser
	out io.Reader
}

func start(t *testing.T, args ...string) *proc {
	cmd := exec.Command(engine, args...)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, in: in, out: out}
	t.Cleanup(func() { in.Close(); cmd.Process.Kill(); cmd.Wait() })
	return p
}

func (p *proc) sendRaw(body []byte) {
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	if _, err := p.in.Write(append(frame, body...)); err != nil {
		p.t.Fatal(err)
	}
}

func (p *proc) send(terms ...interface{}) {
	b, err := erlang.TermToBinary(erlang.OtpErlangTuple(terms), -1)
	if err != nil {
		p.t.Fatal(err)
	}
	p.sendRaw(b)
}

// recv reads one reply frame and returns its id and result.
func (p *proc) recv() (int64, interface{}) {
	var hdr [4]byte
	if _, err := io.ReadFull(p.out, hdr[:]); err != nil {
		p.t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(p.out, body); err != nil {
		p.t.Fatal(err)
	}
	if !bytes.HasPrefix(body, []byte{131, 104, 2, 98}) {
		p.t.Fatalf("reply does not start {Id as INTEGER_EXT: % x", body[:min(len(body), 12)])
	}
	term, err := erlang.BinaryToTerm(body)
	if err != nil {
		p.t.Fatal(err)
	}
	tup := term.(erlang.OtpErlangTuple)
	return int64(tup[0].(int32)), tup[1]
}

func (p *proc) call(id int32, args ...interface{}) interface{} {
	p.send(append([]interface{}{id}, args...)...)
	got, res := p.recv()
	if got != int64(id) {
		p.t.Fatalf("reply id %d, want %d", got, id)
	}
	return res
}

func ok(v interface{}) erlang.OtpErlangTuple { return erlang.OtpErlangTuple{atom("ok"), v} }
func errTuple(r string) erlang.OtpErlangTuple {
	return erlang.OtpErlangTuple{atom("error"), atom(r)}
}
func bin(s string) erlang.OtpErlangBinary { return erlang.OtpErlangBinary{Value: []byte(s), Bits: 8} }

func expect(t *testing.T, what string, got, want interface{}) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: got %#v, want %#v", what, got, want)
	}
}

func TestSessionThroughTheRealBinary(t *testing.T) {
	p := start(t)
	path := filepath.Join(t.TempDir(), "data")
	hello := p.call(1, atom("hello")).(erlang.OtpErlangTuple)
	expect(t, "hello", hello[0], atom("ok"))
	expect(t, "protocol", hello[1].(erlang.OtpErlangTuple)[0], uint8(9))

	flags := erlang.OtpErlangList{Value: []interface{}{atom("create")}}
	res := p.call(2, atom("open"), bin(path), atom("read_write"), atom("shared"), 4096, nil, flags)
	h := res.(erlang.OtpErlangTuple)[1]
	expect(t, "pwrite", p.call(3, atom("pwrite"), h, 10, bin("hello")), atom("ok"))
	expect(t, "pread", p.call(4, atom("pread"), h, 10, 5), ok(bin("hello")))
	expect(t, "position", p.call(5, atom("position"), h), ok(int32(4096)))
	expect(t, "bounds", p.call(6, atom("pread"), h, 4097, 0), errTuple("out_of_bounds"))
	expect(t, "sync", p.call(7, atom("sync"), h, atom("async")), atom("ok"))
	expect(t, "truncate", p.call(8, atom("truncate"), h, 100000), atom("ok"))
	expect(t, "grown", p.call(9, atom("position"), h), ok(int32(100000)))
	expect(t, "advise", p.call(10, atom("advise"), h, 4096, 10, atom("willneed")), atom("ok"))
	// A big read goes to a goroutine; it must come back whole.
	res = p.call(11, atom("pread"), h, 0, 100000)
	if d := res.(erlang.OtpErlangTuple)[1].(erlang.OtpErlangBinary).Value; len(d) != 100000 || string(d[10:15]) != "hello" {
		t.Fatalf("big read: %d bytes", len(d))
	}
	expect(t, "close", p.call(12, atom("close"), h), atom("ok"))
	expect(t, "closed", p.call(13, atom("pread"), h, 0, 1), errTuple("closed"))
	if st, _ := os.Stat(path); st.Size() != 100000 {
		t.Fatalf("file size %d", st.Size())
	}
}

func TestMalformedFramesGetErrorReplies(t *testing.T) {
	p := start(t)
	cases := []struct {
		name   string
		body   []byte
		wantID int64
	}{
		{"empty frame", []byte{}, 0},
		{"not ETF", []byte("hello"), 0},
		{"a bare atom", []byte{131, 119, 2, 'h', 'i'}, 0},
		{"a binary claiming 4 GiB", []byte{131, 104, 3, 97, 7, 119, 1, 'x', 109, 255, 255, 255, 255}, 7},
		{"a list claiming 4 billion elements", []byte{131, 104, 2, 97, 9, 108, 255, 255, 255, 255, 106}, 9},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p.t = t
			p.sendRaw(c.body)
			id, res := p.recv()
			expect(t, "id", id, c.wantID)
			expect(t, "result", res, errTuple("badarg"))
		})
	}
	p.t = t
	expect(t, "unknown op", p.call(3, atom("frobnicate")), errTuple("badarg"))
	expect(t, "wrong arity", p.call(4, atom("pread"), 1), errTuple("badarg"))
	expect(t, "still serving", p.call(5, atom("position"), 99), errTuple("closed"))
}

func TestPipelinedRequestsAllAnswered(t *testing.T) {
	p := start(t)
	path := filepath.Join(t.TempDir(), "pipe")
	os.WriteFile(path, bytes.Repeat([]byte("p"), 1<<20), 0o644)
	res := p.call(1, atom("open"), bin(path), atom("read"), atom("shared"), nil, nil, erlang.OtpErlangList{})
	h := res.(erlang.OtpErlangTuple)[1]
	const n = 300
	for i := int32(2); i < n+2; i++ {
		size := 64
		if i%10 == 0 {
			size = 1 << 20 // a slow one among fast ones
		}
		p.send(i, atom("pread"), h, 0, size)
	}
	seen := map[int64]bool{}
	for range n {
		id, res := p.recv()
		if seen[id] {
			t.Fatalf("id %d twice", id)
		}
		seen[id] = true
		d := res.(erlang.OtpErlangTuple)[1].(erlang.OtpErlangBinary).Value
		if want := 64; id%10 != 0 && len(d) != want || id%10 == 0 && len(d) != 1<<20 {
			t.Fatalf("id %d: %d bytes", id, len(d))
		}
	}
}

func TestExitsCleanlyOnEOFWithOnlyFramesOnStdout(t *testing.T) {
	cmd := exec.Command(engine)
	in, _ := cmd.StdinPipe()
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b, _ := erlang.TermToBinary(erlang.OtpErlangTuple{int32(1), atom("hello")}, -1)
	in.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), b...))
	in.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		t.Fatal("engine did not exit on EOF")
	}
	// stdout holds exactly one frame: the hello reply
	o := out.Bytes()
	if len(o) < 4 || int(binary.BigEndian.Uint32(o)) != len(o)-4 {
		t.Fatalf("stdout is not exactly one frame: %q", o)
	}
}

func TestVersionFlag(t *testing.T) {
	out, err := exec.Command(engine, "-version").Output()
	if err != nil || !bytes.HasPrefix(out, []byte("iommap_port ")) {
		t.Fatalf("%q %v", out, err)
	}
}

func TestBigWritesThenSmallCalls(t *testing.T) {
	p := start(t)
	path := filepath.Join(t.TempDir(), "big")
	flags := erlang.OtpErlangList{Value: []interface{}{atom("create")}}
	h := p.call(1, atom("open"), bin(path), atom("read_write"), atom("shared"), 8<<20, nil, flags).(erlang.OtpErlangTuple)[1]
	big := bytes.Repeat([]byte("B"), 5<<20)
	expect(t, "5 MiB pwrite", p.call(2, atom("pwrite"), h, 1, big), atom("ok"))
	expect(t, "small pread after", p.call(3, atom("pread"), h, 0, 3), ok(bin("\x00BB")))
	expect(t, "small pwrite after", p.call(4, atom("pwrite"), h, 0, bin("s")), atom("ok"))
	got := p.call(5, atom("pread"), h, 0, 5<<20+1).(erlang.OtpErlangTuple)[1].(erlang.OtpErlangBinary).Value
	if !bytes.Equal(got[1:], big) || got[0] != 's' {
		t.Fatal("big read back differs")
	}
}

func TestHelpFlag(t *testing.T) {
	out, err := exec.Command(engine, "-help").CombinedOutput()
	if !bytes.Contains(out, []byte("-spin")) || !bytes.Contains(out, []byte("Erlang application")) {
		t.Fatalf("help: %q (%v)", out, err)
	}
}

// A stage through the real binary: another process (here the test) opens
// the engine's memfd by the /proc path it was given and sees what a staged
// read put there.
func TestStageThroughTheRealBinary(t *testing.T) {
	p := start(t)
	path := filepath.Join(t.TempDir(), "data")
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	if err := os.WriteFile(path, want, 0o644); err != nil {
		t.Fatal(err)
	}
	res := p.call(1, atom("open"), bin(path), atom("read_write"), atom("shared"), nil, nil, erlang.OtpErlangList{})
	h := res.(erlang.OtpErlangTuple)[1]
	st := p.call(2, atom("stage_open")).(erlang.OtpErlangTuple)[1].(erlang.OtpErlangTuple)
	stagePath := string(st[1].(erlang.OtpErlangBinary).Value)
	if want := fmt.Sprintf("/proc/%d/fd/", p.cmd.Process.Pid); !bytes.HasPrefix([]byte(stagePath), []byte(want)) {
		t.Fatalf("stage path %q, want a memfd under %s", stagePath, want)
	}
	f, err := os.OpenFile(stagePath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	expect(t, "pread_staged", p.call(3, atom("pread_staged"), h, 16, len(want)-32, st[0]), atom("ok"))
	got := make([]byte, len(want)-32)
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want[16:len(want)-16]) {
		t.Fatal("the stage does not hold the bytes read")
	}
	if _, err := f.WriteAt([]byte("STAGED"), 0); err != nil {
		t.Fatal(err)
	}
	expect(t, "pwrite_staged", p.call(4, atom("pwrite_staged"), h, 100, 6, st[0]), atom("ok"))
	expect(t, "pread", p.call(5, atom("pread"), h, 100, 6), ok(bin("STAGED")))
	expect(t, "stage_close", p.call(6, atom("stage_close"), st[0]), atom("ok"))
	expect(t, "staged after close", p.call(7, atom("pread_staged"), h, 0, 1, st[0]), errTuple("badarg"))
}

func toInt(v interface{}) int64 {
	switch n := v.(type) {
	case uint8:
		return int64(n)
	case int32:
		return int64(n)
	}
	return -1
}

// A frame longer than the engine can hold is answered by the id in its head
// and skipped; the engine goes on serving the frames after it.
func TestOversizedFrameIsAnsweredAndSkipped(t *testing.T) {
	p := start(t)
	const n = 1<<31 + 4096 // past MaxFrame
	body := []byte{131, 104, 5, 98, 0, 0, 0, 41, 119, 7, 'p', 'w', 'r', 'i', 't', 'e', 97, 1, 97, 0, 109}
	hdr := binary.BigEndian.AppendUint32(nil, n)
	go func() {
		p.in.Write(append(hdr, body...))
		junk := make([]byte, 1<<20)
		for left := n - len(body); left > 0; left -= len(junk) {
			if _, err := p.in.Write(junk[:min(left, len(junk))]); err != nil {
				return
			}
		}
		p.send(int32(42), atom("hello"))
	}()
	id, res := p.recv()
	expect(t, "id of the oversized frame", id, int64(41))
	expect(t, "its answer", res, errTuple("enomem"))
	id, res = p.recv()
	expect(t, "the next frame", id, int64(42))
	if tup, ok := res.(erlang.OtpErlangTuple); !ok || tup[0] != atom("ok") {
		t.Fatalf("hello after the skip: %#v", res)
	}
}

// Opening a FIFO must not wait for a writer: it is refused with enodev at
// once, and the engine still ends at EOF.
func TestFIFOIsRefusedWithoutBlocking(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := exec.Command("mkfifo", fifo).Run(); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	p := start(t)
	for i, mode := range []string{"read", "read_write", "write"} {
		res := p.call(int32(i+1), atom("open"), []byte(fifo), atom(mode), atom("shared"), nil, nil, erlang.OtpErlangList{})
		expect(t, "open of a FIFO in "+mode, res, errTuple("enodev"))
	}
	p.in.Close()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the engine did not exit after EOF")
	}
}

// File stages (the default off Linux) through the real binary: the path
// answered is a file in a private directory; its name goes at the first
// transfer, and the directory when the engine exits.
func TestFileStagesThroughTheRealBinary(t *testing.T) {
	p := start(t, "-stages", "file")
	path := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(path, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := p.call(1, atom("open"), bin(path), atom("read_write"), atom("shared"), nil, nil, erlang.OtpErlangList{}).(erlang.OtpErlangTuple)[1]
	st := p.call(2, atom("stage_open")).(erlang.OtpErlangTuple)[1].(erlang.OtpErlangTuple)
	stagePath := string(st[1].(erlang.OtpErlangBinary).Value)
	dir := filepath.Dir(stagePath)
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("stage directory %s: %v %v", dir, fi, err)
	}
	f, err := os.OpenFile(stagePath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	expect(t, "pread_staged", p.call(3, atom("pread_staged"), h, 2, 5, st[0]), atom("ok"))
	got := make([]byte, 5)
	f.ReadAt(got, 0)
	expect(t, "staged bytes", string(got), "23456")
	if _, err := os.Stat(stagePath); !os.IsNotExist(err) {
		t.Fatalf("the stage's name outlived the first transfer: %v", err)
	}
	p.in.Close()
	p.cmd.Wait()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the stage directory outlived the engine: %v", err)
	}
}

// A killed engine cannot remove its lane socket's directory; the next
// engine that makes its own sweeps it away (its lock died with it).
func TestAKilledEnginesLaneDirectoryIsSwept(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("lanes are Linux only")
	}
	lanes := func(p *proc) string {
		res := p.call(1, atom("lanes"), os.Getpid()).(erlang.OtpErlangTuple)
		expect(t, "lanes", res[0], atom("ok"))
		return filepath.Dir(string(res[1].(erlang.OtpErlangBinary).Value))
	}
	first := start(t)
	dead := lanes(first)
	first.cmd.Process.Kill()
	first.cmd.Wait()
	if _, err := os.Stat(dead); err != nil {
		t.Fatalf("the killed engine's directory should still be there: %v", err)
	}
	live := lanes(start(t))
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Fatalf("the killed engine's directory is left: %v", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Fatalf("the running engine's directory: %v", err)
	}
}

// Lanes through the real binary: the socket it names serves this process
// (the "VM" here), and the directory goes when the engine ends.
func TestLaneThroughTheRealBinary(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("lanes are Linux only")
	}
	p := start(t)
	res := p.call(1, atom("lanes"), os.Getpid()).(erlang.OtpErlangTuple)
	expect(t, "lanes", res[0], atom("ok"))
	path := string(res[1].(erlang.OtpErlangBinary).Value)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lane := &proc{t: t, cmd: p.cmd, in: c, out: c}
	expect(t, "hello on a lane", lane.call(2, atom("hello")).(erlang.OtpErlangTuple)[0], atom("ok"))
	expect(t, "port after the lane", p.call(3, atom("hello")).(erlang.OtpErlangTuple)[0], atom("ok"))
	p.in.Close()
	if err := p.cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Fatalf("lanes directory left: %v", err)
	}
}
