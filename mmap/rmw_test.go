package mmap

import (
	"math"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// Each read-modify-write against a model, at the edges of int64.
func TestModifyMatchesAModel(t *testing.T) {
	p := tempFile(t, make([]byte, 64))
	m, err := Open(p, ReadWrite, Options{Size: -1})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandle(m)
	defer h.Close()
	model := map[RMW]func(a, b int64) int64{
		RMWAdd:      func(a, b int64) int64 { return a + b },
		RMWSub:      func(a, b int64) int64 { return a - b },
		RMWAnd:      func(a, b int64) int64 { return a & b },
		RMWOr:       func(a, b int64) int64 { return a | b },
		RMWXor:      func(a, b int64) int64 { return a ^ b },
		RMWExchange: func(_, b int64) int64 { return b },
	}
	values := []int64{0, 1, -1, 5, math.MaxInt64, math.MinInt64, 0x5555555555555555, -0x5555555555555556}
	for op, f := range model {
		for _, a := range values {
			for _, b := range values {
				if err := h.Store(16, a, true); err != nil {
					t.Fatal(err)
				}
				old, err := h.Modify(16, op, b, true)
				now, _ := h.Load(16, true)
				if err != nil || old != a || now != f(a, b) {
					t.Fatalf("op %d on %d with %d: old %d, now %d (want %d), %v", op, a, b, old, now, f(a, b), err)
				}
			}
		}
	}
	for _, c := range []struct {
		name string
		off  uint64
		want error
	}{{"unaligned", 12, unix.EINVAL}, {"past the end", 64, ErrBounds}} {
		if _, err := h.Modify(c.off, RMWXor, 1, true); err != c.want {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// xor has no instruction and runs a compare-and-swap loop: concurrent xors
// and adds still lose nothing.
func TestConcurrentModifyLosesNothing(t *testing.T) {
	p := tempFile(t, make([]byte, 64))
	m, _ := Open(p, ReadWrite, Options{Size: -1})
	h := NewHandle(m)
	defer h.Close()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5000 {
				h.Modify(0, RMWXor, 1<<g, true) // each bit flipped an even number of times
				h.Modify(8, RMWSub, 3, true)
			}
		}()
	}
	wg.Wait()
	if v, _ := h.Load(0, true); v != 0 {
		t.Fatalf("xor word %#x", v)
	}
	if v, _ := h.Load(8, true); v != -4*5000*3 {
		t.Fatalf("sub word %d", v)
	}
}

// A read-only or write-only handle refuses them, as it refuses add.
func TestModifyNeedsReadAndWrite(t *testing.T) {
	p := tempFile(t, make([]byte, 64))
	for _, mode := range []Mode{Read, Write} {
		m, err := Open(p, mode, Options{Size: -1})
		if err != nil {
			t.Fatal(err)
		}
		h := NewHandle(m)
		if _, err := h.Modify(0, RMWExchange, 1, true); err != ErrNoAccess {
			t.Errorf("mode %v: %v", mode, err)
		}
		h.Close()
	}
}

// Chmod sets exactly the bits asked for, whatever the umask; without it a
// created file is 0644 less the umask. DeleteOnClose removes the path.
func TestCreatePermissionsAndDeleteOnClose(t *testing.T) {
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	dir := t.TempDir()
	for _, c := range []struct {
		name  string
		opts  Options
		perm  uint32
		after bool // the file is there after close
	}{
		{"default", Options{Size: 8, Create: true}, 0o600, true}, // 0644 less umask 077
		{"chmod 640", Options{Size: 8, Create: true, Chmod: true, Perm: 0o640}, 0o640, true},
		{"chmod 0", Options{Size: 8, Create: true, Chmod: true, Perm: 0}, 0, true},
		{"delete_on_close", Options{Size: 8, Create: true, DeleteOnClose: true}, 0o600, false},
	} {
		p := dir + "/" + c.name
		m, err := Open(p, ReadWrite, c.opts)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil || uint32(st.Mode)&0o7777 != c.perm {
			t.Errorf("%s: mode %o, want %o (%v)", c.name, uint32(st.Mode)&0o7777, c.perm, err)
		}
		if err := m.Close(); err != nil {
			t.Errorf("%s: close %v", c.name, err)
		}
		if err := unix.Stat(p, &st); (err == nil) != c.after {
			t.Errorf("%s: after close, stat gives %v", c.name, err)
		}
	}
}
