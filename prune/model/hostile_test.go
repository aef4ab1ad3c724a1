package model

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"relutrim/dataio"
)

// Issue 22: models a careless or hostile user could hand to relutrim prune. The ONNX files
// are written by scripts/make_hostile_onnx.py, which records in meta.json the verdict of
// onnx.checker.check_model(full_check=True) (Python's onnx 1.12, the reference
// implementation of the ONNX rules) on each.

var hostileDir = filepath.Join("testdata", "onnx", "hostile")

// hostileVerdicts reads meta.json: file -> the checker's verdict ("ok" or its error).
func hostileVerdicts(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(hostileDir, "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Files map[string]struct{ Checker string } `json:"files"`
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for f, v := range meta.Files {
		out[f] = v.Checker
	}
	return out
}

// TestHostileShapes: shapes whose sizes overflow or are absurd are refused at load with a
// message naming the file and the node or input, instead of panicking later in an
// allocation (makeslice: len out of range): Conv pads of 1e6, and an input of
// 1 x 192 x 192153584101141163 whose C*H*W wraps int64 to 64. The checker accepts both
// (meta.json): they are valid ONNX, only too large.
func TestHostileShapes(t *testing.T) {
	verdicts := hostileVerdicts(t)
	for _, c := range []struct{ file, want string }{
		{"pads_1e6.onnx", "node /conv/Conv (Conv): its output of 4 x 2000006 x 2000006 per sample has more than 2147483648 values"},
		{"input_overflow.onnx", `input "input" has shape [1 192 192153584101141163] per sample: more than 2147483648 values`},
	} {
		if verdicts[c.file] != "ok" {
			t.Fatalf("%s: meta.json says the checker gave %q; this test expects a valid model", c.file, verdicts[c.file])
		}
		path := filepath.Join(hostileDir, c.file)
		_, err := Load(path)
		if err == nil || !strings.Contains(err.Error(), path+": ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming the file and containing %q", c.file, err, c.want)
		}
	}
	if _, err := Load(filepath.Join(hostileDir, "good.onnx")); err != nil {
		t.Errorf("good.onnx: %v", err)
	}
}

// TestMLPWidthsPositive: a safetensors MLP with a hidden layer of width 0, or a last layer
// with 0 outputs, is refused at load naming the layer (they used to panic: an integer
// divide by zero in the pruner, a bad leading dimension in the curves' BLAS call).
func TestMLPWidthsPositive(t *testing.T) {
	f := func(shape ...int) dataio.Tensor {
		n := 1
		for _, d := range shape {
			n *= d
		}
		return dataio.Tensor{DType: "F32", Shape: shape, F32: make([]float32, n)}
	}
	for name, ts := range map[string]map[string]dataio.Tensor{
		"hidden width 0": {"0.weight": f(0, 20), "0.bias": f(0), "2.weight": f(3, 0), "2.bias": f(3)},
		"no outputs":     {"0.weight": f(4, 20), "0.bias": f(4), "2.weight": f(0, 4), "2.bias": f(0)},
		"no inputs":      {"0.weight": f(4, 0), "0.bias": f(4), "2.weight": f(3, 4), "2.bias": f(3)},
	} {
		_, err := FromTensors(ts, "w0.safetensors")
		if err == nil || !strings.Contains(err.Error(), "w0.safetensors: layer ") || !strings.Contains(err.Error(), "a layer needs at least one output and one input") {
			t.Errorf("%s: error %v", name, err)
		}
	}
}

// TestONNXValidation: every hostile file that onnx.checker refuses (meta.json: duplicate
// initializer names, a graph not in SSA form, float16 weights on a float32 graph) is
// refused by Load too, with a message naming the file and the problem; and so are two
// files the checker accepts but relutrim does not support: a float16 model (said plainly,
// not "not a float tensor") and opset 7 (the README says 13 or later). The base model
// loads.
func TestONNXValidation(t *testing.T) {
	want := map[string]string{
		"dup_init.onnx":     `two initializers are named "conv.weight"`,
		"dup_output.onnx":   `node /relu/Relu (Relu): its output "conv_out" is already the output of node /conv/Conv: the graph is not in single static assignment form`,
		"fp16_weights.onnx": `node /conv/Conv (Conv): tensor "conv.weight" is float16 but the graph's input is float32`,
		"fp16_model.onnx":   `input "input" is float16: relutrim prunes float32 and float64 ONNX models only`,
		"opset7.onnx":       "opset 7: relutrim reads ONNX opset 13 or later",
	}
	verdicts := hostileVerdicts(t)
	refused := 0
	for file, verdict := range verdicts {
		path := filepath.Join(hostileDir, file)
		_, err := Load(path)
		if verdict != "ok" {
			refused++
			if err == nil {
				t.Errorf("%s: loaded, but onnx.checker refuses it (%s)", file, verdict)
				continue
			}
		}
		if w, ok := want[file]; ok && (err == nil || !strings.Contains(err.Error(), path+": ") || !strings.Contains(err.Error(), w)) {
			t.Errorf("%s: error %v, want one naming the file and containing %q", file, err, w)
		}
	}
	if refused != 3 {
		t.Errorf("meta.json has %d files onnx.checker refuses, want 3 (dup_init, dup_output, fp16_weights): regenerate the fixtures?", refused)
	}
	if _, err := Load(filepath.Join(hostileDir, "good.onnx")); err != nil {
		t.Errorf("good.onnx: %v", err)
	}
}
