package mmap

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// A shrink whose cut fails (here a memfd sealed against shrinking: EPERM)
// comes after the new mapping was made: that mapping is dropped and the old
// one stays, whole.
func TestShrinkThatCannotCutKeepsTheMapping(t *testing.T) {
	fd, err := unix.MemfdCreate("iommap-test", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Skipf("memfd: %v", err)
	}
	defer unix.Close(fd)
	content := bytes.Repeat([]byte("sealed!!"), 2*4096)
	if _, err := unix.Pwrite(fd, content, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK); err != nil {
		t.Skipf("seal: %v", err)
	}
	p := fmt.Sprintf("/proc/self/fd/%d", fd)
	m, err := Open(p, ReadWrite, Options{Size: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Truncate(4096); !errors.Is(err, unix.EPERM) {
		t.Fatalf("shrink of a file sealed against it: %v, want eperm", err)
	}
	if m.Len() != len(content) || fileSize(t, p) != int64(len(content)) {
		t.Fatalf("len %d, file %d after the failed shrink", m.Len(), fileSize(t, p))
	}
	got := make([]byte, len(content))
	if err := m.ReadAt(got, 0); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("the mapping after the failed shrink: %v", err)
	}
}
