package kern

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

func dot1x4fma(d, x, b0, b1, b2, b3 []float64) {
	n := len(x)
	b0, b1, b2, b3 = b0[:n], b1[:n], b2[:n], b3[:n]
	var s0, s1, s2, s3 float64
	for j, v := range x {
		s0 = math.FMA(v, b0[j], s0)
		s1 = math.FMA(v, b1[j], s1)
		s2 = math.FMA(v, b2[j], s2)
		s3 = math.FMA(v, b3[j], s3)
	}
	d = d[:4]
	d[0], d[1], d[2], d[3] = s0, s1, s2, s3
}

func dot2x4(d0, d1, x0, x1, b0, b1, b2, b3 []float64) {
	n := len(x0)
	x1 = x1[:n]
	b0, b1, b2, b3 = b0[:n], b1[:n], b2[:n], b3[:n]
	var s0, s1, s2, s3, t0, t1, t2, t3 float64
	for j, v := range x0 {
		w := x1[j]
		c0, c1, c2, c3 := b0[j], b1[j], b2[j], b3[j]
		s0 += v * c0
		s1 += v * c1
		s2 += v * c2
		s3 += v * c3
		t0 += w * c0
		t1 += w * c1
		t2 += w * c2
		t3 += w * c3
	}
	d0, d1 = d0[:4], d1[:4]
	d0[0], d0[1], d0[2], d0[3] = s0, s1, s2, s3
	d1[0], d1[1], d1[2], d1[3] = t0, t1, t2, t3
}

func mulRowsFMA(dst, x []float64, n, cols int, bt []float64, k int) {
	for i := 0; i < n; i++ {
		xi := x[i*cols : i*cols+cols]
		for c := 0; c+4 <= k; c += 4 {
			dot1x4fma(dst[i*k+c:i*k+c+4], xi, bt[c*cols:c*cols+cols], bt[(c+1)*cols:(c+1)*cols+cols], bt[(c+2)*cols:(c+2)*cols+cols], bt[(c+3)*cols:(c+3)*cols+cols])
		}
	}
}

func mulRows2x4(dst, x []float64, n, cols int, bt []float64, k int) {
	for i := 0; i+2 <= n; i += 2 {
		x0 := x[i*cols : i*cols+cols]
		x1 := x[(i+1)*cols : (i+1)*cols+cols]
		for c := 0; c+4 <= k; c += 4 {
			dot2x4(dst[i*k+c:i*k+c+4], dst[(i+1)*k+c:(i+1)*k+c+4], x0, x1, bt[c*cols:c*cols+cols], bt[(c+1)*cols:(c+1)*cols+cols], bt[(c+2)*cols:(c+2)*cols+cols], bt[(c+3)*cols:(c+3)*cols+cols])
		}
	}
}

func BenchmarkKernelChoice(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, sh := range [][2]int{{1, 100}, {10, 100}, {300, 784}} {
		k, cols := sh[0], sh[1]
		n := 1024
		x := randVec(rng, n*cols)
		bt := randVec(rng, k*cols)
		B := randVec(rng, k*cols)
		a := randVec(rng, n*k)
		dst := make([]float64, n*k)
		pt := make([]float64, k*cols)
		X := blas64.General{Rows: n, Cols: cols, Stride: cols, Data: x}
		b.Run(fmt.Sprintf("k=%d/mul/go", k), func(b *testing.B) {
			for b.Loop() {
				goMulRows(dst, x, n, cols, bt, k)
			}
		})
		if k%4 == 0 {
			b.Run(fmt.Sprintf("k=%d/mul/fma", k), func(b *testing.B) {
				for b.Loop() {
					mulRowsFMA(dst, x, n, cols, bt, k)
				}
			})
			b.Run(fmt.Sprintf("k=%d/mul/2x4", k), func(b *testing.B) {
				for b.Loop() {
					mulRows2x4(dst, x, n, cols, bt, k)
				}
			})
		}
		b.Run(fmt.Sprintf("k=%d/mul/gemvcols", k), func(b *testing.B) {
			for b.Loop() {
				for c := range k {
					blas64.Gemv(blas.NoTrans, 1, X, blas64.Vector{N: cols, Inc: 1, Data: bt[c*cols:]}, 0, blas64.Vector{N: n, Inc: k, Data: dst[c:]})
				}
			}
		})
		b.Run(fmt.Sprintf("k=%d/mul/gemm", k), func(b *testing.B) {
			for b.Loop() {
				blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, X, blas64.General{Rows: cols, Cols: k, Stride: k, Data: B}, 0, blas64.General{Rows: n, Cols: k, Stride: k, Data: dst})
			}
		})
		b.Run(fmt.Sprintf("k=%d/mul/gvblk", k), func(b *testing.B) {
			for b.Loop() {
				gvMulRows(dst, x, n, cols, bt, k)
			}
		})
		b.Run(fmt.Sprintf("k=%d/mulT/gvblk", k), func(b *testing.B) {
			for b.Loop() {
				gvMulTRows(pt, x, n, cols, a, k)
			}
		})
		b.Run(fmt.Sprintf("k=%d/mulT/go", k), func(b *testing.B) {
			for b.Loop() {
				goMulTRows(pt, x, n, cols, a, k)
			}
		})
		b.Run(fmt.Sprintf("k=%d/mulT/gemvcols", k), func(b *testing.B) {
			for b.Loop() {
				for c := range k {
					blas64.Gemv(blas.Trans, 1, X, blas64.Vector{N: n, Inc: k, Data: a[c:]}, 0, blas64.Vector{N: cols, Inc: 1, Data: pt[c*cols:]})
				}
			}
		})
		b.Run(fmt.Sprintf("k=%d/mulT/gemm", k), func(b *testing.B) {
			for b.Loop() {
				blas64.Gemm(blas.Trans, blas.NoTrans, 1, X, blas64.General{Rows: n, Cols: k, Stride: k, Data: a}, 0, blas64.General{Rows: cols, Cols: k, Stride: k, Data: pt})
			}
		})
	}
}

// Hand-written scalar Go kernels (the first implementation), kept here only as the
// measured alternative in BenchmarkKernelChoice.
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
