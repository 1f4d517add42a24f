package mmap

import (
	"sync"
	"sync/atomic"
)

// Registry maps handle ids to open Handles. It is safe for concurrent use.
// Ids start at 1 and are never reused, so a stale id finds nothing (closed)
// rather than somebody else's file.
type Registry struct {
	mu      sync.RWMutex
	handles map[uint64]*Handle
	last    atomic.Uint64
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{handles: make(map[uint64]*Handle)}
}

// Add registers m and returns its id.
func (r *Registry) Add(m *Mapping) uint64 {
	id := r.last.Add(1)
	r.mu.Lock()
	r.handles[id] = NewHandle(m)
	r.mu.Unlock()
	return id
}

// Get returns the handle for id, or ErrClosed if there is none.
func (r *Registry) Get(id uint64) (*Handle, error) {
	r.mu.RLock()
	h := r.handles[id]
	r.mu.RUnlock()
	if h == nil {
		return nil, ErrClosed
	}
	return h, nil
}

// Close removes id, so no new operation can find it, then closes the handle
// once the operations in progress are done.
func (r *Registry) Close(id uint64) error {
	r.mu.Lock()
	h := r.handles[id]
	delete(r.handles, id)
	r.mu.Unlock()
	if h == nil {
		return ErrClosed
	}
	return h.Close()
}

// Len is the number of open handles.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.handles)
}

// CloseAll closes every handle (used at exit and in tests).
func (r *Registry) CloseAll() {
	r.mu.Lock()
	hs := r.handles
	r.handles = make(map[uint64]*Handle)
	r.mu.Unlock()
	for _, h := range hs {
		h.Close()
	}
}
