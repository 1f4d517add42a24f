//go:build linux || darwin || freebsd

package mmap

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// mincore fills vec with a byte a page of b (b starts on a page): bit 0
// set if the page is resident. x/sys has no wrapper for it.
func mincore(b, vec []byte) error {
	_, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)),
		uintptr(unsafe.Pointer(unsafe.SliceData(vec))))
	if e != 0 {
		return e
	}
	return nil
}
