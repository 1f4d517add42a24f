package mmap

import (
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// A block store is a file of fixed-size blocks, each live or free, with an
// allocation bitmap (iommap_blocks; the format is in docs/API.md).
//
//	offset  size          field
//	     0     8          magic "IOMMAPBK"
//	     8     4          version 1
//	    12     4          header size 128 (where the bitmap starts)
//	    16     8          block size B, 1 to 2^30
//	    24     8          capacity N: the number of blocks, at least 1
//	    32     8          slot size S: 8 + B rounded up to 8
//	    40     8          data offset D: 128 + 8 * ceil(N/64), rounded up to 4096
//	    48     4          flags: 0
//	    52     4          CRC32C of bytes 0..51
//	    56     8          hint: where the next search for a free block starts
//	   128     8*ceil(N/64) the bitmap: block A is live iff bit A mod 64 of word A div 64 is set
//	     D     N*S        the slots: block A's at D + A*S: the CRC32C of A and
//	                      B (8 bytes each) and the block (4 bytes), 4 bytes
//	                      of 0, the block
//
// The file is exactly D + N*S bytes.
//
// Commit points. A store writes the block and its CRC into a free slot,
// then sets the block's bit with one atomic OR: before it the block is
// free, after it the block is live and whole. A free clears the bit with
// one atomic AND. So a process killed at any point leaves every block
// either free or live with the bytes that were stored, never torn; there
// is nothing for open to repair. The CRC catches what the commit order
// cannot: a byte changed in the file, or a block whose bit reached the disk
// before its bytes (a power loss without sync).
const (
	blocksMagic   = "IOMMAPBK"
	blocksVersion = 1
	blocksHeader  = 128
	blocksFixed   = 56
	// BlocksMaxBlock is the largest block: one must fit in a reply.
	BlocksMaxBlock = 1 << 30

	bBlockSize = 16
	bCapacity  = 24
	bSlot      = 32
	bData      = 40
	bHint      = 56
	slotHeader = 8
)

// BlocksLayout gives the slot size, the data offset and the file size of a
// block store of capacity blocks of blockSize bytes; ok is false if there
// can be none (a size out of range, or a file too large to map).
func BlocksLayout(blockSize, capacity uint64) (slot, data, size uint64, ok bool) {
	if blockSize < 1 || blockSize > BlocksMaxBlock || capacity < 1 || capacity > math.MaxInt64/8 {
		return 0, 0, 0, false
	}
	slot = slotHeader + (blockSize+7)&^7
	data = (blocksHeader + 8*((capacity+63)/64) + 4095) &^ 4095
	if capacity > (math.MaxInt64-data)/slot {
		return 0, 0, 0, false
	}
	return slot, data, data + capacity*slot, true
}

// blocks is a checked view of a block store's mapping.
type blocks struct {
	m          *Mapping
	size, n    uint64 // block size, capacity
	slot, data uint64
}

// blocks checks the header and the size of the file.
func (m *Mapping) blocks() (blocks, error) {
	h, err := m.header(blocksMagic, blocksVersion, blocksHeader, blocksFixed)
	if err != nil {
		return blocks{}, err
	}
	le := binary.LittleEndian
	b := blocks{m: m, size: le.Uint64(h[bBlockSize:]), n: le.Uint64(h[bCapacity:])}
	slot, data, size, ok := BlocksLayout(b.size, b.n)
	if !ok || le.Uint64(h[bSlot:]) != slot || le.Uint64(h[bData:]) != data ||
		le.Uint32(h[48:]) != 0 || uint64(len(m.data)) != size {
		return blocks{}, errNotStructure
	}
	b.slot, b.data = slot, data
	return b, nil
}

// words is the bitmap's length in words.
func (b blocks) words() uint64 { return (b.n + 63) / 64 }

func (b blocks) word(i uint64) *uint64 { return b.m.word64(blocksHeader + 8*i) }

// valid is the mask of the bits of word i that name blocks.
func (b blocks) valid(i uint64) uint64 {
	if rest := b.n - 64*i; rest < 64 {
		return 1<<rest - 1
	}
	return math.MaxUint64
}

func (b blocks) live(a uint64) bool {
	return atomic.LoadUint64(b.word(a/64))&(1<<(a%64)) != 0
}

// BlocksFormat makes the mapping of a new, zero-filled file a block store
// of capacity blocks of blockSize bytes: the file must be exactly the size
// BlocksLayout gives and its header all zero (anything else is refused
// with einval, unchanged).
func (h *Handle) BlocksFormat(blockSize, capacity uint64) error {
	return h.structure(func(m *Mapping) error {
		slot, data, size, ok := BlocksLayout(blockSize, capacity)
		if !ok || uint64(len(m.data)) != size || !m.fresh(int(data)) {
			return errNotStructure
		}
		hdr := m.data[:blocksFixed]
		le := binary.LittleEndian
		copy(hdr, blocksMagic)
		le.PutUint32(hdr[8:], blocksVersion)
		le.PutUint32(hdr[12:], blocksHeader)
		le.PutUint64(hdr[bBlockSize:], blockSize)
		le.PutUint64(hdr[bCapacity:], capacity)
		le.PutUint64(hdr[bSlot:], slot)
		le.PutUint64(hdr[bData:], data)
		sealHeader(hdr)
		return m.syncPages(0, blocksHeader)
	})
}

// BlocksOpen checks that the mapping is a block store, and that no bit
// past the last block is set, and gives its block size and capacity.
func (h *Handle) BlocksOpen() (blockSize, capacity uint64, err error) {
	err = h.structure(func(m *Mapping) error {
		b, err := m.blocks()
		if err != nil {
			return err
		}
		last := b.words() - 1
		if atomic.LoadUint64(b.word(last))&^b.valid(last) != 0 {
			return ErrCorrupt
		}
		blockSize, capacity = b.size, b.n
		return nil
	})
	return blockSize, capacity, err
}

// BlocksStore writes d (exactly one block: else ErrBadArg) into a free
// block and makes it live; ErrFull if there is none. With durable, the
// block is on the disk before its bit is set, and the bit before it
// returns.
func (h *Handle) BlocksStore(d []byte, durable bool) (addr uint64, err error) {
	err = h.structure(func(m *Mapping) error {
		b, err := m.blocks()
		if err != nil {
			return err
		}
		if uint64(len(d)) != b.size {
			return ErrBadArg
		}
		var ok bool
		if addr, ok = b.free(); !ok {
			return ErrFull
		}
		at := b.data + addr*b.slot
		s := m.data[at : at+b.slot]
		copy(s[slotHeader:], d)
		step()
		binary.LittleEndian.PutUint64(s, uint64(blockCRC(addr, d)))
		step()
		if durable {
			if err := m.syncPages(at, b.slot); err != nil {
				return err
			}
		}
		atomic.OrUint64(b.word(addr/64), 1<<(addr%64)) // the commit
		step()
		m.store(bHint, addr+1)
		if durable {
			return m.syncPages(blocksHeader+8*(addr/64), 8)
		}
		return nil
	})
	return addr, err
}

// free finds a free block, searching from the hint on, round the bitmap.
func (b blocks) free() (uint64, bool) {
	words := b.words()
	first := b.m.load(bHint) / 64 % words
	for k := range words {
		i := (first + k) % words
		if empty := ^atomic.LoadUint64(b.word(i)) & b.valid(i); empty != 0 {
			return 64*i + uint64(bits.TrailingZeros64(empty)), true
		}
	}
	return 0, false
}

// blockCRC is the CRC of block addr holding d: that of a queue's frame,
// with the address for the position.
func blockCRC(addr uint64, d []byte) uint32 { return frameCRC(addr, d) }

// BlocksRead appends the live block at addr to b: ErrBounds past the last
// block, einval for a free one, ErrCorrupt if it fails its check.
func (h *Handle) BlocksRead(b []byte, addr uint64) ([]byte, error) {
	mark := len(b)
	err := h.structure(func(m *Mapping) error {
		s, err := m.blocks()
		if err != nil {
			return err
		}
		if addr >= s.n {
			return ErrBounds
		}
		if !s.live(addr) {
			return unix.EINVAL
		}
		b, err = s.copyBlock(b, addr)
		return err
	})
	if err != nil {
		return b[:mark], err
	}
	return b, nil
}

// copyBlock appends the block at addr to out and checks its CRC.
func (b blocks) copyBlock(out []byte, addr uint64) ([]byte, error) {
	at := b.data + addr*b.slot
	s := b.m.data[at : at+b.slot]
	mark := len(out)
	out = append(slices.Grow(out, int(b.size)), s[slotHeader:slotHeader+b.size]...)
	if uint64(blockCRC(addr, out[mark:])) != binary.LittleEndian.Uint64(s) {
		return out[:mark], ErrCorrupt
	}
	return out, nil
}

// BlocksFree makes the live block at addr free: ErrBounds past the last
// block, einval if it is free already. With durable, the bit is on the
// disk before it returns.
func (h *Handle) BlocksFree(addr uint64, durable bool) error {
	return h.structure(func(m *Mapping) error {
		b, err := m.blocks()
		if err != nil {
			return err
		}
		if addr >= b.n {
			return ErrBounds
		}
		if !b.live(addr) {
			return unix.EINVAL
		}
		atomic.AndUint64(b.word(addr/64), ^uint64(1<<(addr%64))) // the commit
		if durable {
			return m.syncPages(blocksHeader+8*(addr/64), 8)
		}
		return nil
	})
}

// BlocksScan appends the live blocks from addr from on, up to maxBlocks of
// them, each after what sep appends for its address and length (the
// caller's framing), and stops before the data would pass limit bytes
// (ErrNoMemory if that is the first). next is the address to go on from
// (the capacity when it reached the end). A block that fails its check
// gives ErrCorrupt.
func (h *Handle) BlocksScan(out []byte, from uint64, maxBlocks int, limit uint64, sep func([]byte, uint64, uint64) []byte) (_ []byte, next uint64, n int, err error) {
	mark := len(out)
	err = h.structure(func(m *Mapping) error {
		b, err := m.blocks()
		if err != nil {
			return err
		}
		for next = min(from, b.n); next < b.n && n < maxBlocks; next++ {
			if next%64 == 0 && atomic.LoadUint64(b.word(next/64)) == 0 {
				next += 63 // a word of free blocks
				continue
			}
			if !b.live(next) {
				continue
			}
			if uint64(len(out)-mark)+b.size+sepRoom > limit {
				if n == 0 {
					return ErrNoMemory
				}
				return nil
			}
			if out, err = b.copyBlock(sep(out, next, b.size), next); err != nil {
				return err
			}
			n++
		}
		next = min(next, b.n)
		return nil
	})
	if err != nil {
		return out[:mark], 0, 0, err
	}
	return out, next, n, nil
}
