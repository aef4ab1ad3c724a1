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
