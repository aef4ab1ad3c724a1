package solver

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestMajoriserOnRandomObjectives checks the CCP's majoriser as a whole objective, on random
// inputs over six orders of magnitude, independently of the guard that keeps F from
// increasing across CCP rounds: with each term replaced by its surrogate at the current
// pre-activation w0 (prox.go: surrogateZ(y, w0 >= 0), surrogateValue), the surrogate
// objective G(U, b) = 1/(2N) sum_p g_p(x_p.U + b) + lambda |U|_1
//
//   - equals F (Objective, the package's independent row-by-row evaluation) at (U0, b0);
//   - lies above F at every other point tried: random points at distances from 1e-6 to 1e2
//     times the data's scale, and the points where some term sits exactly on a kink of its
//     surrogate (w = 0, y, 2y);
//
// and, per term, the convex envelope (relaxZ) lies below the term at the same points.
func TestMajoriserOnRandomObjectives(t *testing.T) {
	r := rand.New(rand.NewPCG(51, 3))
	term := func(w, y float64) float64 { return sq(math.Max(0, w) - y) }
	for trial := 0; trial < 300; trial++ {
		n, nx := 1+r.IntN(40), 1+r.IntN(5)
		xs := math.Pow(10, 6*r.Float64()-3) // data scale 1e-3 .. 1e3
		ys := math.Pow(10, 6*r.Float64()-3)
		X := Matrix{Rows: n, Cols: nx, F64: make([]float64, n*nx)}
		for i := range X.F64 {
			X.F64[i] = xs * r.NormFloat64()
		}
		Y := Matrix{Rows: n, Cols: 1, F64: make([]float64, n)}
		for i := range Y.F64 {
			Y.F64[i] = ys * r.NormFloat64()
			if r.IntN(8) == 0 {
				Y.F64[i] = 0
			}
		}
		lambda := ys * ys / xs * math.Pow(10, -3*r.Float64())
		U0 := make([]float64, nx)
		for k := range U0 {
			U0[k] = ys / xs * r.NormFloat64()
		}
		b0 := ys * r.NormFloat64()
		pre := func(U []float64, b float64, i int) float64 {
			w := b
			for k := 0; k < nx; k++ {
				w += X.F64[i*nx+k] * U[k]
			}
			return w
		}
		z := make([]float64, n)
		for i := range z {
			z[i] = surrogateZ(Y.F64[i], pre(U0, b0, i) >= 0)
		}
		G := func(U []float64, b float64) float64 {
			s := 0.0
			for i := 0; i < n; i++ {
				s += surrogateValue(pre(U, b, i), z[i], Y.F64[i])
			}
			l1 := 0.0
			for _, v := range U {
				l1 += math.Abs(v)
			}
			return s/(2*float64(n)) + lambda*l1
		}
		F := func(U []float64, b float64) float64 { return Objective(X, Y, U, []float64{b}, lambda, ReLU) }
		// 1e-12 relative: both sides are sums of the same O(N) terms by different formulas.
		if g, f := G(U0, b0), F(U0, b0); math.Abs(g-f) > 1e-12*(math.Abs(f)+1e-300) {
			t.Fatalf("trial %d: G(U0, b0) = %.17g != F(U0, b0) = %.17g", trial, g, f)
		}
		U := make([]float64, nx)
		for s := 0; s < 60; s++ {
			step := math.Pow(10, 8*r.Float64()-6)
			for k := range U {
				U[k] = U0[k] + step*ys/xs*r.NormFloat64()
			}
			b := b0 + step*ys*r.NormFloat64()
			if s%3 == 0 {
				// Put sample p exactly on a kink of its surrogate (w = 0, y or 2y) by
				// moving the bias.
				p := r.IntN(n)
				kink := []float64{0, Y.F64[p], 2 * Y.F64[p]}[r.IntN(3)]
				b = kink - pre(U, 0, p)
			}
			if g, f := G(U, b), F(U, b); g < f-1e-12*(math.Abs(f)+1e-300) {
				t.Fatalf("trial %d: surrogate %.17g below F %.17g at a point %.1e away", trial, g, f, step)
			}
			for i := 0; i < n; i++ {
				w, y := pre(U, b, i), Y.F64[i]
				if h, f := surrogateValue(w, relaxZ(y), y), term(w, y); h > f+1e-12*(f+1e-300) {
					t.Fatalf("trial %d: envelope %.17g above the term %.17g at w=%g, y=%g", trial, h, f, w, y)
				}
			}
		}
	}
}
