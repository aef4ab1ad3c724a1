package main

import (
	"path/filepath"
	"strings"
	"testing"

	"relutrim/dataio"
	"relutrim/prune/model"
)

// smallDir holds the 20-16-8-3 model and its data (scripts/make_small_model.py).
var smallDir = filepath.Join("..", "..", "prune", "testdata")

func smallArgs() []string {
	return []string{"prune", "--model", filepath.Join(smallDir, "small.safetensors"),
		"--calib", filepath.Join(smallDir, "calib_x.npy")}
}

// TestPruneSmall: the CLI writes a model with the same keys and shapes whose non-zeros match
// the report and the requested sparsity, and whose test accuracy, recomputed from the file,
// equals the report's.
func TestPruneSmall(t *testing.T) {
	out := t.TempDir()
	pruned, rep := filepath.Join(out, "p.safetensors"), filepath.Join(out, "r.json")
	args := append(smallArgs(), "--sparsity", "0.7", "--compare", "--masks",
		"--test-x", filepath.Join(smallDir, "test_x.npy"), "--test-y", filepath.Join(smallDir, "test_y.npy"),
		"--labels", filepath.Join(smallDir, "calib_y.npy"), "--out", pruned, "--report", rep, "--plot", filepath.Join(out, "c.png"))
	r := run(t, ".", args...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var report pruneReport
	readJSON(t, rep, &report)
	ts, err := dataio.ReadSafetensors(pruned)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"0.weight.mask", "2.weight.mask", "4.weight.mask"} {
		if _, ok := ts[k]; !ok {
			t.Errorf("missing %s", k)
		}
		delete(ts, k)
	}
	m, err := model.FromTensors(ts, pruned)
	if err != nil {
		t.Fatal(err)
	}
	nz := m.NonZeros()
	total := 0
	for l, n := range nz {
		total += n
		if n != report.Layers[l].NonZeros {
			t.Errorf("layer %d: file has %d non-zeros, report %d", l, n, report.Layers[l].NonZeros)
		}
	}
	if sp := 1 - float64(total)/472; sp < 0.695 || sp > 0.705 { // within 0.5 points of 70%
		t.Errorf("sparsity %.4f, want 0.70 +- 0.005", sp)
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
	for _, k := range []string{"dense_test", "magnitude_test", "wanda_test", "sparsegpt_test", "dense_calib", "relutrim_calib", "sparsegpt_calib"} {
		if _, ok := report.Accuracy[k]; !ok {
			t.Errorf("report lacks accuracy %s", k)
		}
	}
	if len(report.PlotLevels) != 5 {
		t.Errorf("plot levels %v", report.PlotLevels)
	}
	for _, k := range []string{"relutrim", "magnitude", "wanda", "sparsegpt"} {
		if len(report.PlotAccuracy[k]) != 5 {
			t.Errorf("plot accuracies of %s: %v", k, report.PlotAccuracy[k])
		}
	}
	if report.SparseGPTSeconds <= 0 {
		t.Errorf("report lacks SparseGPT's time")
	}
	if !strings.Contains(r.stdout, "relutrim_test") {
		t.Errorf("summary lacks accuracies:\n%s", r.stdout)
	}
}

// TestPruneBadInput: each bad input exits 2 with a message naming it, and writes nothing.
func TestPruneBadInput(t *testing.T) {
	dir := t.TempDir()
	// A model whose first layer takes 21 inputs: width disagrees with the calibration data.
	good, err := dataio.ReadSafetensors(filepath.Join(smallDir, "small.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	wide := map[string]dataio.Tensor{}
	noKey := map[string]dataio.Tensor{}
	for k, v := range good {
		wide[k], noKey[k] = v, v
	}
	wide["0.weight"] = dataio.Tensor{DType: "F32", Shape: []int{16, 21}, F32: make([]float32, 16*21)}
	delete(noKey, "4.bias")
	for name, ts := range map[string]map[string]dataio.Tensor{"wide.safetensors": wide, "nokey.safetensors": noKey} {
		if err := dataio.WriteSafetensors(filepath.Join(dir, name), ts); err != nil {
			t.Fatal(err)
		}
	}
	calib := filepath.Join(smallDir, "calib_x.npy")
	model := filepath.Join(smallDir, "small.safetensors")
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"width mismatch", []string{"--model", filepath.Join(dir, "wide.safetensors"), "--calib", calib, "--sparsity", "0.5"}, []string{"--calib", "20 columns", "takes 21 inputs"}},
		{"missing key", []string{"--model", filepath.Join(dir, "nokey.safetensors"), "--calib", calib, "--sparsity", "0.5"}, []string{"--model", "4.bias"}},
		{"missing model", []string{"--model", "nope.safetensors", "--calib", calib, "--sparsity", "0.5"}, []string{"--model", "nope.safetensors"}},
		{"sparsity 1", []string{"--model", model, "--calib", calib, "--sparsity", "1"}, []string{"--sparsity", "[0, 1)"}},
		{"sparsity negative", []string{"--model", model, "--calib", calib, "--sparsity", "-0.2"}, []string{"--sparsity", "[0, 1)"}},
		{"per-layer wrong length", []string{"--model", model, "--calib", calib, "--per-layer", "0.5,0.5"}, []string{"--per-layer", "2 values", "3 layers"}},
		{"per-layer out of range", []string{"--model", model, "--calib", calib, "--per-layer", "0.5,1.2,0"}, []string{"--per-layer", "outside [0, 1)"}},
		{"both sparsity and per-layer", []string{"--model", model, "--calib", calib, "--sparsity", "0.5", "--per-layer", "0.5,0.5,0"}, []string{"exactly one of --sparsity, --per-layer and --nm"}},
		{"both sparsity and nm", []string{"--model", model, "--calib", calib, "--sparsity", "0.5", "--nm", "2:4"}, []string{"exactly one of --sparsity, --per-layer and --nm"}},
		{"nm not a pattern", []string{"--model", model, "--calib", calib, "--nm", "2-4"}, []string{"--nm", "2-4", "N:M"}},
		{"nm N >= M", []string{"--model", model, "--calib", calib, "--nm", "4:4"}, []string{"--nm", "1 <= N < M"}},
		{"bad mode", []string{"--model", model, "--calib", calib, "--sparsity", "0.5", "--mode", "sideways"}, []string{"--mode", "sideways"}},
		{"bad budget", []string{"--model", model, "--calib", calib, "--sparsity", "0.5", "--budget", "uniform"}, []string{"--budget must be curves or erdos-renyi", "uniform"}},
		{"budget with per-layer", []string{"--model", model, "--calib", calib, "--per-layer", "0.5,0.5,0", "--budget", "curves"}, []string{"--budget", "does not go with --per-layer"}},
		{"budget with nm", []string{"--model", model, "--calib", calib, "--nm", "2:4", "--budget", "erdos-renyi"}, []string{"--budget", "--nm"}},
		{"nm per-layer not the pattern", []string{"--model", model, "--calib", calib, "--nm", "2:4", "--per-layer", "0.5,0.3,0"}, []string{"--per-layer with --nm 2:4", "layer 2", "0.3", "0 (kept dense) or 0.5"}},
		{"nm per-layer count", []string{"--model", model, "--calib", calib, "--pattern", "2:4", "--per-layer", "0.5,0.5"}, []string{"--per-layer with --nm", "2 values for 3 layers"}},
		{"curves below their range", []string{"--model", model, "--calib", calib, "--sparsity", "0.999", "--budget", "curves"}, []string{"--budget curves", "outside the curves' range", "one weight per layer", "--budget erdos-renyi"}},
		{"plot without test set", []string{"--model", model, "--calib", calib, "--sparsity", "0.5", "--plot", filepath.Join(dir, "x.png")}, []string{"--plot", "--test-x"}},
		{"labels wrong length", []string{"--model", model, "--calib", calib, "--sparsity", "0.5", "--labels", filepath.Join(smallDir, "act1.npy")}, []string{"--labels", "500 labels"}},
		{"unknown flag", []string{"--model", model, "--calib", calib, "--sparsity", "0.5", "--frobnicate"}, []string{"unknown flag: --frobnicate"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := t.TempDir()
			args := append([]string{"prune"}, c.args...)
			args = append(args, "--out", filepath.Join(out, "p.safetensors"), "--report", filepath.Join(out, "r.json"))
			expectUsageError(t, run(t, ".", args...), c.want, out)
		})
	}
}

// TestPruneNM: --nm 2:4 through the command line writes a model whose every row has at
// most 2 non-zeros in each group of 4 consecutive inputs in every layer but the last, which
// stays dense (checked on the file), and the report compares with magnitude and Wanda at
// the same pattern (and SparseGPT). --pattern 2:4 --per-layer 0.5,0.5,0.5 patterns every layer.
func TestPruneNM(t *testing.T) {
	out := t.TempDir()
	pruned, rep := filepath.Join(out, "p.safetensors"), filepath.Join(out, "r.json")
	args := append(smallArgs(), "--nm", "2:4", "--compare",
		"--test-x", filepath.Join(smallDir, "test_x.npy"), "--test-y", filepath.Join(smallDir, "test_y.npy"),
		"--out", pruned, "--report", rep)
	r := run(t, ".", args...)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	m := loadFile(t, pruned)
	orig := loadFile(t, filepath.Join(smallDir, "small.safetensors"))
	last := len(m.Layers) - 1
	if got, want := m.NonZeros()[last], orig.NonZeros()[last]; got != want {
		t.Errorf("the last layer has %d non-zeros, the dense one %d; --nm leaves it dense (refitted)", got, want)
	}
	checkFileNM(t, m, m.Layers[:last])

	all := filepath.Join(out, "all.safetensors")
	if r := run(t, ".", append(smallArgs(), "--pattern", "2:4", "--per-layer", "0.5,0.5,0.5", "--out", all)...); r.code != 0 {
		t.Fatalf("--pattern 2:4 --per-layer 0.5,0.5,0.5: exit %d: %s", r.code, r.stderr)
	}
	ma := loadFile(t, all)
	if nz := ma.NonZeros()[last]; nz > 12 { // 3 outputs x 8 inputs, 2 of every 4
		t.Errorf("--per-layer 0.5,0.5,0.5: the last layer keeps %d weights, want at most 12", nz)
	}
	checkFileNM(t, ma, ma.Layers)

	var report pruneReport
	readJSON(t, rep, &report)
	if !strings.Contains(report.Budget, "2:4") || !strings.Contains(report.Budget, "every layer but the last") {
		t.Errorf("budget %q", report.Budget)
	}
	for _, k := range []string{"relutrim_test", "magnitude_test", "wanda_test", "sparsegpt_test"} {
		if _, ok := report.Accuracy[k]; !ok {
			t.Errorf("report lacks accuracy %s", k)
		}
	}
	t.Logf("2:4 test accuracy: relutrim %.3f, magnitude %.3f, Wanda %.3f, SparseGPT %.3f (dense %.3f)", report.Accuracy["relutrim_test"],
		report.Accuracy["magnitude_test"], report.Accuracy["wanda_test"], report.Accuracy["sparsegpt_test"], report.Accuracy["dense_test"])
}

func loadFile(t *testing.T, path string) model.Model {
	t.Helper()
	m, err := model.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkFileNM fails unless every row of the layers has at most 2 non-zeros in each group
// of 4 consecutive inputs.
func checkFileNM(t *testing.T, m model.Model, layers []model.Layer) {
	t.Helper()
	for l, L := range layers {
		for o := 0; o < L.Out; o++ {
			for g := 0; g < L.In; g += 4 {
				nz := 0
				for i := g; i < min(g+4, L.In); i++ {
					if L.W[o*L.In+i] != 0 {
						nz++
					}
				}
				if nz > 2 {
					t.Fatalf("layer %d row %d inputs %d..%d: %d non-zeros", l, o, g, g+3, nz)
				}
			}
		}
	}
}
