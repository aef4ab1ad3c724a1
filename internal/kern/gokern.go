package kern

import (
	"unsafe"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// asF64 returns x as []float64 if T is float64 (without boxing the slice in an
// interface, which would allocate).
func asF64[T float32 | float64](x []T) ([]float64, bool) {
	var zero T
	if _, ok := any(zero).(float64); !ok {
		return nil, false
	}
	return unsafe.Slice((*float64)(unsafe.Pointer(unsafe.SliceData(x))), len(x)), true
}

// Pure-Go per-chunk kernels. They are always compiled (the openblas build does not
// dispatch to them) so that both builds type-check the same code.
//
// Measured (BENCH.md, "kernel choice"): gonum's assembly Dgemv, called once per column
// of the thin factor on an L1-sized block of rows, beat hand-written Go loops (4x4 and
// 2x4 register blocks, math.FMA) by 2-3x for k = 1 and k = 10 and tied or won at
// k = 300; gonum's Dgemm on a chunk was 1.1-25x slower than it (noisy machine).

// toF64 converts src into dst (same length).
func toF64[T float32 | float64](dst []float64, src []T) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = float64(v)
	}
}

// goMulChunk computes dst (n x k) = x (n x cols) * B with bt = B^T.
func goMulChunk[T float32 | float64](x []T, n, cols int, bt []float64, k int, dst []float64, ws *workspace) {
	if xx, ok := asF64(x); ok {
		gvMulRows(dst, xx, n, cols, bt, k)
		return
	}
	// float32: convert an L1-sized block of rows to float64, then run the same kernel
	// on it (it is re-read k times from L1).
	rb := gemvRowBlock(cols, 2)
	ws.f64 = grow64(ws.f64, rb*cols)
	for i := 0; i < n; i += rb {
		r := min(rb, n-i)
		buf := ws.f64[:r*cols]
		toF64(buf, x[i*cols:(i+r)*cols])
		gvMulRows(dst[i*k:(i+r)*k], buf, r, cols, bt, k)
	}
}

// goMulTChunk sets part (cols x k) = x^T a for one chunk.
func goMulTChunk[T float32 | float64](x []T, n, cols int, a []float64, k int, part []float64, ws *workspace) {
	sz := cols * k
	conv, rb := 0, gemvRowBlock(cols, 2)
	if _, ok := asF64(x); !ok {
		conv = rb * cols
	}
	ws.f64 = grow64(ws.f64, sz+conv)
	pt := ws.f64[:sz]
	if k == 1 {
		pt = part[:sz] // k x cols == cols x k
	}
	clear(pt)
	if xx, ok := asF64(x); ok {
		gvMulTRows(pt, xx, n, cols, a, k)
	} else {
		buf := ws.f64[sz : sz+conv]
		for i := 0; i < n; i += rb {
			r := min(rb, n-i)
			toF64(buf[:r*cols], x[i*cols:(i+r)*cols])
			gvMulTRows(pt, buf[:r*cols], r, cols, a[i*k:(i+r)*k], k)
		}
	}
	if k > 1 {
		for c := range k {
			row := pt[c*cols : c*cols+cols]
			for j, v := range row {
				part[j*k+c] = v
			}
		}
	}
}

// gemvRowBlock returns the number of rows processed per Gemv sweep so that the row
// block (rows x cols float64) stays in L1 (~32 KiB) while it is reused for all k
// columns. For k = 1 there is no reuse and the whole chunk is one Gemv.
func gemvRowBlock(cols, k int) int {
	if k == 1 {
		return ChunkRows
	}
	r := (32 << 10) / (8 * cols)
	return max(4, r&^3)
}

// gvMulRows sets dst (n x k) = x (n x cols) * B via gonum's assembly Dgemv, one
// column of B (row of bt) at a time per L1-sized row block.
func gvMulRows(dst, x []float64, n, cols int, bt []float64, k int) {
	impl := gonum.Implementation{}
	rb := gemvRowBlock(cols, k)
	for i := 0; i < n; i += rb {
		r := min(rb, n-i)
		xb := x[i*cols : (i+r)*cols]
		for c := range k {
			impl.Dgemv(blas.NoTrans, r, cols, 1, xb, cols, bt[c*cols:(c+1)*cols], 1, 0, dst[i*k+c:], k)
		}
	}
}

// gvMulTRows accumulates pt (k x cols) += a^T x via gonum's assembly Dgemv (Trans).
func gvMulTRows(pt, x []float64, n, cols int, a []float64, k int) {
	impl := gonum.Implementation{}
	rb := gemvRowBlock(cols, k)
	for i := 0; i < n; i += rb {
		r := min(rb, n-i)
		xb := x[i*cols : (i+r)*cols]
		for c := range k {
			impl.Dgemv(blas.Trans, r, cols, 1, xb, cols, a[i*k+c:], k, 1, pt[c*cols:(c+1)*cols], 1)
		}
	}
}
