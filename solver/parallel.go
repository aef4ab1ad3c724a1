package solver

import "relutrim/internal/kern"

// chunkRows is the fixed row-chunk size of the elementwise passes, the kernels' own
// (kern.ChunkRows): chunk boundaries do not depend on the thread count and per-chunk
// partial sums are reduced in chunk order, so results are bitwise identical for any
// Settings.Threads.
const chunkRows = kern.ChunkRows

// forChunks calls f(c, lo, hi) for every row chunk [lo, hi) of n rows, on up to threads
// goroutines (kern.ForChunks, the project's one scheduler). It returns the number of chunks.
func forChunks(n, threads int, f func(c, lo, hi int)) int {
	return kern.ForChunks(n, threads, f)
}

// numChunks is the number of chunks forChunks uses for n rows.
func numChunks(n int) int { return (n + chunkRows - 1) / chunkRows }

// reduceChunks sums per-chunk partials part[c*width:(c+1)*width] in chunk order into dst.
func reduceChunks(dst, part []float64, width int) {
	for i := range dst[:width] {
		dst[i] = 0
	}
	for c := 0; c*width < len(part); c++ {
		p := part[c*width : (c+1)*width]
		for i, v := range p {
			dst[i] += v
		}
	}
}
