// Package collective is what the processes of one fit agree on together (solver.Comm: the
// solver's collectives, the CLI's across MPI processes): after a step that can fail on some
// processes only, which process failed first and how, so that none is left waiting in a
// collective the others have abandoned.
package collective

import "fmt"

// Comm is the all-gather the processes share (solver.Comm satisfies it; so do
// internal/mpi's and internal/localcomm's Comms).
type Comm interface {
	Rank() int
	Size() int
	// AllGather sends send (counts[Rank()] bytes) to every process; recv (sum of counts)
	// receives the contributions of all processes in rank order.
	AllGather(send []byte, counts []int, recv []byte)
}

// FirstFailure is collective: every process gives its status (0: fine; else in [1, 255],
// e.g. an exit status) and every process gets the first process in rank order whose status
// is not 0, with that status, or rank -1 when all are 0. One byte per process on the wire.
func FirstFailure(c Comm, status int) (rank, st int) {
	if status < 0 || status > 255 {
		panic(fmt.Sprintf("collective: status %d outside [0, 255]", status))
	}
	counts := make([]int, c.Size())
	for r := range counts {
		counts[r] = 1
	}
	recv := make([]byte, c.Size())
	c.AllGather([]byte{byte(status)}, counts, recv)
	for r, s := range recv {
		if s != 0 {
			return r, int(s)
		}
	}
	return -1, 0
}

// RemoteError is returned on the processes that did not fail when another process of the
// fit did (that process reports its own error).
type RemoteError struct{ Rank int }

func (e *RemoteError) Error() string {
	return fmt.Sprintf("solver: process %d of the fit failed (see its message)", e.Rank)
}
