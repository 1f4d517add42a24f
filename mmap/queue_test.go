package mmap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// newQueue makes a queue file of capacity bytes at path and opens it.
func newQueue(t testing.TB, path string, capacity uint64) *Handle {
	t.Helper()
	if err := os.WriteFile(path, make([]byte, QueueHeader+capacity), 0o644); err != nil {
		t.Fatal(err)
	}
	h := openQueue(t, path)
	if err := h.QueueFormat(capacity); err != nil {
		t.Fatal(err)
	}
	return h
}

// openQueue maps the file at path and opens it as a queue.
func openQueue(t testing.TB, path string) *Handle {
	t.Helper()
	m, err := Open(path, ReadWrite, Options{Size: -1})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandle(m)
	t.Cleanup(func() { h.Close() })
	return h
}

// lenSep frames each record as its length in 8 bytes; records splits them.
func lenSep(b []byte, n uint64) []byte { return binary.LittleEndian.AppendUint64(b, n) }

func records(b []byte) [][]byte {
	out := [][]byte{}
	for len(b) > 0 {
		n := binary.LittleEndian.Uint64(b)
		out = append(out, b[8:8+n])
		b = b[8+n:]
	}
	return out
}

func pop(h *Handle, max int) ([][]byte, error) {
	b, n, err := h.QueuePop(nil, max, 1<<30, lenSep, false)
	recs := records(b)
	if err == nil && len(recs) != n {
		return nil, fmt.Errorf("pop said %d records, gave %d", n, len(recs))
	}
	return recs, err
}

func peek(h *Handle, cursor uint64, max int) (recs [][]byte, start, next uint64, err error) {
	b, start, next, n, err := h.QueuePeek(nil, cursor, max, 1<<30, lenSep)
	recs = records(b)
	if err == nil && len(recs) != n {
		return nil, 0, 0, fmt.Errorf("peek said %d records, gave %d", n, len(recs))
	}
	return recs, start, next, err
}

// all is every record from the front, by peeking; the queue is unchanged.
func all(t testing.TB, h *Handle) [][]byte {
	t.Helper()
	var out [][]byte
	for cursor := uint64(0); ; {
		recs, _, next, err := peek(h, cursor, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		out = append(out, recs...)
		cursor = next
	}
}

// checkQueue walks the queue front to back and checks what the operations
// rely on: every frame's CRC, the frames ending exactly at the tail, and
// the count.
func checkQueue(h *Handle) (recs [][]byte, err error) {
	err = h.structure(func(m *Mapping) error {
		q, err := m.openQueue()
		if err != nil {
			return err
		}
		head, tail := m.load(qHead), m.load(qTail)
		for pos := head; pos < tail; {
			n, err := q.frameAt(pos, tail)
			if err != nil {
				return fmt.Errorf("at %d: %w", pos, err)
			}
			b, err := q.copyRecord(nil, pos, n)
			if err != nil {
				return fmt.Errorf("at %d: %w", pos, err)
			}
			recs = append(recs, b)
			pos += frameSize(n)
		}
		if c := m.load(qCount); c != uint64(len(recs)) {
			return fmt.Errorf("count %d, %d records", c, len(recs))
		}
		return nil
	})
	return recs, err
}

// queueModel is what the queue should hold: the records and their
// positions.
type queueModel struct {
	cap  uint64
	recs [][]byte
	pos  []uint64
	head uint64 // the front's position
	tail uint64
}

func (q *queueModel) push(rs ...[]byte) bool {
	var need uint64
	for _, r := range rs {
		need += frameSize(uint64(len(r)))
	}
	if need > q.cap-(q.tail-q.head) {
		return false
	}
	for _, r := range rs {
		q.recs = append(q.recs, r)
		q.pos = append(q.pos, q.tail)
		q.tail += frameSize(uint64(len(r)))
	}
	return true
}

func (q *queueModel) pop(n int) [][]byte {
	n = min(n, len(q.recs))
	out := q.recs[:n:n]
	q.recs, q.pos = q.recs[n:], q.pos[n:]
	q.head = q.tail
	if len(q.pos) > 0 {
		q.head = q.pos[0]
	}
	return out
}

func sameRecords(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// Random operations on a small ring, through two handles of the file (two
// open file descriptions: the flock excludes them as it does two OS
// processes) and reopened now and then, against a model: every answer,
// every position, and the full/not full decision to the byte.
func TestQueueMatchesAModel(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprintf("seed %d", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			path := filepath.Join(t.TempDir(), "q")
			capacity := uint64(16 + 8*r.IntN(120))
			hs := []*Handle{newQueue(t, path, capacity), openQueue(t, path)}
			model := &queueModel{cap: capacity}
			serial := 0
			record := func() []byte {
				serial++
				b := make([]byte, r.IntN(int(capacity/3)))
				for i := range b {
					b[i] = byte(serial + i)
				}
				return b
			}
			var full, popped, acked int
			for i := range 3000 {
				h := hs[r.IntN(2)]
				switch op := r.IntN(10); op {
				case 0, 1:
					rec := record()
					err := h.QueuePush([][]byte{rec}, r.IntN(50) == 0)
					if want := model.push(rec); want != (err == nil) || !want && err != ErrFull {
						t.Fatalf("op %d: push of %d bytes: %v, model fits %v", i, len(rec), err, want)
					}
					full += b2i(err != nil)
				case 2:
					var rs [][]byte
					for range r.IntN(5) {
						rs = append(rs, record())
					}
					err := h.QueuePush(rs, false)
					if want := model.push(rs...); want != (err == nil) || !want && err != ErrFull {
						t.Fatalf("op %d: push_many of %d: %v, model fits %v", i, len(rs), err, want)
					}
				case 3, 4:
					n := r.IntN(4)
					got, err := pop(h, n)
					if want := model.pop(n); err != nil || !sameRecords(got, want) {
						t.Fatalf("op %d: pop %d: %d records %v, want %d", i, n, len(got), err, len(want))
					}
					popped += len(got)
				case 5:
					cursor := uint64(r.IntN(int(model.tail + 16)))
					if r.IntN(2) == 0 && len(model.pos) > 0 {
						cursor = model.pos[r.IntN(len(model.pos))]
					} else if cursor > model.head {
						cursor = 0
					}
					n := r.IntN(4)
					got, start, next, err := peek(h, cursor, n)
					k := 0
					for k < len(model.pos) && model.pos[k] < cursor {
						k++
					}
					want := model.recs[k:min(k+n, len(model.recs))]
					wantStart := model.tail
					if k < len(model.pos) {
						wantStart = model.pos[k]
					}
					wantNext := wantStart
					if len(want) > 0 {
						last := k + len(want) - 1
						wantNext = model.pos[last] + frameSize(uint64(len(model.recs[last])))
					}
					if err != nil || !sameRecords(got, want) || start != wantStart || next != wantNext {
						t.Fatalf("op %d: peek %d from %d: %d records, %d..%d, %v; want %d, %d..%d",
							i, n, cursor, len(got), start, next, err, len(want), wantStart, wantNext)
					}
				case 6:
					// at-least-once: peek the front, then ack it
					got, start, _, err := peek(h, 0, 1)
					if err != nil || len(got) != len(model.recs[:min(1, len(model.recs))]) {
						t.Fatalf("op %d: peek front: %d %v", i, len(got), err)
					}
					if len(got) == 0 {
						if err := h.QueueAck(start, false); err != unix.EINVAL {
							t.Fatalf("op %d: ack of an empty queue's tail: %v", i, err)
						}
						continue
					}
					if err := h.QueueAck(start, r.IntN(20) == 0); err != nil || !bytes.Equal(got[0], model.pop(1)[0]) {
						t.Fatalf("op %d: ack: %v", i, err)
					}
					if err := h.QueueAck(start, false); err != nil {
						t.Fatalf("op %d: a second ack is not ok: %v", i, err)
					}
					if len(model.pos) > 1 {
						if err := h.QueueAck(model.pos[1], false); err != unix.EINVAL {
							t.Fatalf("op %d: ack of the second record: %v", i, err)
						}
					}
					acked++
				case 7:
					if n, err := h.QueueLen(); err != nil || n != uint64(len(model.recs)) {
						t.Fatalf("op %d: len %d %v, want %d", i, n, err, len(model.recs))
					}
				case 8:
					if got := all(t, h); !sameRecords(got, model.recs) {
						t.Fatalf("op %d: fold gave %d records, want %d", i, len(got), len(model.recs))
					}
				case 9:
					k := r.IntN(2)
					hs[k].Close()
					hs[k] = openQueue(t, path)
					if c, err := hs[k].QueueOpen(); err != nil || c != capacity {
						t.Fatalf("op %d: reopen: %d %v", i, c, err)
					}
				}
			}
			if recs, err := checkQueue(hs[0]); err != nil || !sameRecords(recs, model.recs) {
				t.Fatalf("at the end: %d records %v, want %d", len(recs), err, len(model.recs))
			}
			if full == 0 || popped == 0 || acked == 0 || model.head < 3*capacity {
				t.Fatalf("the run did not fill (%d), pop (%d), ack (%d) and wrap (head %d, capacity %d)",
					full, popped, acked, model.head, capacity)
			}
		})
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// A ring that wraps many times, with records whose frames straddle its end
// at every offset: pushed until full, popped until empty, in a loop.
func TestQueueWrapsManyTimes(t *testing.T) {
	const capacity = 1000
	h := newQueue(t, filepath.Join(t.TempDir(), "q"), capacity)
	next, want := 0, 0
	for lap := range 500 {
		pushed := 0
		for {
			rec := bytes.Repeat([]byte{byte(next)}, 1+next%45)
			if err := h.QueuePush([][]byte{rec}, false); err == ErrFull {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			next++
			pushed++
		}
		if pushed == 0 {
			t.Fatalf("lap %d: nothing fits in an empty ring", lap)
		}
		for {
			got, err := pop(h, 1+lap%7)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 {
				break
			}
			for _, rec := range got {
				if exp := bytes.Repeat([]byte{byte(want)}, 1+want%45); !bytes.Equal(rec, exp) {
					t.Fatalf("lap %d: record %d is %v", lap, want, rec)
				}
				want++
			}
		}
		if want != next {
			t.Fatalf("lap %d: popped %d of %d", lap, want, next)
		}
	}
	var head uint64
	h.structure(func(m *Mapping) error { head = m.load(qHead); return nil })
	if head < 400*capacity {
		t.Fatalf("the head is at %d: the ring went round only %d times", head, head/capacity)
	}
}

// push_many is all or nothing, and a record the size of the ring fits only
// in an empty ring.
func TestQueuePushManyIsAllOrNothing(t *testing.T) {
	h := newQueue(t, filepath.Join(t.TempDir(), "q"), 64)
	if err := h.QueuePush([][]byte{make([]byte, 48)}, false); err != nil {
		t.Fatalf("a record of the ring's size less its frame: %v", err)
	}
	if err := h.QueuePush([][]byte{{}}, false); err != ErrFull {
		t.Fatalf("an empty record in a full ring: %v", err)
	}
	pop(h, 1)
	if err := h.QueuePush([][]byte{{1}, {2}, {3}}, false); err != ErrFull {
		t.Fatalf("three records of 72 bytes of frames: %v", err)
	}
	if n, _ := h.QueueLen(); n != 0 {
		t.Fatalf("the refused push_many left %d records", n)
	}
	if err := h.QueuePush([][]byte{{1}, {2}, {}}, false); err != nil {
		t.Fatalf("three records that fill the ring: %v", err)
	}
	if got, _ := pop(h, 10); len(got) != 3 || got[0][0] != 1 || got[1][0] != 2 || len(got[2]) != 0 {
		t.Fatalf("popped %v", got)
	}
	if err := h.QueuePush([][]byte{make([]byte, 49)}, false); err != ErrFull {
		t.Fatalf("a record larger than the ring: %v", err)
	}
}

// pop and peek stop before a record that would take the reply past its
// limit; if that is the first, nothing is removed and the answer is
// ErrNoMemory.
func TestQueuePopStopsAtTheLimit(t *testing.T) {
	h := newQueue(t, filepath.Join(t.TempDir(), "q"), 4096)
	h.QueuePush([][]byte{make([]byte, 100), make([]byte, 100), make([]byte, 1000)}, false)
	b, n, err := h.QueuePop(nil, 10, 300, lenSep, false)
	if err != nil || n != 2 || len(b) != 216 {
		t.Fatalf("pop under a limit of 300: %d records, %d bytes, %v", n, len(b), err)
	}
	if _, n, err := h.QueuePop(nil, 10, 300, lenSep, false); err != ErrNoMemory || n != 0 {
		t.Fatalf("pop of a record over the limit: %d %v", n, err)
	}
	if got, _ := pop(h, 10); len(got) != 1 || len(got[0]) != 1000 {
		t.Fatalf("the record over the limit did not stay: %v", got)
	}
}

// flip changes one byte of the file, as a disk error or another program
// would, through the file rather than the mapping.
func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	f.ReadAt(b, off)
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// A flipped byte in a record's data, length or CRC is found when the
// record is read: pop gives the records before it, then ErrCorrupt
// (ebadmsg) and removes nothing; peek and ack say the same. Those before it
// were whole.
func TestQueueFindsAFlippedByte(t *testing.T) {
	for name, at := range map[string]int64{"data": 16 + 3, "length": 0, "crc": 9, "zero word": 13} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "q")
			h := newQueue(t, path, 4096)
			h.QueuePush([][]byte{[]byte("first"), []byte("second record"), []byte("third")}, false)
			flip(t, path, int64(QueueHeader+frameSize(5))+at) // in the second record
			got, err := pop(h, 3)
			if err != nil || len(got) != 1 || string(got[0]) != "first" {
				t.Fatalf("pop of 3: %q %v", got, err)
			}
			for range 2 {
				if got, err := pop(h, 3); !errors.Is(err, ErrCorrupt) || !errors.Is(err, unix.EBADMSG) || len(got) != 0 {
					t.Fatalf("pop of the flipped record: %q %v", got, err)
				}
			}
			if _, _, _, err := peek(h, 0, 1); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("peek: %v", err)
			}
			if err := h.QueueAck(frameSize(5), false); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ack: %v", err)
			}
			if n, err := h.QueueLen(); n != 2 || err != nil {
				t.Fatalf("len %d %v: the flipped record must stay", n, err)
			}
		})
	}
}

// A file that is not a queue of this version, or whose size is not the
// one its header gives, is refused with einval and left as it was.
func TestQueueRefusesOtherFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	newQueue(t, good, 64).Close()
	goodBytes, _ := os.ReadFile(good)
	resealed := func(edit func(b []byte)) []byte {
		b := bytes.Clone(goodBytes)
		edit(b)
		sealHeader(b[:queueFixed])
		return b
	}
	blocksFile := filepath.Join(dir, "blocks")
	newBlocks(t, blocksFile, 8, 8).Close()
	blockBytes, _ := os.ReadFile(blocksFile)
	cases := map[string][]byte{
		"zeros":                       make([]byte, QueueHeader+64),
		"a block store":               blockBytes,
		"a counters file":             append([]byte("IOMMAPCT\x01\x00\x00\x00\x20\x00\x00\x00\x01"), make([]byte, 4200)...),
		"version 2":                   resealed(func(b []byte) { b[8] = 2 }),
		"another header size":         resealed(func(b []byte) { b[13] = 0x20 }),
		"a capacity not a multiple 8": resealed(func(b []byte) { b[qCapacity] = 60 }),
		"a flipped magic":             append([]byte("IOMMAPQV"), goodBytes[8:]...),
		"a flipped capacity":          append(append(bytes.Clone(goodBytes[:qCapacity]), 65), goodBytes[qCapacity+1:]...),
		"flags":                       resealed(func(b []byte) { b[24] = 1 }),
		"longer than its header says": append(bytes.Clone(goodBytes), make([]byte, 8)...),
		"shorter than a header":       goodBytes[:100],
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, "case")
			os.WriteFile(p, content, 0o644)
			m, err := Open(p, ReadWrite, Options{Size: -1})
			if err != nil {
				t.Fatal(err)
			}
			h := NewHandle(m)
			defer h.Close()
			if _, err := h.QueueOpen(); !errors.Is(err, unix.EINVAL) {
				t.Errorf("open: %v", err)
			}
			if err := h.QueuePush([][]byte{[]byte("x")}, false); !errors.Is(err, unix.EINVAL) {
				t.Errorf("push: %v", err)
			}
			if _, err := pop(h, 1); !errors.Is(err, unix.EINVAL) {
				t.Errorf("pop: %v", err)
			}
			if name != "zeros" {
				if err := h.QueueFormat(64); !errors.Is(err, unix.EINVAL) {
					t.Errorf("format over it: %v", err)
				}
			}
			if now, _ := os.ReadFile(p); !bytes.Equal(now, content) {
				t.Errorf("the file changed")
			}
		})
	}
}

// State that no operation can leave (a head past the tail, a count that
// does not fit, an unknown intent) is refused with ErrCorrupt.
func TestQueueRefusesABrokenState(t *testing.T) {
	for name, c := range map[string]struct{ off, v uint64 }{
		"head past tail":       {qHead, 64},
		"unaligned tail":       {qTail, 3},
		"tail beyond the ring": {qTail, 4096 + 8},
		"count with no record": {qCount, 1},
		"an unknown intent":    {qIntent, 9},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "q")
			h := newQueue(t, path, 4096)
			h.structure(func(m *Mapping) error { m.store(c.off, c.v); return nil })
			if _, err := h.QueueLen(); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("len: %v", err)
			}
		})
	}
}

// An intent left by a process that died is completed by the next
// operation: committed (the tail is the target) or not.
func TestQueueCompletesAnIntent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q")
	h := newQueue(t, path, 4096)
	h.QueuePush([][]byte{[]byte("a"), []byte("b")}, false)
	h.structure(func(m *Mapping) error {
		// a push of one record that died after its tail, before count
		q, _ := m.queue()
		q.writeFrame(m.load(qTail), []byte("c"))
		m.store(qTarget, m.load(qTail)+frameSize(1))
		m.store(qNextCount, 3)
		m.store(qIntent, intentPush)
		m.store(qTail, m.load(qTarget))
		return nil
	})
	if n, err := h.QueueLen(); n != 3 || err != nil {
		t.Fatalf("len after a committed intent: %d %v", n, err)
	}
	h.structure(func(m *Mapping) error {
		// a pop that died before its head
		m.store(qTarget, m.load(qHead)+frameSize(1))
		m.store(qNextCount, 2)
		m.store(qIntent, intentPop)
		return nil
	})
	if got, err := pop(h, 5); err != nil || len(got) != 3 {
		t.Fatalf("after an intent that did not commit: %q %v", got, err)
	}
}

// A file cut under the mapping: the structure's operations give ErrFault
// (sigbus), the engine goes on.
func TestQueueOnATruncatedFileFaults(t *testing.T) {
	skipUnderEmulation(t, needsFaultAddress)
	path := filepath.Join(t.TempDir(), "q")
	h := newQueue(t, path, 1<<16)
	h.QueuePush([][]byte{make([]byte, 5000)}, false)
	if err := os.Truncate(path, 100); err != nil {
		t.Fatal(err)
	}
	if err := h.QueuePush([][]byte{[]byte("x")}, false); !errors.Is(err, ErrFault) {
		t.Fatalf("push: %v", err)
	}
	if _, err := pop(h, 1); !errors.Is(err, ErrFault) {
		t.Fatalf("pop: %v", err)
	}
}

// The handle's mode and sharing: a queue needs a shared read-write mapping.
func TestQueueNeedsASharedReadWriteMapping(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q")
	newQueue(t, path, 64).Close()
	for _, c := range []struct {
		mode Mode
		opts Options
		want error
	}{{Read, Options{Size: -1}, ErrNoAccess}, {Write, Options{Size: -1}, ErrNoAccess}, {ReadWrite, Options{Size: -1, Private: true}, unix.EINVAL}} {
		m, err := Open(path, c.mode, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		h := NewHandle(m)
		if _, err := h.QueueLen(); err != c.want {
			t.Errorf("%v %+v: %v, want %v", c.mode, c.opts, err, c.want)
		}
		h.Close()
		if _, err := h.QueueLen(); err != ErrClosed {
			t.Errorf("closed: %v", err)
		}
	}
}

// A durable push and pop answer as the others do (the msync is on the way).
func TestQueueDurable(t *testing.T) {
	h := newQueue(t, filepath.Join(t.TempDir(), "q"), 3*4096)
	for i := range 20 {
		// records of 1000 bytes: some straddle the ring's end, so both of its parts are flushed
		if err := h.QueuePush([][]byte{bytes.Repeat([]byte{byte(i)}, 1000)}, true); err != nil {
			t.Fatal(err)
		}
		b, n, err := h.QueuePop(nil, 1, 1<<20, lenSep, true)
		if err != nil || n != 1 || records(b)[0][999] != byte(i) {
			t.Fatalf("pop %d: %v", i, err)
		}
	}
}
