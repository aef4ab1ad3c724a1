//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package dataio

import (
	"os"
	"syscall"
)

// canLock reports whether lockFile marks a temporary as owned.
const canLock = true

// lockFile takes an exclusive flock(2) on f, held until f is closed or the
// process dies. Errors are ignored: the lock only protects a live temporary
// from CleanStale.
func lockFile(f *os.File) {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

// tryLockFile reports whether an exclusive flock on f could be taken now,
// i.e. no other open file description holds one.
func tryLockFile(f *os.File) bool {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
}
