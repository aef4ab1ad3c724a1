package solver

import "sync"

// chunkRows is the fixed row-chunk size of the elementwise passes. Chunk boundaries do not
// depend on the thread count and per-chunk partial sums are reduced in chunk order, so
// results are bitwise identical for any Settings.Threads.
const chunkRows = 2048

// forChunks calls f(c, lo, hi) for every row chunk [lo, hi) of n rows, on up to threads
// goroutines. It returns the number of chunks.
func forChunks(n, threads int, f func(c, lo, hi int)) int {
	nc := (n + chunkRows - 1) / chunkRows
	if threads > nc {
		threads = nc
	}
	if threads <= 1 {
		for c := 0; c < nc; c++ {
			lo := c * chunkRows
			f(c, lo, min(lo+chunkRows, n))
		}
		return nc
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for t := 0; t < threads; t++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				c := next
				next++
				mu.Unlock()
				if c >= nc {
					return
				}
				lo := c * chunkRows
				f(c, lo, min(lo+chunkRows, n))
			}
		}()
	}
	wg.Wait()
	return nc
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
