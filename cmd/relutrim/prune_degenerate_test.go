package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"relutrim/dataio"
	"relutrim/prune/model"
)

// degenerateTimeout bounds each run below: the small model prunes in well under a second on
// sane data, and these inputs used to never finish (issue 10: the path search did not stop
// when the largest correlation was 0, memory growing ~25 MB/s).
const degenerateTimeout = 60 * time.Second

func writeNPY(t *testing.T, path string, rows, cols int, fill func(i, j int) float64) {
	t.Helper()
	m := dataio.NewMatrix64(path, rows, cols)
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			m.F64[i*cols+j] = fill(i, j)
		}
	}
	if err := dataio.WriteNPY(path, m); err != nil {
		t.Fatal(err)
	}
}

// TestPruneDegenerateData: all-zero calibration inputs, a single calibration row, and a model
// whose first layer is dead on the calibration data all end quickly with a pruned model
// (exit 0), not a hang; every weight of a unit that is dead on the calibration data is zero
// in the output, and each layer keeps at most its budget; with either --budget.
func TestPruneDegenerateData(t *testing.T) {
	dir := t.TempDir()
	calib := filepath.Join(smallDir, "calib_x.npy")
	small := filepath.Join(smallDir, "small.safetensors")
	zeros := filepath.Join(dir, "zeros.npy")
	writeNPY(t, zeros, 50, 20, func(i, j int) float64 { return 0 })
	cal, err := dataio.Load(calib)
	if err != nil {
		t.Fatal(err)
	}
	one := filepath.Join(dir, "one.npy")
	writeNPY(t, one, 1, 20, func(i, j int) float64 { return cal.At(0, j) })
	// dead: the small model with layer 0's biases at -1e3, far below any pre-activation
	// (|W x| <= sum |W_ij| |x_j|, a few units on this data), so all 16 hidden units are 0.
	m, err := model.Load(small)
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.Layers[0].B {
		m.Layers[0].B[i] = -1e3
	}
	dead := filepath.Join(dir, "dead.safetensors")
	if err := m.Save(dead, false); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, model, calib string }{
		{"all-zero calibration", small, zeros},
		{"one calibration row", small, one},
		{"dead first layer", dead, calib},
	} {
		for _, budget := range []string{"erdos-renyi", "curves"} {
			t.Run(c.name+" "+budget, func(t *testing.T) {
				out := filepath.Join(t.TempDir(), "p.safetensors")
				rep := filepath.Join(filepath.Dir(out), "r.json")
				r := runIn(t, ".", degenerateTimeout, "prune", "--model", c.model, "--calib", c.calib, "--sparsity", "0.5", "--budget", budget, "--out", out, "--report", rep, "--quiet")
				if r.code != 0 {
					t.Fatalf("exit %d: %s", r.code, r.stderr)
				}
				pm, err := model.Load(out)
				if err != nil {
					t.Fatal(err)
				}
				var report pruneReport
				readJSON(t, rep, &report)
				if report.Sparsity < report.TargetSparsity {
					t.Errorf("sparsity %.4f below the target %.4f", report.Sparsity, report.TargetSparsity)
				}
				if c.model != dead {
					return
				}
				// Layer 0's units are dead: layer 2 has no use for their outputs, so every
				// weight reading them (all of layer 2) is zero; layer 0 itself reproduces the
				// all-zero activations with zero weights.
				for l := range 2 {
					for i, w := range pm.Layers[l].W {
						if w != 0 {
							t.Fatalf("layer %s weight %d = %v; the units it connects are dead on the calibration data (split %v, curves %+v)", pm.Layers[l].Key, i, w, report.BudgetKeep, report.BudgetCurves)
						}
					}
				}
			})
		}
	}
}

// TestPruneModelDTypes, end to end: a model with integer bias tensors is refused with exit
// 2 and a message naming the key and dtype (issue 10: I64 and U8 biases panicked), and a
// model with mixed float dtypes is written back with every tensor in its own dtype (issue
// 10: a BF16 bias, an F64 bias with F32 weights and an F64 layer in an F32 model came back
// F32).
func TestPruneModelDTypes(t *testing.T) {
	dir := t.TempDir()
	good, err := dataio.ReadSafetensors(filepath.Join(smallDir, "small.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	variant := func(name string, change func(map[string]dataio.Tensor)) string {
		ts := map[string]dataio.Tensor{}
		for k, v := range good {
			ts[k] = v
		}
		change(ts)
		path := filepath.Join(dir, name)
		if err := dataio.WriteSafetensors(path, ts); err != nil {
			t.Fatal(err)
		}
		return path
	}
	calib := filepath.Join(smallDir, "calib_x.npy")
	for _, c := range []struct {
		name string
		t    dataio.Tensor
	}{
		{"I64", dataio.Tensor{DType: "I64", Shape: []int{8}, I64: make([]int64, 8)}},
		{"U8", dataio.Tensor{DType: "U8", Shape: []int{8}, U8: make([]uint8, 8)}},
	} {
		path := variant(c.name+".safetensors", func(ts map[string]dataio.Tensor) { ts["2.bias"] = c.t })
		out := t.TempDir()
		r := run(t, ".", "prune", "--model", path, "--calib", calib, "--sparsity", "0.5", "--out", filepath.Join(out, "p.safetensors"))
		expectUsageError(t, r, []string{"--model", path, "2.bias has dtype " + c.name}, out)
	}

	f64 := func(t dataio.Tensor) dataio.Tensor {
		v := make([]float64, len(t.F32))
		for i, x := range t.F32 {
			v[i] = float64(x)
		}
		return dataio.Tensor{DType: "F64", Shape: t.Shape, F64: v}
	}
	mixed := variant("mixed.safetensors", func(ts map[string]dataio.Tensor) {
		b := ts["0.bias"]
		ts["0.bias"] = dataio.Tensor{DType: "BF16", Shape: b.Shape, F32: b.F32} // rounded on write
		ts["2.bias"] = f64(ts["2.bias"])
		ts["4.weight"], ts["4.bias"] = f64(ts["4.weight"]), f64(ts["4.bias"])
	})
	out := filepath.Join(t.TempDir(), "p.safetensors")
	r := run(t, ".", "prune", "--model", mixed, "--calib", calib, "--sparsity", "0.5", "--out", out, "--quiet")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	ts, err := dataio.ReadSafetensors(out)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"0.weight": "F32", "0.bias": "BF16", "2.weight": "F32", "2.bias": "F64", "4.weight": "F64", "4.bias": "F64"}
	var got []string
	for k, dt := range want {
		if ts[k].DType != dt {
			got = append(got, k+" "+ts[k].DType+" (want "+dt+")")
		}
	}
	if len(got) > 0 {
		t.Errorf("dtypes written: %s", strings.Join(got, ", "))
	}
}

// TestPruneModelIsDirectory: --model naming a directory says so (it used to say "file too
// short for the safetensors header").
func TestPruneModelIsDirectory(t *testing.T) {
	out := t.TempDir()
	r := run(t, ".", "prune", "--model", t.TempDir(), "--calib", filepath.Join(smallDir, "calib_x.npy"), "--sparsity", "0.5", "--out", filepath.Join(out, "p.safetensors"))
	expectUsageError(t, r, []string{"--model", "is a directory"}, out)
}
