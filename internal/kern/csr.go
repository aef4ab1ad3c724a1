package kern

import (
	"fmt"
	"sync"

	"gonum.org/v1/gonum/blas/gonum"
)

// Sparse (CSR) data matrices.
//
// NewCSR64 / NewCSR32 copy a dense row-major array into compressed sparse rows: row
// pointers (int), column indices (int32) and the nonzero values in the input precision
// (float32 values stay float32: they convert exactly and need 8 instead of 12 bytes per
// nonzero; see BENCH.md, "Sparse (CSR)"). Products are computed in float64 by scalar
// Go loops over the nonzeros, so their cost is O(nnz k) instead of O(rows cols k).
//
// Exact zeros (including -0) are dropped. The result therefore differs from the dense
// product only by rounding (a different summation order) and where B or A holds Inf or
// NaN (the dense product gives 0*Inf = NaN, the sparse one skips the term).
//
// Determinism is the same contract as for the dense matrices: Mul computes every row of
// dst by one fixed operation sequence; MulT splits the rows into fixed chunks (chosen
// from the data at construction, never from the thread count), computes a cols x k
// partial per chunk and adds the partials into dst strictly in chunk order. Results are
// bitwise identical for every thread count.

// csrMinChunkNNZPerCol sets the MulT chunk size: a chunk holds at least this many
// nonzeros per column of X on average (and at least ChunkRows rows), so that clearing and
// reducing its cols x k partial (2 cols k flops) costs at most 1/16 of its 2 nnz k flops.
const csrMinChunkNNZPerCol = 16

// Row kernels (BENCH.md, "CSR kernel choice", one 1024 x 784 chunk at density 0.19):
// from these k on, gonum's assembly Daxpy per nonzero beats the Go loops (Mul: four
// nonzeros per sweep over the dst row; MulT: one axpy per nonzero). Axpy is elementwise,
// so the choice does not change any rounding between runs or thread counts.
const (
	csrDaxpyMulK  = 96
	csrDaxpyMulTK = 24
)

// csr is the matrix behind NewCSR64 / NewCSR32.
type csr[V float32 | float64] struct {
	shape
	ptr    []int   // len rows+1; row i is idx/val[ptr[i]:ptr[i+1]]
	idx    []int32 // column indices, increasing within a row
	val    []V
	tChunk int // rows per MulT chunk (a multiple of ChunkRows)

	s scratch // chunk scheduling, MulT partials and ordered reduction; Mul/MulT are single-caller
}

// NewCSR64 copies data (row-major, rows x cols) into a sparse CSR Matrix. It pays off
// when data has many exact zeros; see Density and BENCH.md for the crossover.
func NewCSR64(data []float64, rows, cols int) Matrix { return newCSR(data, rows, cols) }

// NewCSR32 is NewCSR64 for float32 data (values are stored as float32, products are
// computed and returned in float64).
func NewCSR32(data []float32, rows, cols int) Matrix { return newCSR(data, rows, cols) }

// Density returns the fraction of entries of data that are not exactly zero (NaN counts
// as nonzero); 0 for empty data.
func Density[T float32 | float64](data []T) float64 {
	if len(data) == 0 {
		return 0
	}
	return float64(countNZ(data)) / float64(len(data))
}

func countNZ[T float32 | float64](data []T) int {
	n := 0
	for _, v := range data {
		if v != 0 {
			n++
		}
	}
	return n
}

func newCSR[V float32 | float64](data []V, rows, cols int) *csr[V] {
	sh := newShape(len(data), rows, cols)
	if cols > 1<<31-1 {
		panic(fmt.Sprintf("kern: CSR needs cols < 2^31, got %d", cols))
	}
	m := &csr[V]{shape: sh, ptr: make([]int, rows+1)}

	// Pass 1 (parallel over row blocks): nonzeros per row into ptr[i+1].
	nch := nChunks(rows)
	parallelChunks(nch, threadsFor(0), func(c int) {
		lo, hi := c*ChunkRows, min(rows, (c+1)*ChunkRows)
		for i := lo; i < hi; i++ {
			m.ptr[i+1] = countNZ(data[i*cols : (i+1)*cols])
		}
	})
	for i := range rows {
		m.ptr[i+1] += m.ptr[i]
	}
	nnz := m.ptr[rows]
	m.idx = make([]int32, nnz)
	m.val = make([]V, nnz)
	// Pass 2 (parallel): fill.
	parallelChunks(nch, threadsFor(0), func(c int) {
		lo, hi := c*ChunkRows, min(rows, (c+1)*ChunkRows)
		for i := lo; i < hi; i++ {
			p := m.ptr[i]
			for j, v := range data[i*cols : (i+1)*cols] {
				if v != 0 {
					m.idx[p], m.val[p] = int32(j), v
					p++
				}
			}
		}
	})

	// MulT chunk: at least csrMinChunkNNZPerCol*cols nonzeros (on average), rounded up
	// to a multiple of ChunkRows.
	m.tChunk = ChunkRows
	if nnz > 0 && rows > 0 {
		want := float64(csrMinChunkNNZPerCol) * float64(cols) * float64(rows) / float64(nnz)
		if want > float64(rows) {
			want = float64(rows)
		}
		m.tChunk = max(ChunkRows, (int(want)+ChunkRows-1)/ChunkRows*ChunkRows)
	}
	return m
}

// parallelChunks runs f(c) for c in [0, nch) on up to nw goroutines.
func parallelChunks(nch, nw int, f func(c int)) {
	nw = max(1, min(nw, nch))
	if nw == 1 {
		for c := range nch {
			f(c)
		}
		return
	}
	var wg sync.WaitGroup
	wg.Add(nw)
	for w := range nw {
		go func() {
			defer wg.Done()
			for c := w; c < nch; c += nw {
				f(c)
			}
		}()
	}
	wg.Wait()
}

// NNZ returns the number of stored nonzeros.
func (m *csr[V]) NNZ() int { return m.ptr[m.rows] }

func (m *csr[V]) Row(buf []float64, i int) []float64 {
	buf = m.rowBuf(buf, i)
	clear(buf)
	lo, hi := m.ptr[i], m.ptr[i+1]
	for p, j := range m.idx[lo:hi] {
		buf[j] = float64(m.val[lo+p])
	}
	return buf
}

// Mul sets dst = X * B (B cols x k, dst rows x k, both row-major).
func (m *csr[V]) Mul(dst, B []float64, k int) {
	d, b, ok := m.mulArgs(dst, B, k)
	if !ok {
		return
	}
	nch := nChunks(m.rows)
	nw := m.workers(nch)
	if nw == 1 {
		for c := range nch {
			m.mulChunk(c, d, b, k)
		}
		return
	}
	m.s.runChunks(nw, nch, func(_, c int) { m.mulChunk(c, d, b, k) })
}

// mulChunk computes the rows of chunk c (ChunkRows rows) of dst = X * B.
func (m *csr[V]) mulChunk(c int, dst, B []float64, k int) {
	lo, hi := c*ChunkRows, min(m.rows, (c+1)*ChunkRows)
	csrMulRows(m.ptr[lo:hi+1], m.idx, m.val, B, k, dst[lo*k:hi*k])
}

// csrMulRows sets dst (n x k) = rows ptr[0..n] of X times B.
func csrMulRows[V float32 | float64](ptr []int, idx []int32, val []V, B []float64, k int, dst []float64) {
	n := len(ptr) - 1
	if k == 1 {
		for i := range n {
			lo, hi := ptr[i], ptr[i+1]
			ix, vx := idx[lo:hi], val[lo:hi]
			vx = vx[:len(ix)]
			var s float64
			for p, j := range ix {
				s += float64(vx[p]) * B[j]
			}
			dst[i] = s
		}
		return
	}
	if k >= csrDaxpyMulK {
		impl := gonum.Implementation{}
		for i := range n {
			d := dst[i*k : (i+1)*k]
			clear(d)
			lo, hi := ptr[i], ptr[i+1]
			ix, vx := idx[lo:hi], val[lo:hi]
			vx = vx[:len(ix)]
			for p, j := range ix {
				impl.Daxpy(k, float64(vx[p]), B[int(j)*k:], 1, d, 1)
			}
		}
		return
	}
	for i := range n {
		lo, hi := ptr[i], ptr[i+1]
		csrRowAxpy4(dst[i*k:(i+1)*k], idx[lo:hi], val[lo:hi], B, k)
	}
}

// csrRowAxpy4 sets d = sum_p val[p] * B[idx[p], :], four nonzeros per sweep over d
// (one load and store of d per four products).
func csrRowAxpy4[V float32 | float64](d []float64, idx []int32, val []V, B []float64, k int) {
	val = val[:len(idx)]
	nz := len(idx)
	p := 0
	if nz < 4 {
		clear(d)
	} else {
		v0, v1, v2, v3 := float64(val[0]), float64(val[1]), float64(val[2]), float64(val[3])
		j0, j1, j2, j3 := int(idx[0])*k, int(idx[1])*k, int(idx[2])*k, int(idx[3])*k
		b0, b1, b2, b3 := B[j0:j0+k], B[j1:j1+k], B[j2:j2+k], B[j3:j3+k]
		b0, b1, b2, b3 = b0[:len(d)], b1[:len(d)], b2[:len(d)], b3[:len(d)]
		for c := range d {
			d[c] = v0*b0[c] + v1*b1[c] + v2*b2[c] + v3*b3[c]
		}
		p = 4
	}
	for ; p+4 <= nz; p += 4 {
		v0, v1, v2, v3 := float64(val[p]), float64(val[p+1]), float64(val[p+2]), float64(val[p+3])
		j0, j1, j2, j3 := int(idx[p])*k, int(idx[p+1])*k, int(idx[p+2])*k, int(idx[p+3])*k
		b0, b1, b2, b3 := B[j0:j0+k], B[j1:j1+k], B[j2:j2+k], B[j3:j3+k]
		b0, b1, b2, b3 = b0[:len(d)], b1[:len(d)], b2[:len(d)], b3[:len(d)]
		for c := range d {
			d[c] += v0*b0[c] + v1*b1[c] + v2*b2[c] + v3*b3[c]
		}
	}
	for ; p < nz; p++ {
		v, j := float64(val[p]), int(idx[p])*k
		b := B[j : j+k]
		b = b[:len(d)]
		for c := range d {
			d[c] += v * b[c]
		}
	}
}

// MulT sets dst = X^T * A (A rows x k, dst cols x k, both row-major). The chunk partials
// are combined by the fixed chunk tree of tree.go.
func (m *csr[V]) MulT(dst, A []float64, k int) {
	d, a, ok := m.mulTArgs(dst, A, k)
	if !ok {
		return
	}
	nch := (m.rows + m.tChunk - 1) / m.tChunk
	nw := m.workers(nch)
	if nw == 1 {
		if nch == 1 {
			m.chunkPart(0, a, k, d) // P0 written into dst directly: same sums
			return
		}
		m.s.tree.Reset(len(d), 0, nch, nch, nil)
		p := m.s.part(0, len(d))
		for c := range nch {
			m.chunkPart(c, a, k, p)
			m.s.tree.Push(p)
		}
		copy(d, m.s.tree.Root())
		return
	}
	m.s.tree.Reset(len(d), 0, nch, nch, nil)
	m.s.reduceChunks(nw, nch, len(d), &m.s.tree, func(_, c int, p []float64) { m.chunkPart(c, a, k, p) })
	copy(d, m.s.tree.Root())
}

// chunkPart sets part (cols x k) = X_c^T A_c for MulT chunk c.
func (m *csr[V]) chunkPart(c int, A []float64, k int, part []float64) {
	lo, hi := c*m.tChunk, min(m.rows, (c+1)*m.tChunk)
	part = part[:m.cols*k]
	clear(part)
	csrMulTRows(m.ptr[lo:hi+1], m.idx, m.val, A[lo*k:hi*k], k, part)
}

// csrMulTRows accumulates part (cols x k) += X_rows^T a for rows ptr[0..n].
func csrMulTRows[V float32 | float64](ptr []int, idx []int32, val []V, a []float64, k int, part []float64) {
	n := len(ptr) - 1
	if k == 1 {
		for i := range n {
			lo, hi := ptr[i], ptr[i+1]
			ix, vx := idx[lo:hi], val[lo:hi]
			vx = vx[:len(ix)]
			ai := a[i]
			for p, j := range ix {
				part[j] += float64(vx[p]) * ai
			}
		}
		return
	}
	if k >= csrDaxpyMulTK {
		impl := gonum.Implementation{}
		for i := range n {
			lo, hi := ptr[i], ptr[i+1]
			ix, vx := idx[lo:hi], val[lo:hi]
			vx = vx[:len(ix)]
			ar := a[i*k : (i+1)*k]
			for p, j := range ix {
				impl.Daxpy(k, float64(vx[p]), ar, 1, part[int(j)*k:], 1)
			}
		}
		return
	}
	csrMulTRowsLoop(ptr, idx, val, a, k, part)
}

// csrMulTRowsLoop is csrMulTRows with a plain Go axpy per nonzero (k > 1).
func csrMulTRowsLoop[V float32 | float64](ptr []int, idx []int32, val []V, a []float64, k int, part []float64) {
	n := len(ptr) - 1
	for i := range n {
		lo, hi := ptr[i], ptr[i+1]
		ix, vx := idx[lo:hi], val[lo:hi]
		vx = vx[:len(ix)]
		ar := a[i*k : (i+1)*k]
		for p, j := range ix {
			v, o := float64(vx[p]), int(j)*k
			d := part[o : o+k]
			d = d[:len(ar)]
			for c, x := range ar {
				d[c] += v * x
			}
		}
	}
}

// Pass fuses Mul and MulT over one read of each MulT chunk (Matrix.Pass): the rows of a
// MulT chunk (tChunk rows) go through Mul's ChunkRows pieces and f, then through MulT's
// partial of the whole chunk, reduced in chunk order as MulT does.
func (m *csr[V]) Pass(dst, B []float64, k, kt int, f PassFunc) {
	m.fusedArgs(dst, B, k, kt)
	if m.rows == 0 {
		clear(dst[:m.cols*kt])
		return
	}
	if kt == 0 || m.cols == 0 {
		nch := nChunks(m.rows)
		unit := func(w, c int) {
			ws := m.passWork(w)
			lo, hi := c*ChunkRows, min(m.rows, (c+1)*ChunkRows)
			ws.xb, ws.a = grow64(ws.xb, (hi-lo)*k), grow64(ws.a, (hi-lo)*kt)
			if k > 0 {
				csrMulRows(m.ptr[lo:hi+1], m.idx, m.val, B, k, ws.xb)
			}
			f(c, lo, hi, ws.xb, ws.a)
		}
		if nw := m.passWorkers(nch); nw == 1 {
			for c := range nch {
				unit(0, c)
			}
		} else {
			m.s.runChunks(nw, nch, unit)
		}
		clear(dst[:m.cols*kt])
		return
	}
	d := dst[:m.cols*kt]
	nch := (m.rows + m.tChunk - 1) / m.tChunk
	nw := m.passWorkers(nch)
	unit := func(w, c int, p []float64) {
		ws := m.passWork(w)
		ulo, uhi := c*m.tChunk, min(m.rows, (c+1)*m.tChunk)
		ws.a = grow64(ws.a, (uhi-ulo)*kt)
		for lo := ulo; lo < uhi; lo += ChunkRows {
			hi := min(uhi, lo+ChunkRows)
			ws.xb = grow64(ws.xb, (hi-lo)*k)
			if k > 0 {
				csrMulRows(m.ptr[lo:hi+1], m.idx, m.val, B, k, ws.xb)
			}
			f(lo/ChunkRows, lo, hi, ws.xb, ws.a[(lo-ulo)*kt:(hi-ulo)*kt])
		}
		p = p[:len(d)]
		clear(p)
		csrMulTRows(m.ptr[ulo:uhi+1], m.idx, m.val, ws.a, kt, p)
	}
	if nw == 1 {
		if nch == 1 {
			unit(0, 0, d) // as MulT: P0 written into dst directly
			return
		}
		m.s.tree.Reset(len(d), 0, nch, nch, nil)
		p := m.s.part(0, len(d))
		for c := range nch {
			unit(0, c, p)
			m.s.tree.Push(p)
		}
		copy(d, m.s.tree.Root())
		return
	}
	m.s.tree.Reset(len(d), 0, nch, nch, nil)
	m.s.reduceChunks(nw, nch, len(d), &m.s.tree, unit)
	copy(d, m.s.tree.Root())
}

// passWork returns worker w's workspace (sized by workers before the pass).
func (m *csr[V]) passWork(w int) *workspace {
	return &m.s.work[w]
}

// passWorkers returns the number of goroutines for nch chunks and sizes the workspaces.
func (m *csr[V]) passWorkers(nch int) int {
	nw := m.workers(nch)
	m.s.ensureWork(nw)
	return nw
}
