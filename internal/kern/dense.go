package kern

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// dense is the row-major N x Nx matrix behind NewDense64 / NewDense32.
type dense[T float32 | float64] struct {
	data       []T
	rows, cols int
	threads    int

	s scratch // reused across calls; Mul/MulT are single-caller
}

// scratch holds the buffers reused across calls of one matrix.
type scratch struct {
	shared []float64 // per-call preprocessed factor (e.g. B transposed), backend-defined
	shr32  []float32 // float32 copy of the factor (openblas, float32 X)
	work   []workspace
	parts  [][]float64 // MulT partial sums, one per in-flight slot

	// MulT ordered reduction
	mu      sync.Mutex
	cond    sync.Cond
	reduced int    // chunks already added into dst
	done    []bool // done[slot]: partial of the chunk owning this slot is ready
	next    atomic.Int64
	wg      sync.WaitGroup
}

// workspace is per worker goroutine.
type workspace struct {
	f64 []float64
	f32 []float32
	o32 []float32
}

func grow64(b []float64, n int) []float64 {
	if cap(b) < n {
		return make([]float64, n)
	}
	return b[:n]
}

func grow32(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

func (m *dense[T]) Dims() (int, int) { return m.rows, m.cols }

func (m *dense[T]) SetThreads(n int) {
	if n < 0 {
		n = 0
	}
	m.threads = n
}

func (m *dense[T]) Row(buf []float64, i int) []float64 {
	if i < 0 || i >= m.rows {
		panic(fmt.Sprintf("kern: row %d out of range [0,%d)", i, m.rows))
	}
	if len(buf) < m.cols {
		panic(fmt.Sprintf("kern: Row buffer length %d < cols %d", len(buf), m.cols))
	}
	buf = buf[:m.cols]
	for j, v := range m.data[i*m.cols : (i+1)*m.cols] {
		buf[j] = float64(v)
	}
	return buf
}

func nChunks(rows int) int { return (rows + ChunkRows - 1) / ChunkRows }

// workers returns the number of goroutines to use for nch chunks and sizes the
// per-worker workspaces.
func (m *dense[T]) workers(nch int) int {
	w := threadsFor(m.threads)
	if w > nch {
		w = nch
	}
	if w < 1 {
		w = 1
	}
	if len(m.s.work) < w {
		m.s.work = append(m.s.work, make([]workspace, w-len(m.s.work))...)
	}
	return w
}

func (m *dense[T]) chunk(c int) (x []T, lo, n int) {
	lo = c * ChunkRows
	n = min(ChunkRows, m.rows-lo)
	return m.data[lo*m.cols : (lo+n)*m.cols], lo, n
}

// Mul sets dst = X * B (B cols x k, dst rows x k, both row-major).
func (m *dense[T]) Mul(dst, B []float64, k int) {
	if k < 0 || len(B) < m.cols*k || len(dst) < m.rows*k {
		panic(fmt.Sprintf("kern: Mul sizes: X %dx%d, len(B)=%d, len(dst)=%d, k=%d",
			m.rows, m.cols, len(B), len(dst), k))
	}
	if k == 0 || m.rows == 0 {
		return
	}
	dst, B = dst[:m.rows*k], B[:m.cols*k]
	if m.cols == 0 {
		clear(dst)
		return
	}
	prepMul[T](&m.s, B, m.cols, k)
	nch := nChunks(m.rows)
	nw := m.workers(nch)
	m.s.next.Store(0)
	if nw == 1 {
		m.mulWorker(0, nch, dst, B, k)
		return
	}
	m.mulParallel(nw, nch, dst, B, k)
}

// mulParallel is split from Mul so that the goroutine closure's captures do not force
// Mul's arguments to the heap on the single-threaded path.
func (m *dense[T]) mulParallel(nw, nch int, dst, B []float64, k int) {
	m.s.wg.Add(nw - 1)
	for w := 1; w < nw; w++ {
		go func() { defer m.s.wg.Done(); m.mulWorker(w, nch, dst, B, k) }()
	}
	m.mulWorker(0, nch, dst, B, k)
	m.s.wg.Wait()
}

func (m *dense[T]) mulWorker(w, nch int, dst, B []float64, k int) {
	ws := &m.s.work[w]
	for {
		c := int(m.s.next.Add(1) - 1)
		if c >= nch {
			return
		}
		x, lo, n := m.chunk(c)
		mulChunk(x, n, m.cols, B, k, dst[lo*k:(lo+n)*k], &m.s, ws)
	}
}

// chunkPart computes the partial X_c^T A_c of chunk c into part.
func (m *dense[T]) chunkPart(c int, A []float64, k int, part []float64, ws *workspace) {
	x, lo, n := m.chunk(c)
	mulTChunk(x, n, m.cols, A[lo*k:(lo+n)*k], k, part, &m.s, ws)
}

// MulT sets dst = X^T * A (A rows x k, dst cols x k, both row-major). Chunk partial sums
// are added into dst in chunk order: dst = ((P0 + P1) + P2) + ...
func (m *dense[T]) MulT(dst, A []float64, k int) {
	if k < 0 || len(A) < m.rows*k || len(dst) < m.cols*k {
		panic(fmt.Sprintf("kern: MulT sizes: X %dx%d, len(A)=%d, len(dst)=%d, k=%d",
			m.rows, m.cols, len(A), len(dst), k))
	}
	if k == 0 || m.cols == 0 {
		return
	}
	dst, A = dst[:m.cols*k], A[:m.rows*k]
	if m.rows == 0 {
		clear(dst)
		return
	}
	prepMulT[T](&m.s, k)
	nch := nChunks(m.rows)
	nw := m.workers(nch)
	sz := m.cols * k
	if nw == 1 {
		// Same operation sequence as the parallel path: P0 computed into dst
		// directly is avoided so that dst = P0 + ... is formed identically.
		if len(m.s.parts) < 1 {
			m.s.parts = append(m.s.parts, nil)
		}
		p := grow64(m.s.parts[0], sz)
		m.s.parts[0] = p
		for c := range nch {
			m.chunkPart(c, A, k, p, &m.s.work[0])
			reduce(dst, p, c)
		}
		return
	}

	// Parallel: nw workers fill nslot rotating partial buffers; chunk c uses slot
	// c % nslot and may start only after chunk c-nslot has been reduced. The caller
	// reduces chunks in order.
	nslot := nw + 1
	for len(m.s.parts) < nslot {
		m.s.parts = append(m.s.parts, nil)
	}
	for i := range nslot {
		m.s.parts[i] = grow64(m.s.parts[i], sz)
	}
	if cap(m.s.done) < nslot {
		m.s.done = make([]bool, nslot)
	}
	m.s.done = m.s.done[:nslot]
	clear(m.s.done)
	m.s.cond.L = &m.s.mu
	m.s.reduced = 0
	m.s.next.Store(0)
	s := &m.s
	s.wg.Add(nw)
	for w := range nw {
		go m.mulTWorker(w, nch, nslot, A, k)
	}
	for c := range nch {
		slot := c % nslot
		s.mu.Lock()
		for !s.done[slot] {
			s.cond.Wait()
		}
		s.done[slot] = false
		s.mu.Unlock()
		reduce(dst, s.parts[slot], c)
		s.mu.Lock()
		s.reduced = c + 1
		s.cond.Broadcast()
		s.mu.Unlock()
	}
	s.wg.Wait()
}

// mulTWorker computes chunk partials for MulT; chunk c may start only after chunk
// c-nslot (the previous user of its slot) has been reduced.
func (m *dense[T]) mulTWorker(w, nch, nslot int, A []float64, k int) {
	s := &m.s
	defer s.wg.Done()
	ws := &s.work[w]
	for {
		c := int(s.next.Add(1) - 1)
		if c >= nch {
			return
		}
		slot := c % nslot
		s.mu.Lock()
		for s.reduced <= c-nslot {
			s.cond.Wait()
		}
		s.mu.Unlock()
		m.chunkPart(c, A, k, s.parts[slot], ws)
		s.mu.Lock()
		s.done[slot] = true
		s.cond.Broadcast()
		s.mu.Unlock()
	}
}

// reduce adds the partial of chunk c into dst (copying for the first chunk).
func reduce(dst, p []float64, c int) {
	if c == 0 {
		copy(dst, p)
		return
	}
	p = p[:len(dst)]
	for i, v := range p {
		dst[i] += v
	}
}
