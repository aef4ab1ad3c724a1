package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"relutrim/dataio"
	"relutrim/internal/mnist"
	"relutrim/prune/model"
)

// ortScript runs an ONNX model in onnxruntime (onnxruntime-node) on a .npy of inputs and
// writes its output as a .npy: the independent forward pass of TestPrunedONNXRuntime.
var ortScript = filepath.Join("..", "..", "scripts", "ort_logits.js")

// needORT returns the path of node when it and onnxruntime-node (where ort_logits.js looks:
// $RELUTRIM_ORT_DIR, by default .cache/ort in the repository) are installed. Otherwise the
// test skips with a SKIPPED line on stderr too (go test shows a skip's message only with -v),
// or fails when RELUTRIM_REQUIRE_ORT=1 (scripts/test.sh sets it under CI=true).
func needORT(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		var b []byte
		b, err = exec.Command(node, ortScript, "--version").CombinedOutput()
		if err == nil {
			t.Logf("%s", bytes.TrimSpace(b))
			return node
		}
		err = fmt.Errorf("%v: %s", err, bytes.TrimSpace(b))
	}
	skipOrRequire(t, fmt.Sprintf("node or onnxruntime-node missing (scripts/test.sh installs them when it runs as root): %v", err))
	return ""
}

// skipOrRequire skips t with a SKIPPED line naming the onnxruntime cross-check, or fails it
// when RELUTRIM_REQUIRE_ORT=1.
func skipOrRequire(t *testing.T, why string) {
	t.Helper()
	msg := fmt.Sprintf("SKIPPED: %s: the onnxruntime cross-check did not run: %s", t.Name(), why)
	if os.Getenv("RELUTRIM_REQUIRE_ORT") == "1" {
		t.Fatal(msg)
	}
	fmt.Fprintln(os.Stderr, msg)
	t.Skip(msg)
}

// mnistNPY writes the first n MNIST images (training or test set) as a float32 .npy of shape
// (n, 1, 28, 28) and returns its path and the images as float64 (the float32 values, which
// onnxruntime is given too).
func mnistNPY(t *testing.T, dir string, train bool, n int) (string, []float64) {
	t.Helper()
	set, err := mnist.LoadFirst(dir, train, n)
	if err != nil {
		skipOrRequire(t, fmt.Sprintf("MNIST not readable: %v", err))
	}
	m := dataio.NewMatrix32("mnist", set.N, 784)
	m.Shape = []int{set.N, 1, 28, 28}
	for i, v := range set.X {
		m.F32[i] = float32(v)
	}
	name := "test"
	if train {
		name = "train"
	}
	path := filepath.Join(t.TempDir(), name+".npy")
	if err := dataio.WriteNPY(path, m); err != nil {
		t.Fatal(err)
	}
	return path, m.Float64()
}

// ortLogits runs ort_logits.js on model and the inputs in x and returns the output (n rows).
func ortLogits(t *testing.T, node, onnxPath, x string, n int) []float64 {
	t.Helper()
	out := filepath.Join(t.TempDir(), "ort.npy")
	if b, err := exec.Command(node, ortScript, onnxPath, x, out).CombinedOutput(); err != nil {
		t.Fatalf("ort_logits.js %s: %v\n%s", onnxPath, err, b)
	}
	m, err := dataio.ReadNPYFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if m.Rows != n {
		t.Fatalf("ort_logits.js %s: %d rows, want %d", onnxPath, m.Rows, n)
	}
	return m.Float64()
}

// maxAbsDiff is the largest |a_i - b_i| and the largest |b_i|.
func maxAbsDiff(t *testing.T, a, b []float64) (diff, scale float64) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%d values against %d", len(a), len(b))
	}
	for i := range a {
		diff = max(diff, math.Abs(a[i]-b[i]))
		scale = max(scale, math.Abs(b[i]))
	}
	return diff, scale
}

// ortTol bounds the largest |logit difference| between onnxruntime (float32 throughout) and
// relutrim's forward pass (float64 on the same float32 weights and inputs), relative to the
// largest |logit|. Measured (2026-12-08, onnxruntime 1.30.0, 64 MNIST test images): 2e-7 to
// 1e-6 of it (4.8e-6 to 1.5e-5 absolute, logits up to 16-30) on the dense and pruned MNIST
// ResNet and CNN, what float32 rounding (unit roundoff 6e-8) accumulated over a dozen layers
// gives; 1e-5 leaves a margin of 10 and is thousands of times below what pruning to 80%
// changes (0.1-0.2 of the largest logit), and a 1e-4 relative error in one op fails it.
const ortTol = 1e-5

// TestPrunedONNXRuntime: a pruned ONNX file computes in onnxruntime (an independent
// runtime) the logits relutrim's own forward pass computes for it. The MNIST ResNet fixture
// (residual graph; Erdos-Renyi budget) and the bundled MNIST CNN (chain; curves budget) are
// pruned to 80% on 100 MNIST training images. On 64 MNIST test images onnxruntime's logits
// of the written file equal those of relutrim's forward pass of the reloaded file to ortTol,
// as the dense files' do (the tolerance's sanity check), while they differ from the dense
// logits by more than 100 times that (the file holds the pruned weights, and the comparison
// would see it if they were the dense ones). The file has the asked sparsity, exactly, and
// the report's non-zeros per layer.
func TestPrunedONNXRuntime(t *testing.T) {
	node := needORT(t)
	dir, err := mnist.Dir()
	if err != nil {
		skipOrRequire(t, fmt.Sprintf("MNIST not available: %v", err))
	}
	calib, _ := mnistNPY(t, dir, true, 100)
	const n = 64
	xPath, x := mnistNPY(t, dir, false, n)
	for _, c := range []struct{ name, path, budget string }{
		{"resnet_mnist", filepath.Join("..", "..", "prune", "model", "testdata", "resnet", "resnet_mnist.onnx"), "erdos-renyi"},
		{"cnn_mnist", filepath.Join("..", "..", "internal", "models", "cnn_mnist.onnx"), "curves"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := t.TempDir()
			pruned, rep := filepath.Join(out, "p.onnx"), filepath.Join(out, "r.json")
			r := run(t, ".", "prune", "--model", c.path, "--calib", calib, "--sparsity", "0.8", "--budget", c.budget,
				"--out", pruned, "--report", rep, "-q")
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			var report pruneReport
			readJSON(t, rep, &report)
			pm, err := model.LoadONNXGraph(pruned)
			if err != nil {
				t.Fatalf("the pruned file does not reload: %v", err)
			}
			dm, err := model.LoadONNXGraph(c.path)
			if err != nil {
				t.Fatal(err)
			}
			total := 0
			for l, nz := range pm.NonZeros() {
				total += nz
				if nz != report.Layers[l].NonZeros {
					t.Errorf("layer %s: file has %d non-zeros, report %d", pm.Layers[l].Key, nz, report.Layers[l].NonZeros)
				}
			}
			if want := int(math.Round(0.2 * float64(pm.Weights()))); total != want {
				t.Errorf("%d non-zeros, want %d (20%% of %d)", total, want, pm.Weights())
			}
			logits := func(m model.Model) []float64 {
				acts := m.Forward(x, n)
				return acts[len(acts)-1]
			}
			ortDense, ortPruned := ortLogits(t, node, c.path, xPath, n), ortLogits(t, node, pruned, xPath, n)
			for _, k := range []struct {
				name     string
				got, ort []float64
			}{{"dense", logits(dm), ortDense}, {"pruned", logits(pm), ortPruned}} {
				diff, scale := maxAbsDiff(t, k.got, k.ort)
				t.Logf("%s: relutrim against onnxruntime: max |logit difference| %.3g, largest |logit| %.3g (%.2g of it)", k.name, diff, scale, diff/scale)
				if diff > ortTol*scale {
					t.Errorf("%s: relutrim's logits differ from onnxruntime's by up to %.3g, more than %g of the largest |logit| %.3g", k.name, diff, ortTol, scale)
				}
			}
			diff, scale := maxAbsDiff(t, ortPruned, ortDense)
			t.Logf("onnxruntime, pruned against dense: max |logit difference| %.3g", diff)
			if diff < 100*ortTol*scale {
				t.Errorf("onnxruntime's logits of the pruned file differ from the dense file's by only %.3g (largest |logit| %.3g): the pruned weights are not in the file", diff, scale)
			}
		})
	}
}
