//go:build darwin || freebsd || openbsd

package main

// growPipe: the BSDs and macOS size pipe buffers themselves (growing them
// under load) and have no F_SETPIPE_SZ, so the -pipe flag does nothing.
func growPipe(fd, size int) {}
