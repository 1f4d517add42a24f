package mmap

import (
	"errors"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Errors of the engine that are not an errno. Each has an Erlang atom in Atom.
var (
	ErrClosed   = errors.New("mmap: handle is closed")
	ErrBounds   = errors.New("mmap: range out of bounds")
	ErrBadArg   = errors.New("mmap: bad argument")
	ErrNoAccess = unix.EACCES // the mode forbids the operation
	ErrNoMemory = unix.ENOMEM // more than one reply can carry
)

// Atom names the error as the Erlang side spells it: the documented atoms for
// the engine's own errors, and for an errno the lower-case POSIX name that
// the file module uses (enoent, eisdir, enospc, ...). Never strerror text.
func Atom(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrClosed):
		return "closed"
	case errors.Is(err, ErrBounds):
		return "out_of_bounds"
	case errors.Is(err, ErrFault):
		return "sigbus"
	case errors.Is(err, ErrBadArg):
		return "badarg"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if name := unix.ErrnoName(errno); name != "" {
			return strings.ToLower(name)
		}
	}
	return "eio"
}
