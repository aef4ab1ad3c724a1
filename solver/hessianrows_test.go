package solver

import (
	"context"
	"math"
	"strings"
	"testing"
)

// TestHessianRows: the curvature sample only shapes the Newton steps (the gradient and the
// line search use every row), so a fit whose Hessian comes from 300 of 3000 rows reaches
// the same optimum as one from all of them: F within 1e-6 relative and the same support
// on a planted problem (the reference: the default fit, whose sample is every row here).
// The smaller sample is used (fewer rows in the sample than the default's), and a
// negative HessianRows is refused by name.
func TestHessianRows(t *testing.T) {
	pp := makePlanted(11, 3000, 30, 4, 0.2, 0.5, 0.05, ReLU)
	ctx := context.Background()
	full, err := Fit(ctx, pp.X, pp.Y, 0.01, &Settings{Method: Newton})
	if err != nil {
		t.Fatal(err)
	}
	small, err := Fit(ctx, pp.X, pp.Y, 0.01, &Settings{Method: Newton, HessianRows: 300})
	if err != nil {
		t.Fatal(err)
	}
	if full.Status != Converged || small.Status != Converged {
		t.Fatalf("status: all rows %v, 300 rows %v", full.Status, small.Status)
	}
	if d := math.Abs(small.F-full.F) / full.F; d > 1e-6 {
		t.Errorf("F %v with a 300-row curvature sample, %v with all rows (relative %g)", small.F, full.F, d)
	}
	for i := range full.U {
		if (full.U[i] == 0) != (small.U[i] == 0) {
			t.Fatalf("weight %d: %v with all rows, %v with 300", i, full.U[i], small.U[i])
		}
	}
	p, err := Prepare(pp.X, &Settings{HessianRows: 300})
	if err != nil {
		t.Fatal(err)
	}
	if s := p.sampleRows(1); len(s.rows) != 300 {
		t.Errorf("curvature sample of %d rows, want 300", len(s.rows))
	}
	if _, err := Prepare(pp.X, &Settings{HessianRows: -1}); err == nil || !strings.Contains(err.Error(), "HessianRows") {
		t.Errorf("HessianRows -1: error %v", err)
	}
}

// TestSharedMetric: Settings.SharedMetric changes the Newton steps (one step from zero
// lands elsewhere than the own-Gram step) but not the optimum: run to convergence it
// reaches the default fit's F within 1e-5 relative on a planted problem (the reference:
// the default fit).
func TestSharedMetric(t *testing.T) {
	pp := makePlanted(12, 2000, 20, 3, 0.3, 0.5, 0.05, ReLU)
	ctx := context.Background()
	own, err := Fit(ctx, pp.X, pp.Y, 0.01, &Settings{Method: Newton})
	if err != nil {
		t.Fatal(err)
	}
	shared, err := Fit(ctx, pp.X, pp.Y, 0.01, &Settings{Method: Newton, SharedMetric: true, MaxIter: 5000})
	if err != nil {
		t.Fatal(err)
	}
	if shared.Status != Converged {
		t.Fatalf("shared metric: status %v after %d steps", shared.Status, shared.Iters)
	}
	if d := math.Abs(shared.F-own.F) / own.F; d > 1e-5 {
		t.Errorf("F %v on the shared metric, %v on own Grams (relative %g)", shared.F, own.F, d)
	}
	one := func(sm bool) []float64 {
		r, err := Fit(ctx, pp.X, pp.Y, 0.01, &Settings{Method: Newton, SharedMetric: sm, MaxIter: 1, RemajorizeTol: 1})
		if err != nil {
			t.Fatal(err)
		}
		return r.U
	}
	a, b := one(false), one(true)
	same := true
	for i := range a {
		if a[i] != b[i] {
			same = false
		}
	}
	if same {
		t.Error("one step with SharedMetric equals one step on own Grams: the setting is not used")
	}
}
