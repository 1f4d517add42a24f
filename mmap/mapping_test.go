package mmap

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func tempFile(t *testing.T, content []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if content != nil {
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func TestOpenRejectsBeforeTouchingTheDisk(t *testing.T) {
	cases := []struct {
		name    string
		content []byte // nil: no file
		mode    Mode
		opts    Options
		want    error
	}{
		{"read with create is einval", nil, Read, Options{Create: true, Size: 10}, unix.EINVAL},
		{"read with truncate is einval", []byte("abc"), Read, Options{Truncate: true, Size: 10}, unix.EINVAL},
		{"size 0 is einval", []byte("abc"), ReadWrite, Options{Size: 0}, unix.EINVAL},
		{"create without size is einval", nil, ReadWrite, Options{Create: true, Size: -1}, unix.EINVAL},
		{"truncate without size is einval", []byte("abc"), ReadWrite, Options{Truncate: true, Size: -1}, unix.EINVAL},
		{"empty file is einval", []byte{}, ReadWrite, Options{Size: -1}, unix.EINVAL},
		{"missing file is enoent", nil, ReadWrite, Options{Size: 10}, unix.ENOENT},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := tempFile(t, c.content)
			_, err := Open(p, c.mode, c.opts)
			if !errors.Is(err, c.want) {
				t.Fatalf("Open = %v, want %v", err, c.want)
			}
			got, statErr := os.ReadFile(p)
			if c.content == nil {
				if !os.IsNotExist(statErr) {
					t.Fatalf("file was created")
				}
				return
			}
			if !bytes.Equal(got, c.content) {
				t.Fatalf("file changed: %q", got)
			}
		})
	}
}

func TestOpenSizes(t *testing.T) {
	cases := []struct {
		name    string
		content []byte
		opts    Options
		want    int64
	}{
		{"size grows a smaller file", []byte("abc"), Options{Size: 4096}, 4096},
		{"size never shrinks", bytes.Repeat([]byte("x"), 8192), Options{Size: 100}, 8192},
		{"no size maps the whole file", []byte("hello"), Options{Size: -1}, 5},
		{"truncate then grow", bytes.Repeat([]byte("x"), 8192), Options{Truncate: true, Size: 10}, 10},
		{"create makes the file", nil, Options{Create: true, Size: 123}, 123},
		{"create keeps an existing file", []byte("hello"), Options{Create: true, Size: -1}, 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := tempFile(t, c.content)
			m, err := Open(p, ReadWrite, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if int64(m.Len()) != c.want || fileSize(t, p) != c.want {
				t.Fatalf("mapping %d, file %d, want %d", m.Len(), fileSize(t, p), c.want)
			}
			if c.opts.Truncate {
				buf := make([]byte, m.Len())
				if err := m.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, make([]byte, len(buf))) {
					t.Fatalf("truncated file not zero: %v %q", err, buf)
				}
			}
		})
	}
}

func TestCreatedFileHasMode0644(t *testing.T) {
	old := unix.Umask(0)
	defer unix.Umask(old)
	p := tempFile(t, nil)
	m, err := Open(p, ReadWrite, Options{Create: true, Size: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %o", st.Mode().Perm())
	}
}

func TestDirectoryIsEisdir(t *testing.T) {
	_, err := Open(t.TempDir(), Read, Options{Size: -1})
	if !errors.Is(err, unix.EISDIR) {
		t.Fatalf("got %v", err)
	}
}

func TestBoundsAndModes(t *testing.T) {
	p := tempFile(t, []byte("0123456789"))
	rw, _ := Open(p, ReadWrite, Options{Size: -1})
	ro, _ := Open(p, Read, Options{Size: -1})
	wo, _ := Open(p, Write, Options{Size: -1})
	defer rw.Close()
	defer ro.Close()
	defer wo.Close()
	cases := []struct {
		name string
		m    *Mapping
		read bool
		off  uint64
		n    int
		want error
	}{
		{"read of the whole file", rw, true, 0, 10, nil},
		{"read of zero bytes at the end", rw, true, 10, 0, nil},
		{"read of zero bytes past the end", rw, true, 11, 0, ErrBounds},
		{"read that runs past the end", rw, true, 5, 6, ErrBounds},
		{"read with a huge offset", rw, true, 1 << 63, 1, ErrBounds},
		{"read on write mode", wo, true, 0, 1, unix.EACCES},
		{"write on read mode", ro, false, 0, 1, unix.EACCES},
		{"write in bounds", wo, false, 9, 1, nil},
		{"write past the end", rw, false, 9, 2, ErrBounds},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			buf := make([]byte, c.n)
			var err error
			if c.read {
				err = c.m.ReadAt(buf, c.off)
			} else {
				err = c.m.WriteAt(buf, c.off)
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestSharedWritesReachTheFilePrivateOnesDoNot(t *testing.T) {
	for _, private := range []bool{false, true} {
		p := tempFile(t, []byte("aaaa"))
		m, err := Open(p, ReadWrite, Options{Size: -1, Private: private})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.WriteAt([]byte("bb"), 1); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(p)
		want := "abba"
		if private {
			want = "aaaa"
		}
		if string(got) != want {
			t.Fatalf("private=%v: file %q, want %q", private, got, want)
		}
		buf := make([]byte, 4)
		m.ReadAt(buf, 0)
		if string(buf) != "abba" {
			t.Fatalf("mapping %q", buf)
		}
		m.Close()
	}
}

func TestTruncateGrowsWithZerosAndShrinks(t *testing.T) {
	p := tempFile(t, []byte("abcdef"))
	m, _ := Open(p, ReadWrite, Options{Size: -1})
	defer m.Close()
	if err := m.Truncate(10); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	m.ReadAt(buf, 0)
	if string(buf) != "abcdef\x00\x00\x00\x00" || m.Len() != 10 || fileSize(t, p) != 10 {
		t.Fatalf("after grow %q len %d", buf, m.Len())
	}
	if err := m.Truncate(3); err != nil {
		t.Fatal(err)
	}
	if m.Len() != 3 || fileSize(t, p) != 3 {
		t.Fatalf("after shrink len %d", m.Len())
	}
	if err := m.Truncate(0); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("truncate 0: %v", err)
	}
}

func TestTruncateOfPrivateMappingRereadsTheFile(t *testing.T) {
	p := tempFile(t, []byte("abcd"))
	m, _ := Open(p, ReadWrite, Options{Size: -1, Private: true})
	defer m.Close()
	m.WriteAt([]byte("XX"), 0)
	if err := m.Truncate(4); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	m.ReadAt(buf, 0)
	if string(buf) != "abcd" {
		t.Fatalf("got %q", buf)
	}
}

// The reason the engine exists: a file shrunk under a live mapping faults on
// access, and that must come back as an error, not kill the process.
func TestExternalTruncationGivesFault(t *testing.T) {
	skipUnderEmulation(t, needsFaultAddress)
	p := tempFile(t, bytes.Repeat([]byte("z"), 3*4096))
	m, err := Open(p, ReadWrite, Options{Size: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := os.Truncate(p, 4096); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if err := m.ReadAt(buf, 2*4096); !errors.Is(err, ErrFault) {
		t.Fatalf("read of lost range: %v", err)
	}
	if err := m.WriteAt(buf, 2*4096); !errors.Is(err, ErrFault) {
		t.Fatalf("write of lost range: %v", err)
	}
	if err := m.ReadAt(buf, 0); err != nil || string(buf) != "zzzzzzzzzz" {
		t.Fatalf("read of kept range: %v %q", err, buf)
	}
	if Atom(ErrFault) != "sigbus" {
		t.Fatal("fault atom")
	}
}

func TestAdvise(t *testing.T) {
	p := tempFile(t, make([]byte, 3*4096))
	m, _ := Open(p, ReadWrite, Options{Size: -1})
	defer m.Close()
	cases := []struct {
		name   string
		off, n uint64
		want   error
	}{
		{"aligned range", 4096, 4096, nil},
		{"zero length at the end", 3 * 4096, 0, nil},
		{"unaligned offset", 1, 10, unix.EINVAL},
		{"past the end", 4096, 3 * 4096, ErrBounds},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := m.Advise(c.off, c.n, WillNeed); !errors.Is(err, c.want) {
				t.Fatalf("got %v want %v", err, c.want)
			}
		})
	}
}

func TestAtoms(t *testing.T) {
	cases := map[error]string{
		ErrClosed: "closed", ErrBounds: "out_of_bounds", ErrFault: "sigbus", ErrBadArg: "badarg",
		unix.ENOENT: "enoent", unix.EISDIR: "eisdir", unix.ENOSPC: "enospc", unix.EAGAIN: "eagain",
		unix.EMFILE: "emfile", unix.ENODEV: "enodev",
	}
	for err, want := range cases {
		if got := Atom(err); got != want {
			t.Errorf("Atom(%v) = %q, want %q", err, got, want)
		}
	}
}

func TestRegistryConcurrentUseAndClose(t *testing.T) {
	p := tempFile(t, make([]byte, 4096))
	r := NewRegistry()
	m, _ := Open(p, ReadWrite, Options{Size: -1})
	id := r.Add(m)
	h, _ := r.Get(id)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			buf := make([]byte, 8)
			for j := 0; j < 1000; j++ {
				if err := h.WriteAt([]byte{byte(i)}, uint64(i), true); err != nil && err != ErrClosed {
					t.Error(err)
				}
				if err := h.ReadAt(buf, 0, true); err != nil && err != ErrClosed {
					t.Error(err)
				}
			}
		}(i)
	}
	wg.Wait()
	if err := r.Close(id); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(id); err != ErrClosed {
		t.Fatalf("second close: %v", err)
	}
	if _, err := r.Get(id); err != ErrClosed {
		t.Fatal("closed id still found")
	}
	if err := h.ReadAt(make([]byte, 1), 0, true); err != ErrClosed {
		t.Fatalf("read after close: %v", err)
	}
}

func TestTryLockReportsBusy(t *testing.T) {
	p := tempFile(t, make([]byte, 4096))
	m, _ := Open(p, ReadWrite, Options{Size: -1})
	h := NewHandle(m)
	defer h.Close()
	h.mu.RLock()
	if err := h.WriteAt([]byte{1}, 0, false); err != ErrBusy {
		t.Fatalf("write under a reader: %v", err)
	}
	if err := h.ReadAt(make([]byte, 1), 0, false); err != nil {
		t.Fatalf("read under a reader: %v", err)
	}
	h.mu.RUnlock()
}

func TestVectoredReadAndWrite(t *testing.T) {
	p := tempFile(t, []byte("0123456789"))
	m, _ := Open(p, ReadWrite, Options{Size: -1})
	h := NewHandle(m)
	defer h.Close()
	sep := func(b []byte, n uint64) []byte { return append(b, '|') }
	b, err := h.ReadMany(nil, []Range{{0, 2}, {8, 2}, {10, 0}}, 100, sep, true)
	if err != nil || string(b) != "|01|89|" {
		t.Fatalf("%q %v", b, err)
	}
	if _, err := h.ReadMany(nil, []Range{{0, 2}, {9, 2}}, 100, sep, true); err != ErrBounds {
		t.Fatalf("one bad range: %v", err)
	}
	if _, err := h.ReadMany(nil, []Range{{0, 6}, {0, 6}}, 10, sep, true); err != ErrNoMemory {
		t.Fatalf("over the limit: %v", err)
	}
	if err := h.WriteMany([]Piece{{0, []byte("ab")}, {9, []byte("XY")}}, true); err != ErrBounds {
		t.Fatalf("all or nothing: %v", err)
	}
	if got, _ := os.ReadFile(p); string(got) != "0123456789" {
		t.Fatalf("a refused write wrote: %q", got)
	}
	if err := h.WriteMany([]Piece{{0, []byte("ab")}, {1, []byte("Z")}, {9, []byte("!")}}, true); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); string(got) != "aZ2345678!" {
		t.Fatalf("in order: %q", got)
	}
}

func TestAtomics(t *testing.T) {
	p := tempFile(t, make([]byte, 64))
	m, _ := Open(p, ReadWrite, Options{Size: -1})
	h := NewHandle(m)
	defer h.Close()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10000 {
				h.Add(8, 1, true)
			}
		}()
	}
	wg.Wait()
	if v, _ := h.Load(8, true); v != 80000 {
		t.Fatalf("counter %d", v)
	}
	if old, _ := h.Add(8, -80001, true); old != 80000 {
		t.Fatal("old value")
	}
	if v, _ := h.Load(8, true); v != -1 {
		t.Fatalf("negative %d", v)
	}
	raw, _ := os.ReadFile(p)
	if raw[8] != 0xff || raw[15] != 0xff {
		t.Fatalf("not a little-endian word: % x", raw[8:16])
	}
	if cur, _ := h.CompareExchange(8, 5, 7, true); cur != -1 {
		t.Fatalf("mismatch reports %d", cur)
	}
	if cur, _ := h.CompareExchange(8, -1, 7, true); cur != -1 {
		t.Fatal("swap")
	}
	if v, _ := h.Load(8, true); v != 7 {
		t.Fatal("after swap")
	}
	if _, err := h.Load(4, true); err != unix.EINVAL {
		t.Fatalf("unaligned: %v", err)
	}
	if err := h.Store(64, 1, true); err != ErrBounds {
		t.Fatalf("past the end: %v", err)
	}
	if err := h.Store(56, 1, true); err != nil {
		t.Fatalf("last word: %v", err)
	}
}

func TestAtomicsFaultAfterTruncation(t *testing.T) {
	skipUnderEmulation(t, needsFaultAddress)
	p := tempFile(t, make([]byte, 3*4096))
	m, _ := Open(p, ReadWrite, Options{Size: -1})
	h := NewHandle(m)
	defer h.Close()
	os.Truncate(p, 4096)
	if _, err := h.Add(2*4096, 1, true); !errors.Is(err, ErrFault) {
		t.Fatalf("add on a lost page: %v", err)
	}
	if _, err := h.Load(0, true); err != nil {
		t.Fatalf("load on a kept page: %v", err)
	}
}

func TestSyncRangeAndResident(t *testing.T) {
	p := tempFile(t, make([]byte, 4*4096))
	m, _ := Open(p, ReadWrite, Options{Size: -1})
	defer m.Close()
	m.WriteAt([]byte("x"), 5000)
	if err := m.SyncRange(4990, 20, false); err != nil {
		t.Fatal(err)
	}
	if err := m.SyncRange(1, 0, true); err != nil {
		t.Fatal(err)
	}
	if err := m.SyncRange(4*4096, 1, false); err != ErrBounds {
		t.Fatalf("past the end: %v", err)
	}
	if err := m.Advise(0, 4*4096, DontNeed); err != nil {
		t.Fatal(err)
	}
	if err := m.Advise(0, 2*4096, PopulateRead); err != nil {
		t.Fatal(err)
	}
	h := NewHandle(m)
	n, err := h.Resident(100, 2*4096)
	if err != nil || n != 2*4096 {
		t.Fatalf("resident %d %v", n, err)
	}
	if n, _ := h.Resident(100, 10); n != 10 {
		t.Fatalf("resident of a small range %d", n)
	}
}

func TestResidentWorksThroughAHugeSparseRangeInChunks(t *testing.T) {
	skipUnderEmulation(t, needsMadvise)
	const size = 3 * residentChunk * 4096 // three chunks and a fresh, sparse file
	p := filepath.Join(t.TempDir(), "sparse")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	f.Close()
	m, err := Open(p, Read, Options{Size: -1})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandle(m)
	defer h.Close()
	span := uint64(residentChunk) * pageSize
	// Two pages on each side of the first chunk boundary, and the last page;
	// random, so the kernel reads no more ahead of them.
	if err := m.Advise(0, size, Random); err != nil {
		t.Fatal(err)
	}
	if err := m.Advise(span-2*pageSize, 4*pageSize, PopulateRead); err != nil {
		t.Skipf("MADV_POPULATE_READ: %v", err)
	}
	if err := m.Advise(size-pageSize, pageSize, PopulateRead); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		off, n uint64
		want   uint64
	}{
		{"the whole mapping counts the five pages", 0, size, 5 * pageSize},
		{"a range across the boundary counts its part", span - 100, 200, 200},
		{"a range starting mid-page counts from its start", span - pageSize - 1, pageSize + 2, pageSize + 2},
		{"the second chunk alone counts its two pages", span, span, 2 * pageSize},
		{"past the end is out of bounds", size - 1, 2, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := h.Resident(c.off, c.n)
			if c.off+c.n > size {
				if err != ErrBounds {
					t.Fatalf("%v, want ErrBounds", err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("%d %v, want %d", got, err, c.want)
			}
		})
	}
}

func TestReadAppendChecksBoundsThenLimit(t *testing.T) {
	p := tempFile(t, []byte("0123456789"))
	m, _ := Open(p, ReadWrite, Options{Size: -1})
	h := NewHandle(m)
	defer h.Close()
	if _, err := h.ReadAppend(nil, 0, 11, 5, true); err != ErrBounds {
		t.Fatalf("out of bounds and over the limit: %v, want bounds first", err)
	}
	if b, err := h.ReadAppend([]byte("x"), 0, 6, 5, true); err != ErrNoMemory || string(b) != "x" {
		t.Fatalf("over the limit: %q %v", b, err)
	}
	if b, err := h.ReadAppend([]byte("x"), 2, 3, 5, true); err != nil || string(b) != "x234" {
		t.Fatalf("within: %q %v", b, err)
	}
}

func TestReachableRefusesSizesTheFileCannotHave(t *testing.T) {
	p := tempFile(t, []byte("keep me"))
	fd, err := unix.Open(p, unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	unix.Fstat(fd, &st)
	if err := reachable(fd, &st, 1<<20); err != nil {
		t.Fatalf("1 MiB: %v", err)
	}
	if err := reachable(fd, &st, 1<<62); !errors.Is(err, unix.EFBIG) {
		t.Fatalf("2^62, past any file system's largest file here: %v", err)
	}
	if free, ok := freeSpace(fd); ok {
		if err := reachable(fd, &st, int64(free)+1<<30); !errors.Is(err, unix.ENOSPC) && !errors.Is(err, unix.EFBIG) {
			t.Fatalf("1 GiB more than the free space: %v", err)
		}
	}
	var old unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_FSIZE, &old)
	lim := old
	lim.Cur = 1 << 20
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	err = reachable(fd, &st, 2<<20)
	unix.Setrlimit(unix.RLIMIT_FSIZE, &old)
	if !errors.Is(err, unix.EFBIG) {
		t.Fatalf("past RLIMIT_FSIZE: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "keep me" {
		t.Fatalf("the checks changed the file: %q", b)
	}
}

func TestFailedGrowLeavesTheSize(t *testing.T) {
	p := tempFile(t, []byte("0123456789"))
	fd, _ := unix.Open(p, unix.O_RDWR, 0)
	defer unix.Close(fd)
	if err := grow(fd, 10, 1<<62); err == nil {
		t.Fatal("grew to 2^62")
	}
	var st unix.Stat_t
	unix.Fstat(fd, &st)
	if st.Size != 10 {
		t.Fatalf("size %d after a failed grow, want 10", st.Size)
	}
}
