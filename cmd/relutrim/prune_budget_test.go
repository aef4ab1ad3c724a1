package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPruneBudgetCurves: --budget curves splits --sparsity by the measured curves: the
// report's split adds up to the level's count exactly, each layer keeps at most its share,
// the curves are reported per layer (ending dense at zero error), and --plot writes the
// two-panel PNG.
func TestPruneBudgetCurves(t *testing.T) {
	out := t.TempDir()
	rep, png := filepath.Join(out, "r.json"), filepath.Join(out, "c.png")
	args := append(smallArgs(), "--sparsity", "0.7", "--budget", "curves",
		"--test-x", filepath.Join(smallDir, "test_x.npy"), "--test-y", filepath.Join(smallDir, "test_y.npy"),
		"--out", filepath.Join(out, "p.safetensors"), "--report", rep, "--plot", png)
	r := run(t, ".", args...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var report pruneReport
	readJSON(t, rep, &report)
	if !strings.HasPrefix(report.Budget, "curves") || !strings.Contains(r.stdout, "split: ") {
		t.Errorf("budget %q; stdout:\n%s", report.Budget, r.stdout)
	}
	if len(report.BudgetKeep) != 3 || len(report.BudgetCurves) != 3 {
		t.Fatalf("split %v, %d curves", report.BudgetKeep, len(report.BudgetCurves))
	}
	sum := 0
	for l, k := range report.BudgetKeep {
		sum += k
		if report.Layers[l].NonZeros > k {
			t.Errorf("layer %d keeps %d, its share is %d", l, report.Layers[l].NonZeros, k)
		}
		c := report.BudgetCurves[l]
		last := c.Points[len(c.Points)-1]
		if c.Key != report.Layers[l].Key || last.NonZeros != c.Weights || last.OutErr != 0 || len(c.Points) < 2 {
			t.Errorf("layer %d curve %+v", l, c)
		}
	}
	if want := 472 - 330; sum != want { // round(0.3 * 472)
		t.Errorf("split %v adds up to %d, want %d", report.BudgetKeep, sum, want)
	}
	if b, err := os.ReadFile(png); err != nil || len(b) < 8 || string(b[1:4]) != "PNG" {
		t.Errorf("plot: %v", err)
	}
}

// TestPruneBudgetErdosRenyi: --budget erdos-renyi is the Erdos-Renyi split, reported as such,
// without curves.
func TestPruneBudgetErdosRenyi(t *testing.T) {
	out := t.TempDir()
	rep := filepath.Join(out, "r.json")
	r := run(t, ".", append(smallArgs(), "--sparsity", "0.7", "--budget", "erdos-renyi", "--out", filepath.Join(out, "p.safetensors"), "--report", rep)...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var report pruneReport
	readJSON(t, rep, &report)
	if !strings.HasPrefix(report.Budget, "Erdos-Renyi") || report.BudgetCurves != nil || len(report.BudgetKeep) != 3 {
		t.Errorf("budget %q, split %v, curves %v", report.Budget, report.BudgetKeep, report.BudgetCurves)
	}
}
