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

// peer opens the stage the way the Erlang side does: by its path.
func peer(t *testing.T, st *Stage) *os.File {
	t.Helper()
	f, err := os.OpenFile(st.Path(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func stagedHandle(t *testing.T, content []byte, mode Mode) (*Handle, string) {
	t.Helper()
	p := tempFile(t, content)
	m, err := Open(p, mode, Options{Size: -1})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandle(m)
	t.Cleanup(func() { h.Close() })
	return h, p
}

func TestStageCarriesReadsAndWrites(t *testing.T) {
	content := make([]byte, 5<<20+123)
	for i := range content {
		content[i] = byte(i * 7)
	}
	h, p := stagedHandle(t, content, ReadWrite)
	reg := NewStages()
	defer reg.CloseAll()
	id, st, err := reg.Open()
	if err != nil {
		t.Fatal(err)
	}
	f := peer(t, st)

	// growing sizes remap the stage; a smaller one after reuses it
	for _, c := range []struct{ off, n uint64 }{{0, 10}, {3, 1 << 20}, {100, 3<<20 + 5}, {5 << 20, 123}, {0, 0}} {
		if err := h.ReadToStage(st, c.off, c.n, true); err != nil {
			t.Fatalf("read %v: %v", c, err)
		}
		got := make([]byte, c.n)
		if _, err := f.ReadAt(got, 0); c.n > 0 && err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, content[c.off:c.off+c.n]) {
			t.Fatalf("read %v: wrong bytes", c)
		}
	}

	// a write: the peer fills the stage, the engine copies it in
	data := bytes.Repeat([]byte("w"), 2<<20)
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteFromStage(st, 4096, uint64(len(data)), true); err != nil {
		t.Fatal(err)
	}
	onDisk, _ := os.ReadFile(p)
	if !bytes.Equal(onDisk[4096:4096+len(data)], data) || onDisk[4095] != content[4095] {
		t.Fatal("staged write did not land exactly")
	}

	// the peer may shrink the stage to give memory back; a read grows it
	// again, a write that announces more than the stage holds is badarg
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteFromStage(st, 0, 10, true); !errors.Is(err, ErrBadArg) {
		t.Fatalf("write past the stage's end: %v", err)
	}
	if err := h.ReadToStage(st, 0, 2<<20, true); err != nil {
		t.Fatalf("read after the peer shrank the stage: %v", err)
	}

	if reg.Len() != 1 {
		t.Fatalf("Len = %d", reg.Len())
	}
	if err := reg.Close(id); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Get(id); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if err := h.ReadToStage(st, 0, 1, true); !errors.Is(err, ErrClosed) {
		t.Fatalf("read into a closed stage: %v", err)
	}
	if err := reg.Close(id); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}

// The handle's errors come first and in the same order as for pread and
// pwrite, and the stage is not touched when they fire.
func TestStageErrorsMatchPlainCalls(t *testing.T) {
	ro, _ := stagedHandle(t, make([]byte, 8192), Read)
	wo, _ := stagedHandle(t, make([]byte, 8192), Write)
	st, err := newMemfdStage()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"read of write-only", wo.ReadToStage(st, 0, 1, true), ErrNoAccess},
		{"write of read-only", ro.WriteFromStage(st, 0, 1, true), ErrNoAccess},
		{"read past the end", ro.ReadToStage(st, 8192, 1, true), ErrBounds},
		{"write past the end", wo.WriteFromStage(st, 8000, 200, true), ErrBounds},
		{"huge read", ro.ReadToStage(st, 1, ^uint64(0), true), ErrBounds},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		}
	}
	var sz unix.Stat_t
	if err := unix.Fstat(st.Fd(), &sz); err != nil || sz.Size != 0 {
		t.Fatalf("stage grew on a failed call: %d %v", sz.Size, err)
	}
	ro.Close()
	if err := ro.ReadToStage(st, 0, 1, true); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed handle: %v", err)
	}
}

func TestStageReadOfTruncatedFileIsFault(t *testing.T) {
	skipUnderEmulation(t, needsFaultAddress)
	h, p := stagedHandle(t, bytes.Repeat([]byte("z"), 4*4096), ReadWrite)
	st, err := newMemfdStage()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := os.Truncate(p, 4096); err != nil {
		t.Fatal(err)
	}
	if err := h.ReadToStage(st, 0, 3*4096, true); !errors.Is(err, ErrFault) {
		t.Fatalf("staged read of a lost range: %v", err)
	}
	f := peer(t, st)
	if _, err := f.WriteAt(make([]byte, 4096), 0); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteFromStage(st, 2*4096, 4096, true); !errors.Is(err, ErrFault) {
		t.Fatalf("staged write to a lost range: %v", err)
	}
}

// A busy stage (its owner's call still copying) makes a non-waiting call
// give up, and Close waits for the copy.
func TestStageBusyAndCloseDuringUse(t *testing.T) {
	h, _ := stagedHandle(t, make([]byte, 1<<20), ReadWrite)
	st, err := newMemfdStage()
	if err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	if err := h.ReadToStage(st, 0, 10, false); !errors.Is(err, ErrBusy) {
		t.Fatalf("non-waiting read of a busy stage: %v", err)
	}
	st.mu.Unlock()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				err := h.ReadToStage(st, 0, 1<<20, true)
				if err != nil && !errors.Is(err, ErrClosed) {
					t.Errorf("read: %v", err)
					return
				}
			}
		}()
	}
	st.Close()
	wg.Wait()
}

func TestFileStagesCarryBytesAndLeaveNoName(t *testing.T) {
	h, _ := stagedHandle(t, []byte("0123456789abcdef"), ReadWrite)
	reg := NewStagesOf(FileStages)
	_, st, err := reg.Open()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(st.Path())
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("stage directory %v %v, want mode 0700", fi, err)
	}
	f := peer(t, st)
	if err := h.ReadToStage(st, 4, 6, true); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 6)
	f.ReadAt(got, 0)
	if string(got) != "456789" {
		t.Fatalf("staged read %q", got)
	}
	if _, err := os.Stat(st.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the stage's name outlived the first transfer: %v", err)
	}
	f.WriteAt([]byte("XY"), 0)
	if err := h.WriteFromStage(st, 0, 2, true); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 3)
	h.ReadAt(b, 0, true)
	if string(b) != "XY2" {
		t.Fatalf("staged write %q", b)
	}
	reg.CloseAll()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the stage directory outlived CloseAll: %v", err)
	}
}

func TestStageKindsByName(t *testing.T) {
	for name, want := range map[string]StageKind{"memfd": MemfdStages, "file": FileStages, "none": NoStages, "": DefaultStageKind} {
		if k, err := ParseStageKind(name); err != nil || k != want {
			t.Errorf("%q: %v %v", name, k, err)
		}
	}
	if _, err := ParseStageKind("shm"); err == nil {
		t.Error("an unknown kind is accepted")
	}
	if _, _, err := NewStagesOf(NoStages).Open(); !errors.Is(err, unix.ENOSYS) {
		t.Errorf("a stage with stages off: %v", err)
	}
}

// A stage cut short under a staged write's copy (only a peer that breaks the
// protocol does that) faults in the stage, not in the user's file: eio, not
// sigbus.
func TestStageCutShortUnderAWriteIsNotSigbus(t *testing.T) {
	skipUnderEmulation(t, needsFaultAddress)
	h, _ := stagedHandle(t, make([]byte, 4*4096), ReadWrite)
	reg := NewStagesOf(FileStages)
	reg.tmp = t.TempDir()
	defer reg.CloseAll()
	_, st, err := reg.Open()
	if err != nil {
		t.Fatal(err)
	}
	mem, err := st.take(4*4096, true, true)
	if err != nil {
		t.Fatal(err)
	}
	unix.Ftruncate(st.Fd(), 0) // after the engine checked the size
	err = st.own(h.m.WriteAt(mem, 0), unix.EIO)
	st.mu.Unlock()
	if !errors.Is(err, unix.EIO) {
		t.Fatalf("write from a stage cut short: %v, want eio", err)
	}
}
