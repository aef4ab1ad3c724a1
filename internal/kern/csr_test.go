package kern

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas/gonum"
)

// sparseData returns a rows x cols matrix with about the given fraction of nonzeros
// (normal values), optionally with row zeroRow and column zeroCol forced to zero
// (pass -1 for none). x holds the exact float64 values; x32 the float32 version.
func sparseData(rng *rand.Rand, rows, cols int, density float64, zeroRow, zeroCol int) (x []float64, x32 []float32) {
	x = make([]float64, rows*cols)
	x32 = make([]float32, rows*cols)
	for i := range rows {
		for j := range cols {
			if i == zeroRow || j == zeroCol || rng.Float64() >= density {
				continue
			}
			v := float32(rng.NormFloat64())
			x32[i*cols+j], x[i*cols+j] = v, float64(v)
		}
	}
	return
}

type csrPair struct {
	sp, de Matrix
	x      []float64
	is32   bool
	label  string
}

func csrPairs(x []float64, x32 []float32, rows, cols int) []csrPair {
	return []csrPair{
		{NewCSR64(x, rows, cols), NewDense64(x, rows, cols), x, false, "f64"},
		{NewCSR32(x32, rows, cols), NewDense32(x32, rows, cols), x, true, "f32"},
	}
}

// TestCSRAgainstDense compares the CSR products with the dense ones (and both with the
// naive triple loop's error scale sum |x||b|). Tolerance: tolFor(is32) relative to that
// scale, i.e. 1e-12 in the pure-Go build (both sides compute in float64; they differ only
// in summation order) and 1e-4 for float32 X under openblas (sgemm on the dense side).
func TestCSRAgainstDense(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	type shape struct{ rows, cols, k, zeroRow, zeroCol int }
	sh := []shape{
		{1, 1, 1, -1, -1}, {3, 5, 1, 1, 2}, {7, 1, 3, -1, -1}, {1023, 13, 1, 0, 12},
		{1025, 17, 2, 1024, 0}, {2500, 1, 7, 3, -1}, {3001, 50, 1, 17, 49},
		{3001, 50, 10, 3000, 5}, {2049, 33, 5, -1, 32}, {600, 100, 37, 599, 0},
		{4100, 9, 300, 4099, 4}, {5, 784, 3, 2, 100}, {1500, 101, 9, 700, 50},
		{9000, 20, 4, 8999, 19}, // several MulT chunks at low density
	}
	for _, d := range []float64{0, 0.05, 0.2, 0.6, 1} {
		for _, s := range sh {
			x, x32 := sparseData(rng, s.rows, s.cols, d, s.zeroRow, s.zeroCol)
			B := randVec(rng, s.cols*s.k)
			A := randVec(rng, s.rows*s.k)
			_, scale := naiveMul(x, s.rows, s.cols, B, s.k)
			_, scaleT := naiveMulT(x, s.rows, s.cols, A, s.k)
			for _, p := range csrPairs(x, x32, s.rows, s.cols) {
				name := fmt.Sprintf("%s/d=%g/%dx%d/k=%d", p.label, d, s.rows, s.cols, s.k)
				for _, th := range []int{1, 2} {
					p.sp.(Threaded).SetThreads(th)
					want := make([]float64, s.rows*s.k)
					p.de.Mul(want, B, s.k)
					got := randVec(rng, s.rows*s.k) // garbage in dst must be overwritten
					p.sp.Mul(got, B, s.k)
					checkClose(t, "CSR Mul "+name, got, want, scale, tolFor(p.is32))

					wantT := make([]float64, s.cols*s.k)
					p.de.MulT(wantT, A, s.k)
					gotT := randVec(rng, s.cols*s.k)
					p.sp.MulT(gotT, A, s.k)
					checkClose(t, "CSR MulT "+name, gotT, wantT, scaleT, tolFor(p.is32))
				}
				if s.zeroCol >= 0 {
					gotT := randVec(rng, s.cols*s.k)
					p.sp.MulT(gotT, A, s.k)
					for c := range s.k {
						if v := gotT[s.zeroCol*s.k+c]; v != 0 {
							t.Errorf("CSR MulT %s: all-zero column %d gives %v", name, s.zeroCol, v)
						}
					}
				}
				if s.zeroRow >= 0 {
					got := randVec(rng, s.rows*s.k)
					p.sp.Mul(got, B, s.k)
					for c := range s.k {
						if v := got[s.zeroRow*s.k+c]; v != 0 {
							t.Errorf("CSR Mul %s: all-zero row %d gives %v", name, s.zeroRow, v)
						}
					}
				}
			}
		}
	}
}

// TestCSRExactSmall checks a hand-computed example exactly (integers, no rounding).
func TestCSRExactSmall(t *testing.T) {
	x := []float64{
		0, 2, 0,
		0, 0, 0,
		-1, 0, 3,
		0, 0, 4,
	}
	m := NewCSR64(x, 4, 3)
	if nz := m.(*csr[float64]).NNZ(); nz != 4 {
		t.Fatalf("NNZ = %d, want 4", nz)
	}
	B := []float64{1, 10, 2, 20, 3, 30} // 3 x 2
	got := make([]float64, 8)
	m.Mul(got, B, 2)
	want := []float64{4, 40, 0, 0, 8, 80, 12, 120}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Mul = %v, want %v", got, want)
		}
	}
	A := []float64{1, 2, 3, 4, 5, 6, 7, 8} // 4 x 2
	gotT := make([]float64, 6)
	m.MulT(gotT, A, 2)
	wantT := []float64{-5, -6, 2, 4, 15 + 28, 18 + 32}
	for i := range wantT {
		if gotT[i] != wantT[i] {
			t.Fatalf("MulT = %v, want %v", gotT, wantT)
		}
	}
	buf := []float64{9, 9, 9, 9}
	r := m.Row(buf, 2)
	if len(r) != 3 || r[0] != -1 || r[1] != 0 || r[2] != 3 {
		t.Fatalf("Row(2) = %v", r)
	}
	if d := Density(x); d != 4.0/12 {
		t.Errorf("Density = %v", d)
	}
	if d := Density([]float32{0, 1, 0, float32(math.NaN())}); d != 0.5 {
		t.Errorf("Density32 = %v", d)
	}
	if d := Density([]float64{}); d != 0 {
		t.Errorf("Density(empty) = %v", d)
	}
}

// TestCSRThreadDeterminism: bitwise identical results for 1, 2 and 3 worker goroutines,
// with several MulT chunks (including the enlarged low-density chunks).
func TestCSRThreadDeterminism(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for _, sh := range []struct {
		rows, cols, k int
		d             float64
	}{
		{10*ChunkRows + 77, 31, 1, 0.5}, {7*ChunkRows + 5, 20, 6, 0.3}, {5 * ChunkRows, 64, 10, 1},
		{3*ChunkRows + 1, 7, 33, 0.6}, {40 * ChunkRows, 30, 3, 0.005},
	} {
		x, x32 := sparseData(rng, sh.rows, sh.cols, sh.d, 5, 3)
		for _, p := range csrPairs(x, x32, sh.rows, sh.cols) {
			if m, ok := p.sp.(*csr[float64]); ok && (m.rows+m.tChunk-1)/m.tChunk < 3 {
				t.Fatalf("%v: only %d MulT chunks; the test needs several", sh, (m.rows+m.tChunk-1)/m.tChunk)
			}
			B := randVec(rng, sh.cols*sh.k)
			A := randVec(rng, sh.rows*sh.k)
			var ref, refT []float64
			for rep, th := range []int{1, 2, 3, 2, 1, 3} {
				p.sp.(Threaded).SetThreads(th)
				got := make([]float64, sh.rows*sh.k)
				gotT := make([]float64, sh.cols*sh.k)
				p.sp.Mul(got, B, sh.k)
				p.sp.MulT(gotT, A, sh.k)
				if rep == 0 {
					ref, refT = got, gotT
					continue
				}
				if i := bitsEqual(got, ref); i >= 0 {
					t.Errorf("%s %v Mul threads=%d differs at %d", p.label, sh, th, i)
				}
				if i := bitsEqual(gotT, refT); i >= 0 {
					t.Errorf("%s %v MulT threads=%d differs at %d", p.label, sh, th, i)
				}
			}
		}
	}
}

func TestCSRRowAndPanics(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	x, x32 := sparseData(rng, 9, 6, 0.4, 4, -1)
	for _, p := range csrPairs(x, x32, 9, 6) {
		buf := make([]float64, 10)
		for i := range 9 {
			for j := range buf {
				buf[j] = 7 // stale values must be cleared
			}
			r := p.sp.Row(buf, i)
			if len(r) != 6 {
				t.Fatalf("Row len %d", len(r))
			}
			for j, v := range r {
				if v != x[i*6+j] {
					t.Errorf("%s Row(%d)[%d] = %v want %v", p.label, i, j, v, x[i*6+j])
				}
			}
		}
		if r, c := p.sp.Dims(); r != 9 || c != 6 {
			t.Errorf("Dims = %d,%d", r, c)
		}
	}
	m := NewCSR64(make([]float64, 12), 4, 3)
	mustPanic(t, "NewCSR64 size", func() { NewCSR64(make([]float64, 11), 4, 3) })
	mustPanic(t, "NewCSR32 size", func() { NewCSR32(make([]float32, 13), 4, 3) })
	mustPanic(t, "Mul short B", func() { m.Mul(make([]float64, 8), make([]float64, 5), 2) })
	mustPanic(t, "Mul short dst", func() { m.Mul(make([]float64, 7), make([]float64, 6), 2) })
	mustPanic(t, "MulT short A", func() { m.MulT(make([]float64, 6), make([]float64, 7), 2) })
	mustPanic(t, "MulT short dst", func() { m.MulT(make([]float64, 5), make([]float64, 8), 2) })
	mustPanic(t, "Row range", func() { m.Row(make([]float64, 3), 4) })
	mustPanic(t, "Row buf", func() { m.Row(make([]float64, 2), 0) })
}

func TestCSRNoAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	rows := 4*ChunkRows + 9
	x, _ := sparseData(rng, rows, 20, 0.5, -1, -1)
	m := NewCSR64(x, rows, 20)
	B, A := randVec(rng, 20*5), randVec(rng, rows*5)
	dst, dstT := make([]float64, len(A)), make([]float64, len(B))
	m.(Threaded).SetThreads(1)
	m.Mul(dst, B, 5)
	m.MulT(dstT, A, 5)
	if n := testing.AllocsPerRun(5, func() { m.Mul(dst, B, 5); m.MulT(dstT, A, 5) }); n > 0 {
		t.Errorf("threads=1: %v allocations per Mul+MulT", n)
	}
}

// BenchmarkCSRKernelChoice compares row kernels for CSR Mul / MulT on one 1024-row
// chunk (cols 784, density 0.19), single goroutine: Go loops (Mul: four nonzeros per
// sweep; MulT: one axpy per nonzero; k = 1: scalar loops) against gonum's assembly Daxpy
// per nonzero. csr.go switches to Daxpy at csrDaxpyMulK / csrDaxpyMulTK.
func BenchmarkCSRKernelChoice(b *testing.B) {
	const rows, cols = ChunkRows, 784
	rng := rand.New(rand.NewPCG(21, 22))
	x, _ := sparseData(rng, rows, cols, 0.19, -1, -1)
	m := newCSR(x, rows, cols)
	impl := gonum.Implementation{}
	for _, k := range []int{1, 10, 32, 64, 100, 300} {
		B := randVec(rng, cols*k)
		A := randVec(rng, rows*k)
		dst := make([]float64, rows*k)
		part := make([]float64, cols*k)
		b.Run(fmt.Sprintf("k=%d/Mul/unrolled4", k), func(b *testing.B) {
			for b.Loop() {
				if k == 1 {
					csrMulRows(m.ptr, m.idx, m.val, B, k, dst) // scalar dot-product path
					continue
				}
				for i := range rows {
					lo, hi := m.ptr[i], m.ptr[i+1]
					csrRowAxpy4(dst[i*k:(i+1)*k], m.idx[lo:hi], m.val[lo:hi], B, k)
				}
			}
		})
		b.Run(fmt.Sprintf("k=%d/Mul/loop1", k), func(b *testing.B) {
			for b.Loop() {
				for i := range rows {
					d := dst[i*k : (i+1)*k]
					clear(d)
					for p := m.ptr[i]; p < m.ptr[i+1]; p++ {
						v, o := m.val[p], int(m.idx[p])*k
						for c, bv := range B[o : o+k] {
							d[c] += v * bv
						}
					}
				}
			}
		})
		b.Run(fmt.Sprintf("k=%d/Mul/gonumDaxpy", k), func(b *testing.B) {
			for b.Loop() {
				for i := range rows {
					d := dst[i*k : (i+1)*k]
					clear(d)
					for p := m.ptr[i]; p < m.ptr[i+1]; p++ {
						impl.Daxpy(k, m.val[p], B[int(m.idx[p])*k:], 1, d, 1)
					}
				}
			}
		})
		b.Run(fmt.Sprintf("k=%d/MulT/loop1", k), func(b *testing.B) {
			for b.Loop() {
				clear(part)
				if k == 1 {
					csrMulTRows(m.ptr, m.idx, m.val, A, k, part) // scalar path
				} else {
					csrMulTRowsLoop(m.ptr, m.idx, m.val, A, k, part)
				}
			}
		})
		b.Run(fmt.Sprintf("k=%d/MulT/gonumDaxpy", k), func(b *testing.B) {
			for b.Loop() {
				clear(part)
				for i := range rows {
					for p := m.ptr[i]; p < m.ptr[i+1]; p++ {
						impl.Daxpy(k, m.val[p], A[i*k:], 1, part[int(m.idx[p])*k:], 1)
					}
				}
			}
		})
	}
}
