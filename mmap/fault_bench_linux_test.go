package mmap

import (
	"os"
	"path/filepath"
	"testing"
)

// What the first touch of a page costs a 4 KiB write or read through a
// shared mapping of a page-cached file, against a page touched before, and
// what the open option populate and the populate hints do to it
// (docs/PERFORMANCE.md, "Write faults"). Each op touches the next page of a
// fresh 64 MiB mapping, so every op of a first-touch case is a first touch;
// the mapping is made again (timer stopped) when the pages run out.
//
//	go test -run XXX -bench Touch ./mmap

const touchFile = 64 << 20

func BenchmarkTouch(b *testing.B) {
	path := filepath.Join(b.TempDir(), "f")
	if err := os.WriteFile(path, make([]byte, touchFile), 0o644); err != nil {
		b.Fatal(err)
	}
	if _, err := os.ReadFile(path); err != nil { // page-cache it
		b.Fatal(err)
	}
	buf := make([]byte, pageSize)
	write := func(m *Mapping, off uint64) error { return m.WriteAt(buf, off) }
	read := func(m *Mapping, off uint64) error { return m.ReadAt(buf, off) }
	for _, c := range []struct {
		name     string
		op       func(*Mapping, uint64) error
		populate bool
		hint     Advice
		warm     bool
	}{
		{"write/first", write, false, 0, false},
		{"write/touched", write, false, 0, true},
		{"write/first,populate", write, true, 0, false},
		{"write/first,populate_read", write, false, PopulateRead, false},
		{"write/first,populate_write", write, false, PopulateWrite, false},
		{"read/first", read, false, 0, false},
		{"read/touched", read, false, 0, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			var m *Mapping
			remap := func() {
				if m != nil {
					m.Close()
				}
				var err error
				if m, err = Open(path, ReadWrite, Options{Size: -1, Populate: c.populate}); err != nil {
					b.Fatal(err)
				}
				if c.hint != 0 {
					if err := m.Advise(0, touchFile, c.hint); err != nil {
						b.Fatal(err)
					}
				}
				if c.warm {
					for off := uint64(0); off < touchFile; off += pageSize {
						if err := c.op(m, off); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			remap()
			off := uint64(0)
			b.SetBytes(int64(pageSize))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if off == touchFile {
					b.StopTimer()
					remap()
					off = 0
					b.StartTimer()
				}
				if err := c.op(m, off); err != nil {
					b.Fatal(err)
				}
				off += pageSize
			}
			b.StopTimer()
			m.Close()
		})
	}
}

// BenchmarkPopulateWrite is the price of the populate_write hint itself:
// one op is the hint over a fresh 64 MiB mapping (16,384 pages), which
// takes every write fault at once and dirties every page.
func BenchmarkPopulateWrite(b *testing.B) {
	path := filepath.Join(b.TempDir(), "f")
	if err := os.WriteFile(path, make([]byte, touchFile), 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(touchFile)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		m, err := Open(path, ReadWrite, Options{Size: -1})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := m.Advise(0, touchFile, PopulateWrite); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		m.Close()
		b.StartTimer()
	}
}
