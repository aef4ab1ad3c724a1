package collective

import (
	"sync"
	"testing"

	"relutrim/internal/localcomm"
)

// TestFirstFailure: every process gets the first failing process in rank order and its
// status, or -1 when none failed.
func TestFirstFailure(t *testing.T) {
	for _, c := range []struct {
		status   []int
		rank, st int
	}{
		{[]int{0, 0, 0}, -1, 0},
		{[]int{0, 2, 130}, 1, 2},
		{[]int{130, 0, 1}, 0, 130},
		{[]int{0, 0, 255}, 2, 255},
	} {
		comms := localcomm.New(len(c.status))
		var wg sync.WaitGroup
		for r, cm := range comms {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if rank, st := FirstFailure(cm, c.status[r]); rank != c.rank || st != c.st {
					t.Errorf("statuses %v, process %d: got %d, %d; want %d, %d", c.status, r, rank, st, c.rank, c.st)
				}
			}()
		}
		wg.Wait()
	}
}
