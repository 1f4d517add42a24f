package mmap

import (
	"path/filepath"
	"testing"
	"unsafe"
)

// Region reports where the bytes are: the mapping's first byte and its file's descriptor; a truncate moves the
// mapping and changes the size, not the descriptor, and a closed handle has none.
func TestRegionIsWhereTheBytesAre(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	m, err := Open(path, ReadWrite, Options{Create: true, Size: 8192})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandle(m)
	if err := h.WriteAt([]byte("region"), 4090, true); err != nil {
		t.Fatal(err)
	}
	r, err := h.Region()
	addr, size := r.Addr, r.Size
	if err != nil || size != 8192 || addr == 0 || r.Fd != m.fd {
		t.Fatalf("Region: %+v %v", r, err)
	}
	if addr != uintptr(unsafe.Pointer(&m.data[0])) || string(m.data[4090:4096]) != "region" {
		t.Fatalf("address %#x is not the mapping's", addr)
	}
	if err := h.Truncate(3 * 8192); err != nil {
		t.Fatal(err)
	}
	r2, err := h.Region()
	addr2, size2 := r2.Addr, r2.Size
	if err != nil || size2 != 3*8192 || addr2 == 0 || r2.Fd != m.fd {
		t.Fatalf("Region after truncate: %+v %v", r2, err)
	}
	if addr2 != uintptr(unsafe.Pointer(&m.data[0])) || string(m.data[4090:4096]) != "region" {
		t.Fatalf("address %#x is not the new mapping's", addr2)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Region(); err != ErrClosed {
		t.Fatalf("Region of a closed handle: %v", err)
	}
}
