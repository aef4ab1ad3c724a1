package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"relutrim/internal/mnist"
)

// TestResidualMNIST: the ResNet that scripts/train_resnet.py trained briefly on MNIST
// (BatchNorm folded by torch's export, dynamic batch axis), read by LoadONNXGraph: on the
// MNIST test images (from the Go module cache, as the demos read them) its logits of the
// first 16 equal torch's (float64, resnet_mnist_logits.npy) to 1e-5, and its accuracy on
// the first 2000 is torch's (resnet_mnist.json: the count of correct images, float64).
func TestResidualMNIST(t *testing.T) {
	dir, err := mnist.Dir()
	if err != nil {
		t.Skipf("MNIST not available (%v): the ResNet's accuracy is not checked", err)
	}
	set, err := mnist.LoadFirst(dir, false, 2000)
	if err != nil {
		t.Skipf("MNIST not readable (%v): the ResNet's accuracy is not checked", err)
	}
	m, err := LoadONNXGraph(filepath.Join(resnetDir, "resnet_mnist.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Residual()) != 3 {
		t.Errorf("residual Adds %v, want 3", m.Residual())
	}
	var meta struct {
		Correct int `json:"test_correct_first_2000"`
	}
	data, err := os.ReadFile(filepath.Join(resnetDir, "resnet_mnist.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		t.Fatal(err)
	}
	want := readResnetNPY(t, "resnet_mnist_logits.npy")
	acts := m.Forward(set.X[:16*784], 16)
	closeTo(t, "resnet_mnist logits", acts[len(acts)-1], want.Float64())
	acc := m.Accuracy(set.X, set.N, set.Labels)
	if got := int(math.Round(acc * float64(set.N))); got != meta.Correct {
		t.Errorf("%d of %d test images right, torch %d", got, set.N, meta.Correct)
	}
	t.Logf("accuracy on the first %d MNIST test images: %.4f", set.N, acc)
}
