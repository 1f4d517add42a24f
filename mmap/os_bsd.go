//go:build darwin || freebsd || openbsd

package mmap

import "golang.org/x/sys/unix"

// The systems other than Linux: no MAP_POPULATE (populate is a WILLNEED
// hint after mapping), no populate hints (EINVAL, as an old Linux), and no
// memfd (stages are files, see FileStages). allocate and
// freeSpace are in the per-system files.

const mapPopulate = 0

// Values no madvise knows: Advise answers EINVAL for them here.
const (
	PopulateRead  Advice = -1
	PopulateWrite Advice = -2
)

// newStageFile: no memfd here; see FileStages.
func newStageFile() (int, error) { return -1, unix.ENOSYS }

// DefaultStageKind: without memfd and /proc, a file in a private directory.
const DefaultStageKind = FileStages
