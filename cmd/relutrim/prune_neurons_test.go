package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"relutrim/dataio"
	"relutrim/prune/model"
)

// TestPruneNeuronsCLI: --structure neurons writes a smaller dense model (same keys, the
// hidden layers' shapes halved at --sparsity 0.5) whose units and shapes match the report,
// whose accuracy recomputed from the file equals the report's, and --compare adds the
// L2-norm baseline.
func TestPruneNeuronsCLI(t *testing.T) {
	out := t.TempDir()
	pruned, rep := filepath.Join(out, "n.safetensors"), filepath.Join(out, "n.json")
	args := append(smallArgs(), "--structure", "neurons", "--sparsity", "0.5", "--compare",
		"--test-x", filepath.Join(smallDir, "test_x.npy"), "--test-y", filepath.Join(smallDir, "test_y.npy"),
		"--out", pruned, "--report", rep)
	r := run(t, ".", args...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var report neuronReport
	readJSON(t, rep, &report)
	ts, err := dataio.ReadSafetensors(pruned)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range ts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"0.bias", "0.weight", "2.bias", "2.weight", "4.bias", "4.weight"}) {
		t.Errorf("keys %v", keys)
	}
	m, err := model.FromTensors(ts, pruned)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Units(), []int{8, 4}) || !slices.Equal(report.Kept, []int{8, 4}) || !slices.Equal(report.Units, []int{16, 8}) {
		t.Errorf("file units %v, report %v of %v; want [8 4] of [16 8]", m.Units(), report.Kept, report.Units)
	}
	if m.Layers[0].In != 20 || m.Layers[2].Out != 3 || ts["0.weight"].DType != "F32" {
		t.Errorf("input/output widths %d/%d, dtype %s", m.Layers[0].In, m.Layers[2].Out, ts["0.weight"].DType)
	}
	tx, _ := dataio.Load(filepath.Join(smallDir, "test_x.npy"))
	ty, _ := dataio.Load(filepath.Join(smallDir, "test_y.npy"))
	labels := make([]int, ty.Rows)
	for i := range labels {
		labels[i] = int(ty.At(i, 0))
	}
	if acc := m.Accuracy(tx.Float64(), tx.Rows, labels); acc != report.Accuracy["relutrim_test"] {
		t.Errorf("accuracy of the written model %v, report %v", acc, report.Accuracy["relutrim_test"])
	}
	for _, k := range []string{"dense_test", "l2norm_test", "l2norm_refit_test"} {
		if _, ok := report.Accuracy[k]; !ok {
			t.Errorf("report lacks %s", k)
		}
	}
	if !strings.Contains(r.stdout, "8 / 16") || !strings.Contains(r.stdout, "8x20, 4x8, 3x4") {
		t.Errorf("summary lacks the units kept or shapes:\n%s", r.stdout)
	}
}

// TestPruneNeuronsBadFlags: flags that do not go with --structure neurons, or a bad
// --structure, give exit 2, a message naming the flag, and no output.
func TestPruneNeuronsBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--structure", "units", "--sparsity", "0.5"}, "--structure must be weights or neurons"},
		{[]string{"--structure", "neurons"}, "needs --sparsity"},
		{[]string{"--structure", "neurons", "--per-layer", "0.5,0.5,0"}, "needs --sparsity"},
		{[]string{"--structure", "neurons", "--sparsity", "0.5", "--nm", "2:4"}, "--nm does not go with --structure neurons"},
		{[]string{"--structure", "neurons", "--sparsity", "0.5", "--masks"}, "--masks does not go"},
		{[]string{"--structure", "neurons", "--sparsity", "0.5", "--mode", "parallel"}, "--mode parallel does not go"},
		{[]string{"--structure", "neurons", "--sparsity", "1"}, "--sparsity must be in [0, 1)"},
		{[]string{"--structure", "neurons", "--sparsity", "-0.2"}, "--sparsity must be in [0, 1)"},
	} {
		dir := t.TempDir()
		out := filepath.Join(dir, "n.safetensors")
		args := append(append(smallArgs(), c.args...), "--out", out, "--report", filepath.Join(dir, "r.json"))
		r := run(t, ".", args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.msg) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, r.code, r.stderr, c.msg)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("%v: wrote %d files", c.args, len(ents))
		}
	}
}
