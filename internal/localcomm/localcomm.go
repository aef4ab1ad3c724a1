// Package localcomm connects goroutines of one process as the processes of one fit
// (solver.Comm): the tests' stand-in for MPI, so that the default build exercises the
// split, the gathers and the ordered reductions of a fit across processes without cgo.
package localcomm

import (
	"fmt"
	"sync"
)

// Comm is one member of a Group.
type Comm struct {
	g    *group
	rank int
}

type group struct {
	k       int
	mu      sync.Mutex
	cond    sync.Cond
	gen     int // completed phases
	arrived int
	slots   [][]byte
	counts  [][]int
	calls   int
}

// New returns k connected Comms, one per simulated process (rank r is element r).
func New(k int) []*Comm {
	g := &group{k: k, slots: make([][]byte, k), counts: make([][]int, k)}
	g.cond.L = &g.mu
	out := make([]*Comm, k)
	for r := range out {
		out[r] = &Comm{g: g, rank: r}
	}
	return out
}

func (c *Comm) Rank() int { return c.rank }
func (c *Comm) Size() int { return c.g.k }

// Calls returns the number of collectives the group completed.
func (c *Comm) Calls() int {
	c.g.mu.Lock()
	defer c.g.mu.Unlock()
	return c.g.calls
}

// barrier waits until all k members arrived (the last one runs last first).
func (g *group) barrier(last func()) {
	gen := g.gen
	g.arrived++
	if g.arrived == g.k {
		if last != nil {
			last()
		}
		g.arrived = 0
		g.gen++
		g.cond.Broadcast()
		return
	}
	for g.gen == gen {
		g.cond.Wait()
	}
}

// AllGather is solver.Comm's: it panics when the members disagree on counts or a send
// buffer has the wrong size (a collective called differently on different members).
func (c *Comm) AllGather(send []byte, counts []int, recv []byte) {
	g := c.g
	if len(counts) != g.k || len(send) != counts[c.rank] {
		panic(fmt.Sprintf("localcomm: rank %d: AllGather of %d bytes with counts %v", c.rank, len(send), counts))
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	if len(recv) != total {
		panic(fmt.Sprintf("localcomm: rank %d: recv %d bytes, counts sum to %d", c.rank, len(recv), total))
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.slots[c.rank] = append([]byte(nil), send...)
	g.counts[c.rank] = append([]int(nil), counts...)
	g.barrier(func() {
		for r := 1; r < g.k; r++ {
			for i := range counts {
				if g.counts[r][i] != g.counts[0][i] {
					panic(fmt.Sprintf("localcomm: ranks disagree on counts: %v vs %v", g.counts[0], g.counts[r]))
				}
			}
		}
		g.calls++
	})
	off := 0
	for r := 0; r < g.k; r++ {
		off += copy(recv[off:], g.slots[r])
	}
	g.barrier(nil) // nobody refills the slots before everyone has read them
}

// Run calls f(rank, comm) on k goroutines, waits for all of them and returns their errors
// per rank. (A panic on one member ends the test binary: the others could not finish.)
func Run(k int, f func(rank int, c *Comm) error) []error {
	comms := New(k)
	errs := make([]error, k)
	var wg sync.WaitGroup
	for r := 0; r < k; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[r] = f(r, comms[r])
		}()
	}
	wg.Wait()
	return errs
}
