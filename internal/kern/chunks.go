package kern

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// MaxThreads bounds every worker count (Settings.Threads, --threads): four goroutines per
// CPU. Results do not depend on the count (fixed chunking), and beyond the CPUs more
// goroutines only add scheduling and per-worker buffers: a --threads of ten million used to
// allocate ten million buffers and run out of memory (issue 22).
func MaxThreads() int { return 4 * runtime.NumCPU() }

// Workers returns the goroutines to run work independent items on with threads asked for
// (<= 0: runtime.GOMAXPROCS(0)): at least 1, at most work and at most MaxThreads.
func Workers(threads, work int) int {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	return max(1, min(threads, work, MaxThreads()))
}

// ForChunks calls f(c, lo, hi) for every chunk c of ChunkRows rows ([lo, hi)) of n rows,
// on up to threads goroutines (the caller is one of them; chunks are taken from a shared
// counter), and returns the number of chunks. The chunk boundaries do not depend on
// threads, so a caller that adds per-chunk partials in chunk order gets results that are
// bitwise independent of the thread count. It is the scheduler of the solver's elementwise
// passes; Mul and MulT run the same chunks through an allocation-free copy of it on their
// scratch (runChunks).
func ForChunks(n, threads int, f func(c, lo, hi int)) int {
	nc := nChunks(n)
	nw := max(1, min(threads, nc))
	chunk := func(c int) {
		lo := c * ChunkRows
		f(c, lo, min(lo+ChunkRows, n))
	}
	if nw == 1 {
		for c := 0; c < nc; c++ {
			chunk(c)
		}
		return nc
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	take := func() {
		for {
			c := int(next.Add(1) - 1)
			if c >= nc {
				return
			}
			chunk(c)
		}
	}
	wg.Add(nw - 1)
	for w := 1; w < nw; w++ {
		go func() { defer wg.Done(); take() }()
	}
	take()
	wg.Wait()
	return nc
}
