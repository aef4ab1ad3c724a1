//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package dataio

import "os"

// canLock is false: without flock a live temporary cannot be told from a
// stale one, so CleanStale removes nothing.
const canLock = false

func lockFile(*os.File) {}

func tryLockFile(*os.File) bool { return false }
