package mmap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// newBlocks makes a block store file at path and opens it.
func newBlocks(t testing.TB, path string, blockSize, capacity uint64) *Handle {
	t.Helper()
	_, _, size, ok := BlocksLayout(blockSize, capacity)
	if !ok {
		t.Fatalf("no layout for %d x %d", capacity, blockSize)
	}
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	h := openQueue(t, path) // a mapping of the file, nothing of a queue yet
	if err := h.BlocksFormat(blockSize, capacity); err != nil {
		t.Fatal(err)
	}
	return h
}

// scan is every live block, by address, in chunks of max.
func scan(t testing.TB, h *Handle, max int) (map[uint64][]byte, error) {
	t.Helper()
	out := map[uint64][]byte{}
	for from := uint64(0); ; {
		b, next, n, err := h.BlocksScan(nil, from, max, 1<<30, func(b []byte, addr, n uint64) []byte {
			return binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(b, addr), n)
		})
		if err != nil {
			return out, err
		}
		for k := 0; k < n; k++ {
			addr, size := binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])
			if _, dup := out[addr]; dup || addr < from || addr >= next {
				t.Fatalf("scan from %d to %d gave address %d (again: %v)", from, next, addr, dup)
			}
			out[addr] = b[16 : 16+size]
			b = b[16+size:]
		}
		if n == 0 { // the end: a scan stops early only after a block
			return out, nil
		}
		from = next
	}
}

// Random operations through two handles (two open file descriptions),
// reopened now and then, against a map: every answer and every block.
func TestBlocksMatchAModel(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 11))
			path := filepath.Join(t.TempDir(), "b")
			size := uint64(1 + r.IntN(40))
			capacity := uint64(1 + r.IntN(150))
			hs := []*Handle{newBlocks(t, path, size, capacity), openQueue(t, path)}
			model := map[uint64][]byte{}
			serial := 0
			var full, freed int
			for i := range 3000 {
				h := hs[r.IntN(2)]
				addr := uint64(r.IntN(int(capacity) + 2))
				if len(model) > 0 && r.IntN(3) > 0 {
					addr = slices.Collect(maps.Keys(model))[r.IntN(len(model))]
				}
				switch r.IntN(8) {
				case 0, 1, 2:
					serial++
					d := bytes.Repeat([]byte{byte(serial)}, int(size))
					a, err := h.BlocksStore(d, r.IntN(50) == 0)
					if uint64(len(model)) == capacity {
						if err != ErrFull {
							t.Fatalf("op %d: store in a full store: %d %v", i, a, err)
						}
						full++
						continue
					}
					if _, taken := model[a]; err != nil || taken || a >= capacity {
						t.Fatalf("op %d: store: %d %v (taken %v)", i, a, err, taken)
					}
					model[a] = d
				case 3:
					if _, err := h.BlocksStore(make([]byte, size+1), false); err != ErrBadArg {
						t.Fatalf("op %d: store of a block too long: %v", i, err)
					}
				case 4, 5:
					err := h.BlocksFree(addr, false)
					_, live := model[addr]
					if want := want(addr, capacity, live); err != want {
						t.Fatalf("op %d: free %d: %v, want %v", i, addr, err, want)
					}
					delete(model, addr)
					freed += b2i(live)
				case 6:
					got, err := h.BlocksRead(nil, addr)
					d, live := model[addr]
					if want := want(addr, capacity, live); err != want || err == nil && !bytes.Equal(got, d) {
						t.Fatalf("op %d: read %d: %v %v, want %v %v", i, addr, got, err, d, want)
					}
				case 7:
					if r.IntN(4) == 0 {
						k := r.IntN(2)
						hs[k].Close()
						hs[k] = openQueue(t, path)
						if bs, c, err := hs[k].BlocksOpen(); err != nil || bs != size || c != capacity {
							t.Fatalf("op %d: reopen: %d %d %v", i, bs, c, err)
						}
						h = hs[k]
					}
					got, err := scan(t, h, 1+r.IntN(5))
					if err != nil || !maps.EqualFunc(got, model, bytes.Equal) {
						t.Fatalf("op %d: scan: %d blocks %v, want %d", i, len(got), err, len(model))
					}
				}
			}
			if full == 0 || freed == 0 {
				t.Fatalf("the run never filled the store (%d) or freed a block (%d)", full, freed)
			}
		})
	}
}

// want is the answer the model expects for a read or free of addr.
func want(addr, capacity uint64, live bool) error {
	switch {
	case addr >= capacity:
		return ErrBounds
	case !live:
		return unix.EINVAL
	}
	return nil
}

// A flipped byte in a block or its CRC is found when it is read (and when
// a scan passes it): ErrCorrupt, nothing changed; it can still be freed.
func TestBlocksFindAFlippedByte(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b")
	h := newBlocks(t, path, 100, 10)
	for i := range 3 {
		h.BlocksStore(bytes.Repeat([]byte{byte(i)}, 100), false)
	}
	_, data, _, _ := BlocksLayout(100, 10)
	flip(t, path, int64(data+112+8+50)) // block 1's data
	if _, err := h.BlocksRead(nil, 1); !errors.Is(err, ErrCorrupt) || !errors.Is(err, unix.EBADMSG) {
		t.Fatalf("read: %v", err)
	}
	if _, err := scan(t, h, 10); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("scan: %v", err)
	}
	if b, err := h.BlocksRead(nil, 2); err != nil || b[0] != 2 {
		t.Fatalf("the next block: %v", err)
	}
	flip(t, path, int64(data+2*112+1)) // block 2's CRC
	if _, err := h.BlocksRead(nil, 2); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read of a flipped CRC: %v", err)
	}
	if err := h.BlocksFree(1, false); err != nil {
		t.Fatalf("free of a corrupt block: %v", err)
	}
	flip(t, path, blocksHeader+1) // a bit of block 12: past the last block
	if _, _, err := h.BlocksOpen(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open with a bit past the last block: %v", err)
	}
}

// A file that is not a block store of this version, or of another size
// than its header gives, is refused with einval and left as it was.
func TestBlocksRefuseOtherFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	newBlocks(t, good, 8, 8).Close()
	goodBytes, _ := os.ReadFile(good)
	resealed := func(edit func(b []byte)) []byte {
		b := bytes.Clone(goodBytes)
		edit(b)
		sealHeader(b[:blocksFixed])
		return b
	}
	queueFile := filepath.Join(dir, "queue")
	newQueue(t, queueFile, 8192).Close()
	queueBytes, _ := os.ReadFile(queueFile)
	for name, content := range map[string][]byte{
		"zeros":               make([]byte, len(goodBytes)),
		"a queue":             queueBytes,
		"version 2":           resealed(func(b []byte) { b[8] = 2 }),
		"a block size of 0":   resealed(func(b []byte) { b[bBlockSize] = 0 }),
		"another slot size":   resealed(func(b []byte) { b[bSlot] = 24 }),
		"flags":               resealed(func(b []byte) { b[48] = 1 }),
		"a flipped capacity":  append(append(bytes.Clone(goodBytes[:bCapacity]), 9), goodBytes[bCapacity+1:]...),
		"longer than it says": append(bytes.Clone(goodBytes), 0),
		"a header only":       goodBytes[:blocksHeader],
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, "case")
			os.WriteFile(p, content, 0o644)
			h := openQueue(t, p)
			if _, _, err := h.BlocksOpen(); !errors.Is(err, unix.EINVAL) {
				t.Errorf("open: %v", err)
			}
			if _, err := h.BlocksStore(make([]byte, 8), false); !errors.Is(err, unix.EINVAL) {
				t.Errorf("store: %v", err)
			}
			if err := h.BlocksFree(0, false); !errors.Is(err, unix.EINVAL) {
				t.Errorf("free: %v", err)
			}
			if name != "zeros" {
				if err := h.BlocksFormat(8, 8); !errors.Is(err, unix.EINVAL) {
					t.Errorf("format over it: %v", err)
				}
			}
			if now, _ := os.ReadFile(p); !bytes.Equal(now, content) {
				t.Errorf("the file changed")
			}
		})
	}
}

func TestBlocksLayout(t *testing.T) {
	for _, c := range []struct {
		size, n, slot, data, file uint64
		ok                        bool
	}{
		{1, 1, 16, 4096, 4096 + 16, true},
		{8, 64, 16, 4096, 4096 + 64*16, true},
		{13, 3969, 24, 4096, 4096 + 3969*24, true},         // 128 + 8*63 = 632
		{4096, 31745, 4104, 8192, 8192 + 31745*4104, true}, // 128 + 8*497 = 4104
		{0, 1, 0, 0, 0, false},
		{1, 0, 0, 0, 0, false},
		{BlocksMaxBlock + 1, 1, 0, 0, 0, false},
		{BlocksMaxBlock, 1 << 40, 0, 0, 0, false},
	} {
		slot, data, file, ok := BlocksLayout(c.size, c.n)
		if slot != c.slot || data != c.data || file != c.file || ok != c.ok {
			t.Errorf("%d x %d: %d %d %d %v, want %d %d %d %v", c.n, c.size, slot, data, file, ok, c.slot, c.data, c.file, c.ok)
		}
	}
}
