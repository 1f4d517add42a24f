package mmap

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The child processes of the crash and multi-process tests: the test
// binary run again with childEnv set, which runs one of them (childMain)
// instead of the test. A child reports what it did, after it was answered,
// through a pipe (its descriptor 3), one message a write of at most 4 KiB,
// so a message is whole or not there at all whenever the child dies.

const childEnv = "IOMMAP_TEST_CHILD"

// A report message: a kind byte, the count of 8-byte values, the values.
const (
	msgReady   = 'R' // opened; the parent's kill timer starts
	msgPushed  = 'P' // ids pushed (one push or push_many), in order
	msgPopped  = 'O' // ids popped or acked, in order
	msgStored  = 'S' // addr, id: a block stored
	msgFreed   = 'F' // addr: a block freed
	msgSuicide = 'K' // the crash hook is about to kill the child
	msgFull    = 'U' // a push refused: full
	msgError   = 'E' // the values are the bytes of a message: a test failure
)

type message struct {
	kind byte
	vals []uint64
}

func TestMain(m *testing.M) {
	childMain()
	os.Exit(m.Run())
}

// childMain runs the child that childEnv names, if it is set, and never
// returns then.
func childMain() {
	spec := os.Getenv(childEnv)
	if spec == "" {
		return
	}
	var kind, path string
	var a, b uint64
	if _, err := fmt.Sscanf(spec, "%s %s %d %d", &kind, &path, &a, &b); err != nil {
		fmt.Fprintln(os.Stderr, "bad child spec", spec, err)
		os.Exit(2)
	}
	r := &reporter{f: os.NewFile(3, "report")}
	// Wait for the word to go (a byte on descriptor 4): a child may be
	// started ahead, while the one before it runs.
	if _, err := os.NewFile(4, "go").Read(make([]byte, 1)); err != nil {
		os.Exit(0)
	}
	switch kind {
	case "queue-crash":
		queueCrashChild(r, path, a, b)
	case "blocks-crash":
		blocksCrashChild(r, path, a)
	case "producer":
		producerChild(r, path, a, b)
	case "consumer":
		consumerChild(r, path)
	}
	os.Exit(0)
}

type reporter struct{ f *os.File }

func (r *reporter) send(kind byte, vals ...uint64) {
	b := make([]byte, 0, 3+8*len(vals))
	b = append(b, kind)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(vals)))
	for _, v := range vals {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	if _, err := r.f.Write(b); err != nil {
		os.Exit(3)
	}
}

// fail reports a test failure the parent prints, and exits.
func (r *reporter) fail(format string, args ...any) {
	text := fmt.Sprintf(format, args...)
	vals := make([]uint64, 0, len(text))
	for _, c := range []byte(text[:min(len(text), 400)]) {
		vals = append(vals, uint64(c))
	}
	r.send(msgError, vals...)
	os.Exit(1)
}

// openChild maps path for a child, a new open file description as another
// OS process has.
func openChild(r *reporter, path string) *Handle {
	m, err := Open(path, ReadWrite, Options{Size: -1})
	if err != nil {
		r.fail("open: %v", err)
	}
	return NewHandle(m)
}

// child is a running child process and what it reported.
type child struct {
	cmd   *exec.Cmd
	start *os.File // a byte written here lets it go
	ready chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	msgs  []message
}

// startChild runs the child spec, whose reports the returned child gathers.
func startChild(t testing.TB, spec string) *child {
	t.Helper()
	c := newChild(t, spec)
	c.run()
	return c
}

// newChild starts the process of the child spec, which waits for run.
// (The race detector's runtime takes 100 ms or more to start: the crash
// loops start the next children while one runs.)
func newChild(t testing.TB, spec string) *child {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	gr, gw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+spec)
	cmd.ExtraFiles = []*os.File{pw, gr}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	gr.Close()
	c := &child{cmd: cmd, start: gw, ready: make(chan struct{}), done: make(chan struct{})}
	go c.read(pr)
	return c
}

func (c *child) run() {
	c.start.Write([]byte{1})
	c.start.Close()
}

// children gives the children of specs 1 to n in turn, each started
// ahead of its turn while those before it run, and let go at its turn.
type children struct {
	t       testing.TB
	spec    func(i int) string
	n, next int
	ahead   []*child
}

const childrenAhead = 4

func (cs *children) take() *child {
	for cs.next < cs.n && len(cs.ahead) < childrenAhead {
		cs.next++
		cs.ahead = append(cs.ahead, newChild(cs.t, cs.spec(cs.next)))
	}
	c := cs.ahead[0]
	cs.ahead = cs.ahead[1:]
	c.run()
	return c
}

func (c *child) read(pr *os.File) {
	defer close(c.done)
	defer pr.Close()
	var head [3]byte
	readyOnce := sync.OnceFunc(func() { close(c.ready) })
	defer readyOnce()
	for {
		if _, err := io.ReadFull(pr, head[:]); err != nil {
			return
		}
		vals := make([]uint64, binary.LittleEndian.Uint16(head[1:]))
		body := make([]byte, 8*len(vals))
		if _, err := io.ReadFull(pr, body); err != nil {
			return
		}
		for i := range vals {
			vals[i] = binary.LittleEndian.Uint64(body[8*i:])
		}
		c.mu.Lock()
		c.msgs = append(c.msgs, message{head[0], vals})
		c.mu.Unlock()
		if head[0] == msgReady || head[0] == msgError {
			readyOnce()
		}
	}
}

// kill kills the child after it is ready and after, then waits for it and
// its reports; it fails the test if the child reported a failure or died
// otherwise than by SIGKILL.
func (c *child) kill(t testing.TB, after time.Duration) []message {
	t.Helper()
	<-c.ready
	time.Sleep(after * emulationSlowdown())
	c.cmd.Process.Signal(syscall.SIGKILL)
	return c.wait(t, true)
}

// wait waits for the child and its reports.
func (c *child) wait(t testing.TB, killed bool) []message {
	t.Helper()
	err := c.cmd.Wait()
	<-c.done
	for _, m := range c.msgs {
		if m.kind == msgError {
			text := make([]byte, len(m.vals))
			for i, v := range m.vals {
				text[i] = byte(v)
			}
			t.Fatalf("child: %s", text)
		}
	}
	ws, _ := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if killed && !(ws.Signaled() && ws.Signal() == syscall.SIGKILL) || !killed && err != nil {
		t.Fatalf("child ended with %v (%v)", err, ws)
	}
	return c.msgs
}

// suicide makes the crash hook kill the child at about one step in odds:
// at a point between two of the stores an operation makes, which a kill
// from outside would rarely hit.
func suicide(r *reporter, rng *rand.Rand, odds int) {
	crashHook = func() {
		if rng.IntN(odds) == 0 {
			r.send(msgSuicide)
			unix.Kill(unix.Getpid(), unix.SIGKILL)
		}
	}
}

// crashKills is how many kills a crash loop makes: IOMMAP_CRASH_KILLS, or
// def.
func crashKills(t testing.TB, def int) int {
	if s := os.Getenv("IOMMAP_CRASH_KILLS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("IOMMAP_CRASH_KILLS=%q", s)
		}
		return n
	}
	if testing.Short() {
		return def / 10
	}
	return def
}

// payload is the record or block of id: the id, then bytes made from it,
// n bytes in all (at least 8).
func payload(id uint64, n int) []byte {
	b := binary.LittleEndian.AppendUint64(make([]byte, 0, n), id)
	for i := 8; i < n; i++ {
		b = append(b, byte(id*31+uint64(i)))
	}
	return b
}

// payloadID checks a payload and gives its id.
func payloadID(b []byte) (uint64, error) {
	if len(b) < 8 {
		return 0, fmt.Errorf("a payload of %d bytes", len(b))
	}
	id := binary.LittleEndian.Uint64(b)
	if string(b) != string(payload(id, len(b))) {
		return id, fmt.Errorf("payload of id %#x (%d bytes) is not its own: %x", id, len(b), b)
	}
	return id, nil
}
