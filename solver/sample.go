package solver

import (
	"math/rand/v2"
	"sync"

	"relutrim/internal/kern"
)

// hessianRows is the number of rows from which the Newton solver estimates curvature. The
// gradient always uses every row; the Hessian only shapes the step, and the line search on
// the true surrogate keeps every step a descent step whatever the estimate. 20,000 rows was
// the prototype's choice (../shared/FACTS.md, "Second-order inner solver"): 2.1-2.9x faster
// than scipy's L-BFGS-B on the planted M and L problems, against 0.2x with the exact Gram
// rebuilt at every step.
const hessianRows = 20000

// sample is a fixed subset of X's rows in the standardised coordinates of the design K
// (bias column included), built once per Prepared and shared by all fits on it.
type sample struct {
	rows []int     // sorted row indices into X
	ks   []float64 // len(rows) x p, row-major: K restricted to rows

	gramOnce sync.Once
	gram     []float64 // p x p: ks^T ks / len(rows), the shared metric (built on first use)
}

// newSample draws min(N, hessianRows) rows by selection sampling (Knuth's algorithm S:
// sorted, O(N) time, O(S) memory, deterministic: a fixed seed) and standardises them.
func newSample(g *design, threads int) *sample {
	n, p, nx := g.n, g.p, g.nx
	s := min(n, hessianRows)
	rows := make([]int, 0, s)
	if s == n {
		for i := 0; i < n; i++ {
			rows = append(rows, i)
		}
	} else {
		r := rand.New(rand.NewPCG(0x5a3b1e, 0x9e3779b9))
		for i := 0; i < n && len(rows) < s; i++ {
			if r.IntN(n-i) < s-len(rows) {
				rows = append(rows, i)
			}
		}
	}
	ks := make([]float64, len(rows)*p)
	forChunks(len(rows), threads, func(_, lo, hi int) {
		buf := make([]float64, nx)
		for r := lo; r < hi; r++ {
			out := ks[r*p : (r+1)*p]
			for k, v := range g.X.Row(buf, rows[r]) {
				out[k] = (v - g.mu[k]) / g.d[k]
			}
			if g.bias {
				out[nx] = 1
			}
		}
	})
	return &sample{rows: rows, ks: ks}
}

// sharedGram returns ks^T ks / S (p x p), computing it on first use with the dense
// kernels (deterministic for any thread count). built reports whether this call built it.
func (s *sample) sharedGram(p, threads int) (gram []float64, built bool) {
	s.gramOnce.Do(func() {
		m := len(s.rows)
		k := kern.NewDense64(s.ks, m, p)
		if t, ok := k.(kern.Threaded); ok {
			t.SetThreads(threads)
		}
		gram := make([]float64, p*p)
		k.MulT(gram, s.ks, p)
		inv := 1 / float64(m)
		for i := range gram {
			gram[i] *= inv
		}
		s.gram = gram
		built = true
	})
	return s.gram, built
}
