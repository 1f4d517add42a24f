package mmap

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// populate as the systems without MAP_POPULATE do it: a WILLNEED hint
// after mapping, run here on Linux. The kernel reads the pages in.
func TestPopulateByHintReadsThePagesIn(t *testing.T) {
	skipUnderEmulation(t, needsMadvise)
	defer func(old bool) { populateByHint = old }(populateByHint)
	populateByHint = true
	const size = 64 * 4096
	p := tempFile(t, make([]byte, size))
	// Out of the page cache first, so that only the hint can bring it back.
	fd, _ := unix.Open(p, unix.O_RDONLY, 0)
	unix.Fsync(fd)
	dropped := unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED)
	unix.Close(fd)
	m, err := Open(p, Read, Options{Size: -1, Populate: true})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandle(m)
	defer h.Close()
	if mapPopulate != 0 && m.Options().mapFlags()&mapPopulate != 0 {
		t.Fatal("MAP_POPULATE given although populate is by hint")
	}
	for i := 0; ; i++ {
		n, err := h.Resident(0, size)
		if err != nil {
			t.Fatal(err)
		}
		if n == size {
			return
		}
		if i == 100 {
			t.Fatalf("%d of %d bytes resident after the hint (page cache dropped: %v)", n, size, dropped)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
