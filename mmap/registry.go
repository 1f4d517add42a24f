package mmap

// Registry maps handle ids to open Handles. It is safe for concurrent use.
// Ids start at 1 and are never reused, so a stale id finds nothing (closed)
// rather than somebody else's file.
type Registry struct {
	t table[*Handle]
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{t: newTable[*Handle]()}
}

// Add registers m and returns its id.
func (r *Registry) Add(m *Mapping) uint64 { return r.t.add(NewHandle(m)) }

// Get returns the handle for id, or ErrClosed if there is none.
func (r *Registry) Get(id uint64) (*Handle, error) { return r.t.get(id) }

// Close removes id, so no new operation can find it, then closes the handle
// once the operations in progress are done.
func (r *Registry) Close(id uint64) error { return r.t.close(id) }

// Len is the number of open handles.
func (r *Registry) Len() int { return r.t.len() }

// CloseAll closes every handle (used at exit and in tests).
func (r *Registry) CloseAll() { r.t.closeAll() }
