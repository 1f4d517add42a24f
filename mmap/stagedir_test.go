package mmap

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// An engine killed with -9 cannot remove its stage directory; the next one
// to make a stage directory removes it, and no directory of a running
// engine, of another user, or not made the way an engine makes it.
func TestStaleStageDirsGoAndLiveOnesStay(t *testing.T) {
	if tmp := os.Getenv("IOMMAP_TEST_STAGE_ENGINE"); tmp != "" {
		stageEngine(tmp) // the child: an engine to kill
		return
	}
	tmp := t.TempDir()
	stale := killedEngineDir(t, tmp)

	live := NewStagesOf(FileStages)
	live.tmp = tmp
	defer live.CloseAll()
	_, st, err := live.Open()
	if err != nil {
		t.Fatal(err)
	}
	liveDir := filepath.Dir(st.Path())

	// Dirs the sweep must leave: not made the way an engine makes them
	// (no lock; an older engine's, which might be running), another
	// user's, and a symbolic link to a stale-looking dir.
	keep := []string{filepath.Join(tmp, "iommap-stages-123456789")}
	os.Mkdir(keep[0], 0o700)
	looksStale := func(name string) string {
		dir := filepath.Join(tmp, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "lock"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	if os.Geteuid() == 0 {
		other := looksStale("iommap-stages-1-other")
		if err := os.Chown(other, 4242, 4242); err != nil {
			t.Fatal(err)
		}
		keep = append(keep, other)
	}
	target := looksStale("elsewhere")
	link := filepath.Join(tmp, "iommap-stages-1-link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	keep = append(keep, link, target)

	next := NewStagesOf(FileStages)
	next.tmp = tmp
	defer next.CloseAll()
	if _, _, err := next.Open(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the killed engine's stage dir %s is still there (%v)", stale, err)
	}
	for _, dir := range append(keep, liveDir) {
		if _, err := os.Lstat(dir); err != nil {
			t.Errorf("the sweep removed %s: %v", dir, err)
		}
	}
	if _, _, err := live.Open(); err != nil {
		t.Errorf("the running engine's stages after the sweep: %v", err)
	}
}

// killedEngineDir runs an engine (this test binary, as stageEngine) that
// makes a file stage in tmp, kills it with SIGKILL, and returns the stage
// directory it left.
func killedEngineDir(t *testing.T, tmp string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestStaleStageDirsGoAndLiveOnesStay$", "-test.count=1")
	cmd.Env = append(os.Environ(), "IOMMAP_TEST_STAGE_ENGINE="+tmp)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in, err := cmd.StdinPipe() // held open: the child waits on it
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dir := ""
	for sc := bufio.NewScanner(out); sc.Scan(); {
		if d, ok := strings.CutPrefix(sc.Text(), "stage dir "); ok {
			dir = d
			break
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if dir == "" {
		t.Fatal("the engine to kill made no stage dir")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the killed engine left no stage dir: %v", err)
	}
	return dir
}

func stageEngine(tmp string) {
	r := NewStagesOf(FileStages)
	r.tmp = tmp
	_, st, err := r.Open()
	if err != nil {
		fmt.Println("stage:", err)
		os.Exit(1)
	}
	fmt.Println("stage dir", filepath.Dir(st.Path()))
	io.Copy(io.Discard, os.Stdin) // killed before its input ends
	os.Exit(1)
}
