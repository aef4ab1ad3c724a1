package fit

import (
	"context"
	"slices"
	"testing"

	"relutrim/internal/kern"
	"relutrim/internal/localcomm"
	"relutrim/solver"
)

// TestEngineAcrossProcesses: an Engine over K = 2, 3 simulated processes (localcomm), each
// with its chunk-aligned rows (kern.SplitRows), gives on every process bitwise the
// single-process Engine's lambda_max, sparsity search result and lambda path (the
// reference: the single-process Engine, tested on its own in fit_test.go).
func TestEngineAcrossProcesses(t *testing.T) {
	X, Y := planted(6000, 9, 3, 0.1, 7)
	st := solver.Settings{Method: solver.Newton, Threads: 1}
	type out struct {
		lmax float64
		sp   Point
		path []float64
		corr []float64
	}
	solve := func(x, y solver.Matrix, s solver.Settings) (out, error) {
		var o out
		e, err := NewEngine(x, y, &s)
		if err != nil {
			return o, err
		}
		o.lmax, _ = e.LambdaMax()
		o.corr = e.Correlations()
		if o.sp, _, err = e.ForSparsity(context.Background(), 0.63, 0.005); err != nil {
			return o, err
		}
		err = e.Walk(context.Background(), Geometric(o.lmax, o.lmax/100, 4), nil, func(p Point) error {
			o.path = append(o.path, p.F, float64(p.Iters))
			o.path = append(o.path, p.U...)
			return nil
		})
		return o, err
	}
	want, err := solve(X, Y, st)
	if err != nil {
		t.Fatal(err)
	}
	rows := func(m solver.Matrix, lo, hi int) solver.Matrix {
		return solver.Matrix{Rows: hi - lo, Cols: m.Cols, F64: m.F64[lo*m.Cols : hi*m.Cols]}
	}
	for k := 2; k <= 3; k++ {
		lo := kern.SplitRows(X.Rows, k)
		got := make([]out, k)
		errs := localcomm.Run(k, func(r int, c *localcomm.Comm) error {
			s := st
			s.Comm = c
			var err error
			got[r], err = solve(rows(X, lo[r], lo[r+1]), rows(Y, lo[r], lo[r+1]), s)
			return err
		})
		for r := 0; r < k; r++ {
			if errs[r] != nil {
				t.Fatalf("K=%d rank %d: %v", k, r, errs[r])
			}
			g := got[r]
			if g.lmax != want.lmax || !slices.Equal(g.corr, want.corr) {
				t.Errorf("K=%d rank %d: lambda_max %v vs %v (or correlations differ)", k, r, g.lmax, want.lmax)
			}
			if g.sp.Lambda != want.sp.Lambda || g.sp.F != want.sp.F || !slices.Equal(g.sp.U, want.sp.U) {
				t.Errorf("K=%d rank %d: sparsity search lambda %v F %v vs %v %v", k, r, g.sp.Lambda, g.sp.F, want.sp.Lambda, want.sp.F)
			}
			if !slices.Equal(g.path, want.path) {
				t.Errorf("K=%d rank %d: lambda path differs", k, r)
			}
		}
	}
}
