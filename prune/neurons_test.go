package prune

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
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

// loadONNXFixture loads one of prune/model's ONNX fixtures and n seeded standard-normal
// inputs of its input shape (the fixtures' own 16 samples are too few to fit on).
func loadONNXFixture(t *testing.T, name string, n int) (model.Model, []float64) {
	t.Helper()
	m, err := model.Load(filepath.Join("model", "testdata", "onnx", name))
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(12, 34))
	X := make([]float64, n*m.InShape().Size())
	for i := range X {
		X[i] = r.NormFloat64()
	}
	return m, X
}

// TestChannelsSelectReadChannels: the CNN analogue of TestNeuronsSelectReadUnits on the
// ONNX fixtures, one planted trap per kind of group. In cnn_gap.onnx (Conv 3-8, Conv 8-16,
// GlobalAveragePool, Gemm 16-12, Gemm 12-5) the second conv reads only channels 0-3 of the
// first (groups of 3x3 = 9 columns) and the first Gemm only channels 0-7 of the second
// (one column each, after the pooling); in cnn.onnx (Conv, Conv, Conv 8-12, MaxPool,
// Flatten of 12x2x2, Gemm 48-16 + BN, Gemm) the first Gemm reads only six channels of the
// third conv (groups of 4 flattened columns; channels 2 and 11 are dead or nearly so on
// these inputs and stay unread). The unread channels get three times larger filters, so
// the L2-norm baseline keeps them. The group path must keep exactly the read channels,
// and the network's output must stay as it was.
func TestChannelsSelectReadChannels(t *testing.T) {
	cases := []struct {
		file    string
		layer   int   // the layer whose channels are pruned
		read    []int // the channels the next layer reads
		channel int   // columns per channel in the next layer
	}{{"cnn_gap.onnx", 0, []int{0, 1, 2, 3}, 9}, {"cnn_gap.onnx", 1, []int{0, 1, 2, 3, 4, 5, 6, 7}, 1}, {"cnn.onnx", 2, []int{1, 3, 4, 5, 6, 8}, 4}}
	for _, tc := range cases {
		m, X := loadONNXFixture(t, tc.file, 300)
		L, next := &m.Layers[tc.layer], &m.Layers[tc.layer+1]
		for c := 0; c < L.Out; c++ {
			if slices.Contains(tc.read, c) {
				continue
			}
			for i := c * L.In; i < (c+1)*L.In; i++ {
				L.W[i] *= 3
			}
			for o := 0; o < next.Out; o++ {
				for k := c * tc.channel; k < (c+1)*tc.channel; k++ {
					next.W[o*next.In+k] = 0
				}
			}
		}
		keep := m.Units()
		keep[tc.layer] = len(tc.read)
		pm, kept, reps, err := PruneNeurons(context.Background(), m, X, 300, keep, NeuronOptions{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(kept[tc.layer], tc.read) {
			t.Errorf("%s layer %d: kept %v, want the read channels %v", tc.file, tc.layer, kept[tc.layer], tc.read)
		}
		if r := reps[tc.layer]; r.Columns != tc.channel || r.PostErr > 1e-3 {
			t.Errorf("%s layer %d: %d columns per channel (want %d), next layer's error %.3g", tc.file, tc.layer, r.Columns, tc.channel, r.PostErr)
		}
		a, b := m.Forward(X, 300), pm.Forward(X, 300)
		if e := relErr(b[len(b)-1], a[len(a)-1]); e > 1e-3 {
			t.Errorf("%s layer %d: logits changed by %.3g", tc.file, tc.layer, e)
		}
		_, l2kept, err := L2Neurons(m, keep)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(l2kept[tc.layer], tc.read) {
			t.Errorf("%s layer %d: the L2 baseline kept the read channels %v (the trap is not set)", tc.file, tc.layer, l2kept[tc.layer])
		}
		t.Logf("%s layer %d: kept %v (L2 baseline %v), %d path points, error %.2g", tc.file, tc.layer, kept[tc.layer], l2kept[tc.layer], reps[tc.layer].PathPoints, reps[tc.layer].PostErr)
	}
}

// TestPruneChannelsCNN: half of every hidden layer's channels (and the hidden Gemm's units)
// of cnn.onnx removed on 400 random inputs: the model has the halved shapes, the last
// layer's reported error equals the logits' error recomputed from the returned model, and
// the logits are closer to the dense ones than the L2-norm baseline's (which keeps the
// dense weights); with the convolutions' patches capped at 64 KiB the fit rows are a
// sample of the positions (Rows < Positions) and the result still has the shapes.
func TestPruneChannelsCNN(t *testing.T) {
	m, X := loadONNXFixture(t, "cnn.onnx", 400)
	keep, err := UnitsKeep(m, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keep, []int{4, 4, 6, 8}) {
		t.Fatalf("UnitsKeep(0.5) = %v", keep)
	}
	logits := func(m model.Model) []float64 { a := m.Forward(X, 400); return a[len(a)-1] }
	dense := logits(m)
	for _, maxX := range []int{0, 64 << 10} {
		pm, _, reps, err := PruneNeurons(context.Background(), m, X, 400, keep, NeuronOptions{Threads: 2, MaxXBytes: maxX})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(pm.Units(), keep) {
			t.Errorf("units %v, want %v", pm.Units(), keep)
		}
		last := reps[len(reps)-1]
		if e := relErr(logits(pm), dense); math.Abs(e-last.PostErr) > 1e-9 {
			t.Errorf("reported last-layer error %.6g, recomputed %.6g", last.PostErr, e)
		}
		l2, _, err := L2Neurons(m, keep)
		if err != nil {
			t.Fatal(err)
		}
		eR, eL := relErr(logits(pm), dense), relErr(logits(l2), dense)
		t.Logf("max patch bytes %d: logit error relutrim %.4f, L2-norm %.4f; rows %d/%d, %d/%d", maxX, eR, eL, reps[0].Rows, reps[0].Positions, reps[1].Rows, reps[1].Positions)
		if !(eR < eL) {
			t.Errorf("relutrim's logit error %.4f not below the L2 baseline's %.4f", eR, eL)
		}
		sampled := reps[0].Rows < reps[0].Positions
		if sampled != (maxX > 0) {
			t.Errorf("max patch bytes %d: layer %s fitted on %d of %d positions", maxX, reps[0].Next, reps[0].Rows, reps[0].Positions)
		}
	}
}
