package solver

import (
	"math"
	"sort"
)

// Independent reference solvers for the bound and corpus tests. They share no code with
// the package: plain loops over X in the original coordinates.

// refObjective is F(U, b) for one output column j, computed from scratch (not Objective).
func refObjective(X, Y Matrix, j int, u []float64, b, lambda float64, link Link) float64 {
	n := X.Rows
	s := 0.0
	for i := 0; i < n; i++ {
		w := b
		for k := 0; k < X.Cols; k++ {
			w += X.At(i, k) * u[k]
		}
		if link == ReLU && w < 0 {
			w = 0
		}
		r := w - Y.At(i, j)
		s += r * r
	}
	l1 := 0.0
	for _, v := range u {
		l1 += math.Abs(v)
	}
	return s/(2*float64(n)) + lambda*l1
}

// lassoCD solves output j of the multi-output Lasso (identity link) by cyclic coordinate
// descent (Friedman, Hastie, Tibshirani 2010, "Regularization paths for generalized linear
// models via coordinate descent", eq. 5), with the intercept eliminated by centring X and y
// when bias is set: u_k <- S(x_k^T r / N + ||x_k||^2/N u_k, lambda) / (||x_k||^2/N). It runs
// until no coordinate moves by more than 1e-15 of the largest one (or 1e6 sweeps) and
// returns u and b.
func lassoCD(X, Y Matrix, j int, lambda float64, bias bool) ([]float64, float64) {
	n, nx := X.Rows, X.Cols
	xc := make([]float64, n*nx) // centred (or raw) X, column-major
	xm := make([]float64, nx)
	ym := 0.0
	if bias {
		for i := 0; i < n; i++ {
			ym += Y.At(i, j)
			for k := 0; k < nx; k++ {
				xm[k] += X.At(i, k)
			}
		}
		ym /= float64(n)
		for k := range xm {
			xm[k] /= float64(n)
		}
	}
	sq := make([]float64, nx)
	for k := 0; k < nx; k++ {
		for i := 0; i < n; i++ {
			v := X.At(i, k) - xm[k]
			xc[k*n+i] = v
			sq[k] += v * v
		}
		sq[k] /= float64(n)
	}
	r := make([]float64, n) // residual y - ym - Xc u
	for i := range r {
		r[i] = Y.At(i, j) - ym
	}
	u := make([]float64, nx)
	for sweep := 0; sweep < 1_000_000; sweep++ {
		maxStep, maxU := 0.0, 0.0
		for k := 0; k < nx; k++ {
			if sq[k] == 0 {
				continue
			}
			col := xc[k*n : (k+1)*n]
			rho := 0.0
			for i, v := range col {
				rho += v * r[i]
			}
			rho = rho/float64(n) + sq[k]*u[k]
			nu := 0.0
			switch {
			case rho > lambda:
				nu = (rho - lambda) / sq[k]
			case rho < -lambda:
				nu = (rho + lambda) / sq[k]
			}
			if d := nu - u[k]; d != 0 {
				for i, v := range col {
					r[i] -= d * v
				}
				maxStep = math.Max(maxStep, math.Abs(d))
				u[k] = nu
			}
			maxU = math.Max(maxU, math.Abs(nu))
		}
		if maxStep <= 1e-15*maxU || maxStep == 0 {
			break
		}
	}
	b := 0.0
	if bias {
		b = ym
		for k := range u {
			b -= xm[k] * u[k]
		}
	}
	return u, b
}

// reluNoBias2 returns the exact global minimum over u in R^2 (or R^1: X with one column)
// of F(u) = 1/(2N) sum_p (max(0, u.x_p) - y_p)^2 + lambda |u|_1, the ReLU link without a
// bias, for output j. The kinks of F are the lines u.x_p = 0 and the axes; between two
// consecutive kink directions (a sector, a convex cone) the set of active samples
// {p: u.x_p > 0} and the signs of u are fixed, so F is the convex quadratic
// 1/(2N) (sum_active (u.x_p - y_p)^2 + sum_inactive y_p^2) + lambda s.u there. Its minimum
// over the closed sector is at the unconstrained minimiser (if inside), on one of the two
// boundary rays (a 1-D quadratic in t >= 0) or at 0; every candidate is evaluated with
// refObjective, and the least is the global minimum.
func reluNoBias2(X, Y Matrix, j int, lambda float64) (float64, []float64) {
	n, nx := X.Rows, X.Cols
	if nx == 1 {
		// Two half-lines u >= 0 and u <= 0, each a quadratic in u.
		best, bu := refObjective(X, Y, j, []float64{0}, 0, lambda, ReLU), 0.0
		for _, sgn := range []float64{1, -1} {
			a, c := 0.0, 0.0
			for i := 0; i < n; i++ {
				if x := X.At(i, 0) * sgn; x > 0 {
					a += x * x
					c += x * Y.At(i, j)
				}
			}
			if a == 0 {
				continue
			}
			t := math.Max(0, (c/float64(n)-lambda)/(a/float64(n)))
			if f := refObjective(X, Y, j, []float64{sgn * t}, 0, lambda, ReLU); f < best {
				best, bu = f, sgn*t
			}
		}
		return best, []float64{bu}
	}
	if nx != 2 {
		panic("reluNoBias2: X must have 1 or 2 columns")
	}
	angles := []float64{0, math.Pi / 2, math.Pi, 3 * math.Pi / 2}
	for i := 0; i < n; i++ {
		x1, x2 := X.At(i, 0), X.At(i, 1)
		if x1 == 0 && x2 == 0 {
			continue
		}
		phi := math.Atan2(x2, x1)
		for _, a := range []float64{phi + math.Pi/2, phi - math.Pi/2} {
			angles = append(angles, math.Mod(a+4*math.Pi, 2*math.Pi))
		}
	}
	sort.Float64s(angles)
	best, bu := refObjective(X, Y, j, []float64{0, 0}, 0, lambda, ReLU), []float64{0, 0}
	try := func(u []float64) {
		if f := refObjective(X, Y, j, u, 0, lambda, ReLU); f < best {
			best, bu = f, u
		}
	}
	N := float64(n)
	for s := range angles {
		lo := angles[s]
		hi := angles[0] + 2*math.Pi
		if s+1 < len(angles) {
			hi = angles[s+1]
		}
		if hi-lo < 1e-15 {
			continue
		}
		mid := (lo + hi) / 2
		dm := [2]float64{math.Cos(mid), math.Sin(mid)}
		var A [2][2]float64 // sum_active x x^T / N
		var c [2]float64    // sum_active y x / N - lambda sign(u)
		for i := 0; i < n; i++ {
			x := [2]float64{X.At(i, 0), X.At(i, 1)}
			if x[0]*dm[0]+x[1]*dm[1] <= 0 {
				continue
			}
			y := Y.At(i, j)
			for a := 0; a < 2; a++ {
				c[a] += y * x[a] / N
				for b := 0; b < 2; b++ {
					A[a][b] += x[a] * x[b] / N
				}
			}
		}
		for a := 0; a < 2; a++ {
			c[a] -= lambda * sign(dm[a])
		}
		// Boundary rays u = t d, t >= 0: q(t) = t^2 d'Ad/2 - t c.d.
		for _, ang := range []float64{lo, hi} {
			d := [2]float64{math.Cos(ang), math.Sin(ang)}
			dad := d[0]*(A[0][0]*d[0]+A[0][1]*d[1]) + d[1]*(A[1][0]*d[0]+A[1][1]*d[1])
			cd := c[0]*d[0] + c[1]*d[1]
			if dad > 0 && cd > 0 {
				t := cd / dad
				try([]float64{t * d[0], t * d[1]})
			}
		}
		// Interior: A u = c, if A is invertible and u lies strictly inside the sector.
		det := A[0][0]*A[1][1] - A[0][1]*A[1][0]
		if det > 1e-14*(A[0][0]*A[1][1]+1e-300) {
			u := []float64{(A[1][1]*c[0] - A[0][1]*c[1]) / det, (A[0][0]*c[1] - A[1][0]*c[0]) / det}
			ang := math.Mod(math.Atan2(u[1], u[0])+4*math.Pi, 2*math.Pi)
			if ang < lo {
				ang += 2 * math.Pi
			}
			if ang > lo && ang < hi {
				try(u)
			}
		}
	}
	return best, bu
}
