package solver

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkRawGram: one output's Gram on a working set of 250 of 784 columns from 1000 of
// 2000 sample rows of MNIST-like data (30% dense in the working set).
func BenchmarkRawGram(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	n, nx := 2000, 784
	X := Matrix{Rows: n, Cols: nx, F64: make([]float64, n*nx)}
	for i := range X.F64 {
		if r.Float64() < 0.3 {
			X.F64[i] = r.Float64()
		}
	}
	g, _ := newDesign(X, true, 1, 0, nil)
	smp := newSample(g, 1, hessianRows)
	var ws []int
	for k := 0; k < nx; k += 3 {
		ws = append(ws, k)
	}
	ws = append(ws, nx)
	m := len(ws)
	pos := make([]int, nx)
	for k := range pos {
		pos[k] = -1
	}
	A, s := make([]float64, m*m), make([]float64, m)
	use := func(r int) bool { return r%2 == 0 }
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		clear(A)
		clear(s)
		smp.rawGram(ws, pos, 0, n, use, A, s, make([]int, 0, m), make([]float64, 0, m))
	}
}
