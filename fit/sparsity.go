package fit

import (
	"context"
	"errors"
	"fmt"
	"math"

	"relutrim/solver"
)

// Parameters of the ForSparsity search.
const (
	// DescentFactor is the ratio between consecutive lambdas of the geometric descent from
	// LambdaMax.
	DescentFactor = 0.5
	// MinLambdaRatio bounds the descent: it stops at LambdaMax*MinLambdaRatio.
	MinLambdaRatio = 1e-8
	// MaxBisections bounds the number of bisection steps after the descent.
	MaxBisections = 40
	// JumpWidth is the relative width of a lambda bracket below which a sparsity difference
	// across it larger than 2*tol counts as a jump (the target cannot be hit).
	JumpWidth = 1e-4
)

// ErrMissed is wrapped by the *MissError that ForSparsity returns when it cannot reach the
// target within the tolerance.
var ErrMissed = errors.New("sparsity target not reached")

// MissError says why ForSparsity could not reach its target. The point it returns with it
// is the nearest one found (and is a valid fit).
type MissError struct {
	Target, Tol float64
	// Got is the sparsity of the nearest point, at Lambda.
	Got, Lambda float64
	// For a jump: the sparsity drops from Above (at LambdaHi) to Below (at LambdaLo) across
	// a bracket of relative width below JumpWidth.
	Jump               bool
	Above, Below       float64
	LambdaHi, LambdaLo float64
	// Reason is a short explanation.
	Reason string
}

func (e *MissError) Error() string {
	return fmt.Sprintf("fit: %v: target %.2f%% +- %.2f pp, nearest %.2f%% at lambda=%.6g: %s",
		ErrMissed, 100*e.Target, 100*e.Tol, 100*e.Got, e.Lambda, e.Reason)
}

// Unwrap returns ErrMissed.
func (e *MissError) Unwrap() error { return ErrMissed }

// ForSparsity finds a lambda at which the fraction target of U's entries is exactly zero,
// to within tol (e.g. 0.005 for half a percentage point), by a warm-started path:
//
//  1. solve at LambdaMax (sparsity 1), warm-started from U = 0, b = mean(Y);
//  2. go down geometrically by DescentFactor, each solve warm-started from the previous one,
//     until the sparsity is at most the target (or within tol of it: then done);
//  3. bisect in log lambda between the last two points (which bracket the target), each
//     solve warm-started from the bracket end whose sparsity is nearer the target, until the
//     sparsity is within tol, or MaxBisections steps, or the bracket is narrower than
//     JumpWidth (relative).
//
// It returns the point found (with U and B), every point solved in order (the trace; their U
// and B are nil), and an error. If the target cannot be reached it returns the point whose
// sparsity is nearest to it (ties: the larger lambda) together with a *MissError (wrapping
// ErrMissed); this happens on small layers where one lambda switches several entries at once
// (a jump of more than 2*tol), or when the sparsity stays above target down to
// LambdaMax*MinLambdaRatio. Other errors (bad input, cancellation) return a zero Point.
//
// target must be in [0, 1) and tol > 0. s is passed to the solver (its InitU/InitB/InitRho
// are ignored: the search warm-starts itself, with the point and rho of the previous solve).
func ForSparsity(ctx context.Context, X, Y solver.Matrix, target, tol float64, s *solver.Settings) (Point, []Point, error) {
	e, err := NewEngine(X, Y, s)
	if err != nil {
		return Point{}, nil, err
	}
	return e.ForSparsity(ctx, target, tol)
}

// ForSparsity is [ForSparsity] on the engine's layer.
func (e *Engine) ForSparsity(ctx context.Context, target, tol float64) (Point, []Point, error) {
	if !(target >= 0 && target < 1) {
		return Point{}, nil, fmt.Errorf("fit: sparsity target must be in [0, 1), got %v", target)
	}
	if !(tol > 0) {
		return Point{}, nil, fmt.Errorf("fit: sparsity tolerance must be > 0, got %v", tol)
	}
	lmax, _ := e.LambdaMax()

	var trace []Point
	var best Point
	haveBest := false
	dist := func(p Point) float64 { return math.Abs(p.Sparsity - target) }
	solve := func(lam float64, from *Point) (Point, error) {
		p, err := e.Solve(ctx, lam, from)
		if err != nil {
			return Point{}, err
		}
		t := p
		t.U, t.B = nil, nil
		trace = append(trace, t)
		if !haveBest || dist(p) < dist(best) || dist(p) == dist(best) && p.Lambda > best.Lambda {
			best, haveBest = p, true
		}
		return p, nil
	}
	miss := func(e *MissError) (Point, []Point, error) {
		e.Target, e.Tol, e.Got, e.Lambda = target, tol, best.Sparsity, best.Lambda
		return best, trace, e
	}

	if lmax == 0 {
		// U = 0 is optimal for every lambda: the sparsity is 1 whatever lambda is.
		if _, err := solve(0, nil); err != nil {
			return Point{}, trace, err
		}
		if dist(best) <= tol {
			return best, trace, nil
		}
		return miss(&MissError{Reason: "U = 0 is optimal for every lambda (LambdaMax is 0)"})
	}

	// 1-2: descent from LambdaMax.
	hi, err := solve(lmax, nil)
	if err != nil {
		return Point{}, trace, err
	}
	if dist(hi) <= tol {
		return best, trace, nil
	}
	var lo Point
	for lam := lmax * DescentFactor; ; lam *= DescentFactor {
		if lam < lmax*MinLambdaRatio {
			return miss(&MissError{Reason: fmt.Sprintf("sparsity stays above the target down to lambda=%.3g (LambdaMax*%g)", hi.Lambda, MinLambdaRatio)})
		}
		p, err := solve(lam, &hi)
		if err != nil {
			return Point{}, trace, err
		}
		if dist(p) <= tol {
			return best, trace, nil
		}
		if p.Sparsity < target {
			lo = p
			break
		}
		hi = p
	}

	// 3: bisection in log lambda; hi.Sparsity > target + tol > target - tol > lo.Sparsity.
	for step := 0; step < MaxBisections; step++ {
		if hi.Lambda/lo.Lambda-1 < JumpWidth {
			return miss(&MissError{Jump: true, Above: hi.Sparsity, Below: lo.Sparsity,
				LambdaHi: hi.Lambda, LambdaLo: lo.Lambda,
				Reason: fmt.Sprintf("the sparsity jumps from %.2f%% to %.2f%% at lambda=%.6g (more than %.2f pp at one lambda; the layer is too small to hit the target)",
					100*hi.Sparsity, 100*lo.Sparsity, hi.Lambda, 200*tol)})
		}
		mid := math.Sqrt(hi.Lambda * lo.Lambda)
		from := &hi
		if dist(lo) < dist(hi) {
			from = &lo
		}
		p, err := solve(mid, from)
		if err != nil {
			return Point{}, trace, err
		}
		if dist(p) <= tol {
			return best, trace, nil
		}
		if p.Sparsity > target {
			hi = p
		} else {
			lo = p
		}
	}
	return miss(&MissError{Reason: fmt.Sprintf("no lambda within %d bisection steps", MaxBisections)})
}
