package solver

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestReducedADMMEqualsNaive: the solver's reduced primal-dual iteration (admm.iterate with
// omega = 1, fixed rho, metric m_p = ||K_p||^2) produces the same iterates as the naive
// consensus ADMM (docs/method.md, section 3; the z-update with the sign the note gets wrong
// corrected) with explicit local copies u_p and scaled duals d_p,
//
//	u_p <- argmin g_p(K_p^T u) + rho/2 ||u - z + d_p||^2
//	z   <- S_{gamma/(N rho)}(mean_p(u_p + d_p))          (bias unshrunk)
//	d_p <- d_p + u_p - z
//
// run on the explicit rows K_p = [(x_p - mu)/d, 1] of the standardised operator, with
// gamma_k = 2 N lambda / d_k (the penalty lambda |u_k| = lambda |u~_k| / d_k in standardised
// coordinates, times 2N for the sum form). Both start from z = 0, d = 0 (nu = 0).
//
// Index shift (derived in the comment of the admm type, checked here): the solver's
// iteration i+1 computes zh from the duals nu^i of iteration i, which are the naive
// iteration i's u-step duals, so solver zh after iteration i+1 = naive z after iteration i.
// Also checked: the naive duals are d_p = z^{i-1} - z^i - K_p nu_p / rho, i.e. the whole
// N x p state is determined by (z, nu), which is the point of the reduction.
func TestReducedADMMEqualsNaive(t *testing.T) {
	const n, nx, lambda, rho = 30, 3, 0.15, 0.7 // lambda: one of three coefficients thresholded to 0 at the end
	r := rand.New(rand.NewPCG(7, 7))
	X := Matrix{Rows: n, Cols: nx, F64: make([]float64, n*nx)}
	for i := range X.F64 {
		X.F64[i] = 1.5*r.NormFloat64() + 0.3 // nonzero means: centring matters
	}
	y := make([]float64, n)
	upper := make([]bool, n)
	for i := range y {
		y[i] = r.NormFloat64() // both signs: all surrogate cases
		upper[i] = r.IntN(2) == 0
	}
	g, err := newDesign(X, true, 1, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	g.rowNorms()
	a := &admm{g: g, n: n, ny: 1, lambda: lambda, link: ReLU, y: y, omega: 1, epsAbs: 1e-7, epsRel: 1e-6}
	a.alloc()
	copy(a.upper, upper)
	for i := range a.m {
		a.m[i] = g.rowNorm[i] // PlainConsensus
	}
	a.rho[0] = rho
	// z = 0, nu = 0, Q = K z = 0, G = K^T nu = 0: the zero values from alloc.

	// Explicit standardised rows, computed here from X (population mean and standard
	// deviation), and checked against the design.
	p := nx + 1
	K := make([][]float64, n)
	mu, sd := make([]float64, nx), make([]float64, nx)
	for k := 0; k < nx; k++ {
		for i := 0; i < n; i++ {
			mu[k] += X.F64[i*nx+k] / n
		}
		for i := 0; i < n; i++ {
			sd[k] += sq(X.F64[i*nx+k]-mu[k]) / n
		}
		sd[k] = math.Sqrt(sd[k])
		if relDiff(g.mu[k], mu[k]) > 1e-12 || relDiff(g.d[k], sd[k]) > 1e-12 {
			t.Fatalf("design column %d: mu %v d %v, recomputed %v %v", k, g.mu[k], g.d[k], mu[k], sd[k])
		}
	}
	for i := range K {
		K[i] = make([]float64, p)
		for k := 0; k < nx; k++ {
			K[i][k] = (X.F64[i*nx+k] - mu[k]) / sd[k]
		}
		K[i][nx] = 1
		if relDiff(dot(K[i], K[i]), g.rowNorm[i]) > 1e-12 {
			t.Fatalf("row %d: ||K_p||^2 %v, design %v", i, dot(K[i], K[i]), g.rowNorm[i])
		}
	}
	// Naive ADMM state.
	z := make([]float64, p)
	zPrev := make([]float64, p)
	u := make([][]float64, n)
	d := make([][]float64, n)
	nuN := make([]float64, n)
	for i := range u {
		u[i], d[i] = make([]float64, p), make([]float64, p)
	}
	naiveStep := func() {
		for i := 0; i < n; i++ {
			// u-step: u = v + K_p s with v = z - d_p; in t = K_p^T u it is the scalar prox
			// with weight rho / ||K_p||^2 (prox of the surrogate: tested on its own in
			// TestProxMatchesBruteForce).
			v := make([]float64, p)
			for k := range v {
				v[k] = z[k] - d[i][k]
			}
			m := dot(K[i], K[i])
			rv := dot(K[i], v)
			tt := proxSurrogate(rv, rho/m, surrogateZ(y[i], upper[i]), y[i])
			for k := range v {
				u[i][k] = v[k] + K[i][k]*(tt-rv)/m
			}
			nuN[i] = rho / m * (rv - tt) // the surrogate's gradient at t (prox optimality)
		}
		copy(zPrev, z)
		for k := 0; k < p; k++ {
			s := 0.0
			for i := 0; i < n; i++ {
				s += u[i][k] + d[i][k]
			}
			s /= n
			if k < nx {
				s = softThreshold(s, 2*n*lambda/sd[k]/(n*rho))
			}
			z[k] = s
		}
		for i := 0; i < n; i++ {
			for k := 0; k < p; k++ {
				d[i][k] += u[i][k] - z[k]
			}
		}
	}
	a.iterate() // solver iteration 1: zh = 0, nu^1
	worst := 0.0
	for it := 1; it <= 60; it++ {
		naiveStep() // naive iteration it: z^it from nu^it
		// nu^it: the solver's duals after its iteration it.
		for i := 0; i < n; i++ {
			if e := math.Abs(a.nu[i] - nuN[i]); e > 1e-10*(1+math.Abs(nuN[i])) {
				t.Fatalf("iteration %d: nu[%d] solver %.15g, naive %.15g", it, i, a.nu[i], nuN[i])
			}
		}
		a.iterate() // solver iteration it+1: zh = z^it
		for k := 0; k < p; k++ {
			e := math.Abs(a.zh[k] - z[k])
			worst = math.Max(worst, e)
			if e > 1e-10*(1+math.Abs(z[k])) {
				t.Fatalf("naive iteration %d: z[%d] naive %.15g, solver zh %.15g (iteration %d)", it, k, z[k], a.zh[k], it+1)
			}
		}
		// The naive duals are determined by (z, nu): d_p = z^{it-1} - z^it - K_p nu_p / rho.
		for i := 0; i < n; i++ {
			for k := 0; k < p; k++ {
				want := zPrev[k] - z[k] - K[i][k]*nuN[i]/rho
				if math.Abs(d[i][k]-want) > 1e-10*(1+math.Abs(want)) {
					t.Fatalf("iteration %d: d[%d][%d] = %.15g, reduced form gives %.15g", it, i, k, d[i][k], want)
				}
			}
		}
	}
	// Non-trivial: the iteration must have moved, and some coordinate be thresholded to 0.
	zeros := 0
	for k := 0; k < nx; k++ {
		if z[k] == 0 {
			zeros++
		}
	}
	t.Logf("60 iterations agree to %.2e; z = %v (%d thresholded)", worst, z, zeros)
	if dot(z, z) == 0 || zeros == 0 || zeros == nx {
		t.Fatalf("z = %v: the comparison should exercise both thresholded and free coordinates", z)
	}
}
