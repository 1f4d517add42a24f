package mmap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"

	"golang.org/x/sys/unix"
)

// A queue is a persistent FIFO of binaries in one file: a ring of framed
// records after a header (iommap_queue; the format is in docs/API.md).
//
//	offset  size  field
//	     0     8  magic "IOMMAPQU"
//	     8     4  version 1
//	    12     4  header size 4096 (where the ring starts)
//	    16     8  capacity C: the ring's bytes, a multiple of 8, at least 16
//	    24     4  flags: 0
//	    28     4  CRC32C of bytes 0..27
//	    64     8  head: the position of the first record
//	    72     8  tail: the position after the last record
//	    80     8  count: how many records lie between head and tail
//	    88     8  intent: 0, or the operation in progress (1 push, 2 pop)
//	    96     8  intent's target: the head or tail it publishes
//	   104     8  intent's count: the count after it
//	  4096     C  the ring
//
// Positions are 64-bit byte counts that only grow; a position p is the
// ring's byte p mod C, and tail - head is the bytes in use (at most C).
// A record of n bytes is a frame of 16 + n bytes rounded up to 8: its
// length n (8 bytes), the CRC32C of its position, its length (8 bytes
// each) and its data (4 bytes), 4 bytes of 0, then the data. A frame may
// wrap from the ring's end to its start. The CRC covers the position, so a
// frame left from an earlier lap of the ring, or read at the wrong place,
// fails it as a flipped byte does.
//
// Commit points. A push writes its frames into the free space, then
// publishes the new tail with one aligned 8-byte store: before it the
// records do not exist, after it they all do. A pop copies its records
// out, then publishes the new head. count is kept beside them: each
// operation first writes its intent (target and new count, then the
// intent word), then the head or tail, then count, then clears the
// intent. A process killed in between leaves the intent set, and the next
// operation, in any process, completes it: the head or tail equal to the
// target means it committed, so count takes the new value; otherwise
// nothing happened.
const (
	queueMagic   = "IOMMAPQU"
	queueVersion = 1
	// QueueHeader is the size of a queue file's header: its ring starts
	// there, so the file is QueueHeader + capacity bytes.
	QueueHeader = 4096
	// QueueMinCapacity is the smallest ring: one empty record.
	QueueMinCapacity = frameHeader

	queueFixed  = 32 // the fixed fields and their CRC
	frameHeader = 16

	qCapacity  = 16
	qHead      = 64
	qTail      = 72
	qCount     = 80
	qIntent    = 88
	qTarget    = 96
	qNextCount = 104

	intentNone = 0
	intentPush = 1
	intentPop  = 2
)

var (
	// ErrFull: the records do not fit in the ring's free space; nothing
	// was written. The Erlang side sees it as full.
	ErrFull = errors.New("mmap: no room for the records")
	// ErrCorrupt: a record or the queue's state fails its check (a byte
	// changed under us, or a power loss before the records were synced).
	// Nothing is removed or changed. The Erlang side sees ebadmsg.
	ErrCorrupt = fmt.Errorf("mmap: a record fails its check: %w", unix.EBADMSG)
	// errNotStructure: not a file of the kind asked for, or of another
	// version, or of a size its header does not give (einval).
	errNotStructure = fmt.Errorf("mmap: not a file of this kind: %w", unix.EINVAL)
)

// frameSize is the bytes a record of n bytes takes in the ring.
func frameSize(n uint64) uint64 { return frameHeader + (n+7)&^7 }

// queue is a checked view of a queue file's mapping.
type queue struct {
	m    *Mapping
	ring []byte
	cap  uint64
}

// queue checks the header and the size of the file.
func (m *Mapping) queue() (queue, error) {
	h, err := m.header(queueMagic, queueVersion, QueueHeader, queueFixed)
	if err != nil {
		return queue{}, err
	}
	c := binary.LittleEndian.Uint64(h[qCapacity:])
	flags := binary.LittleEndian.Uint32(h[24:])
	if flags != 0 || c%8 != 0 || c < QueueMinCapacity || uint64(len(m.data))-QueueHeader != c {
		return queue{}, errNotStructure
	}
	return queue{m: m, ring: m.data[QueueHeader:], cap: c}, nil
}

// openQueue checks the file, completes an operation a dead process left
// half done, and checks the state.
func (m *Mapping) openQueue() (queue, error) {
	q, err := m.queue()
	if err != nil {
		return q, err
	}
	return q, q.recover()
}

// recover completes or forgets the intent of an operation whose process
// died (see the commit points above), then checks head, tail and count.
func (q queue) recover() error {
	m := q.m
	switch m.load(qIntent) {
	case intentNone:
	case intentPush:
		if m.load(qTail) == m.load(qTarget) {
			m.store(qCount, m.load(qNextCount))
		}
		m.store(qIntent, intentNone)
	case intentPop:
		if m.load(qHead) == m.load(qTarget) {
			m.store(qCount, m.load(qNextCount))
		}
		m.store(qIntent, intentNone)
	default:
		return ErrCorrupt
	}
	head, tail, count := m.load(qHead), m.load(qTail), m.load(qCount)
	if head > tail || tail-head > q.cap || head%8 != 0 || tail%8 != 0 ||
		count > (tail-head)/frameHeader || (count == 0) != (head == tail) {
		return ErrCorrupt
	}
	return nil
}

// commit publishes target at word (qHead or qTail) with its intent
// around it, so count follows it whatever point a crash stops at.
func (q queue) commit(intent, word, target, count uint64) {
	m := q.m
	m.store(qTarget, target)
	m.store(qNextCount, count)
	step()
	m.store(qIntent, intent)
	step()
	m.store(word, target) // the commit
	step()
	m.store(qCount, count)
	step()
	m.store(qIntent, intentNone)
}

// write copies src into the ring at position pos, wrapping at its end.
func (q queue) write(pos uint64, src []byte) {
	n := copy(q.ring[pos%q.cap:], src)
	copy(q.ring, src[n:])
}

// read fills dst from the ring at position pos, wrapping at its end.
func (q queue) read(dst []byte, pos uint64) {
	n := copy(dst, q.ring[pos%q.cap:])
	copy(dst[n:], q.ring)
}

// frameCRC is the CRC of a record at pos with data d.
func frameCRC(pos uint64, d []byte) uint32 {
	var pre [16]byte
	binary.LittleEndian.PutUint64(pre[:], pos)
	binary.LittleEndian.PutUint64(pre[8:], uint64(len(d)))
	return crc32.Update(crc32.Checksum(pre[:], crcTable), crcTable, d)
}

// writeFrame writes one record's frame at pos: the data, then its header.
func (q queue) writeFrame(pos uint64, d []byte) {
	q.write(pos+frameHeader, d)
	step()
	var hdr [frameHeader]byte
	binary.LittleEndian.PutUint64(hdr[:], uint64(len(d)))
	binary.LittleEndian.PutUint32(hdr[8:], frameCRC(pos, d))
	q.write(pos, hdr[:])
	step()
}

// frameAt reads the length of the record at pos, which must lie before
// tail, and checks that its frame ends by tail.
func (q queue) frameAt(pos, tail uint64) (uint64, error) {
	var hdr [frameHeader]byte
	q.read(hdr[:], pos)
	n := binary.LittleEndian.Uint64(hdr[:])
	if pos%8 != 0 || tail-pos < frameHeader || binary.LittleEndian.Uint32(hdr[12:]) != 0 || n > tail-pos-frameHeader {
		return 0, ErrCorrupt
	}
	return n, nil
}

// copyRecord appends the data of the record of n bytes at pos to b and
// checks it against its CRC. On a mismatch b comes back as it was.
func (q queue) copyRecord(b []byte, pos, n uint64) ([]byte, error) {
	var hdr [frameHeader]byte
	q.read(hdr[:], pos)
	at := len(b)
	b = slices.Grow(b, int(n))[:at+int(n)]
	q.read(b[at:], pos+frameHeader)
	if frameCRC(pos, b[at:]) != binary.LittleEndian.Uint32(hdr[8:]) {
		return b[:at], ErrCorrupt
	}
	return b, nil
}

// QueueFormat makes the mapping of a new, zero-filled file a queue of
// capacity bytes: the file must be exactly QueueHeader + capacity bytes,
// capacity a multiple of 8 and at least QueueMinCapacity, and the header
// all zero (anything else is refused with einval, unchanged).
func (h *Handle) QueueFormat(capacity uint64) error {
	return h.structure(func(m *Mapping) error {
		if capacity%8 != 0 || capacity < QueueMinCapacity || uint64(len(m.data)) < QueueHeader ||
			uint64(len(m.data))-QueueHeader != capacity || !m.fresh(QueueHeader) {
			return errNotStructure
		}
		hdr := m.data[:queueFixed]
		copy(hdr, queueMagic)
		binary.LittleEndian.PutUint32(hdr[8:], queueVersion)
		binary.LittleEndian.PutUint32(hdr[12:], QueueHeader)
		binary.LittleEndian.PutUint64(hdr[qCapacity:], capacity)
		sealHeader(hdr)
		return m.syncPages(0, QueueHeader)
	})
}

// QueueOpen checks that the mapping is a queue, completes an operation a
// dead process left half done, and gives the ring's capacity.
func (h *Handle) QueueOpen() (capacity uint64, err error) {
	err = h.structure(func(m *Mapping) error {
		q, err := m.openQueue()
		capacity = q.cap
		return err
	})
	return capacity, err
}

// QueuePush appends the records at the tail, all or none: if they do not
// all fit in the free space it gives ErrFull and writes nothing. They are
// visible once the tail is published; with durable, their bytes are on the
// disk before that, and the tail after (msync), before it returns.
func (h *Handle) QueuePush(recs [][]byte, durable bool) error {
	return h.structure(func(m *Mapping) error {
		q, err := m.openQueue()
		if err != nil {
			return err
		}
		head, tail := m.load(qHead), m.load(qTail)
		var need uint64
		for _, r := range recs {
			need += frameSize(uint64(len(r)))
			if need > q.cap-(tail-head) {
				return ErrFull
			}
		}
		if len(recs) == 0 {
			return nil
		}
		pos := tail
		for _, r := range recs {
			q.writeFrame(pos, r)
			pos += frameSize(uint64(len(r)))
		}
		if durable {
			if err := q.syncRing(tail, need); err != nil {
				return err
			}
		}
		q.commit(intentPush, qTail, pos, m.load(qCount)+uint64(len(recs)))
		if durable {
			return m.syncPages(0, queueState)
		}
		return nil
	})
}

// queueState is the end of the words a commit writes: the page that holds
// them is the one a durable commit flushes.
const queueState = qNextCount + 8

// syncRing flushes the pages of the ring's n bytes at position pos.
func (q queue) syncRing(pos, n uint64) error {
	off := pos % q.cap
	first := min(n, q.cap-off)
	if err := q.m.syncPages(QueueHeader+off, first); err != nil {
		return err
	}
	return q.m.syncPages(QueueHeader, n-first)
}

// QueuePop removes up to maxRecs records from the head and appends their data
// to b, each after the separator sep appends for its length (the caller's
// framing); n says how many. It stops before a record that would take the
// data past limit bytes; if that is the first, nothing is removed and the
// answer is ErrNoMemory. A record that fails its check stops the pop there
// and stays in the queue: the records before it are removed and given; if
// it is the first, the answer is ErrCorrupt. With durable, the new head is
// flushed to the disk before it returns.
func (h *Handle) QueuePop(b []byte, maxRecs int, limit uint64, sep func([]byte, uint64) []byte, durable bool) (out []byte, n int, err error) {
	start := len(b)
	err = h.structure(func(m *Mapping) error {
		q, err := m.openQueue()
		if err != nil {
			return err
		}
		head := m.load(qHead)
		var pos uint64
		b, pos, n, err = q.collect(b, head, maxRecs, limit, sep)
		if n == 0 {
			return err
		}
		q.commit(intentPop, qHead, pos, m.load(qCount)-uint64(n))
		if durable {
			// The records are gone from the queue now: failing to flush the
			// new head must not lose them too (after a power loss they may
			// come back, a duplicate rather than a loss).
			_ = m.syncPages(0, queueState)
		}
		return nil
	})
	if err != nil {
		return b[:start], 0, err
	}
	return b, n, nil
}

// sepRoom bounds what a separator appends.
const sepRoom = 32

// collect appends the data of up to maxRecs records from pos on (see
// QueuePop) and gives the position after the last. err says why it
// stopped short, when it did: it matters only if n is 0.
func (q queue) collect(b []byte, pos uint64, maxRecs int, limit uint64, sep func([]byte, uint64) []byte) (out []byte, next uint64, n int, err error) {
	tail := q.m.load(qTail)
	origin := len(b)
	for ; n < maxRecs && pos < tail; n++ {
		size, err := q.frameAt(pos, tail)
		if err != nil {
			return b, pos, n, err
		}
		if size > limit || uint64(len(b)-origin)+size+sepRoom > limit {
			return b, pos, n, ErrNoMemory
		}
		mark := len(b)
		if b, err = q.copyRecord(sep(b, size), pos, size); err != nil {
			return b[:mark], pos, n, err
		}
		pos += frameSize(size)
	}
	return b, pos, n, nil
}

// QueuePeek appends the data of up to maxRecs records from position cursor on,
// without removing them (see QueuePop for sep, limit and errors). A cursor
// before the head starts at the head (0 is the front); one at or past the
// tail gives none. start is where it started, next the position after the
// last record given: the cursor for the records after them, and the
// argument to QueueAck of the first.
func (h *Handle) QueuePeek(b []byte, cursor uint64, maxRecs int, limit uint64, sep func([]byte, uint64) []byte) (out []byte, start, next uint64, n int, err error) {
	mark := len(b)
	err = h.structure(func(m *Mapping) error {
		q, err := m.openQueue()
		if err != nil {
			return err
		}
		start = min(max(cursor, m.load(qHead)), m.load(qTail))
		b, next, n, err = q.collect(b, start, maxRecs, limit, sep)
		if n > 0 {
			err = nil
		}
		return err
	})
	if err != nil {
		return b[:mark], 0, 0, 0, err
	}
	return b, start, next, n, nil
}

// QueueAck removes the record at pos if it is the front: what a consumer
// that peeked it does once it has handled it (at-least-once consumption).
// A record already gone (pos before the head: another consumer took it)
// is no error; a pos that is not the front's, or not a record's, gives
// einval. The record's check is made again before it goes.
func (h *Handle) QueueAck(pos uint64, durable bool) error {
	return h.structure(func(m *Mapping) error {
		q, err := m.openQueue()
		if err != nil {
			return err
		}
		head, tail := m.load(qHead), m.load(qTail)
		switch {
		case pos < head:
			return nil
		case pos != head || pos == tail:
			return unix.EINVAL
		}
		size, err := q.frameAt(pos, tail)
		if err != nil {
			return err
		}
		if _, err := q.copyRecord(nil, pos, size); err != nil {
			return err
		}
		q.commit(intentPop, qHead, pos+frameSize(size), m.load(qCount)-1)
		if durable {
			return m.syncPages(0, queueState)
		}
		return nil
	})
}

// QueueLen is the number of records in the queue.
func (h *Handle) QueueLen() (n uint64, err error) {
	err = h.structure(func(m *Mapping) error {
		if _, err := m.openQueue(); err != nil {
			return err
		}
		n = m.load(qCount)
		return nil
	})
	return n, err
}
