//go:build !linux

package port

import "golang.org/x/sys/unix"

// Lanes are Linux only for now: the engine must know which process
// connects, and of the other systems only FreeBSD gives a peer's pid
// (LOCAL_PEERCRED's cr_pid); macOS gives it through LOCAL_PEERPID and
// OpenBSD through SO_PEERCRED, each differently. Until each is written and
// tested there, {Id, lanes, _} answers enosys and the Erlang side uses the
// port alone.
func listenLane(string) (int, error) { return -1, ErrNoLanes }

func acceptLane(int, int) (int, error) { return -1, ErrNoLanes }

// pollNow polls fds without blocking and gives how many are ready.
func pollNow(fds []unix.PollFd) int {
	n, err := unix.Poll(fds, 0)
	if err != nil {
		return 0
	}
	return n
}
