package mmap

import (
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkWriteMany: one pwrite_many of 64 pieces of 64 B, all pages
// touched before, at offsets in 8 KiB (in the cache) or across 64 MiB (a
// cache and TLB miss each, as in make bench). The offsets are drawn before
// the timed loop.
//
//	go test -run XXX -bench WriteMany ./mmap
func BenchmarkWriteMany(b *testing.B) {
	const size = 64 << 20
	path := filepath.Join(b.TempDir(), "f")
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		b.Fatal(err)
	}
	m, err := Open(path, ReadWrite, Options{Size: -1})
	if err != nil {
		b.Fatal(err)
	}
	h := NewHandle(m)
	defer h.Close()
	d := make([]byte, 64)
	for off := uint64(0); off < size; off += pageSize {
		if err := m.WriteAt(d, off); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct {
		name   string
		spread int64
	}{{"in 8 KiB", 8 << 10}, {"across 64 MiB", size}} {
		b.Run(c.name, func(b *testing.B) {
			const batches = 1024
			ws := make([][]Piece, batches)
			for i := range ws {
				ws[i] = make([]Piece, 64)
				for k := range ws[i] {
					ws[i][k] = Piece{Off: uint64(rand.Int63n(c.spread - 64)), Data: d}
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := h.WriteMany(ws[i%batches], true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
