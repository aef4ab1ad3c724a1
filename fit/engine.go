package fit

import (
	"context"
	"fmt"
	"math"
	"slices"

	"relutrim/solver"
)

// Engine is relutrim's one lambda-path engine: a layer (X, Y) prepared once
// (solver.Prepare: standardisation and step scale) and solved at any number of lambdas,
// each solve warm-started from a previous point with the solver's whole warm state: the
// point (U, b) and, when the inner solver has one, its per-output penalty rho (a nil Rho,
// as the Newton method returns, simply means no rho warm start). The fit command's paths
// ([Engine.Walk], [Engine.ForSparsity]) and the pruner's support-selection path all run on
// it.
//
// An Engine is not safe for concurrent use (the prepared X's scratch buffers are shared).
// X must not change while the Engine is in use.
type Engine struct {
	prep     *solver.Prepared
	y        solver.Matrix
	ycorr    solver.Matrix // Y - Settings.Offset for the correlations and the start (Y without one)
	settings solver.Settings
	corr     []float64 // Correlations(X, Y), Nx x Ny, once computed (lambdaMax)
	lmax     float64
	lmaxOut  []float64
	start    []float64 // the bias of the path's start point, nil without a bias
	mean     []float64 // Y's column means (nil without a bias), for the correlations
	anyPos   []bool
}

// NewEngine validates and prepares X for the settings s (nil means defaults; s.InitU,
// InitB and InitRho are ignored: every solve says where it starts). LambdaMax (a pass
// over X) is computed on first use, or here when s.Comm is set (a collective call, made
// by every process at the same point). Bad inputs return the solver's
// *solver.InputError naming the input.
//
// With s.Offset (solver.Settings.Offset, N x Ny) every solve fits relu(XU + b + S); the
// correlations, LambdaMax and the start's bias are those of the targets Y - S (the first
// majoriser at U = 0 is the Lasso on Y - S where every term is active), so that a path
// starts at U = 0 as without an offset.
func NewEngine(X, Y solver.Matrix, s *solver.Settings) (*Engine, error) {
	var st solver.Settings
	if s != nil {
		st = *s
	}
	st.InitU, st.InitB, st.InitRho = nil, nil, nil
	prep, err := solver.Prepare(X, &st)
	if err != nil {
		return nil, err
	}
	if err := prep.Agree(checkY(X, Y)); err != nil {
		return nil, err
	}
	ycorr, shifted, err := shiftedY(Y, st.Offset)
	if err := prep.Agree(err); err != nil {
		return nil, err
	}
	// Over the fit's rows (all processes' with st.Comm), by the solver's reductions.
	mean, anyPos := prep.YStats(ycorr)
	if shifted {
		_, anyPos = prep.YStats(Y) // an output with y <= 0 everywhere stays 0 at any offset
	}
	e := &Engine{prep: prep, y: Y, ycorr: ycorr, settings: st, start: startBiasOf(mean, st.Link, st.NoBias), mean: mean, anyPos: anyPos}
	if st.NoBias {
		e.mean = nil
	}
	if st.Comm != nil {
		e.lambdaMax()
	}
	return e, nil
}

// lambdaMax computes the correlations and LambdaMax, once.
func (e *Engine) lambdaMax() {
	if e.corr == nil {
		e.corr = e.prep.Correlations(e.ycorr, e.mean)
		e.lmax, e.lmaxOut = lambdaMaxFrom(e.corr, e.anyPos, e.settings.Link)
	}
}

// LambdaMax returns [LambdaMax] of the engine's layer: the largest useful lambda and its
// value per output.
func (e *Engine) LambdaMax() (float64, []float64) {
	e.lambdaMax()
	return e.lmax, e.lmaxOut
}

// Correlations returns [Correlations] of the engine's layer (computed once; the caller
// may modify the returned copy).
func (e *Engine) Correlations() []float64 {
	e.lambdaMax()
	return slices.Clone(e.corr)
}

// Settings returns a copy of the settings every solve uses unless SolveWith overrides them.
func (e *Engine) Settings() solver.Settings { return e.settings }

// Start is the point a path starts from: U = 0 and b = mean(Y) (the solution at
// LambdaMax; 0 for ReLU outputs with mean(y_j) <= 0, whose pre-activations should start in
// the active region), with no U given, so that tiny ReLU problems still get the solver's
// multi-start. Its Lambda is LambdaMax.
func (e *Engine) Start() Point {
	e.lambdaMax()
	return Point{Lambda: e.lmax, B: e.start}
}

// Solve solves at lambda with the engine's settings, warm-started from the point from: its
// U, B and Rho (nil fields: zero, or for Rho the solver's default). A nil from means
// [Engine.Start]. A canceled solve returns the context's error.
func (e *Engine) Solve(ctx context.Context, lambda float64, from *Point) (Point, error) {
	return e.SolveWith(ctx, lambda, from, nil)
}

// SolveWith is Solve with other settings for this one solve (tolerances, MaxIter, a Mask,
// ...); nil means the engine's. s.NoBias, s.PlainConsensus and s.Link must be the engine's
// (X was prepared for them), and s.InitU/InitB/InitRho are replaced by from's.
func (e *Engine) SolveWith(ctx context.Context, lambda float64, from *Point, s *solver.Settings) (Point, error) {
	st := e.settings
	if s != nil {
		st = *s
		if st.Link != e.settings.Link || st.NoBias != e.settings.NoBias || st.PlainConsensus != e.settings.PlainConsensus {
			return Point{}, &solver.InputError{Input: "Settings", Row: -1, Col: -1, Msg: "Link, NoBias and PlainConsensus must be the engine's"}
		}
	}
	if from == nil {
		start := e.Start()
		from = &start
	}
	st.InitU, st.InitB, st.InitRho = from.U, from.B, from.Rho
	res, err := e.prep.Fit(ctx, e.y, lambda, &st)
	if err != nil {
		return Point{}, err
	}
	if res.Status == solver.Canceled {
		if err := ctx.Err(); err != nil {
			return Point{}, fmt.Errorf("fit: solve at lambda=%g: %w", lambda, err)
		}
		return Point{}, fmt.Errorf("fit: solve at lambda=%g: %w", lambda, context.Canceled)
	}
	return NewPoint(lambda, e.y.Cols, res), nil
}

// Walk solves at each of lambdas in turn, the first from from (nil: [Engine.Start]), each
// later one warm-started from the previous point, and calls fn with each point. lambdas
// should be decreasing (the warm start is best when consecutive values are close). It stops
// at the first error from the solver or from fn, or when ctx is canceled (returning ctx's
// error). It keeps only the current point, so its memory does not grow with len(lambdas).
func (e *Engine) Walk(ctx context.Context, lambdas []float64, from *Point, fn func(Point) error) error {
	for _, lam := range lambdas {
		if err := ctx.Err(); err != nil {
			return err
		}
		p, err := e.Solve(ctx, lam, from)
		if err != nil {
			return err
		}
		from = &p
		if err := fn(p); err != nil {
			return err
		}
	}
	return nil
}

// shiftedY returns Y - S for an offset S (as float64) and true, or Y itself and false
// without one. A malformed or non-finite S is the solver's InputError naming Offset.
func shiftedY(Y, S solver.Matrix) (solver.Matrix, bool, error) {
	if S.Rows == 0 && S.Cols == 0 && S.F64 == nil && S.F32 == nil {
		return Y, false, nil
	}
	bad := func(format string, args ...any) error {
		return &solver.InputError{Input: "Offset", Row: -1, Col: -1, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case S.Rows != Y.Rows || S.Cols != Y.Cols:
		return Y, false, bad("is %d x %d, want N x Ny = %d x %d (Y's shape)", S.Rows, S.Cols, Y.Rows, Y.Cols)
	case (S.F64 == nil) == (S.F32 == nil):
		return Y, false, bad("exactly one of F64 and F32 must hold the values")
	case len(S.F64)+len(S.F32) != S.Rows*S.Cols:
		return Y, false, bad("holds %d values, want Rows*Cols = %d", len(S.F64)+len(S.F32), S.Rows*S.Cols)
	}
	d := solver.Matrix{Rows: Y.Rows, Cols: Y.Cols, F64: make([]float64, Y.Rows*Y.Cols)}
	for i := range d.F64 {
		r, c := i/Y.Cols, i%Y.Cols
		v := S.At(r, c)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Y, false, &solver.InputError{Input: "Offset", Row: r, Col: c, Msg: fmt.Sprintf("not finite (%v)", v)}
		}
		d.F64[i] = Y.At(r, c) - v
	}
	return d, true, nil
}

// checkY checks the shape of Y against X before LambdaMax reads it (the solver checks the
// values at the first solve).
func checkY(X, Y solver.Matrix) error {
	bad := func(format string, args ...any) error {
		return &solver.InputError{Input: "Y", Row: -1, Col: -1, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case Y.Rows != X.Rows:
		return bad("has %d rows but X has %d", Y.Rows, X.Rows)
	case Y.Cols < 1:
		return bad("has %d columns, want at least 1", Y.Cols)
	case (Y.F64 == nil) == (Y.F32 == nil):
		return bad("exactly one of F64 and F32 must hold the values")
	case len(Y.F64)+len(Y.F32) != Y.Rows*Y.Cols:
		return bad("holds %d values, want Rows*Cols = %d", len(Y.F64)+len(Y.F32), Y.Rows*Y.Cols)
	}
	return nil
}
