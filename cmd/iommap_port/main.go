// Command iommap_port is the engine of iommap: an Erlang port program that
// maps files and serves reads and writes of them. It speaks {packet,4}
// frames of the external term format on stdin and stdout (see
// port/PROTOCOL.md), logs only to stderr, and exits 0 when stdin closes.
//
// The data path, all in port.Server.loop: readFrame takes the next frame
// from port.Input; decode reads it, in one pass, into a typed request by
// its row of the operations table; dispatch runs it against the
// mmap.Registry, on the main loop when it is small (run) or on a goroutine
// when it is slow (runAside); the reply goes out through port.Output,
// batched by flush with the others that are ready. Once the VM asks for
// lanes (a Unix socket per calling process, see port/lane.go), the same
// loop serves them beside stdin/stdout, waiting on all of them at once.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/iommap/iommap/mmap"
	"github.com/iommap/iommap/port"
	"golang.org/x/sys/unix"
)

func main() {
	cfg := port.DefaultConfig
	spinUs := flag.Int("spin", int(cfg.Spin/time.Microsecond), "microseconds to poll stdin before blocking (0: block at once)")
	pipeSize := flag.Int("pipe", 1<<20, "grow stdin and stdout pipes to this many bytes, best effort (0: leave them)")
	flag.IntVar(&cfg.InlineMax, "inline", cfg.InlineMax, "largest pread/pwrite answered on the main loop, in bytes")
	stages := flag.String("stages", "", "where stages live: memfd, file or none (default: memfd on Linux, file elsewhere)")
	version := flag.Bool("version", false, "print the version and protocol version, then exit")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [flags]\n\nThe iommap engine: started by the iommap Erlang application as a port\n"+
			"program ({packet,4} frames on stdin/stdout). Not meant to be run by hand.\n\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if *version {
		fmt.Printf("iommap_port %s protocol %d\n", port.Version, port.ProtocolVersion)
		return
	}
	cfg.Spin = time.Duration(*spinUs) * time.Microsecond
	kind, err := mmap.ParseStageKind(*stages)
	if err != nil {
		fail(err)
	}
	cfg.Stages = kind
	if *pipeSize > 0 {
		growPipe(0, *pipeSize)
		growPipe(1, *pipeSize)
	}
	restore, err := nonblockingStdin()
	if err != nil {
		fail(err)
	}
	err = port.NewServer(cfg, 0, 1).Serve()
	restore()
	if err != nil {
		fail(err)
	}
}

// nonblockingStdin lets the reader spin on fd 0. O_NONBLOCK belongs to the
// open file description, which a terminal may share with other processes, so
// the old flags are put back at exit.
func nonblockingStdin() (func(), error) {
	old, err := unix.FcntlInt(0, unix.F_GETFL, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(0, true); err != nil {
		return nil, err
	}
	return func() { unix.FcntlInt(0, unix.F_SETFL, old) }, nil
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "iommap_port: %v\n", err)
	os.Exit(1)
}
