// Package fit runs relutrim/solver along lambda paths, for the `relutrim fit` command and
// for the pruner: the largest useful lambda ([LambdaMax], from the marginal correlations
// [Correlations]), the path engine ([Engine]: X prepared once, every solve warm-started from
// a previous point with its whole warm state) and on it the regularisation paths ([Walk],
// [Path]) and the search for the lambda that gives a prescribed sparsity ([ForSparsity]).
package fit

import (
	"context"
	"math"

	"relutrim/solver"
)

// Point is one solve on a path: the lambda, the fitted layer and its statistics.
type Point struct {
	Lambda float64
	// U (Nx x Ny row-major) and B (Ny) are the fitted weights and bias. ForSparsity keeps
	// them only on the point it returns (its trace has nil U and B); Path keeps them all.
	U, B []float64
	// Rho is the inner solver's final per-output penalty (solver.Result.Rho; nil when the
	// inner solver has none): with U and B, the warm state a next solve starts from.
	Rho []float64
	// F, LowerBound, Gap, Status, Iters (inner iterations), CCPIters, Passes (work in passes
	// over X) and FOut are copied from the solver's Result.
	F, LowerBound, Gap float64
	FOut               []float64
	Status             solver.Status
	Iters, CCPIters    int
	Passes             float64
	// Method is the inner solver that ran (solver.Result.Method).
	Method solver.Method
	// Nonzeros counts the entries of U that are not exactly zero, NonzerosOut per output.
	Nonzeros    int
	NonzerosOut []int
	// Sparsity is the fraction of entries of U that are exactly zero.
	Sparsity float64
	// MSE is the training mean squared error over all N*Ny entries,
	// mean((act(X U + b) - Y)^2) = 2 (F - lambda ||U||_1) / Ny.
	MSE float64
}

// NewPoint summarises a solver result at lambda for a layer with ny outputs.
func NewPoint(lambda float64, ny int, res *solver.Result) Point {
	p := Point{Lambda: lambda, U: res.U, B: res.B, Rho: res.Rho, F: res.F, LowerBound: res.LowerBound,
		Gap: res.Gap, FOut: res.FOut, Status: res.Status, Iters: res.Iters, CCPIters: res.CCPIters,
		Passes: res.Passes, Method: res.Method, NonzerosOut: make([]int, ny)}
	l1 := 0.0
	for i, u := range res.U {
		if u != 0 {
			p.Nonzeros++
			p.NonzerosOut[i%ny]++
		}
		l1 += math.Abs(u)
	}
	if len(res.U) > 0 {
		p.Sparsity = 1 - float64(p.Nonzeros)/float64(len(res.U))
	}
	p.MSE = math.Max(0, 2*(res.F-lambda*l1)/float64(ny))
	return p
}

// LambdaMax returns, for each output j, the smallest lambda at which U_j = 0 is optimal, and
// their maximum (the smallest lambda for which the whole U is 0).
//
// For the identity link this is the Lasso value ||X_c^T (y_j - mean y_j)||_inf / N with the
// column-centred X_c when there is a bias, and ||X^T y_j||_inf / N without one.
//
// For the ReLU link the same formula is used, and it is exact in the following sense. At
// U = 0 every pre-activation equals b_j. With a bias and mean(y_j) > 0 the optimal bias is
// b_j = mean(y_j) > 0, every pre-activation is positive, so F coincides near (0, b) with the
// identity-link objective (and the solver's first CCP majoriser there is the full quadratic
// (w - y)^2 for y > 0 terms and (w - y)^2 on w >= 0 for y <= 0 terms): U = 0 is a local
// minimum of F, and a fixed point of the solver, exactly when lambda >= LambdaMax. Without a
// bias (b = 0) it is where the CCP started at U = 0 stays there (when Y >= 0); it is not
// a bound on the global threshold, since at U = 0 the loss's directional derivative is
// -(1/N) sum_p y_p max(0, x_p.d), which can exceed the linear |(1/N) sum_p y_p x_p.d|:
// random CCP starts then find points with U != 0 and lower F. If every y_j <= 0, U_j = 0 (with b_j <= 0) is a global
// minimum for every lambda, and LambdaMax returns 0 for that output. If y_j has both signs
// but mean(y_j) <= 0 with a bias, the formula is a heuristic (U = 0 need not be stationary).
//
// The values are rounded up by a relative lambdaMaxMargin (1e-9): at the exact value the
// solver's own rounding (it works in standardised coordinates) can leave an entry at 1e-16.
func LambdaMax(X, Y solver.Matrix, link solver.Link, noBias bool) (float64, []float64) {
	anyPos := make([]bool, Y.Cols)
	for j := range anyPos {
		anyPos[j] = !allNonPositive(Y, j)
	}
	return lambdaMaxFrom(Correlations(X, Y, noBias), anyPos, link)
}

// lambdaMaxFrom is LambdaMax from the correlations G (Nx x Ny) and whether each output
// has a positive target.
func lambdaMaxFrom(G []float64, anyPositive []bool, link solver.Link) (float64, []float64) {
	ny := len(anyPositive)
	per := make([]float64, ny)
	for i, c := range G {
		per[i%ny] = math.Max(per[i%ny], c)
	}
	all := 0.0
	for j := range per {
		per[j] *= 1 + lambdaMaxMargin
		if link == solver.ReLU && !anyPositive[j] {
			per[j] = 0
		}
		all = math.Max(all, per[j])
	}
	return all, per
}

// allNonPositive reports whether column j of Y has no positive entry.
func allNonPositive(Y solver.Matrix, j int) bool {
	for i := 0; i < Y.Rows; i++ {
		if Y.At(i, j) > 0 {
			return false
		}
	}
	return true
}

// Correlations returns the marginal correlations |(1/N) x_k^T r_j| of every input column k
// with every output j (Nx x Ny row-major), with r_j = y_j - mean(y_j) and the column-centred
// x_k when there is a bias, and r_j = y_j, x_k without one. Their maximum per output is
// [LambdaMax] (before its margin); the pruner also ranks them ("sure independence
// screening": the Lasso keeps roughly the features whose correlation exceeds lambda).
//
// It computes them as [Engine] does (solver.Prepared.Correlations: the solver's
// standardisation and chunk-tree reductions), so that both agree bitwise; an X the solver
// refuses falls back to a direct row-by-row sum.
func Correlations(X, Y solver.Matrix, noBias bool) []float64 {
	if pr, err := solver.Prepare(X, &solver.Settings{NoBias: noBias, Threads: 1}); err == nil && Y.Rows == X.Rows {
		var mean []float64
		if !noBias {
			mean, _ = pr.YStats(Y)
		}
		return pr.Correlations(Y, mean)
	}
	n, nx, ny := X.Rows, X.Cols, Y.Cols
	mean := make([]float64, ny)
	xmean := make([]float64, nx)
	if !noBias {
		for i := 0; i < n; i++ {
			for j := 0; j < ny; j++ {
				mean[j] += Y.At(i, j)
			}
			for k := 0; k < nx; k++ {
				xmean[k] += X.At(i, k)
			}
		}
		for j := range mean {
			mean[j] /= float64(n)
		}
		for k := range xmean {
			xmean[k] /= float64(n)
		}
	}
	// G = X_c^T R with R = Y - mean (bias) or R = Y (no bias). With a bias, sum_i R_ij = 0,
	// so X^T R = X_c^T R; centring X as well keeps the sum accurate.
	G := make([]float64, nx*ny)
	r := make([]float64, ny)
	for i := 0; i < n; i++ {
		for j := 0; j < ny; j++ {
			r[j] = Y.At(i, j) - mean[j]
		}
		for k := 0; k < nx; k++ {
			x := X.At(i, k) - xmean[k]
			if x == 0 {
				continue
			}
			row := G[k*ny : (k+1)*ny]
			for j, v := range r {
				row[j] += x * v
			}
		}
	}
	for i, g := range G {
		G[i] = math.Abs(g) / float64(n)
	}
	return G
}

// lambdaMaxMargin is the relative amount by which LambdaMax rounds up.
const lambdaMaxMargin = 1e-9

// startBiasOf is the warm-start bias at U = 0 used for the first point of a path: mean(y_j)
// (the optimal bias at U = 0), or 0 for ReLU outputs with mean(y_j) <= 0, whose pre-
// activations should start in the active region; mean: the outputs' means. nil without a
// bias.
func startBiasOf(mean []float64, link solver.Link, noBias bool) []float64 {
	if noBias {
		return nil
	}
	b := append([]float64(nil), mean...)
	for j := range b {
		if link == solver.ReLU && b[j] < 0 {
			b[j] = 0
		}
	}
	return b
}

// Geometric returns k values from hi down to lo, equally spaced in log (hi and lo included;
// k == 1 gives just hi). hi and lo must be positive.
func Geometric(hi, lo float64, k int) []float64 {
	if k <= 0 {
		return nil
	}
	out := make([]float64, k)
	out[0] = hi
	for i := 1; i < k; i++ {
		out[i] = hi * math.Pow(lo/hi, float64(i)/float64(k-1))
	}
	if k > 1 {
		out[k-1] = lo
	}
	return out
}

// Walk is [Engine.Walk] on a new Engine for (X, Y, s), starting from s.InitU/InitB/InitRho
// if any is set, else from [Engine.Start].
func Walk(ctx context.Context, X, Y solver.Matrix, lambdas []float64, s *solver.Settings, fn func(Point) error) error {
	e, err := NewEngine(X, Y, s)
	if err != nil {
		return err
	}
	return e.Walk(ctx, lambdas, initPoint(s), fn)
}

// initPoint is the warm start given in s, or nil.
func initPoint(s *solver.Settings) *Point {
	if s == nil || s.InitU == nil && s.InitB == nil && s.InitRho == nil {
		return nil
	}
	return &Point{U: s.InitU, B: s.InitB, Rho: s.InitRho}
}

// Path is Walk collecting the points (with their U and B: Nx*Ny + Ny floats per point). On
// error it returns the points solved so far.
func Path(ctx context.Context, X, Y solver.Matrix, lambdas []float64, s *solver.Settings) ([]Point, error) {
	var pts []Point
	err := Walk(ctx, X, Y, lambdas, s, func(p Point) error {
		pts = append(pts, p)
		return nil
	})
	return pts, err
}
