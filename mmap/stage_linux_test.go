package mmap

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// tinyTmpfs mounts a 64 KiB tmpfs: a file system that fills up at once.
func tinyTmpfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (needs root or CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// A staged read of a healthy file whose stage cannot get the room is the
// stage's trouble (enospc: the Erlang side can use the pipe), never sigbus,
// which says the user's file lost bytes.
func TestFileStageOnAFullFileSystemIsEnospcNotSigbus(t *testing.T) {
	content := bytes.Repeat([]byte("healthy!"), 1<<17) // 1 MiB
	h, _ := stagedHandle(t, content, ReadWrite)
	reg := NewStagesOf(FileStages)
	reg.tmp = tinyTmpfs(t)
	defer reg.CloseAll()
	_, st, err := reg.Open()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a stage that must grow past the free space is enospc", func(t *testing.T) {
		if err := h.ReadToStage(st, 0, uint64(len(content)), true); !errors.Is(err, unix.ENOSPC) {
			t.Fatalf("staged read of 1 MiB into a 64 KiB file system: %v, want enospc", err)
		}
		var sz unix.Stat_t
		if err := unix.Fstat(st.Fd(), &sz); err != nil || sz.Size != 0 {
			t.Fatalf("the failed grow left the stage %d bytes long (%v)", sz.Size, err)
		}
	})

	t.Run("a stage with a hole it cannot fill is enospc", func(t *testing.T) {
		skipUnderEmulation(t, needsFaultAddress)
		// Sparse already (where allocate falls back to ftruncate, or as
		// the other side may leave it): the copy itself faults in the
		// stage, and that fault is not the user's file's.
		if err := unix.Ftruncate(st.Fd(), int64(len(content))); err != nil {
			t.Fatal(err)
		}
		if err := h.ReadToStage(st, 0, uint64(len(content)), true); !errors.Is(err, unix.ENOSPC) {
			t.Fatalf("staged read into a sparse stage on a full file system: %v, want enospc", err)
		}
		unix.Ftruncate(st.Fd(), 0)
	})

	t.Run("a read that fits still works", func(t *testing.T) {
		if err := h.ReadToStage(st, 8, 16<<10, true); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 16<<10)
		if _, err := unix.Pread(st.Fd(), got, 0); err != nil || !bytes.Equal(got, content[8:8+16<<10]) {
			t.Fatalf("wrong bytes (%v)", err)
		}
	})
}
