package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"relutrim/dataio"
)

// testdata is the pruner's: the 20-16-8-3 model written by scripts/make_small_model.py
// (trained by torch, float32) with torch's activations on its calibration inputs.
var testdata = filepath.Join("..", "testdata")

func read(t *testing.T, name string) dataio.Matrix {
	t.Helper()
	x, err := dataio.Load(filepath.Join(testdata, name))
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// TestForwardMatchesTorch: the Go forward pass reproduces torch's activations (act1, act2,
// written by torch from the same file) and torch's test accuracy.
func TestForwardMatchesTorch(t *testing.T) {
	m, err := Load(filepath.Join(testdata, "small.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	calib := read(t, "calib_x.npy")
	acts := m.Forward(calib.Float64(), calib.Rows)
	for l, ref := range [][]float64{read(t, "act1.npy").Float64(), read(t, "act2.npy").Float64()} {
		for i, v := range ref {
			// float32 torch arithmetic vs float64 here: 1e-5 absolute on O(1) activations.
			if math.Abs(acts[l+1][i]-v) > 1e-5 {
				t.Fatalf("layer %d activation %d: %v, torch %v", l, i, acts[l+1][i], v)
			}
		}
	}
	tx, ty := read(t, "test_x.npy"), read(t, "test_y.npy")
	labels := make([]int, ty.Rows)
	for i := range labels {
		labels[i] = int(ty.At(i, 0))
	}
	var meta struct {
		TestAccuracy float64 `json:"test_accuracy"`
	}
	b, err := os.ReadFile(filepath.Join(testdata, "small.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	if acc := m.Accuracy(tx.Float64(), tx.Rows, labels); math.Abs(acc-meta.TestAccuracy) > 1e-9 {
		t.Fatalf("test accuracy %v, torch %v", acc, meta.TestAccuracy)
	}
}

func smallTensors(t *testing.T) map[string]dataio.Tensor {
	t.Helper()
	ts, err := dataio.ReadSafetensors(filepath.Join(testdata, "small.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// TestLoadErrors: malformed state_dicts are rejected with a message naming what was found;
// integer tensors (issue 10: an I64 or U8 bias used to panic in Apply) name the key and its
// dtype.
func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(map[string]dataio.Tensor)
		want   string
	}{
		{"missing bias", func(ts map[string]dataio.Tensor) { delete(ts, "2.bias") }, "missing 2.weight or 2.bias"},
		{"odd index", func(ts map[string]dataio.Tensor) { ts["1.weight"] = ts["2.weight"]; ts["1.bias"] = ts["2.bias"] }, "module indices"},
		{"foreign key", func(ts map[string]dataio.Tensor) { ts["conv.weight"] = ts["0.weight"] }, `"conv.weight"`},
		{"width mismatch", func(ts map[string]dataio.Tensor) {
			ts["2.weight"] = dataio.Tensor{DType: "F32", Shape: []int{8, 15}, F32: make([]float32, 120)}
		}, "takes 15 inputs"},
		{"I64 bias", func(ts map[string]dataio.Tensor) {
			ts["2.bias"] = dataio.Tensor{DType: "I64", Shape: []int{8}, I64: make([]int64, 8)}
		}, "2.bias has dtype I64"},
		{"U8 bias", func(ts map[string]dataio.Tensor) {
			ts["0.bias"] = dataio.Tensor{DType: "U8", Shape: []int{16}, U8: make([]uint8, 16)}
		}, "0.bias has dtype U8"},
		{"U8 weight", func(ts map[string]dataio.Tensor) {
			ts["4.weight"] = dataio.Tensor{DType: "U8", Shape: []int{3, 8}, U8: make([]uint8, 24)}
		}, "4.weight has dtype U8"},
	}
	for _, c := range cases {
		ts := smallTensors(t)
		c.mutate(ts)
		_, err := FromTensors(ts, "x.safetensors")
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "x.safetensors: ") {
			t.Errorf("%s: error %q does not name the file and %q", c.name, err, c.want)
		}
	}
}

// TestSaveKeepsDTypes: every tensor is written back in the dtype it was read with, also
// when the dtypes are mixed (issue 10: a BF16 bias, an F64 bias with F32 weights and one
// F64 layer in an F32 model all came back F32), and the values survive the round trip
// exactly (they were representable in their dtype to begin with).
func TestSaveKeepsDTypes(t *testing.T) {
	ts := smallTensors(t)
	toF64 := func(t dataio.Tensor) dataio.Tensor {
		v := make([]float64, len(t.F32))
		for i, x := range t.F32 {
			v[i] = float64(x)
		}
		return dataio.Tensor{DType: "F64", Shape: t.Shape, F64: v}
	}
	// Values of a BF16 tensor: keep the top 16 bits of the float32 values, so that the
	// BF16 encoding is exact.
	toBF16 := func(t dataio.Tensor) dataio.Tensor {
		v := make([]float32, len(t.F32))
		for i, x := range t.F32 {
			v[i] = math.Float32frombits(math.Float32bits(x) &^ 0xffff)
		}
		return dataio.Tensor{DType: "BF16", Shape: t.Shape, F32: v}
	}
	ts["0.bias"] = toBF16(ts["0.bias"])    // BF16 bias, F32 weight
	ts["2.bias"] = toF64(ts["2.bias"])     // F64 bias, F32 weight
	ts["4.weight"] = toF64(ts["4.weight"]) // one F64 layer in an F32 model
	ts["4.bias"] = toF64(ts["4.bias"])
	want := map[string]string{"0.weight": "F32", "0.bias": "BF16", "2.weight": "F32", "2.bias": "F64", "4.weight": "F64", "4.bias": "F64"}
	m, err := FromTensors(ts, "mixed")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := m.Save(path, false); err != nil {
		t.Fatal(err)
	}
	back, err := dataio.ReadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	for k, dt := range want {
		if back[k].DType != dt {
			t.Errorf("%s written as %s, want %s", k, back[k].DType, dt)
		}
	}
	m2, err := FromTensors(back, path)
	if err != nil {
		t.Fatal(err)
	}
	for l := range m.Layers {
		for i, w := range m.Layers[l].W {
			if m2.Layers[l].W[i] != w {
				t.Fatalf("layer %d weight %d: %v after the round trip, %v before", l, i, m2.Layers[l].W[i], w)
			}
		}
		for i, b := range m.Layers[l].B {
			if m2.Layers[l].B[i] != b {
				t.Fatalf("layer %d bias %d: %v after the round trip, %v before", l, i, m2.Layers[l].B[i], b)
			}
		}
	}
}
