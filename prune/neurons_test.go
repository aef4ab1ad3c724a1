package prune

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"relutrim/prune/model"
)

// TestPruneNeuronsSmall: on the small torch-trained 20-16-8-3 model, removing half of each
// hidden layer's units gives a dense 20-8-4-3 model; the kept lists index the original
// units; the reported error of the last layer equals the one recomputed from the returned
// model's forward pass against the dense model's logits; the refit makes the logits closer
// to the dense ones than the L2-norm baseline's, and test accuracy higher (a tiny network:
// half its units is a large cut, 93.6% -> 82.0% against the baseline's 55.8%).
func TestPruneNeuronsSmall(t *testing.T) {
	s := loadSmall(t)
	keep, err := UnitsKeep(s.m, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keep, []int{8, 4}) {
		t.Fatalf("UnitsKeep(0.5) = %v, want [8 4]", keep)
	}
	pm, kept, reps, err := PruneNeurons(context.Background(), s.m, s.calib, s.nCal, keep, NeuronOptions{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	wantShapes := [][2]int{{20, 8}, {8, 4}, {4, 3}}
	for l, L := range pm.Layers {
		if L.In != wantShapes[l][0] || L.Out != wantShapes[l][1] || L.Key != s.m.Layers[l].Key || L.WType != s.m.Layers[l].WType {
			t.Errorf("layer %d: %s %d -> %d %s, want %v", l, L.Key, L.In, L.Out, L.WType, wantShapes[l])
		}
	}
	for h, ks := range kept {
		if len(ks) != keep[h] || !slices.IsSorted(ks) {
			t.Errorf("kept[%d] = %v", h, ks)
		}
	}
	// Layer 0 is never refitted: its kept rows are the dense rows.
	for i, u := range kept[0] {
		if !slices.Equal(pm.Layers[0].W[i*20:(i+1)*20], s.m.Layers[0].W[u*20:(u+1)*20]) {
			t.Errorf("layer 0 row %d is not dense row %d", i, u)
		}
	}
	logits := func(m model.Model) []float64 { a := m.Forward(s.calib, s.nCal); return a[len(a)-1] }
	dense := logits(s.m)
	if e := relErr(logits(pm), dense); math.Abs(e-reps[1].PostErr) > 1e-9 {
		t.Errorf("reported last-layer error %.6g, recomputed %.6g", reps[1].PostErr, e)
	}
	l2, l2kept, err := L2Neurons(s.m, keep)
	if err != nil {
		t.Fatal(err)
	}
	eR, eL := relErr(logits(pm), dense), relErr(logits(l2), dense)
	accD := s.m.Accuracy(s.test, s.nTest, s.testY)
	accR, accL := pm.Accuracy(s.test, s.nTest, s.testY), l2.Accuracy(s.test, s.nTest, s.testY)
	t.Logf("logit error: relutrim %.4f, L2-norm %.4f; test accuracy dense %.3f relutrim %.3f L2 %.3f; kept %v (L2 %v)", eR, eL, accD, accR, accL, kept, l2kept)
	if !(eR < eL) {
		t.Errorf("relutrim's logit error %.4f not below the L2 baseline's %.4f", eR, eL)
	}
	if !(accR > accL) {
		t.Errorf("test accuracy %.3f not above the L2 baseline's %.3f (dense %.3f)", accR, accL, accD)
	}
	for _, bad := range [][]int{{8}, {0, 4}, {17, 4}} {
		if _, _, _, err := PruneNeurons(context.Background(), s.m, s.calib, s.nCal, bad, NeuronOptions{}); err == nil {
			t.Errorf("keep %v: no error", bad)
		}
	}
	for _, bad := range []float64{-0.1, 1, math.NaN()} {
		if _, err := UnitsKeep(s.m, bad); err == nil {
			t.Errorf("UnitsKeep(%v): no error", bad)
		}
	}
}

// TestNeuronsSelectReadUnits: a planted 10-12-6-3 network in which layer 2 reads only
// units 0-5 of layer 0, while units 6-11 have the largest incoming weights. The group path
// on layer 2 keeps exactly the read units (the function is unchanged: errors ~0), where the
// L2-norm baseline keeps the unread ones.
func TestNeuronsSelectReadUnits(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	layer := func(key string, in, out int, scale func(o int) float64) model.Layer {
		L := model.Layer{Key: key, In: in, Out: out, W: make([]float64, in*out), B: make([]float64, out)}
		for o := 0; o < out; o++ {
			for i := 0; i < in; i++ {
				L.W[o*in+i] = scale(o) * r.NormFloat64() / math.Sqrt(float64(in))
			}
			L.B[o] = 0.1 * r.NormFloat64()
		}
		return L
	}
	l0 := layer("0", 10, 12, func(o int) float64 {
		if o >= 6 {
			return 3
		}
		return 1
	})
	l1 := layer("2", 12, 6, func(int) float64 { return 1 })
	for o := 0; o < 6; o++ {
		for i := 6; i < 12; i++ {
			l1.W[o*12+i] = 0 // units 6-11 are read by nobody
		}
	}
	l2 := layer("4", 6, 3, func(int) float64 { return 1 })
	m := model.Model{Layers: []model.Layer{l0, l1, l2}}
	n := 400
	X := make([]float64, n*10)
	for i := range X {
		X[i] = r.NormFloat64()
	}
	keep := []int{6, 6}
	pm, kept, reps, err := PruneNeurons(context.Background(), m, X, n, keep, NeuronOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(kept[0], []int{0, 1, 2, 3, 4, 5}) {
		t.Errorf("kept %v, want the read units 0-5", kept[0])
	}
	if reps[0].PostErr > 1e-3 {
		t.Errorf("layer 2 error %.3g after removing unread units", reps[0].PostErr)
	}
	a, b := m.Forward(X, n), pm.Forward(X, n)
	if e := relErr(b[3], a[3]); e > 1e-3 {
		t.Errorf("logits changed by %.3g", e)
	}
	_, l2kept, err := L2Neurons(m, keep)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(l2kept[0], []int{6, 7, 8, 9, 10, 11}) {
		t.Errorf("L2 baseline kept %v, want the large unread units 6-11 (the planted trap)", l2kept[0])
	}
}

// TestPruneNeuronsDegenerate: all-zero calibration data (every correlation 0, every unit of
// the first layer constant) ends at once with the requested shapes, and a single row too.
func TestPruneNeuronsDegenerate(t *testing.T) {
	s := loadSmall(t)
	for _, n := range []int{1, 20} {
		X := make([]float64, n*20)
		if n == 1 {
			copy(X, s.calib[:20])
		}
		pm, _, reps, err := PruneNeurons(context.Background(), s.m, X, n, []int{5, 3}, NeuronOptions{Threads: 1})
		if err != nil {
			t.Fatalf("n = %d: %v", n, err)
		}
		if !slices.Equal(pm.Units(), []int{5, 3}) {
			t.Errorf("n = %d: units %v", n, pm.Units())
		}
		for _, r := range reps {
			if r.PathPoints > 3 {
				t.Errorf("n = %d: layer %s: %d path points on degenerate data", n, r.Key, r.PathPoints)
			}
		}
	}
}
