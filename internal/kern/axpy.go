package kern

import "gonum.org/v1/gonum/floats"

// Axpy sets y[i] += a * x[i] for i < len(y) (x at least as long): with the AVX2/FMA kernel
// where the pure-Go build has it (16 values per iteration, the rest in Go), else gonum's
// assembly (floats.AddScaled). The Newton solver's Gram accumulation and coordinate descent
// run on it. Results differ from AddScaled in rounding only (one FMA instead of a multiply
// and an add).
func Axpy(y []float64, a float64, x []float64) {
	n := len(y)
	x = x[:n]
	if !haveAVX || n < 16 {
		floats.AddScaled(y, a, x)
		return
	}
	m := n &^ 15
	axpyKern(a, &x[0], &y[0], m)
	for i := m; i < n; i++ {
		y[i] += a * x[i]
	}
}
