package models

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"relutrim/dataio"
	"relutrim/internal/mnist"
)

// TestResNetMNISTMatchesTorch: the embedded ResNet (resnet_mnist.onnx, read as a residual
// graph) computes torch's logits on all 10000 MNIST test images to 1e-5 (max abs). The
// reference, testdata/resnet_mnist_logits.npy, is what scripts/train_resnet_demo.py got
// from the float64 torch module (the trained float32 weights, BatchNorm not yet folded),
// rounded to float32 (an error of at most 2^-20 < 1e-6 for logits under 32 in magnitude,
// checked below). Measured: 3.1e-6, mostly the export's BatchNorm folding, done in
// float32. The Go model's accuracy on the 10000 images is
// torch's: its count of right images equals the json's test_correct_10000, also from the
// float64 module.
func TestResNetMNISTMatchesTorch(t *testing.T) {
	dir, err := mnist.Dir()
	if err != nil {
		t.Skipf("MNIST not available (%v)", err)
	}
	test, err := mnist.Load(dir, false)
	if err != nil {
		t.Skipf("MNIST not readable (%v)", err)
	}
	m, err := ResNetMNIST()
	if err != nil {
		t.Fatal(err)
	}
	if got := len(m.Residual()); got != 3 {
		t.Errorf("%d residual Adds, want 3", got)
	}
	var meta struct {
		Correct int `json:"test_correct_10000"`
		Bytes   int `json:"onnx_bytes"`
		Weights int `json:"weights"`
		Ref     struct {
			Shape []int `json:"shape"`
		} `json:"reference_logits"`
	}
	data, err := os.ReadFile("resnet_mnist.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Bytes != len(resnet) || len(resnet) > 400<<10 {
		t.Errorf("embedded file %d bytes; the json says %d, the limit is 400 KiB", len(resnet), meta.Bytes)
	}
	if w := m.Weights(); w != meta.Weights {
		t.Errorf("%d weights, torch counted %d", w, meta.Weights)
	}
	ref, err := dataio.ReadNPYFileND(filepath.Join("testdata", "resnet_mnist_logits.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if ref.F32 == nil || len(ref.Shape) != 2 || ref.Shape[0] != test.N || ref.Shape[1] != 10 {
		t.Fatalf("reference logits: shape %v (float32 %v), want (%d, 10) float32", ref.Shape, ref.F32 != nil, test.N)
	}
	want := ref.Float64()
	const block = 500
	var maxDiff, maxLogit float64
	right := 0
	for s := 0; s < test.N; s += block {
		b := min(block, test.N-s)
		acts := m.Forward(test.X[s*784:(s+b)*784], b)
		got := acts[len(acts)-1]
		if len(got) != b*10 {
			t.Fatalf("%d logits for %d images", len(got), b)
		}
		for p := 0; p < b; p++ {
			best := 0
			for k := 0; k < 10; k++ {
				g, w := got[p*10+k], want[(s+p)*10+k]
				maxDiff = max(maxDiff, math.Abs(g-w))
				maxLogit = max(maxLogit, math.Abs(w))
				if g > got[p*10+best] {
					best = k
				}
			}
			if best == test.Labels[s+p] {
				right++
			}
		}
	}
	t.Logf("max |logit| %.3g, max difference from torch %.3g; %d of %d right (torch %d)", maxLogit, maxDiff, right, test.N, meta.Correct)
	if maxLogit >= 32 {
		t.Errorf("max |logit| %g: the float32 reference may be off by more than 1e-6", maxLogit)
	}
	if !(maxDiff <= 1e-5) {
		t.Errorf("logits differ from torch's by up to %g, want at most 1e-5", maxDiff)
	}
	if right != meta.Correct {
		t.Errorf("%d of %d test images right, torch %d", right, test.N, meta.Correct)
	}
	if acc := m.Accuracy(test.X, test.N, test.Labels); int(math.Round(acc*float64(test.N))) != right {
		t.Errorf("Accuracy %.4f, the logits' arg-max %d of %d", acc, right, test.N)
	}
}
