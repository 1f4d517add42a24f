package mmap

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzQueueState: a queue whose state words and ring hold any bytes (a
// file another program damaged) never makes an operation panic or read
// outside the ring; each answers, or refuses with ErrCorrupt, and what a
// pop gives, a peek gave first.
func FuzzQueueState(f *testing.F) {
	f.Add(make([]byte, 48), make([]byte, 64))
	f.Add(binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(make([]byte, 0, 48), 0), 24), []byte{3, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, state, ring []byte) {
		path := filepath.Join(t.TempDir(), "q")
		h := newQueue(t, path, 64)
		h.structure(func(m *Mapping) error {
			copy(m.data[qHead:queueState], state)
			copy(m.data[QueueHeader:], ring)
			return nil
		})
		allowed := func(err error) bool {
			return err == nil || errors.Is(err, ErrCorrupt) || err == ErrFull || err == ErrNoMemory || errors.Is(err, unix.EINVAL)
		}
		peeked, _, _, perr := peek(h, 0, 2)
		popped, err := pop(h, 2)
		if !allowed(err) || !allowed(perr) {
			t.Fatalf("pop: %v, peek: %v", err, perr)
		}
		if (err == nil) != (perr == nil) || err == nil && !sameRecords(peeked, popped) {
			t.Fatalf("peek gave %q (%v), pop %q (%v)", peeked, perr, popped, err)
		}
		if err := h.QueuePush([][]byte{[]byte("x")}, false); !allowed(err) {
			t.Fatalf("push: %v", err)
		}
		if _, err := h.QueueLen(); !allowed(err) {
			t.Fatalf("len: %v", err)
		}
		if err := h.QueueAck(8, false); !allowed(err) {
			t.Fatalf("ack: %v", err)
		}
		os.Remove(path)
	})
}
