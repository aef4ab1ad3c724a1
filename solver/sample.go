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

// sample is a fixed subset of X's rows in the standardised coordinates of the design K,
// built once per Prepared and shared by all fits on it.
type sample struct {
	rows []int     // sorted row indices into X
	nx   int       // feature columns
	bias bool      // K has a bias column (coordinate nx), implicitly 1 on every row
	ks   []float64 // len(rows) x nx, row-major: K's feature columns restricted to rows

	gramOnce sync.Once
	gram     []float64 // p x p: ks^T ks / len(rows), the shared metric (built on first use)
}

// newSample draws min(N, hessianRows) rows by selection sampling (Knuth's algorithm S:
// sorted, O(N) time, O(S) memory, deterministic: a fixed seed) and standardises them.
func newSample(g *design, threads int) *sample {
	n, nx := g.n, g.nx
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
	ks := make([]float64, len(rows)*nx)
	forChunks(len(rows), threads, func(_, lo, hi int) {
		buf := make([]float64, nx)
		for r := lo; r < hi; r++ {
			out := ks[r*nx : (r+1)*nx]
			for k, v := range g.X.Row(buf, rows[r]) {
				out[k] = (v - g.mu[k]) / g.d[k]
			}
		}
	})
	return &sample{rows: rows, nx: nx, bias: g.bias, ks: ks}
}

// design returns the standardised sample as a design of its own (mu = 0, d = 1): the
// operator of the subsampled problem that warm-starts a large fit (newton.go).
func (s *sample) design(threads int) *design {
	m := len(s.rows)
	X := kern.NewDense64(s.ks, m, s.nx)
	if t, ok := X.(kern.Threaded); ok {
		t.SetThreads(threads)
	}
	g := &design{X: X, n: m, nx: s.nx, p: s.nx, bias: s.bias, threads: threads,
		mu: make([]float64, s.nx), d: make([]float64, s.nx), colSum: make([]float64, numChunks(m))}
	if s.bias {
		g.p++
	}
	for k := range g.d {
		g.d[k] = 1
	}
	return g
}

// whole returns the sample of all rows of the sample's own design (for the subsampled fit).
func (s *sample) whole() *sample {
	all := make([]int, len(s.rows))
	for i := range all {
		all[i] = i
	}
	return &sample{rows: all, nx: s.nx, bias: s.bias, ks: s.ks}
}

// sharedGram returns ks^T ks / S (p x p), computing it on first use with the dense
// kernels (deterministic for any thread count). built reports whether this call built it.
func (s *sample) sharedGram(p, threads int) (gram []float64, built bool) {
	s.gramOnce.Do(func() {
		m, nx := len(s.rows), s.nx
		k := kern.NewDense64(s.ks, m, nx)
		if t, ok := k.(kern.Threaded); ok {
			t.SetThreads(threads)
		}
		ff := make([]float64, nx*nx)
		k.MulT(ff, s.ks, nx) // features x features
		inv := 1 / float64(m)
		gram := make([]float64, p*p)
		for a := 0; a < nx; a++ {
			for b := 0; b < nx; b++ {
				gram[a*p+b] = ff[a*nx+b] * inv
			}
		}
		if s.bias { // bias row and column: column means of the sample, and 1
			for r := 0; r < m; r++ {
				row := s.ks[r*nx : (r+1)*nx]
				for a, v := range row {
					gram[a*p+nx] += v
				}
			}
			for a := 0; a < nx; a++ {
				gram[a*p+nx] *= inv
				gram[nx*p+a] = gram[a*p+nx]
			}
			gram[nx*p+nx] = 1
		}
		s.gram = gram
		built = true
	})
	return s.gram, built
}
