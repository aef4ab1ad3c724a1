package kern

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// Benchmark shapes (N, Nx, k) from the solver's typical problems.
var benchShapes = []struct{ n, nx, k int }{
	{200_000, 100, 1}, {200_000, 100, 10}, {10_000, 784, 300}, {1_000_000, 100, 10},
}

// benchData caches random X per shape so sub-benchmarks do not regenerate it.
var benchData = map[string]any{}

func benchX64(n, nx int) []float64 {
	key := fmt.Sprint("64/", n, "/", nx)
	if v, ok := benchData[key]; ok {
		return v.([]float64)
	}
	rng := rand.New(rand.NewPCG(uint64(n), uint64(nx)))
	x := make([]float64, n*nx)
	for i := range x {
		x[i] = rng.Float64() - 0.5
	}
	benchData[key] = x
	return x
}

func benchX32(n, nx int) []float32 {
	key := fmt.Sprint("32/", n, "/", nx)
	if v, ok := benchData[key]; ok {
		return v.([]float32)
	}
	x64 := benchX64(n, nx)
	x := make([]float32, len(x64))
	for i, v := range x64 {
		x[i] = float32(v)
	}
	benchData[key] = x
	return x
}

// benchFamily runs op over all benchShapes as sub-benchmarks. op gets the shape and
// returns the per-iteration function and the bytes of X it reads.
func benchFamily(b *testing.B, op func(n, nx, k int) (func(), int64)) {
	for _, sh := range benchShapes {
		b.Run(fmt.Sprintf("N=%d/Nx=%d/k=%d", sh.n, sh.nx, sh.k), func(b *testing.B) {
			f, bytes := op(sh.n, sh.nx, sh.k)
			b.SetBytes(bytes)
			f() // warm scratch
			b.ResetTimer()
			for b.Loop() {
				f()
			}
		})
	}
}

func kernOp(is32, trans bool) func(n, nx, k int) (func(), int64) {
	return func(n, nx, k int) (func(), int64) {
		var m Matrix
		var bytes int64
		if is32 {
			m = NewDense32(benchX32(n, nx), n, nx)
			bytes = int64(n) * int64(nx) * 4
		} else {
			m = NewDense64(benchX64(n, nx), n, nx)
			bytes = int64(n) * int64(nx) * 8
		}
		rng := rand.New(rand.NewPCG(1, 1))
		if trans {
			A, dst := randVec(rng, n*k), make([]float64, nx*k)
			return func() { m.MulT(dst, A, k) }, bytes
		}
		B, dst := randVec(rng, nx*k), make([]float64, n*k)
		return func() { m.Mul(dst, B, k) }, bytes
	}
}

func BenchmarkMul64(b *testing.B)  { benchFamily(b, kernOp(false, false)) }
func BenchmarkMul32(b *testing.B)  { benchFamily(b, kernOp(true, false)) }
func BenchmarkMulT64(b *testing.B) { benchFamily(b, kernOp(false, true)) }
func BenchmarkMulT32(b *testing.B) { benchFamily(b, kernOp(true, true)) }

// gonumOp is the baseline: plain gonum blas64.Gemm on the whole float64 X (gonum
// parallelises Gemm internally over GOMAXPROCS).
func gonumOp(trans bool) func(n, nx, k int) (func(), int64) {
	return func(n, nx, k int) (func(), int64) {
		X := blas64.General{Rows: n, Cols: nx, Stride: nx, Data: benchX64(n, nx)}
		rng := rand.New(rand.NewPCG(1, 1))
		bytes := int64(n) * int64(nx) * 8
		if trans {
			A := blas64.General{Rows: n, Cols: k, Stride: k, Data: randVec(rng, n*k)}
			C := blas64.General{Rows: nx, Cols: k, Stride: k, Data: make([]float64, nx*k)}
			return func() { blas64.Gemm(blas.Trans, blas.NoTrans, 1, X, A, 0, C) }, bytes
		}
		B := blas64.General{Rows: nx, Cols: k, Stride: k, Data: randVec(rng, nx*k)}
		C := blas64.General{Rows: n, Cols: k, Stride: k, Data: make([]float64, n*k)}
		return func() { blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, X, B, 0, C) }, bytes
	}
}

func BenchmarkGonumGemmMul64(b *testing.B)  { benchFamily(b, gonumOp(false)) }
func BenchmarkGonumGemmMulT64(b *testing.B) { benchFamily(b, gonumOp(true)) }

// Sparse (CSR) benchmarks: (N, Nx, k, density) from the MNIST use case (pixels ~19%
// nonzero, post-ReLU activations 30-60%), CSR vs the dense Matrix of this build on the
// same data in the same run.
var csrBenchShapes = []struct {
	n, nx, k int
	d        float64
}{
	{3000, 784, 300, 0.1}, {3000, 784, 300, 0.19}, {3000, 784, 300, 0.2}, {3000, 784, 300, 0.3},
	{3000, 784, 300, 0.5}, {3000, 300, 100, 0.5}, {60000, 784, 10, 0.19}, {60000, 784, 1, 0.19},
}

func benchSparse64(n, nx int, d float64) []float64 {
	key := fmt.Sprint("sp64/", n, "/", nx, "/", d)
	if v, ok := benchData[key]; ok {
		return v.([]float64)
	}
	rng := rand.New(rand.NewPCG(uint64(n), uint64(nx)))
	x := make([]float64, n*nx)
	for i := range x {
		if rng.Float64() < d {
			x[i] = float64(float32(rng.Float64())) // exact in float32
		}
	}
	benchData[key] = x
	return x
}

func benchSparse32(n, nx int, d float64) []float32 {
	key := fmt.Sprint("sp32/", n, "/", nx, "/", d)
	if v, ok := benchData[key]; ok {
		return v.([]float32)
	}
	x64 := benchSparse64(n, nx, d)
	x := make([]float32, len(x64))
	for i, v := range x64 {
		x[i] = float32(v)
	}
	benchData[key] = x
	return x
}

// BenchmarkCSR: sub-benchmarks <op>/<shape>/<impl> with impl in csr64, csr32 (float32
// values), dense64, dense32.
func BenchmarkCSR(b *testing.B) {
	for _, trans := range []bool{false, true} {
		op := "Mul"
		if trans {
			op = "MulT"
		}
		for _, sh := range csrBenchShapes {
			for _, impl := range []string{"csr64", "csr32", "dense64", "dense32"} {
				name := fmt.Sprintf("%s/N=%d/Nx=%d/k=%d/d=%g/%s", op, sh.n, sh.nx, sh.k, sh.d, impl)
				b.Run(name, func(b *testing.B) {
					var m Matrix
					switch impl {
					case "csr64":
						m = NewCSR64(benchSparse64(sh.n, sh.nx, sh.d), sh.n, sh.nx)
					case "csr32":
						m = NewCSR32(benchSparse32(sh.n, sh.nx, sh.d), sh.n, sh.nx)
					case "dense64":
						m = NewDense64(benchSparse64(sh.n, sh.nx, sh.d), sh.n, sh.nx)
					case "dense32":
						m = NewDense32(benchSparse32(sh.n, sh.nx, sh.d), sh.n, sh.nx)
					}
					rng := rand.New(rand.NewPCG(1, 1))
					var f func()
					if trans {
						A, dst := randVec(rng, sh.n*sh.k), make([]float64, sh.nx*sh.k)
						f = func() { m.MulT(dst, A, sh.k) }
					} else {
						B, dst := randVec(rng, sh.nx*sh.k), make([]float64, sh.n*sh.k)
						f = func() { m.Mul(dst, B, sh.k) }
					}
					f()
					b.ResetTimer()
					for b.Loop() {
						f()
					}
				})
			}
		}
	}
}

// BenchmarkCSRBuild: construction cost (one-off per Prepare) and Density.
func BenchmarkCSRBuild(b *testing.B) {
	x := benchSparse64(3000, 784, 0.19)
	x32 := benchSparse32(3000, 784, 0.19)
	b.Run("csr64", func(b *testing.B) {
		for b.Loop() {
			NewCSR64(x, 3000, 784)
		}
	})
	b.Run("csr32", func(b *testing.B) {
		for b.Loop() {
			NewCSR32(x32, 3000, 784)
		}
	})
	b.Run("density64", func(b *testing.B) {
		for b.Loop() {
			Density(x)
		}
	})
}
