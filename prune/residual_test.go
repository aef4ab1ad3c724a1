package prune

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"relutrim/internal/mnist"
	"relutrim/prune/model"
)

const resnetMNIST = "model/testdata/resnet/resnet_mnist.onnx"

// resnetData loads the MNIST-trained fixture ResNet (scripts/train_resnet.py), 500
// calibration images (the first training images) and the first 2000 test images.
func resnetData(t *testing.T) (model.Model, mnist.Set, mnist.Set) {
	t.Helper()
	dir, err := mnist.Dir()
	if err != nil {
		t.Skipf("MNIST not available (%v)", err)
	}
	cal, err := mnist.LoadFirst(dir, true, 500)
	if err != nil {
		t.Skipf("MNIST not readable (%v)", err)
	}
	test, err := mnist.LoadFirst(dir, false, 2000)
	if err != nil {
		t.Skipf("MNIST not readable (%v)", err)
	}
	m, err := model.LoadONNXGraph(filepath.FromSlash(resnetMNIST))
	if err != nil {
		t.Fatal(err)
	}
	return m, cal, test
}

func logits(m model.Model, X []float64, n int) []float64 {
	acts := m.Forward(X, n)
	return acts[len(acts)-1]
}

func TestResidualMeasure(t *testing.T) {
	m, cal, test := resnetData(t)
	ctx := context.Background()
	dense := m.Accuracy(test.X, test.N, test.Labels)
	ref := logits(m, cal.X, cal.N)
	t.Logf("dense %.4f", dense)
	for _, mode := range []bool{false, true} {
		for _, noOff := range []bool{false, true} {
			p, err := NewPruner(m, cal.X, cal.N, Options{Threads: 2, Parallel: mode})
			if err != nil {
				t.Fatal(err)
			}
			p.ignoreOffset = noOff
			for _, s := range []float64{0.5, 0.8, 0.9} {
				t0 := time.Now()
				keep, err := p.LayerBudget(ctx, DefaultBudget, s)
				if err != nil {
					t.Fatal(err)
				}
				out, _, err := p.Prune(ctx, keep)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("parallel %v ignoreOffset %v s %.1f: acc %.4f logit err %.4f, %.1fs keep %v nz %v", mode, noOff, s,
					out.Accuracy(test.X, test.N, test.Labels), relErr(logits(out, cal.X, cal.N), ref), time.Since(t0).Seconds(), keep, out.NonZeros())
			}
		}
	}
}
