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
// k = 300; gonum's Dgemm on a chunk was 1.1-25x slower than it (noisy machine). On CPUs
// with AVX2 and FMA, products with k >= 4 columns run on register-blocked assembly
// micro-kernels instead (avx_amd64.s, below): 1.5-1.9x faster than Dgemv for Mul and
// 1.15-1.3x for MulT at k = 10 and 300 (go test -bench 'Mul(T)?64$' with and without
// RELUTRIM_NOAVX=1, same loaded machine, 2026-11-27).

// toF64 converts src into dst (same length).
func toF64[T float32 | float64](dst []float64, src []T) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = float64(v)
	}
}

// goMulChunk computes dst (n x k) = x (n x cols) * B with bt = B^T.
func goMulChunk[T float32 | float64](x []T, n, cols int, bt []float64, k int, dst []float64, ws *workspace) {
	if avxFor(k) { // bt holds B packed in panels (prepMul)
		avxMulChunk(x, n, cols, bt, k, dst, ws)
		return
	}
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
	if avxFor(k) {
		avxMulTChunk(x, n, cols, a, k, part, ws)
		return
	}
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

// The AVX2/FMA path (amd64 with AVX2 and FMA; avx_amd64.s). Its micro-kernels hold a
// 4 x 12 block of the result in twelve 256-bit registers: Mul runs 4 rows of X against
// 12 columns of B per call, MulT 4 columns of X against 12 columns of A, over a block of
// rows. Thin factors are zero-padded to panels of 12 columns. Within a chunk the order of
// operations is fixed, so results stay bitwise independent of the thread count; they
// differ in rounding from the Dgemv path (FMA, another summation order).

// panelW is the width of the micro-kernels' column panels.
const panelW = 12

// avxFor reports whether a product with k columns takes the AVX2 path: from k = 4 on
// (below, the padding to 12 columns wastes more than the Dgemv path loses).
func avxFor(k int) bool { return haveAVX && k >= 4 }

// packPanels writes B (cols x k) as ceil(k/12) panels of cols x 12 (zero-padded) into dst.
func packPanels(dst, B []float64, cols, k int) {
	for q := 0; q*panelW < k; q++ {
		p := dst[q*cols*panelW : (q+1)*cols*panelW]
		c0 := q * panelW
		w := min(panelW, k-c0)
		for j := 0; j < cols; j++ {
			row := p[j*panelW : (j+1)*panelW]
			copy(row, B[j*k+c0:j*k+c0+w])
			clear(row[w:])
		}
	}
}

// avxRowBlock is the number of rows of X converted (float32) or swept per block.
const avxRowBlock = 256

// avxMulChunk sets dst (n x k) = x (n x cols) * B, with B packed by packPanels in bp.
func avxMulChunk[T float32 | float64](x []T, n, cols int, bp []float64, k int, dst []float64, ws *workspace) {
	if xx, ok := asF64(x); ok {
		avxMulRows(dst, xx, n, cols, bp, k, ws)
		return
	}
	ws.f64 = grow64(ws.f64, avxRowBlock*cols)
	for i := 0; i < n; i += avxRowBlock {
		r := min(avxRowBlock, n-i)
		buf := ws.f64[:r*cols]
		toF64(buf, x[i*cols:(i+r)*cols])
		avxMulRows(dst[i*k:(i+r)*k], buf, r, cols, bp, k, ws)
	}
}

// avxMulRows sets dst (n x k) = x (n x cols) * B for float64 rows (bp: packPanels).
func avxMulRows(dst, x []float64, n, cols int, bp []float64, k int, ws *workspace) {
	var out [4 * panelW]float64
	for i := 0; i < n; i += 4 {
		rows := min(4, n-i)
		xr := x[i*cols:]
		if rows < 4 { // the last rows, zero-padded to 4
			ws.pad = grow64(ws.pad, 4*cols)
			copy(ws.pad, x[i*cols:(i+rows)*cols])
			clear(ws.pad[rows*cols:])
			xr = ws.pad
		}
		for q := 0; q*panelW < k; q++ {
			mulKern4x12(&xr[0], cols, cols, &bp[q*cols*panelW], &out[0])
			c0 := q * panelW
			w := min(panelW, k-c0)
			for r := 0; r < rows; r++ {
				copy(dst[(i+r)*k+c0:(i+r)*k+c0+w], out[r*panelW:r*panelW+w])
			}
		}
	}
}

// avxMulTChunk sets part (cols x k) = x^T a for one chunk (x n x cols, a n x k). The
// columns of x in tiles of 4 go through mulTKern4x12 block by block of rows; the last
// cols mod 4 columns are summed in plain Go in the same row order.
func avxMulTChunk[T float32 | float64](x []T, n, cols int, a []float64, k int, part []float64, ws *workspace) {
	np := (k + panelW - 1) / panelW
	kp := np * panelW
	cols4 := cols &^ 3
	ws.ap = grow64(ws.ap, n*kp) // a, zero-padded to kp columns
	for i := 0; i < n; i++ {
		row := ws.ap[i*kp : (i+1)*kp]
		copy(row, a[i*k:(i+1)*k])
		clear(row[k:])
	}
	ws.acc = grow64(ws.acc, np*cols4*panelW)
	clear(ws.acc)
	rest := cols - cols4
	ws.rem = grow64(ws.rem, rest*k)
	clear(ws.rem)
	xx, is64 := asF64(x)
	for i := 0; i < n; i += avxRowBlock {
		r := min(avxRowBlock, n-i)
		var xb []float64
		if is64 {
			xb = xx[i*cols : (i+r)*cols]
		} else {
			ws.f64 = grow64(ws.f64, r*cols)
			xb = ws.f64[:r*cols]
			toF64(xb, x[i*cols:(i+r)*cols])
		}
		for q := 0; q < np; q++ {
			for j := 0; j < cols4; j += 4 {
				mulTKern4x12(&xb[j], cols, r, &ws.ap[i*kp+q*panelW], kp, &ws.acc[(q*cols4+j)*panelW])
			}
		}
		for rr := 0; rr < r; rr++ {
			ar := a[(i+rr)*k : (i+rr+1)*k]
			for j := cols4; j < cols; j++ {
				v := xb[rr*cols+j]
				rm := ws.rem[(j-cols4)*k : (j-cols4+1)*k]
				for c, av := range ar {
					rm[c] += v * av
				}
			}
		}
	}
	part = part[:cols*k]
	for q := 0; q < np; q++ {
		c0 := q * panelW
		w := min(panelW, k-c0)
		for j := 0; j < cols4; j++ {
			t := ws.acc[(q*cols4+j)*panelW:] // tile j&^3, its row j&3
			copy(part[j*k+c0:j*k+c0+w], t[:w])
		}
	}
	copy(part[cols4*k:], ws.rem)
}
