package kern

// dense is the row-major N x Nx matrix behind NewDense64 / NewDense32.
type dense[T float32 | float64] struct {
	shape
	data []T

	s scratch // reused across calls; Mul/MulT are single-caller
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

func (m *dense[T]) Row(buf []float64, i int) []float64 {
	buf = m.rowBuf(buf, i)
	for j, v := range m.data[i*m.cols : (i+1)*m.cols] {
		buf[j] = float64(v)
	}
	return buf
}

// workers returns the number of goroutines to use for nch chunks and sizes the
// per-worker workspaces.
func (m *dense[T]) workers(nch int) int {
	w := m.shape.workers(nch)
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
	d, b, ok := m.mulArgs(dst, B, k)
	if !ok {
		return
	}
	prepMul[T](&m.s, b, m.cols, k)
	nch := nChunks(m.rows)
	nw := m.workers(nch)
	if nw == 1 {
		for c := range nch {
			m.mulChunk(0, c, d, b, k)
		}
		return
	}
	m.s.runChunks(nw, nch, func(w, c int) { m.mulChunk(w, c, d, b, k) })
}

// mulChunk computes rows of chunk c of dst = X * B on worker w.
func (m *dense[T]) mulChunk(w, c int, dst, B []float64, k int) {
	x, lo, n := m.chunk(c)
	mulChunk(x, n, m.cols, B, k, dst[lo*k:(lo+n)*k], &m.s, &m.s.work[w])
}

// chunkPart computes the partial X_c^T A_c of chunk c into part on worker w.
func (m *dense[T]) chunkPart(w, c int, A []float64, k int, part []float64) {
	x, lo, n := m.chunk(c)
	mulTChunk(x, n, m.cols, A[lo*k:(lo+n)*k], k, part, &m.s, &m.s.work[w])
}

// MulT sets dst = X^T * A (A rows x k, dst cols x k, both row-major). Chunk partial sums
// are added into dst in chunk order: dst = ((P0 + P1) + P2) + ...
func (m *dense[T]) MulT(dst, A []float64, k int) {
	d, a, ok := m.mulTArgs(dst, A, k)
	if !ok {
		return
	}
	prepMulT[T](&m.s, k)
	nch := nChunks(m.rows)
	nw := m.workers(nch)
	if nw == 1 {
		// Same operation sequence as the parallel path: P0 computed into dst
		// directly is avoided so that dst = P0 + ... is formed identically.
		p := m.s.part(0, len(d))
		for c := range nch {
			m.chunkPart(0, c, a, k, p)
			reduce(d, p, c)
		}
		return
	}
	m.s.reduceChunks(nw, nch, d, func(w, c int, p []float64) { m.chunkPart(w, c, a, k, p) })
}
