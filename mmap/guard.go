package mmap

import (
	"errors"
	"runtime/debug"
)

// ErrFault reports that touching mapped memory faulted: the file behind the
// mapping shrank (another process or handle truncated it), so the pages are
// gone. The Erlang side sees it as sigbus.
var ErrFault = errors.New("mmap: fault on mapped memory (sigbus)")

// protect makes a memory fault in the calling goroutine a recoverable panic.
// It returns the previous setting for unprotect. Every function that touches
// mapped memory starts with
//
//	defer unprotect(protect(), &err)
//
// so the guard lives in one place, in the goroutine that does the touching.
func protect() bool {
	return debug.SetPanicOnFault(true)
}

// unprotect restores the fault setting and turns a memory-fault panic into
// ErrFault. Only a panic whose value has Addr() uintptr is a memory fault
// (runtime.Error from SIGBUS/SIGSEGV); anything else is a real bug and is
// re-panicked rather than swallowed.
func unprotect(old bool, err *error) {
	debug.SetPanicOnFault(old)
	r := recover()
	if r == nil {
		return
	}
	if f, ok := r.(interface{ Addr() uintptr }); ok {
		*err = faultError{f.Addr()}
		return
	}
	panic(r)
}

// faultError is ErrFault with the address that faulted, so that a copy
// between two mappings (a stage's and a file's) can tell whose it was.
type faultError struct{ addr uintptr }

func (faultError) Error() string        { return ErrFault.Error() }
func (faultError) Is(target error) bool { return target == ErrFault }
