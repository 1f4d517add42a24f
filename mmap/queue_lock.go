package mmap

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The persistent structures (the queue, queue.go, and the block store,
// blocks.go) live in a file that several OS processes may map at once: two
// engines, or an engine and a program of another language that follows the
// documented format. What makes one operation exclusive is the kernel's
// file lock on the mapping's descriptor (flock LOCK_EX), taken around every
// operation and dropped by the kernel when its holder dies, so a killed
// process never leaves the structure locked. Within the engine, the
// handle's lock is taken alone as well: a flock belongs to the open file
// description, so two goroutines on one handle would share it.
//
// A flock blocks, so these operations never run on the engine's main loop.

// crcTable is CRC32C (Castagnoli): a CPU instruction on amd64 and arm64.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// crashHook, when set (by the crash tests' child process only), is called
// between the steps of an operation that change the file, so a test can
// kill the process at each one.
var crashHook func()

func step() {
	if crashHook != nil {
		crashHook()
	}
}

// structure runs f on the mapping with the handle's lock held alone, the
// file locked, and the fault guard on, so a file truncated under the
// mapping gives ErrFault. It needs a shared read-write mapping: a private
// one would keep its changes to itself.
func (h *Handle) structure(f func(m *Mapping) error) (err error) {
	m, err := h.writer(true)
	if err != nil {
		return err
	}
	defer h.mu.Unlock()
	if !m.mode.CanRead() {
		return ErrNoAccess
	}
	if m.opts.Private {
		return unix.EINVAL
	}
	if err := flock(m.fd, unix.LOCK_EX); err != nil {
		return err
	}
	defer flock(m.fd, unix.LOCK_UN)
	defer unprotect(protect(), &err)
	return f(m)
}

// flock retries a lock the Go runtime's signals interrupted.
func flock(fd, how int) error {
	for {
		err := unix.Flock(fd, how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// The words that commit an operation are loaded and stored atomically: an
// 8-byte aligned word is written whole, so a process killed at any point
// leaves either the old value or the new. (The file is little-endian; so
// are amd64 and arm64, the only hosts the engine runs on.)

func (m *Mapping) word64(off uint64) *uint64 {
	return (*uint64)(unsafe.Pointer(&m.data[off]))
}

func (m *Mapping) load(off uint64) uint64 { return atomic.LoadUint64(m.word64(off)) }

func (m *Mapping) store(off, v uint64) { atomic.StoreUint64(m.word64(off), v) }

// header checks a structure's fixed header: magic, version, header size,
// and a CRC32C of its first n-4 bytes, kept in its last 4. Anything else is
// not a file of this kind (einval).
func (m *Mapping) header(magic string, version, size uint32, n int) ([]byte, error) {
	if len(m.data) < int(size) || int(size) < n {
		return nil, errNotStructure
	}
	h := m.data[:n]
	le := binary.LittleEndian
	if string(h[:8]) != magic || le.Uint32(h[8:]) != version || le.Uint32(h[12:]) != size ||
		crc32.Checksum(h[:n-4], crcTable) != le.Uint32(h[n-4:]) {
		return nil, errNotStructure
	}
	return h, nil
}

// sealHeader writes the CRC of a header's first n-4 bytes into its last 4.
func sealHeader(h []byte) {
	n := len(h)
	binary.LittleEndian.PutUint32(h[n-4:], crc32.Checksum(h[:n-4], crcTable))
}

// fresh tells whether the first n bytes are all zero: a new file, which
// format may fill. Formatting anything else would destroy it.
func (m *Mapping) fresh(n int) bool {
	for _, b := range m.data[:n] {
		if b != 0 {
			return false
		}
	}
	return true
}

// syncPages flushes the pages that cover [off, off+n) to the disk.
func (m *Mapping) syncPages(off, n uint64) error {
	if n == 0 {
		return nil
	}
	return unix.Msync(m.cover(off, n), unix.MS_SYNC)
}

// le64 appends v little-endian, for the bytes a CRC covers.
func le64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }
