package kern

import "unsafe"

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

// goMulRows sets dst (n x k) = x (n x cols) * B, where bt is B transposed (k x cols).
// Work is blocked as 4 rows x 4 columns of B: each x[i,j] and bt[c,j] loaded once
// feeds several independent accumulators.
func goMulRows(dst, x []float64, n, cols int, bt []float64, k int) {
	i := 0
	for ; i+4 <= n; i += 4 {
		x0 := x[i*cols : i*cols+cols]
		x1 := x[(i+1)*cols : (i+1)*cols+cols]
		x2 := x[(i+2)*cols : (i+2)*cols+cols]
		x3 := x[(i+3)*cols : (i+3)*cols+cols]
		c := 0
		for ; c+4 <= k; c += 4 {
			b0 := bt[c*cols : c*cols+cols]
			b1 := bt[(c+1)*cols : (c+1)*cols+cols]
			b2 := bt[(c+2)*cols : (c+2)*cols+cols]
			b3 := bt[(c+3)*cols : (c+3)*cols+cols]
			dot1x4(dst[i*k+c:i*k+c+4], x0, b0, b1, b2, b3)
			dot1x4(dst[(i+1)*k+c:(i+1)*k+c+4], x1, b0, b1, b2, b3)
			dot1x4(dst[(i+2)*k+c:(i+2)*k+c+4], x2, b0, b1, b2, b3)
			dot1x4(dst[(i+3)*k+c:(i+3)*k+c+4], x3, b0, b1, b2, b3)
		}
		for ; c < k; c++ {
			s0, s1, s2, s3 := dot4x1(x0, x1, x2, x3, bt[c*cols:c*cols+cols])
			dst[i*k+c] = s0
			dst[(i+1)*k+c] = s1
			dst[(i+2)*k+c] = s2
			dst[(i+3)*k+c] = s3
		}
	}
	for ; i < n; i++ {
		xi := x[i*cols : i*cols+cols]
		c := 0
		for ; c+4 <= k; c += 4 {
			dot1x4(dst[i*k+c:i*k+c+4], xi,
				bt[c*cols:c*cols+cols], bt[(c+1)*cols:(c+1)*cols+cols],
				bt[(c+2)*cols:(c+2)*cols+cols], bt[(c+3)*cols:(c+3)*cols+cols])
		}
		for ; c < k; c++ {
			dst[i*k+c] = dot1(xi, bt[c*cols:c*cols+cols])
		}
	}
}

// dot1x4 sets d[0..3] = <x, b_c>.
func dot1x4(d, x, b0, b1, b2, b3 []float64) {
	n := len(x)
	b0, b1, b2, b3 = b0[:n], b1[:n], b2[:n], b3[:n]
	var s0, s1, s2, s3 float64
	for j, v := range x {
		s0 += v * b0[j]
		s1 += v * b1[j]
		s2 += v * b2[j]
		s3 += v * b3[j]
	}
	d = d[:4]
	d[0], d[1], d[2], d[3] = s0, s1, s2, s3
}

// dot4x1 returns <x_r, b> for four rows.
func dot4x1(x0, x1, x2, x3, b []float64) (s0, s1, s2, s3 float64) {
	n := len(b)
	x0, x1, x2, x3 = x0[:n], x1[:n], x2[:n], x3[:n]
	for j, v := range b {
		s0 += x0[j] * v
		s1 += x1[j] * v
		s2 += x2[j] * v
		s3 += x3[j] * v
	}
	return
}

// dot1 returns <x, b> with four interleaved partial sums.
func dot1(x, b []float64) float64 {
	n := len(x)
	b = b[:n]
	var s0, s1, s2, s3 float64
	j := 0
	for ; j+4 <= n; j += 4 {
		s0 += x[j] * b[j]
		s1 += x[j+1] * b[j+1]
		s2 += x[j+2] * b[j+2]
		s3 += x[j+3] * b[j+3]
	}
	for ; j < n; j++ {
		s0 += x[j] * b[j]
	}
	return (s0 + s1) + (s2 + s3)
}

// goMulTRows accumulates pt (k x cols) += a^T x for x (n x cols), a (n x k):
// pt[c,:] += sum_i a[i,c] x[i,:], four rows of x per sweep.
func goMulTRows(pt, x []float64, n, cols int, a []float64, k int) {
	i := 0
	for ; i+4 <= n; i += 4 {
		x0 := x[i*cols : i*cols+cols]
		x1 := x[(i+1)*cols : (i+1)*cols+cols]
		x2 := x[(i+2)*cols : (i+2)*cols+cols]
		x3 := x[(i+3)*cols : (i+3)*cols+cols]
		a0 := a[i*k : i*k+k]
		a1 := a[(i+1)*k : (i+1)*k+k]
		a2 := a[(i+2)*k : (i+2)*k+k]
		a3 := a[(i+3)*k : (i+3)*k+k]
		for c := range k {
			axpy4(pt[c*cols:c*cols+cols], a0[c], a1[c], a2[c], a3[c], x0, x1, x2, x3)
		}
	}
	for ; i < n; i++ {
		xi := x[i*cols : i*cols+cols]
		ai := a[i*k : i*k+k]
		for c, av := range ai {
			p := pt[c*cols : c*cols+cols]
			for j, v := range xi {
				p[j] += av * v
			}
		}
	}
}

// axpy4 sets p += a0*x0 + a1*x1 + a2*x2 + a3*x3.
func axpy4(p []float64, a0, a1, a2, a3 float64, x0, x1, x2, x3 []float64) {
	n := len(p)
	x0, x1, x2, x3 = x0[:n], x1[:n], x2[:n], x3[:n]
	for j := range p {
		p[j] += a0*x0[j] + a1*x1[j] + a2*x2[j] + a3*x3[j]
	}
}

// toF64 converts src into dst (same length).
func toF64[T float32 | float64](dst []float64, src []T) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = float64(v)
	}
}

// goRowBlock is the number of float32 rows converted to float64 at a time.
const goRowBlock = 16

// goMulChunk computes dst (n x k) = x (n x cols) * B with bt = B^T.
func goMulChunk[T float32 | float64](x []T, n, cols int, bt []float64, k int, dst []float64, ws *workspace) {
	if xx, ok := asF64(x); ok {
		goMulRows(dst, xx, n, cols, bt, k)
		return
	}
	ws.f64 = grow64(ws.f64, goRowBlock*cols)
	for i := 0; i < n; i += goRowBlock {
		r := min(goRowBlock, n-i)
		buf := ws.f64[:r*cols]
		toF64(buf, x[i*cols:(i+r)*cols])
		goMulRows(dst[i*k:(i+r)*k], buf, r, cols, bt, k)
	}
}

// goMulTChunk sets part (cols x k) = x^T a for one chunk.
func goMulTChunk[T float32 | float64](x []T, n, cols int, a []float64, k int, part []float64, ws *workspace) {
	sz := cols * k
	conv := 0
	if _, ok := asF64(x); !ok {
		conv = goRowBlock * cols
	}
	ws.f64 = grow64(ws.f64, sz+conv)
	pt := ws.f64[:sz]
	if k == 1 {
		pt = part[:sz] // k x cols == cols x k
	}
	clear(pt)
	if xx, ok := asF64(x); ok {
		goMulTRows(pt, xx, n, cols, a, k)
	} else {
		buf := ws.f64[sz : sz+conv]
		for i := 0; i < n; i += goRowBlock {
			r := min(goRowBlock, n-i)
			toF64(buf[:r*cols], x[i*cols:(i+r)*cols])
			goMulTRows(pt, buf[:r*cols], r, cols, a[i*k:(i+r)*k], k)
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
