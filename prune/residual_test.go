package prune

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
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

// TestResidualPrune: the MNIST-trained fixture ResNet (dense 96.40% on the first 2000 test
// images, torch's count in resnet_mnist.json) pruned in cascade mode with the default
// (curves) budget on 500 calibration images: every layer keeps exactly its budget, the
// total is the asked sparsity, the encoded ONNX reloads as the same residual graph with
// the pruned model's logits, and the test accuracy stays within a bound of dense. The
// bounds were set from one measurement (2026-12-08, this test with logging): 96.35% at 50%
// (drop 0.05 pt), 93.75% at 80% (drop 2.65 pt); bounds 1.0 and 5.0 pt. It also checks that
// the shortcut offset is used: the same pipeline with the solvers not seeing S
// (ignoreOffset) has a larger logit error on the calibration data (measured 0.130 against
// 0.175 at 80%).
func TestResidualPrune(t *testing.T) {
	m, cal, test := resnetData(t)
	ctx := context.Background()
	dense := m.Accuracy(test.X, test.N, test.Labels)
	if math.Abs(dense-0.964) > 1e-9 {
		t.Fatalf("dense accuracy %.4f, want torch's 1928/2000", dense)
	}
	ref := logits(m, cal.X, cal.N)
	p, err := NewPruner(m, cal.X, cal.N, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ s, maxDrop float64 }{{0.5, 0.010}, {0.8, 0.050}} {
		t0 := time.Now()
		keep, err := p.LayerBudget(ctx, DefaultBudget, c.s)
		if err != nil {
			t.Fatal(err)
		}
		out, reps, err := p.Prune(ctx, keep)
		if err != nil {
			t.Fatal(err)
		}
		secs := time.Since(t0).Seconds()
		total := 0
		nzs := out.NonZeros()
		for l, nz := range nzs {
			total += nz
			budget, got := keep[l], nz
			if q, ok := p.joint[l]; ok { // the pair keeps the sum of their budgets
				budget, got = keep[l]+keep[q], nz+nzs[q]
			} else if p.isJointProj(l) {
				budget, got = 0, 0 // counted with its block's last layer
			}
			if got != budget || reps[l].NonZeros != nz || reps[l].Key != m.Layers[l].Key {
				t.Errorf("%.0f%%: layer %s: %d non-zeros (report %s %d), budget %d", 100*c.s, m.Layers[l].Key, nz, reps[l].Key, reps[l].NonZeros, keep[l])
			}
		}
		if len(p.joint) != 1 {
			t.Errorf("%d blocks fitted jointly with their projection, want 1", len(p.joint))
		}
		if want := int(math.Round((1 - c.s) * float64(m.Weights()))); total != want {
			t.Errorf("%.0f%%: %d non-zeros, want %d", 100*c.s, total, want)
		}
		acc := out.Accuracy(test.X, test.N, test.Labels)
		e := relErr(logits(out, cal.X, cal.N), ref)
		t.Logf("%.0f%%: test accuracy %.4f (dense %.4f), calibration logit error %.4f, %.1fs", 100*c.s, acc, dense, e, secs)
		if dense-acc > c.maxDrop {
			t.Errorf("%.0f%%: accuracy %.4f, more than %.1f pt below dense %.4f", 100*c.s, acc, 100*c.maxDrop, dense)
		}
		// The file: same graph, the pruned weights.
		var buf bytes.Buffer
		if err := out.EncodeONNX(&buf); err != nil {
			t.Fatal(err)
		}
		back, err := model.FromONNXGraph(buf.Bytes(), "pruned")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(back.Joins()) != fmt.Sprint(m.Joins()) || !slices.Equal(back.NonZeros(), out.NonZeros()) {
			t.Errorf("%.0f%%: reloaded joins %v non-zeros %v, want %v %v", 100*c.s, back.Joins(), back.NonZeros(), m.Joins(), out.NonZeros())
		}
		a, b := logits(out, test.X[:200*784], 200), logits(back, test.X[:200*784], 200)
		for i := range a {
			if math.Abs(a[i]-b[i]) > 1e-4*(1+math.Abs(a[i])) { // float32 weights in the file
				t.Fatalf("%.0f%%: reloaded logit %d: %v, in memory %v", 100*c.s, i, b[i], a[i])
			}
		}
		if c.s == 0.8 {
			q, err := NewPruner(m, cal.X, cal.N, Options{})
			if err != nil {
				t.Fatal(err)
			}
			q.ignoreOffset = true
			noS, _, err := q.Prune(ctx, keep)
			if err != nil {
				t.Fatal(err)
			}
			eNo := relErr(logits(noS, cal.X, cal.N), ref)
			t.Logf("80%% without the offset in the solvers: logit error %.4f", eNo)
			if eNo <= e {
				t.Errorf("the fit with the shortcut offset (logit error %.4f) is not better than without it (%.4f)", e, eNo)
			}
		}
	}
}

// TestJointProjection: the fixture ResNet's second block has a projection shortcut; at 80%
// (Erdos-Renyi split, 500 calibration images) its last conv and the projection are fitted
// as one layer (jointLayer): the two reports name each other and share the fit's error,
// the pair keeps the sum of their budgets, and the block's output error is lower than when
// the projection is pruned alone first and the last conv fitted with its output as the
// offset (separateProj): the joint problem contains every split of the budget, and on
// this model measured 0.296 against 0.313 (2026-12-08).
func TestJointProjection(t *testing.T) {
	m, cal, _ := resnetData(t)
	ctx := context.Background()
	var blockErr [2]float64
	for i, sep := range []bool{false, true} {
		p, err := NewPruner(m, cal.X, cal.N, Options{})
		if err != nil {
			t.Fatal(err)
		}
		p.separateProj = sep
		keep, err := p.LayerBudget(ctx, BudgetErdosRenyi, 0.8)
		if err != nil {
			t.Fatal(err)
		}
		out, reps, err := p.Prune(ctx, keep)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.joint) != 1 {
			t.Fatalf("joint pairs %v, want one", p.joint)
		}
		for l, q := range p.joint {
			nz := out.NonZeros()
			rl, rq := reps[l], reps[q]
			t.Logf("separate=%v: %s %d + %s %d non-zeros (budgets %d + %d), block error %.4f / %.4f", sep, rl.Key, nz[l], rq.Key, nz[q], keep[l], keep[q], rl.PostErr, rq.PostErr)
			blockErr[i] = rl.PostErr
			if sep {
				if nz[l] != keep[l] || nz[q] != keep[q] || rl.FittedWith != "" {
					t.Errorf("separate: non-zeros %d %d, budgets %d %d, fitted with %q", nz[l], nz[q], keep[l], keep[q], rl.FittedWith)
				}
				continue
			}
			if nz[l]+nz[q] != keep[l]+keep[q] || rl.NonZeros != nz[l] || rq.NonZeros != nz[q] {
				t.Errorf("joint: non-zeros %d + %d (reports %d, %d), budget %d + %d", nz[l], nz[q], rl.NonZeros, rq.NonZeros, keep[l], keep[q])
			}
			if rl.FittedWith != rq.Key || rq.FittedWith != rl.Key || rl.PostErr != rq.PostErr {
				t.Errorf("joint reports: %q fitted with %q, %q with %q, errors %v %v", rl.Key, rl.FittedWith, rq.Key, rq.FittedWith, rl.PostErr, rq.PostErr)
			}
		}
	}
	if blockErr[0] >= blockErr[1] {
		t.Errorf("block output error fitted jointly %.4f, not below the separate fits' %.4f", blockErr[0], blockErr[1])
	}
}

// TestResidualParallel: parallel mode on the fixture ResNet (each layer fitted on the
// dense graph's inputs, which denseGraph does not keep: an Exec of the dense graph runs
// alongside) at 80%, Erdos-Renyi split: exact sparsity for relutrim and SparseGPT (whose
// parallel run reads the same dense inputs). Parallel mode compounds the layers' errors on
// this small network: measured 2026-12-08 (the same before the dense inputs were dropped)
// relutrim 72.45% and SparseGPT 17.05% (dense 96.40%); the test wants relutrim at least
// 30 pt above SparseGPT.
func TestResidualParallel(t *testing.T) {
	m, cal, test := resnetData(t)
	ctx := context.Background()
	p, err := NewPruner(m, cal.X, cal.N, Options{Parallel: true})
	if err != nil {
		t.Fatal(err)
	}
	keep, err := p.LayerBudget(ctx, BudgetErdosRenyi, 0.8)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := p.Prune(ctx, keep)
	if err != nil {
		t.Fatal(err)
	}
	sg, err := p.SparseGPT(ctx, keep)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, k := range keep {
		want += k
	}
	dense := m.Accuracy(test.X, test.N, test.Labels)
	accs := map[string]float64{}
	for name, pm := range map[string]model.Model{"relutrim": out, "sparsegpt": sg} {
		total := 0
		for _, nz := range pm.NonZeros() {
			total += nz
		}
		acc := pm.Accuracy(test.X, test.N, test.Labels)
		t.Logf("%s parallel 80%%: accuracy %.4f (dense %.4f), %d non-zeros", name, acc, dense, total)
		if total != want {
			t.Errorf("%s: %d non-zeros, want %d", name, total, want)
		}
		accs[name] = acc
	}
	if accs["relutrim"] < accs["sparsegpt"]+0.30 {
		t.Errorf("parallel: relutrim %.4f, not 30 pt above SparseGPT's %.4f", accs["relutrim"], accs["sparsegpt"])
	}
}
