package port

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// listenLane listens on a Unix stream socket at path (non-blocking).
func listenLane(path string) (int, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.Listen(fd, maxLanes); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// acceptLane accepts one connection, non-blocking, and keeps it only if
// its peer is the process vm of our own user: SO_PEERCRED gives the pid
// and uid of the process that connected, as the kernel saw them. (The
// engine's parent is erl_child_setup, not the VM, so the VM states its
// pid in the lanes request.)
func acceptLane(ln, vm int) (int, error) {
	for {
		fd, _, err := unix.Accept4(ln, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err == unix.EINTR || err == unix.ECONNABORTED {
			continue
		}
		if err != nil {
			return -1, err
		}
		cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil || int(cred.Pid) != vm || int(cred.Uid) != os.Getuid() {
			unix.Close(fd)
			return -1, errNotTheVM
		}
		return fd, nil
	}
}

// pollNow polls fds without blocking and gives how many are ready; a raw
// ppoll, as readableNow.
func pollNow(fds []unix.PollFd) int {
	r, _, e := unix.Syscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), uintptr(len(fds)),
		uintptr(unsafe.Pointer(&zeroTimeout)), 0, 0, 0)
	if e != 0 {
		return 0
	}
	return int(r)
}
