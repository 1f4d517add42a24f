package mmap

import (
	"bytes"
	"testing"
)

// ReadMany sized its buffer for separators of up to 8 bytes; a longer one
// resliced past the capacity and panicked.
func TestReadManyTakesAnySeparator(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789"), 100)
	p := tempFile(t, content)
	m, err := Open(p, Read, Options{Size: -1})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandle(m)
	defer h.Close()
	sep := func(b []byte, n uint64) []byte {
		return append(b, "<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<>"...)
	}
	rs := []Range{{0, 1}, {1, 1}, {2, 1}, {0, 1000}}
	b, err := h.ReadMany(nil, rs, 1<<20, sep, true)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for _, r := range rs {
		want = append(sep(want, r.Len), content[r.Off:r.Off+r.Len]...)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("got %d bytes, want %d", len(b), len(want))
	}
}
