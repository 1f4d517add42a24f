package mmap

import (
	"sync"
	"sync/atomic"
)

// table maps ids to open things (handles, stages). Ids start at 1 and are
// never reused, so a stale id finds nothing (ErrClosed) rather than
// somebody else's. It is safe for concurrent use.
type table[T interface{ Close() error }] struct {
	mu   sync.RWMutex
	m    map[uint64]T
	last atomic.Uint64
}

func newTable[T interface{ Close() error }]() table[T] {
	return table[T]{m: make(map[uint64]T)}
}

func (t *table[T]) add(v T) uint64 {
	id := t.last.Add(1)
	t.mu.Lock()
	t.m[id] = v
	t.mu.Unlock()
	return id
}

func (t *table[T]) get(id uint64) (T, error) {
	t.mu.RLock()
	v, ok := t.m[id]
	t.mu.RUnlock()
	if !ok {
		return v, ErrClosed
	}
	return v, nil
}

// close removes id, so no new operation can find it, then closes what it
// named (which waits for the operations in progress).
func (t *table[T]) close(id uint64) error {
	t.mu.Lock()
	v, ok := t.m[id]
	delete(t.m, id)
	t.mu.Unlock()
	if !ok {
		return ErrClosed
	}
	return v.Close()
}

func (t *table[T]) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m)
}

func (t *table[T]) closeAll() {
	t.mu.Lock()
	all := t.m
	t.m = make(map[uint64]T)
	t.mu.Unlock()
	for _, v := range all {
		v.Close()
	}
}
