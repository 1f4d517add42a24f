package mmap

import (
	"os"
	"testing"
	"time"
)

// What qemu-user (make test-arm64 runs these tests under it, with
// IOMMAP_QEMU=1) does not do as a kernel does. Only the tests that need it
// are skipped, and only there.
const (
	// The host's SIGBUS has the address; qemu passes it on with 0, which
	// the Go runtime reports as a nil dereference, and the guard rightly
	// re-panics that instead of calling it a fault.
	needsFaultAddress = "qemu-user delivers SIGBUS without the fault address"
	// qemu-user answers madvise(WILLNEED, POPULATE_READ) with success and
	// passes nothing to the kernel, so no page is read in.
	needsMadvise = "qemu-user does not pass madvise WILLNEED or POPULATE_READ to the kernel"
)

// emulationSlowdown is how many times longer a child takes for the same
// work under qemu-user than on the host: the crash loops wait that much
// longer before a kill, so that their children get as far (a ring that
// fills, a store that is cut) as they do natively.
func emulationSlowdown() time.Duration {
	if os.Getenv("IOMMAP_QEMU") != "" {
		return 10
	}
	return 1
}

// skipUnderEmulation skips t when it runs under qemu-user, saying why.
func skipUnderEmulation(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("IOMMAP_QEMU") != "" {
		t.Skip("under emulation: " + why)
	}
}
