package mmap

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// A truncate whose new mapping cannot be made (ENOMEM under an address-space
// limit) must leave the file's size, the mapping's length and its bytes as
// they were: a shrink that cut the file first left a mapping longer than the
// file, whose tail read as sigbus.
func TestFailedTruncateLeavesFileAndMappingAsTheyWere(t *testing.T) {
	const size = 8 << 20
	content := make([]byte, size)
	for i := range content {
		content[i] = byte(i / 4096)
	}
	for _, c := range []struct {
		name string
		n    uint64
	}{
		{"a shrink to half", size / 2},
		{"a grow by half", size + size/2},
		{"a remap at the same size", size},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := tempFile(t, content)
			m, err := Open(p, ReadWrite, Options{Size: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			mmapFile = func(int, int64, int, int, int) ([]byte, error) { return nil, unix.ENOMEM }
			err = m.Truncate(c.n)
			mmapFile = unix.Mmap
			if !errors.Is(err, unix.ENOMEM) {
				t.Fatalf("Truncate(%d) with mmap failing: %v", c.n, err)
			}
			if got := fileSize(t, p); got != size {
				t.Errorf("file is %d bytes after the failed truncate, want %d", got, size)
			}
			if m.Len() != size {
				t.Errorf("Len %d after the failed truncate, want %d", m.Len(), size)
			}
			got := make([]byte, size)
			if err := m.ReadAt(got, 0); err != nil || !bytes.Equal(got, content) {
				t.Fatalf("the mapping's bytes after the failed truncate: %v", err)
			}
			if err := m.Truncate(c.n); err != nil || m.Len() != int(c.n) || fileSize(t, p) != int64(c.n) {
				t.Fatalf("the same truncate with mmap working: %v, len %d", err, m.Len())
			}
		})
	}
}
