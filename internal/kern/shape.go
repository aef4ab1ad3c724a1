package kern

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// shape is the part of dense and csr that does not depend on the storage: the
// dimensions, the per-matrix thread count and the argument checks of the Matrix methods.
type shape struct {
	rows, cols int
	threads    int
}

// newShape checks the dimensions of a rows x cols matrix given as n row-major values.
func newShape(n, rows, cols int) shape {
	if rows < 0 || cols < 0 {
		panic(fmt.Sprintf("kern: negative dimensions %d x %d", rows, cols))
	}
	if n != rows*cols {
		panic(fmt.Sprintf("kern: len(data) = %d, want rows*cols = %d*%d", n, rows, cols))
	}
	return shape{rows: rows, cols: cols}
}

func (m *shape) Dims() (int, int) { return m.rows, m.cols }

func (m *shape) SetThreads(n int) {
	if n < 0 {
		n = 0
	}
	m.threads = n
}

// rowBuf checks the arguments of Row and returns buf[:cols].
func (m *shape) rowBuf(buf []float64, i int) []float64 {
	if i < 0 || i >= m.rows {
		panic(fmt.Sprintf("kern: row %d out of range [0,%d)", i, m.rows))
	}
	if len(buf) < m.cols {
		panic(fmt.Sprintf("kern: Row buffer length %d < cols %d", len(buf), m.cols))
	}
	return buf[:m.cols]
}

// workers returns the number of goroutines to use for nch chunks.
func (m *shape) workers(nch int) int {
	return max(1, min(threadsFor(m.threads), nch))
}

// mulArgs checks the sizes of Mul(dst, B, k) and returns dst and B cut to rows x k and
// cols x k. ok is false when nothing is left to compute (dst is then final).
func (m *shape) mulArgs(dst, B []float64, k int) (d, b []float64, ok bool) {
	if k < 0 || len(B) < m.cols*k || len(dst) < m.rows*k {
		panic(fmt.Sprintf("kern: Mul sizes: X %dx%d, len(B)=%d, len(dst)=%d, k=%d",
			m.rows, m.cols, len(B), len(dst), k))
	}
	if k == 0 || m.rows == 0 {
		return nil, nil, false
	}
	d, b = dst[:m.rows*k], B[:m.cols*k]
	if m.cols == 0 {
		clear(d)
		return nil, nil, false
	}
	return d, b, true
}

// mulTArgs checks the sizes of MulT(dst, A, k) and returns dst and A cut to cols x k and
// rows x k. ok is false when nothing is left to compute (dst is then final).
func (m *shape) mulTArgs(dst, A []float64, k int) (d, a []float64, ok bool) {
	if k < 0 || len(A) < m.rows*k || len(dst) < m.cols*k {
		panic(fmt.Sprintf("kern: MulT sizes: X %dx%d, len(A)=%d, len(dst)=%d, k=%d",
			m.rows, m.cols, len(A), len(dst), k))
	}
	if k == 0 || m.cols == 0 {
		return nil, nil, false
	}
	d, a = dst[:m.cols*k], A[:m.rows*k]
	if m.rows == 0 {
		clear(d)
		return nil, nil, false
	}
	return d, a, true
}

func nChunks(rows int) int { return (rows + ChunkRows - 1) / ChunkRows }

// scratch holds the buffers reused across calls of one matrix.
type scratch struct {
	shared []float64 // per-call preprocessed factor (e.g. B transposed), backend-defined
	shr32  []float32 // float32 copy of the factor (openblas, float32 X)
	work   []workspace
	parts  [][]float64 // MulT partial sums, one per in-flight slot
	tree   Tree        // MulT's reduction of the partials (tree.go)

	// chunk scheduling and the MulT ordered reduction
	mu      sync.Mutex
	cond    sync.Cond
	reduced int    // chunks already added into dst
	done    []bool // done[slot]: partial of the chunk owning this slot is ready
	next    atomic.Int64
	wg      sync.WaitGroup
}

// The single-threaded paths of Mul and MulT loop over the chunks themselves instead of
// calling runChunks / reduceChunks: a closure passed to those escapes (it runs on other
// goroutines), and allocating it would make every single-threaded call allocate.

// runChunks calls work(w, c) for every chunk c in [0, nch) on nw goroutines (the caller
// is worker 0, w is the worker); the workers take chunks from an atomic counter.
func (s *scratch) runChunks(nw, nch int, work func(w, c int)) {
	s.next.Store(0)
	s.wg.Add(nw - 1)
	for w := 1; w < nw; w++ {
		go func() { defer s.wg.Done(); s.takeChunks(w, nch, work) }()
	}
	s.takeChunks(0, nch, work)
	s.wg.Wait()
}

func (s *scratch) takeChunks(w, nch int, work func(w, c int)) {
	for {
		c := int(s.next.Add(1) - 1)
		if c >= nch {
			return
		}
		work(w, c)
	}
}

// ensureWork makes room for n per-worker workspaces.
func (s *scratch) ensureWork(n int) {
	if len(s.work) < n {
		s.work = append(s.work, make([]workspace, n-len(s.work))...)
	}
}

// part returns partial buffer i with length n.
func (s *scratch) part(i, n int) []float64 {
	for len(s.parts) <= i {
		s.parts = append(s.parts, nil)
	}
	s.parts[i] = grow64(s.parts[i], n)
	return s.parts[i]
}

// reduceChunks pushes the nch chunk partials (width values each) into t in chunk order,
// where part(w, c, p) sets p to the partial of chunk c on worker w. nw workers fill nslot
// rotating partial buffers; chunk c uses slot c % nslot and may start only after chunk
// c-nslot has been pushed. The caller pushes chunks in order.
func (s *scratch) reduceChunks(nw, nch, width int, t *Tree, part func(w, c int, p []float64)) {
	nslot := nw + 1
	for i := range nslot {
		s.part(i, width)
	}
	if cap(s.done) < nslot {
		s.done = make([]bool, nslot)
	}
	s.done = s.done[:nslot]
	clear(s.done)
	s.cond.L = &s.mu
	s.reduced = 0
	s.next.Store(0)
	s.wg.Add(nw)
	for w := range nw {
		go func() {
			defer s.wg.Done()
			s.takeChunks(w, nch, func(w, c int) { s.slotPart(w, c, nslot, part) })
		}()
	}
	for c := range nch {
		slot := c % nslot
		s.mu.Lock()
		for !s.done[slot] {
			s.cond.Wait()
		}
		s.done[slot] = false
		s.mu.Unlock()
		t.Push(s.parts[slot])
		s.mu.Lock()
		s.reduced = c + 1
		s.cond.Broadcast()
		s.mu.Unlock()
	}
	s.wg.Wait()
}

// slotPart computes the partial of chunk c into its slot once chunk c-nslot (the
// previous user of the slot) has been reduced.
func (s *scratch) slotPart(w, c, nslot int, part func(w, c int, p []float64)) {
	slot := c % nslot
	s.mu.Lock()
	for s.reduced <= c-nslot {
		s.cond.Wait()
	}
	s.mu.Unlock()
	part(w, c, s.parts[slot])
	s.mu.Lock()
	s.done[slot] = true
	s.cond.Broadcast()
	s.mu.Unlock()
}
