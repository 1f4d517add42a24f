package mmap

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// An engine's file stages live in <tmp>/iommap-stages-<pid>-<random>, mode
// 0700, which holds a file named lock that the engine keeps an exclusive
// flock on for as long as the directory is its. The kernel lets go of the
// lock when the engine dies, however it dies (kill -9 too), so a directory
// whose lock can be taken belongs to no running engine, and the next engine
// to make its directory removes it (sweep). The pid alone could not tell
// (pids are reused); it is in the name for whoever reads the listing.
const (
	stageDirPrefix = "iommap-stages-"
	stageDirNew    = ".iommap-stages-new-" // not yet locked: sweep skips it
	stageDirLock   = "lock"
)

// makeStageDir makes and locks a stage directory in tmp. It is made and
// locked under a name sweep does not look at, and renamed into place once
// locked, so that sweep never sees a running engine's directory unlocked.
// A file system that cannot flock still gets its stages; only its
// directories cannot be swept.
func makeStageDir(tmp string) (dir string, lock *os.File, err error) {
	work, err := os.MkdirTemp(tmp, stageDirNew)
	if err != nil {
		return "", nil, err
	}
	lock, err = os.OpenFile(filepath.Join(work, stageDirLock), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		_ = unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		dir = filepath.Join(filepath.Dir(work), fmt.Sprintf("%s%d-%s", stageDirPrefix, os.Getpid(),
			strings.TrimPrefix(filepath.Base(work), stageDirNew)))
		err = os.Rename(work, dir)
	}
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		os.RemoveAll(work)
		return "", nil, err
	}
	return dir, lock, nil
}

// sweep removes from tmp the stage directories of engines that are not
// running: only directories (not links to one) of this user, named as
// makeStageDir names them, whose lock this process can take. What it
// cannot prove stale it leaves (an older engine's directory has no lock).
func sweep(tmp string) {
	d, err := os.Open(tmp)
	if err != nil {
		return
	}
	defer d.Close()
	for {
		names, err := d.Readdirnames(256)
		for _, name := range names {
			if strings.HasPrefix(name, stageDirPrefix) {
				removeIfStale(filepath.Join(tmp, name))
			}
		}
		if err != nil { // io.EOF at the end
			return
		}
	}
}

func removeIfStale(dir string) {
	var st unix.Stat_t
	if unix.Lstat(dir, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Geteuid() {
		return
	}
	fd, err := unix.Open(filepath.Join(dir, stageDirLock), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd) // after the removal: nobody else takes it meanwhile
	if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) == nil {
		_ = os.RemoveAll(dir)
	}
}

// fileName is a new name for a file stage in the engine's own directory,
// made private (0700) so no other user can open a stage by its name.
func (r *Stages) fileName() (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.makeDir(); err != nil {
		return "", err
	}
	r.n++
	return filepath.Join(r.dir, fmt.Sprintf("stage-%d", r.n)), nil
}

// PrivatePath is name in the engine's own private (0700) directory, the
// one of its file stages: it goes at exit (RemoveDir), and if the engine
// is killed, the next engine sweeps it away. The engine's lane socket
// lives there.
func (r *Stages) PrivatePath(name string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.makeDir(); err != nil {
		return "", err
	}
	return filepath.Join(r.dir, name), nil
}

// makeDir makes the directory, once, and sweeps away those of dead
// engines. Under r.mu.
func (r *Stages) makeDir() error {
	if r.dir != "" {
		return nil
	}
	tmp := r.tmp
	if tmp == "" {
		tmp = os.TempDir()
	}
	sweep(tmp)
	dir, lock, err := makeStageDir(tmp)
	if err != nil {
		return err
	}
	r.dir, r.lock = dir, lock
	return nil
}

// RemoveDir removes the directory of file stages and any names left in it.
// Stages in use go on: their files stay open, only the names go. The
// engine calls it at exit even when requests it started are still running.
func (r *Stages) RemoveDir() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dir != "" {
		_ = os.RemoveAll(r.dir)
		r.lock.Close() // only now: until the directory is gone, it is ours
		r.dir, r.lock = "", nil
	}
}
