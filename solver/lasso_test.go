package solver

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// lassoFixture is one file of testdata/lasso, written by scripts/make_lasso_fixtures.py
// from scikit-learn's Lasso run to tol=1e-15 (the reference is independent of this package).
type lassoFixture struct {
	Name         string      `json:"name"`
	X            [][]float64 `json:"X"`
	Y            [][]float64 `json:"Y"`
	Alpha        float64     `json:"alpha"`
	FitIntercept bool        `json:"fit_intercept"`
	Coef         [][]float64 `json:"coef"` // Nx x Ny
	Intercept    []float64   `json:"intercept"`
	Objective    float64     `json:"objective"`
}

func flatten(rows [][]float64) Matrix {
	m := Matrix{Rows: len(rows), Cols: len(rows[0])}
	for _, r := range rows {
		m.F64 = append(m.F64, r...)
	}
	return m
}

func loadLassoFixtures(t *testing.T) []lassoFixture {
	files, err := filepath.Glob("testdata/lasso/*.json")
	if err != nil || len(files) < 3 {
		t.Fatalf("need at least 3 Lasso fixtures, found %d (%v)", len(files), err)
	}
	var out []lassoFixture
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var fx lassoFixture
		if err := json.Unmarshal(b, &fx); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, fx)
	}
	return out
}

// TestLassoMatchesScikitLearn: with the identity link Fit solves scikit-learn's Lasso
// (alpha = lambda); objectives agree to 1e-6 relative (the requirement).
func TestLassoMatchesScikitLearn(t *testing.T) {
	for _, fx := range loadLassoFixtures(t) {
		for _, method := range []Method{ADMM, Newton} {
			t.Run(fx.Name+"/"+method.String(), func(t *testing.T) {
				X, Y := flatten(fx.X), flatten(fx.Y)
				res, err := Fit(context.Background(), X, Y, fx.Alpha, &Settings{Link: Identity, NoBias: !fx.FitIntercept, Method: method})
				if err != nil {
					t.Fatal(err)
				}
				// The sklearn objective recomputed here with Objective from sklearn's coefficients.
				ref := Objective(X, Y, flatten(fx.Coef).F64, fx.Intercept, fx.Alpha, Identity)
				if math.Abs(ref-fx.Objective) > 1e-12*fx.Objective {
					t.Fatalf("Objective at sklearn's solution %.15g, fixture says %.15g", ref, fx.Objective)
				}
				rel := (res.F - fx.Objective) / fx.Objective
				t.Logf("F=%.12g sklearn=%.12g rel=%.2e iters=%d status=%v bound=%.12g", res.F, fx.Objective, rel, res.Iters, res.Status, res.LowerBound)
				if math.Abs(rel) > 1e-6 {
					t.Errorf("F = %.12g, scikit-learn %.12g: relative difference %.2e > 1e-6", res.F, fx.Objective, rel)
				}
				if res.LowerBound > fx.Objective*(1+1e-12) {
					t.Errorf("lower bound %.12g exceeds the optimum %.12g", res.LowerBound, fx.Objective)
				}
				if res.Status != Converged {
					t.Errorf("status %v", res.Status)
				}
			})
		}
	}
}
