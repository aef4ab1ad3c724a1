package kern

import "fmt"

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
	xb  []float64 // Pass: the chunk's X_c B
	a   []float64 // Pass: the chunk's rows of A

	pad, ap, acc, rem []float64 // the AVX2 path (gokern.go)
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
	m.s.ensureWork(w)
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

// MulT sets dst = X^T * A (A rows x k, dst cols x k, both row-major). The chunk partials
// are combined by the fixed chunk tree of tree.go (pairwise, bitwise independent of the
// thread count).
func (m *dense[T]) MulT(dst, A []float64, k int) {
	d, a, ok := m.mulTArgs(dst, A, k)
	if !ok {
		return
	}
	nch := nChunks(m.rows)
	m.s.tree.Reset(len(d), 0, nch, nch, nil)
	m.mulTTree(&m.s.tree, a, k)
	copy(d, m.s.tree.Root())
}

// MulTTree pushes the chunk partials of X^T A (cols x k each) into t, whose range must
// hold exactly X's chunks (a process's rows placed among the chunks of a larger X; see
// TreeMulT). With no rows or columns nothing is pushed.
func (m *dense[T]) MulTTree(t *Tree, A []float64, k int) {
	c0, c1, _ := t.Range()
	if c1-c0 != nChunks(m.rows) || t.Width() != m.cols*k {
		panic(fmt.Sprintf("kern: MulTTree: tree of %d chunks x %d values for X %dx%d, k=%d", c1-c0, t.Width(), m.rows, m.cols, k))
	}
	if len(A) < m.rows*k {
		panic(fmt.Sprintf("kern: MulTTree: len(A)=%d, want %d", len(A), m.rows*k))
	}
	if k == 0 || m.cols == 0 || m.rows == 0 {
		return
	}
	m.mulTTree(t, A[:m.rows*k], k)
}

func (m *dense[T]) mulTTree(t *Tree, a []float64, k int) {
	prepMulT[T](&m.s, k)
	nch := nChunks(m.rows)
	nw := m.workers(nch)
	if nw == 1 {
		p := m.s.part(0, m.cols*k)
		for c := range nch {
			m.chunkPart(0, c, a, k, p)
			t.Push(p)
		}
		return
	}
	m.s.reduceChunks(nw, nch, m.cols*k, t, func(w, c int, p []float64) { m.chunkPart(w, c, a, k, p) })
}

// Pass fuses Mul and MulT over one read of each chunk (Matrix.Pass). The chunks, their
// kernels and the chunk tree are those of Mul and MulT.
func (m *dense[T]) Pass(dst, B []float64, k, kt int, f PassFunc) {
	m.fusedArgs(dst, B, k, kt)
	if m.rows == 0 {
		clear(dst[:m.cols*kt])
		return
	}
	if kt == 0 {
		m.pass(nil, B, k, kt, f)
		return
	}
	nch := nChunks(m.rows)
	m.s.tree.Reset(m.cols*kt, 0, nch, nch, nil)
	m.pass(&m.s.tree, B, k, kt, f)
	copy(dst[:m.cols*kt], m.s.tree.Root())
}

// PassTree is Pass with the chunk partials of X^T A pushed into t (kt > 0), whose range
// must hold exactly X's chunks, as MulTTree.
func (m *dense[T]) PassTree(t *Tree, B []float64, k, kt int, f PassFunc) {
	c0, c1, _ := t.Range()
	if kt <= 0 || c1-c0 != nChunks(m.rows) || t.Width() != m.cols*kt || len(B) < m.cols*k {
		panic(fmt.Sprintf("kern: PassTree: tree of %d chunks x %d values for X %dx%d, k=%d, kt=%d", c1-c0, t.Width(), m.rows, m.cols, k, kt))
	}
	if m.rows == 0 {
		return
	}
	m.pass(t, B, k, kt, f)
}

// pass runs Pass's chunks, pushing the partials of X^T A into t (nil: kt = 0).
func (m *dense[T]) pass(t *Tree, B []float64, k, kt int, f PassFunc) {
	if k > 0 {
		prepMul[T](&m.s, B[:m.cols*k], m.cols, k)
	}
	if kt > 0 {
		prepMulT[T](&m.s, kt)
	}
	nch := nChunks(m.rows)
	nw := m.workers(nch)
	unit := func(w, c int, p []float64) {
		ws := &m.s.work[w]
		x, lo, n := m.chunk(c)
		ws.xb, ws.a = grow64(ws.xb, n*k), grow64(ws.a, n*kt)
		if k > 0 && m.cols > 0 {
			mulChunk(x, n, m.cols, B, k, ws.xb, &m.s, ws)
		} else {
			clear(ws.xb)
		}
		f(c, lo, lo+n, ws.xb, ws.a)
		if kt > 0 && m.cols > 0 {
			mulTChunk(x, n, m.cols, ws.a, kt, p, &m.s, ws)
		}
	}
	if t == nil {
		if nw == 1 {
			for c := range nch {
				unit(0, c, nil)
			}
		} else {
			m.s.runChunks(nw, nch, func(w, c int) { unit(w, c, nil) })
		}
		return
	}
	if nw == 1 {
		p := m.s.part(0, m.cols*kt)
		for c := range nch {
			unit(0, c, p)
			t.Push(p)
		}
		return
	}
	m.s.reduceChunks(nw, nch, m.cols*kt, t, unit)
}
