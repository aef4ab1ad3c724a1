package solver

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// proxValue is the objective groupProx minimises.
func proxValue(x, v, a []float64, c float64) float64 {
	f, s := 0.0, 0.0
	for j := range x {
		d := x[j] - v[j]
		f += a[j] / 2 * d * d
		s += x[j] * x[j]
	}
	return f + c*math.Sqrt(s)
}

// bruteProx2 minimises proxValue for two coordinates by brute force: x = r (cos t, sin t),
// a grid over the angle t and, for each angle, golden section over the radius r (the
// objective is convex in r), then a finer grid around the best angle. Independent of
// groupProx's root find.
func bruteProx2(v, a []float64, c float64) ([]float64, float64) {
	rMax := 2 * math.Hypot(v[0], v[1])
	along := func(t float64) (float64, float64) {
		f := func(r float64) float64 {
			return proxValue([]float64{r * math.Cos(t), r * math.Sin(t)}, v, a, c)
		}
		lo, hi := 0.0, rMax
		for it := 0; it < 100; it++ {
			m1, m2 := lo+(hi-lo)/3, hi-(hi-lo)/3
			if f(m1) < f(m2) {
				hi = m2
			} else {
				lo = m1
			}
		}
		r := (lo + hi) / 2
		return r, f(r)
	}
	bestT, bestF, bestR := 0.0, math.Inf(1), 0.0
	lo, hi, steps := 0.0, 2*math.Pi, 720
	for round := 0; round < 4; round++ {
		for i := 0; i <= steps; i++ {
			t := lo + (hi-lo)*float64(i)/float64(steps)
			if r, f := along(t); f < bestF {
				bestT, bestF, bestR = t, f, r
			}
		}
		w := (hi - lo) / float64(steps)
		lo, hi, steps = bestT-2*w, bestT+2*w, 200
	}
	return []float64{bestR * math.Cos(bestT), bestR * math.Sin(bestT)}, bestF
}

// TestGroupProx: the prox of the group norm in the metric diag(a) (a) equals the group soft
// threshold when the a_j are equal, (b) matches a brute-force 2-D minimisation with unequal
// a_j, (c) is zero exactly when ||a.v|| <= c, and (d) is no worse than random perturbations
// in higher dimension (it minimises a convex function).
func TestGroupProx(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 1))
	for trial := 0; trial < 300; trial++ {
		ny := 1 + r.IntN(6)
		v, a, x := make([]float64, ny), make([]float64, ny), make([]float64, ny)
		for j := range v {
			v[j] = r.NormFloat64() * math.Pow(10, 2*r.Float64()-1)
			a[j] = math.Pow(10, 4*r.Float64()-2)
		}
		nav := 0.0
		for j := range v {
			nav += a[j] * v[j] * a[j] * v[j]
		}
		nav = math.Sqrt(nav)
		c := nav * 2 * r.Float64() // about half the cases are zero
		groupProx(x, v, a, c)
		zero := true
		for _, xv := range x {
			zero = zero && xv == 0
		}
		if zero != (nav <= c) {
			t.Fatalf("trial %d: x = %v, ||a.v|| = %g, c = %g", trial, x, nav, c)
		}
		// (a) equal weights: the group soft threshold, written out.
		eq := make([]float64, ny)
		for j := range eq {
			eq[j] = a[0]
		}
		groupProx(x, v, eq, c)
		nv := 0.0
		for _, vj := range v {
			nv += vj * vj
		}
		nv = math.Sqrt(nv)
		shrink := math.Max(0, 1-c/(a[0]*nv))
		for j := range x {
			if math.Abs(x[j]-v[j]*shrink) > 1e-12*nv {
				t.Fatalf("trial %d: equal weights: x[%d] = %g, group soft threshold %g", trial, j, x[j], v[j]*shrink)
			}
		}
		// (d) no random perturbation is better.
		groupProx(x, v, a, c)
		f := proxValue(x, v, a, c)
		y := make([]float64, ny)
		for p := 0; p < 200; p++ {
			scale := math.Pow(10, -6*r.Float64()) * (nv + 1e-300)
			for j := range y {
				y[j] = x[j] + scale*r.NormFloat64()
			}
			if fy := proxValue(y, v, a, c); fy < f-1e-13*math.Abs(f) {
				t.Fatalf("trial %d: perturbation %v has value %.15g < prox value %.15g", trial, y, fy, f)
			}
		}
	}
	// (b) 2-D against brute force, with weights far apart (the root find matters there).
	for trial := 0; trial < 40; trial++ {
		v := []float64{r.NormFloat64(), r.NormFloat64()}
		a := []float64{math.Pow(10, 2*r.Float64()-1), math.Pow(10, 2*r.Float64()-1)}
		nav := math.Hypot(a[0]*v[0], a[1]*v[1])
		c := nav * (0.05 + 0.9*r.Float64()) // non-zero solutions
		x := make([]float64, 2)
		groupProx(x, v, a, c)
		xb, fb := bruteProx2(v, a, c)
		f := proxValue(x, v, a, c)
		if f > fb+1e-12*math.Abs(fb) {
			t.Errorf("trial %d: prox value %.15g above brute force %.15g", trial, f, fb)
		}
		if d := math.Hypot(x[0]-xb[0], x[1]-xb[1]); d > 1e-5*math.Hypot(v[0], v[1]) {
			t.Errorf("trial %d: prox %v, brute force %v (a = %v, c = %g)", trial, x, xb, a, c)
		}
	}
}

// groupCorr returns ||X_c,k^T Y_c|| / N per feature k (centred X and Y).
func groupCorr(X, Y Matrix) []float64 {
	n, nx, ny := X.Rows, X.Cols, Y.Cols
	out := make([]float64, nx)
	for k := 0; k < nx; k++ {
		xm := 0.0
		for i := 0; i < n; i++ {
			xm += X.F64[i*nx+k] / float64(n)
		}
		s := 0.0
		for j := 0; j < ny; j++ {
			ym, c := 0.0, 0.0
			for i := 0; i < n; i++ {
				ym += Y.F64[i*ny+j] / float64(n)
			}
			for i := 0; i < n; i++ {
				c += (X.F64[i*nx+k] - xm) * (Y.F64[i*ny+j] - ym) / float64(n)
			}
			s += c * c
		}
		out[k] = math.Sqrt(s)
	}
	return out
}

// groupLassoRef solves the identity-link group lasso with a bias,
// 1/(2N) ||X U + 1 b^T - Y||^2 + lambda sum_k w_k ||U_k,:||, by FISTA on centred data
// (b = mean(Y) - mean(X) U), to a tight tolerance: an independent reference for Fit.
func groupLassoRef(X, Y Matrix, lambda float64, w []float64) (U, B []float64) {
	return groupLassoRefOf(X, Y, lambda, nil, w)
}

// groupLassoRefOf is groupLassoRef for groups of rows (groups[k] = row k's group, nil: one
// per row): penalty lambda sum_g w_g ||U_{G_g,:}||_F, whose prox in FISTA's Euclidean
// metric is the block soft threshold of each group's rows together. It works on X as
// given (no standardisation), so it shares nothing with the solver's per-column scaling.
func groupLassoRefOf(X, Y Matrix, lambda float64, groups []int, w []float64) (U, B []float64) {
	n, nx, ny := X.Rows, X.Cols, Y.Cols
	if groups == nil {
		groups = make([]int, nx)
		for k := range groups {
			groups[k] = k
		}
	}
	ng := 0
	for _, g := range groups {
		ng = max(ng, g+1)
	}
	xm, ym := make([]float64, nx), make([]float64, ny)
	for i := 0; i < n; i++ {
		for k := 0; k < nx; k++ {
			xm[k] += X.F64[i*nx+k] / float64(n)
		}
		for j := 0; j < ny; j++ {
			ym[j] += Y.F64[i*ny+j] / float64(n)
		}
	}
	xc := make([]float64, n*nx)
	for i := 0; i < n; i++ {
		for k := 0; k < nx; k++ {
			xc[i*nx+k] = X.F64[i*nx+k] - xm[k]
		}
	}
	// L = lambda_max(Xc^T Xc)/N by power iteration.
	vec := make([]float64, nx)
	for k := range vec {
		vec[k] = 1
	}
	L := 0.0
	for it := 0; it < 500; it++ {
		u := make([]float64, nx)
		for i := 0; i < n; i++ {
			s := 0.0
			for k := 0; k < nx; k++ {
				s += xc[i*nx+k] * vec[k]
			}
			for k := 0; k < nx; k++ {
				u[k] += xc[i*nx+k] * s / float64(n)
			}
		}
		L = math.Sqrt(dot(u, u))
		for k := range u {
			vec[k] = u[k] / L
		}
	}
	L *= 1.01
	grad := func(U []float64) []float64 {
		g := make([]float64, nx*ny)
		for i := 0; i < n; i++ {
			for j := 0; j < ny; j++ {
				r := -(Y.F64[i*ny+j] - ym[j])
				for k := 0; k < nx; k++ {
					r += xc[i*nx+k] * U[k*ny+j]
				}
				for k := 0; k < nx; k++ {
					g[k*ny+j] += xc[i*nx+k] * r / float64(n)
				}
			}
		}
		return g
	}
	U = make([]float64, nx*ny)
	Z := make([]float64, nx*ny)
	tk := 1.0
	ones := make([]float64, ny)
	for j := range ones {
		ones[j] = 1
	}
	for it := 0; it < 20000; it++ {
		g := grad(Z)
		next := make([]float64, nx*ny)
		for i := range next {
			next[i] = Z[i] - g[i]/L
		}
		nv := make([]float64, ng)
		for k := 0; k < nx; k++ {
			for j := 0; j < ny; j++ {
				nv[groups[k]] += next[k*ny+j] * next[k*ny+j]
			}
		}
		for k := 0; k < nx; k++ {
			gi := groups[k]
			s := 0.0
			if nv[gi] > 0 {
				s = math.Max(0, 1-lambda*w[gi]/(L*math.Sqrt(nv[gi])))
			}
			for j := 0; j < ny; j++ {
				next[k*ny+j] *= s
			}
		}
		tn := (1 + math.Sqrt(1+4*tk*tk)) / 2
		for i := range Z {
			Z[i] = next[i] + (tk-1)/tn*(next[i]-U[i])
		}
		U, tk = next, tn
	}
	B = make([]float64, ny)
	for j := range B {
		B[j] = ym[j]
		for k := 0; k < nx; k++ {
			B[j] -= xm[k] * U[k*ny+j]
		}
	}
	return U, B
}

// TestGroupFitIdentity: with the identity link and the group penalty Fit reaches the FISTA
// reference's objective (1e-6 relative), the same rows are exactly zero, F is the
// objective recomputed from the data (groupObjective), and the lower bound is valid and
// close (the problem is convex).
func TestGroupFitIdentity(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		pp := makePlanted(seed, 150, 10, 4, 0.3, 0.5, 0.3, Identity)
		r := rand.New(rand.NewPCG(seed, 9))
		w := make([]float64, pp.Nx)
		for k := range w {
			w[k] = 0.5 + r.Float64()
		}
		if seed == 4 {
			w = nil // default weights
		}
		wRef := w
		if wRef == nil {
			wRef = []float64{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}
		}
		// A lambda that zeroes some rows: a fraction of lambda_max = max_k ||X_c,k^T Y_c||/(N w_k).
		lmax := 0.0
		for k, nrm := range groupCorr(pp.X, pp.Y) {
			lmax = math.Max(lmax, nrm/wRef[k])
		}
		lam := (0.3 + 0.1*float64(seed)) * lmax
		res, err := Fit(context.Background(), pp.X, pp.Y, lam, &Settings{Link: Identity, GroupL1: true, GroupWeights: w})
		if err != nil {
			t.Fatal(err)
		}
		Uref, Bref := groupLassoRef(pp.X, pp.Y, lam, wRef)
		fRef := groupObjective(pp.X, pp.Y, Uref, Bref, lam, wRef, Identity)
		f := groupObjective(pp.X, pp.Y, res.U, res.B, lam, wRef, Identity)
		if math.Abs(f-res.F) > 1e-9*f {
			t.Errorf("seed %d: reported F %.12g, recomputed %.12g", seed, res.F, f)
		}
		if rel := (f - fRef) / fRef; math.Abs(rel) > 1e-6 {
			t.Errorf("seed %d: F %.12g, FISTA reference %.12g (rel %.2e)", seed, f, fRef, rel)
		}
		if res.LowerBound > fRef*(1+1e-9) || res.LowerBound < fRef*(1-1e-3) {
			t.Errorf("seed %d: lower bound %.12g, optimum %.12g", seed, res.LowerBound, fRef)
		}
		gn, gr := groupNorms(res.U, pp.Nx, pp.Ny), groupNorms(Uref, pp.Nx, pp.Ny)
		zeros := 0
		for k := range gn {
			if (gn[k] == 0) != (gr[k] == 0) {
				t.Errorf("seed %d: row %d: norm %g, reference %g", seed, k, gn[k], gr[k])
			}
			if gn[k] == 0 {
				zeros++
			}
		}
		if zeros == 0 || zeros == pp.Nx {
			t.Errorf("seed %d: %d of %d rows zero: lambda does not test the threshold", seed, zeros, pp.Nx)
		}
		t.Logf("seed %d: F %.10g ref %.10g bound %.10g, %d/%d rows zero, %d iterations, %v", seed, f, fRef, res.LowerBound, zeros, pp.Nx, res.Iters, res.Status)
	}
}

// TestGroupFitReLU: a planted ReLU layer whose last inputs are read by no output: the group
// fit zeroes exactly those rows (whole rows, every output), keeps the others, and its F is
// the objective recomputed from the data. Newton and several starts are refused.
func TestGroupFitReLU(t *testing.T) {
	pp := makePlanted(11, 800, 12, 6, 0.8, 0.5, 0.02, ReLU)
	dead := map[int]bool{8: true, 9: true, 10: true, 11: true}
	for k := range dead {
		for j := 0; j < pp.Ny; j++ {
			pp.U[k*pp.Ny+j] = 0
		}
	}
	// Recompute Y without the dead inputs.
	for i := 0; i < pp.N; i++ {
		for j := 0; j < pp.Ny; j++ {
			w := pp.B[j]
			for k := 0; k < pp.Nx; k++ {
				w += pp.X.F64[i*pp.Nx+k] * pp.U[k*pp.Ny+j]
			}
			pp.Y.F64[i*pp.Ny+j] = math.Max(0, w)
		}
	}
	lam := 0.02
	res, err := Fit(context.Background(), pp.X, pp.Y, lam, &Settings{GroupL1: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Method != ADMM {
		t.Errorf("method %v, want admm", res.Method)
	}
	f := groupObjective(pp.X, pp.Y, res.U, res.B, lam, nil, ReLU)
	if math.Abs(f-res.F) > 1e-9*f {
		t.Errorf("reported F %.12g, recomputed %.12g", res.F, f)
	}
	if res.LowerBound > f {
		t.Errorf("lower bound %g above F %g", res.LowerBound, f)
	}
	for k, nrm := range groupNorms(res.U, pp.Nx, pp.Ny) {
		if dead[k] != (nrm == 0) {
			t.Errorf("row %d: norm %g, planted dead %v", k, nrm, dead[k])
		}
		if nrm == 0 {
			continue
		}
		for j := 0; j < pp.Ny; j++ {
			if res.U[k*pp.Ny+j] == 0 && pp.U[k*pp.Ny+j] != 0 {
				t.Errorf("row %d output %d: zero inside a kept group (plain L1 zero?)", k, j)
			}
		}
	}
	t.Logf("F %.6g, %d iterations, %d CCP rounds, %v", res.F, res.Iters, res.CCPIters, res.Status)
	for _, s := range []Settings{{GroupL1: true, Method: Newton}, {GroupL1: true, Starts: 4}, {GroupWeights: make([]float64, pp.Nx)}, {GroupL1: true, GroupWeights: []float64{1}}} {
		_, err := Fit(context.Background(), pp.X, pp.Y, lam, &s)
		var ie *InputError
		if !errors.As(err, &ie) {
			t.Errorf("settings %+v: error %v, want an InputError", s, err)
		}
	}
}

// TestGroupFitUnequalRho: outputs of very different scale (the residual balancing gives them
// different rho_j, where the prox in the metric diag(rho) matters) against FISTA.
func TestGroupFitUnequalRho(t *testing.T) {
	pp := makePlanted(21, 200, 8, 3, 0.5, 0.5, 0.1, Identity)
	for i := 0; i < pp.N; i++ {
		pp.Y.F64[i*pp.Ny] *= 100
		pp.Y.F64[i*pp.Ny+2] *= 0.01
	}
	lam := 1.0
	res, err := Fit(context.Background(), pp.X, pp.Y, lam, &Settings{Link: Identity, GroupL1: true})
	if err != nil {
		t.Fatal(err)
	}
	w := []float64{1, 1, 1, 1, 1, 1, 1, 1}
	Uref, Bref := groupLassoRef(pp.X, pp.Y, lam, w)
	fRef := groupObjective(pp.X, pp.Y, Uref, Bref, lam, w, Identity)
	f := groupObjective(pp.X, pp.Y, res.U, res.B, lam, w, Identity)
	distinct := false
	for _, r := range res.Rho {
		distinct = distinct || r != res.Rho[0]
	}
	t.Logf("F %.12g ref %.12g rho %v, %d iterations", f, fRef, res.Rho, res.Iters)
	if !distinct {
		t.Logf("note: rho ended equal over outputs")
	}
	if rel := (f - fRef) / fRef; math.Abs(rel) > 1e-6 {
		t.Errorf("F %.12g, reference %.12g (rel %.2e)", f, fRef, rel)
	}
}

// TestGroupFitMask: masking whole rows of U under the group penalty is the same problem as
// dropping those inputs: the fit with the mask matches the fit on X without the columns
// (identity link, convex), and the masked rows are exactly zero.
func TestGroupFitMask(t *testing.T) {
	pp := makePlanted(31, 120, 7, 3, 0.6, 0.5, 0.2, Identity)
	drop := map[int]bool{1: true, 4: true}
	mask := make([]bool, pp.Nx*pp.Ny)
	var keep []int
	for k := 0; k < pp.Nx; k++ {
		for j := 0; j < pp.Ny; j++ {
			mask[k*pp.Ny+j] = !drop[k]
		}
		if !drop[k] {
			keep = append(keep, k)
		}
	}
	Xr := Matrix{Rows: pp.N, Cols: len(keep)}
	for i := 0; i < pp.N; i++ {
		for _, k := range keep {
			Xr.F64 = append(Xr.F64, pp.X.F64[i*pp.Nx+k])
		}
	}
	lam := 0.1
	a, err := Fit(context.Background(), pp.X, pp.Y, lam, &Settings{Link: Identity, GroupL1: true, Mask: mask})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Fit(context.Background(), Xr, pp.Y, lam, &Settings{Link: Identity, GroupL1: true})
	if err != nil {
		t.Fatal(err)
	}
	if rel := math.Abs(a.F-b.F) / b.F; rel > 1e-6 {
		t.Errorf("masked F %.12g, reduced-X F %.12g (rel %.2e)", a.F, b.F, rel)
	}
	if a.LowerBound > a.F {
		t.Errorf("lower bound %g above F %g", a.LowerBound, a.F)
	}
	for k := range drop {
		for j := 0; j < pp.Ny; j++ {
			if a.U[k*pp.Ny+j] != 0 {
				t.Errorf("masked U[%d][%d] = %g", k, j, a.U[k*pp.Ny+j])
			}
		}
	}
	for r, k := range keep {
		for j := 0; j < pp.Ny; j++ {
			if d := math.Abs(a.U[k*pp.Ny+j] - b.U[r*pp.Ny+j]); d > 1e-4 {
				t.Errorf("U[%d][%d]: masked %g, reduced %g", k, j, a.U[k*pp.Ny+j], b.U[r*pp.Ny+j])
			}
		}
	}
}

// TestGroupFitColumnGroups: groups of several features (Settings.Groups, as a conv
// channel's KH*KW columns) against the FISTA block group lasso written in this file
// (groupLassoRefOf, which works on the unscaled X: an independent reference for the
// solver's z-update in the metric diag(rho_j d_k^2)). The columns within a group are given
// very different scales (so the d_k differ and the general form of the prox runs), groups
// have 1 to 4 features, and (seed 3) outputs are scaled by 100 and 0.01 (the rho_j ended
// equal all the same; TestGroupProx covers unequal metrics, which here come from the d_k). Fit must reach
// the reference's objective (1e-6 relative), zero exactly the same groups (and whole groups
// only), report F as recomputed from the data, and give a valid lower bound.
func TestGroupFitColumnGroups(t *testing.T) {
	groups := []int{0, 0, 0, 1, 2, 2, 3, 3, 3, 3, 4, 4, 5, 6, 6}
	ng := 7
	for seed := uint64(1); seed <= 3; seed++ {
		pp := makePlanted(40+seed, 160, len(groups), 4, 0.5, 0.5, 0.3, Identity)
		r := rand.New(rand.NewPCG(seed, 17))
		for k := 0; k < pp.Nx; k++ { // column scales 0.1 .. 10
			sc := math.Pow(10, 2*r.Float64()-1)
			for i := 0; i < pp.N; i++ {
				pp.X.F64[i*pp.Nx+k] *= sc
			}
		}
		if seed == 3 {
			for i := 0; i < pp.N; i++ {
				pp.Y.F64[i*pp.Ny] *= 100
				pp.Y.F64[i*pp.Ny+2] *= 0.01
			}
		}
		w := make([]float64, ng)
		for g := range w {
			w[g] = 0.5 + r.Float64()
		}
		// lambda_max = max_g ||X_c,G^T Y_c||_F / (N w_g).
		corr := groupCorrOf(pp.X, pp.Y, groups, ng)
		lmax := 0.0
		for g, c := range corr {
			lmax = math.Max(lmax, c/w[g])
		}
		lam := (0.15 + 0.1*float64(seed)) * lmax
		res, err := Fit(context.Background(), pp.X, pp.Y, lam, &Settings{Link: Identity, GroupL1: true, Groups: groups, GroupWeights: w})
		if err != nil {
			t.Fatal(err)
		}
		Uref, Bref := groupLassoRefOf(pp.X, pp.Y, lam, groups, w)
		fRef := groupObjectiveOf(pp.X, pp.Y, Uref, Bref, lam, groups, w, Identity)
		f := groupObjectiveOf(pp.X, pp.Y, res.U, res.B, lam, groups, w, Identity)
		if math.Abs(f-res.F) > 1e-9*f {
			t.Errorf("seed %d: reported F %.12g, recomputed %.12g", seed, res.F, f)
		}
		if rel := (f - fRef) / fRef; math.Abs(rel) > 1e-6 {
			t.Errorf("seed %d: F %.12g, FISTA reference %.12g (rel %.2e)", seed, f, fRef, rel)
		}
		if res.LowerBound > fRef*(1+1e-9) || res.LowerBound < fRef*(1-1e-3) {
			t.Errorf("seed %d: lower bound %.12g, optimum %.12g", seed, res.LowerBound, fRef)
		}
		gn, gr := GroupNormsOf(res.U, pp.Nx, pp.Ny, groups, ng), GroupNormsOf(Uref, pp.Nx, pp.Ny, groups, ng)
		zeros := 0
		for g := range gn {
			if (gn[g] == 0) != (gr[g] < 1e-9) {
				t.Errorf("seed %d: group %d: norm %g, reference %g", seed, g, gn[g], gr[g])
			}
			if gn[g] == 0 {
				zeros++
				continue
			}
			for k, gk := range groups { // a kept group keeps all of its rows
				if gk == g && groupNorms(res.U[k*pp.Ny:(k+1)*pp.Ny], 1, pp.Ny)[0] == 0 {
					t.Errorf("seed %d: row %d of kept group %d is zero", seed, k, g)
				}
			}
		}
		if zeros == 0 || zeros == ng {
			t.Errorf("seed %d: %d of %d groups zero: lambda does not test the threshold", seed, zeros, ng)
		}
		t.Logf("seed %d: F %.10g ref %.10g bound %.10g, %d/%d groups zero, rho %v, %d iterations", seed, f, fRef, res.LowerBound, zeros, ng, res.Rho, res.Iters)
	}
}

// groupCorrOf returns ||X_c,G^T Y_c||_F / N per group (centred X and Y).
func groupCorrOf(X, Y Matrix, groups []int, ng int) []float64 {
	per := groupCorr(X, Y)
	out := make([]float64, ng)
	for k, g := range groups {
		out[g] += per[k] * per[k]
	}
	for g := range out {
		out[g] = math.Sqrt(out[g])
	}
	return out
}

// TestGroupFitColumnGroupsReLU: a planted ReLU layer whose inputs come in groups of three
// (a channel's positions) and whose last two groups are read by no output: the group fit
// zeroes exactly those groups. Groups with one feature each give the same result, bit for
// bit, as no Groups at all (the single-row form is kept).
func TestGroupFitColumnGroupsReLU(t *testing.T) {
	pp := makePlanted(51, 600, 15, 5, 0.8, 0.5, 0.02, ReLU)
	groups := make([]int, pp.Nx)
	for k := range groups {
		groups[k] = k / 3
	}
	dead := map[int]bool{3: true, 4: true}
	for k := 0; k < pp.Nx; k++ {
		if dead[groups[k]] {
			for j := 0; j < pp.Ny; j++ {
				pp.U[k*pp.Ny+j] = 0
			}
		}
	}
	for i := 0; i < pp.N; i++ {
		for j := 0; j < pp.Ny; j++ {
			w := pp.B[j]
			for k := 0; k < pp.Nx; k++ {
				w += pp.X.F64[i*pp.Nx+k] * pp.U[k*pp.Ny+j]
			}
			pp.Y.F64[i*pp.Ny+j] = math.Max(0, w)
		}
	}
	lam := 0.02
	res, err := Fit(context.Background(), pp.X, pp.Y, lam, &Settings{GroupL1: true, Groups: groups})
	if err != nil {
		t.Fatal(err)
	}
	f := groupObjectiveOf(pp.X, pp.Y, res.U, res.B, lam, groups, nil, ReLU)
	if math.Abs(f-res.F) > 1e-9*f {
		t.Errorf("reported F %.12g, recomputed %.12g", res.F, f)
	}
	if res.LowerBound > f {
		t.Errorf("lower bound %g above F %g", res.LowerBound, f)
	}
	for g, nrm := range GroupNormsOf(res.U, pp.Nx, pp.Ny, groups, 5) {
		if dead[g] != (nrm == 0) {
			t.Errorf("group %d: norm %g, planted dead %v", g, nrm, dead[g])
		}
	}
	// Singleton groups: the same computation as Groups == nil.
	single := make([]int, pp.Nx)
	for k := range single {
		single[k] = k
	}
	a, err := Fit(context.Background(), pp.X, pp.Y, lam, &Settings{GroupL1: true, Groups: single, MaxIter: 300})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Fit(context.Background(), pp.X, pp.Y, lam, &Settings{GroupL1: true, MaxIter: 300})
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.U {
		if a.U[i] != b.U[i] {
			t.Fatalf("U[%d]: %v with singleton Groups, %v without", i, a.U[i], b.U[i])
		}
	}
	for _, s := range []Settings{{Groups: groups}, {GroupL1: true, Groups: groups[:3]}, {GroupL1: true, Groups: append([]int{-1}, groups[1:]...)},
		{GroupL1: true, Groups: groups, GroupWeights: make([]float64, 4)}, {GroupL1: true, Groups: groups, GroupWeights: make([]float64, 6)}} {
		_, err := Fit(context.Background(), pp.X, pp.Y, lam, &s)
		var ie *InputError
		if !errors.As(err, &ie) {
			t.Errorf("settings %+v: error %v, want an InputError", s, err)
		}
	}
}
