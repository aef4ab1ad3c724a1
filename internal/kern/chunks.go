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

// SplitRows splits n rows into k contiguous blocks that start on chunk boundaries (as
// even as whole chunks allow) and returns the first row of each block and n: the layout
// under which a fit over k processes is bitwise the single-process fit.
func SplitRows(n, k int) []int {
	nc := nChunks(n)
	lo := make([]int, k+1)
	for r := 1; r <= k; r++ {
		lo[r] = min(n, (r*nc/k)*ChunkRows)
	}
	return lo
}

// ChunkAligned reports whether every block but the last of the row layout rowLo starts
// and ends on chunk boundaries (the condition for bitwise equality with one process).
func ChunkAligned(rowLo []int) bool {
	for r := 1; r+1 < len(rowLo); r++ {
		if rowLo[r]%ChunkRows != 0 {
			return false
		}
	}
	return true
}
