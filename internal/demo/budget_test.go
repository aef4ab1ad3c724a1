package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"relutrim/prune"
)

// TestDemoBudgetCurves: the reduced demo with the curves budget names it in the header,
// keeps relutrim above magnitude pruning at 90%, and an unknown budget is an error.
func TestDemoBudgetCurves(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the MNIST pruning")
	}
	var buf bytes.Buffer
	res, err := Run(context.Background(), Config{Levels: []float64{0.9}, CalibRows: 300, TestRows: 1000, NoTimes: true, Budget: prune.BudgetCurves}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "layer budget: error curves") {
		t.Errorf("header does not name the budget:\n%s", buf.String())
	}
	if r := res.Rows[0]; r.Relutrim <= r.Magnitude {
		t.Errorf("at 90%%: relutrim %.3f <= magnitude %.3f", r.Relutrim, r.Magnitude)
	}
	if _, err := Run(context.Background(), Config{Levels: []float64{0.9}, CalibRows: 300, TestRows: 1000, Budget: "uniform"}, nil); err == nil || !strings.Contains(err.Error(), "uniform") {
		t.Errorf("unknown budget: %v", err)
	}
}
