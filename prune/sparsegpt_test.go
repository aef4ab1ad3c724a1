package prune

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"relutrim/dataio"
	"relutrim/prune/model"
)

// sgptFixture reads prune/testdata/sparsegpt/<name>.npy.
func sgptFixture(t *testing.T, name string) dataio.Matrix {
	t.Helper()
	m, err := dataio.Load(filepath.Join("testdata", "sparsegpt", name+".npy"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSparseGPTMatchesReference compares sparseGPTLayer with the independent numpy
// implementation of scripts/sparsegpt_ref.py (eager updates, chol(inv(H)), its own N:M
// groups; see its docstring), on the committed fixtures: a dense layer (unstructured with
// 16-column blocks, 2:4 and 1:3), a 150-input layer swept in the paper's 128-column blocks
// (two blocks, lazy update between them, two dead inputs) and a convolution given as its
// unfolded patches (unstructured, and 2:4 in relutrim's channel groups). Equal to 1e-6,
// with the same zeros.
func TestSparseGPTMatchesReference(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "sparsegpt", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man struct {
		Layers map[string]struct {
			Conv *struct{ C, KH, KW int }
		}
		Cases []struct {
			Name, Layer       string
			Keep, N, M, Block int
		}
	}
	if err := json.Unmarshal(raw, &man); err != nil {
		t.Fatal(err)
	}
	if len(man.Cases) < 6 {
		t.Fatalf("manifest has %d cases", len(man.Cases))
	}
	for _, c := range man.Cases {
		t.Run(c.Name, func(t *testing.T) {
			W, X, ref := sgptFixture(t, c.Layer+"_W"), sgptFixture(t, c.Layer+"_X"), sgptFixture(t, c.Name+"_Wout")
			rows, cols := W.Rows, W.Cols
			L := model.Layer{In: cols, Out: rows}
			if g := man.Layers[c.Layer].Conv; g != nil {
				L.Conv = &model.Conv{In: model.Shape{C: g.C, H: 1, W: 1}, KH: g.KH, KW: g.KW}
			}
			spec := sgptSpec{keep: c.Keep}
			if c.N > 0 {
				spec = sgptSpec{keep: -1, groups: nmGroups(L, c.M), n: c.N}
			}
			H := gram(X.F64, X.Rows, cols, 2)
			got, err := sparseGPTLayer(W.F64, rows, cols, H, spec, c.Block)
			if err != nil {
				t.Fatal(err)
			}
			worst := 0.0
			for i, v := range got {
				r := ref.F64[i]
				if (v == 0) != (r == 0) {
					t.Fatalf("entry (%d, %d): Go %v, reference %v (different mask)", i/cols, i%cols, v, r)
				}
				worst = math.Max(worst, math.Abs(v-r)/math.Max(1, math.Abs(r)))
			}
			if worst > 1e-6 {
				t.Errorf("largest difference from the reference %.3g", worst)
			}
			t.Logf("largest difference %.2g", worst)
		})
	}
}

// TestSparseGPTTwoColumnOBS checks the OBS step on a 1 x 2 weight and a 2 x 2 Hessian
// against the closed forms of Optimal Brain Surgeon (Hassibi & Stork 1993), derived by hand:
// with the damped H = [[a, b], [b, c]] and det = ac - b^2, [H^{-1}]_11 = c/det; pruning w1
// moves w2 to w2 + w1 b / c and costs (w - w')^T H (w - w') = w1^2 / [H^{-1}]_11 =
// w1^2 det / c; pruning w2 (the last column: nothing to its right) leaves w1 and costs
// w2^2 c. SparseGPT's score of column 1 is w1^2 / U_11^2 = w1^2 det / c, of column 2
// w2^2 / U_22^2 = w2^2 c (U_22^2 = 1/c), so it prunes the cheaper one.
func TestSparseGPTTwoColumnOBS(t *testing.T) {
	// H from two rows of X: X^T X / 2 with X = [[1, 2], [3, 1]] -> [[5, 2.5], [2.5, 2.5]].
	X := []float64{1, 2, 3, 1}
	H0 := []float64{5, 2.5, 2.5, 2.5}
	damp := 0.01 * (5 + 2.5) / 2
	a, b, c := 5+damp, 2.5, 2.5+damp
	det := a*c - b*b
	cost := func(w, q []float64) float64 {
		d0, d1 := w[0]-q[0], w[1]-q[1]
		return a*d0*d0 + 2*b*d0*d1 + c*d1*d1
	}
	for _, tc := range []struct {
		name  string
		w     []float64
		first bool // column 1 is the cheaper to prune
	}{
		{"prune column 1", []float64{0.3, -2}, true},
		{"prune column 2", []float64{2, 0.1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.w
			s1, s2 := w[0]*w[0]*det/c, w[1]*w[1]*c
			if (s1 < s2) != tc.first {
				t.Fatalf("test case: scores %v, %v", s1, s2)
			}
			H := gram(X, 2, 2, 1)
			for i := range H {
				if math.Abs(H[i]-H0[i]) > 1e-15 {
					t.Fatalf("gram: %v, want %v", H, H0)
				}
			}
			q, err := sparseGPTLayer(w, 1, 2, H, sgptSpec{keep: 1}, sgptBlock)
			if err != nil {
				t.Fatal(err)
			}
			want, wantCost := []float64{0, w[1] + w[0]*b/c}, w[0]*w[0]*det/c
			if !tc.first {
				want, wantCost = []float64{w[0], 0}, w[1]*w[1]*c
			}
			if math.Abs(q[0]-want[0]) > 1e-12 || math.Abs(q[1]-want[1]) > 1e-12 {
				t.Errorf("pruned weights %v, OBS closed form %v", q, want)
			}
			if got := cost(w, q); math.Abs(got-wantCost) > 1e-12*wantCost {
				t.Errorf("loss increase %v, OBS closed form %v", got, wantCost)
			}
		})
	}
}

func randLayer(r *rand.Rand, rows, cols, n int, density float64) (W, X []float64) {
	W = make([]float64, rows*cols)
	for i := range W {
		W[i] = r.NormFloat64()
	}
	X = make([]float64, n*cols)
	for i := range X {
		if r.Float64() < density {
			X[i] = r.Float64() + 0.1
		}
	}
	return W, X
}

// TestSparseGPTExactCounts: the layer keeps exactly keep weights, and every block of
// columns prunes its proportional share floor(P e_b / E) - floor(P e_{b-1} / E) of the
// P = rows*cols - keep pruned entries (the rule stated in sparsegpt.go; counted here on the
// output's zeros, which with random data are exactly the pruned entries).
func TestSparseGPTExactCounts(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 19))
	for _, tc := range []struct{ rows, cols, block, keep int }{
		{9, 50, 16, 1}, {9, 50, 16, 137}, {9, 50, 16, 449}, {4, 300, 128, 333}, {1, 3, 128, 2}, {6, 37, 5, 100},
	} {
		W, X := randLayer(r, tc.rows, tc.cols, 80, 0.6)
		H := gram(X, 80, tc.cols, 1)
		got, err := sparseGPTLayer(W, tc.rows, tc.cols, H, sgptSpec{keep: tc.keep}, tc.block)
		if err != nil {
			t.Fatal(err)
		}
		E := tc.rows * tc.cols
		P := E - tc.keep
		nz, seen := 0, 0
		for i1 := 0; i1 < tc.cols; i1 += tc.block {
			i2 := min(i1+tc.block, tc.cols)
			zeros := 0
			for o := range tc.rows {
				for j := i1; j < i2; j++ {
					if got[o*tc.cols+j] == 0 {
						zeros++
					}
				}
			}
			e := (i2 - i1) * tc.rows
			want := P*(seen+e)/E - P*seen/E
			seen += e
			if zeros != want {
				t.Errorf("%+v: block at %d pruned %d, want %d", tc, i1, zeros, want)
			}
			nz += e - zeros
		}
		if nz != tc.keep {
			t.Errorf("%+v: %d kept", tc, nz)
		}
	}
}

// TestSparseGPTNMPattern: in every row and every group of relutrim's N:M pattern
// (nmGroups: M consecutive inputs of a dense layer, M consecutive channels at one kernel
// position of a convolution), exactly min(N, group size) weights are non-zero (random
// data: no kept weight is zero).
func TestSparseGPTNMPattern(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		L    model.Layer
		pats []NM
	}{
		{model.Layer{In: 150, Out: 5}, []NM{{2, 4}, {1, 3}, {3, 8}}},
		{model.Layer{In: 7 * 9, Out: 4, Conv: &model.Conv{In: model.Shape{C: 7, H: 1, W: 1}, KH: 3, KW: 3}}, []NM{{2, 4}, {1, 2}}},
		// a group (64 channels at one of 5 kernel positions) longer than the block
		{model.Layer{In: 64 * 5, Out: 3, Conv: &model.Conv{In: model.Shape{C: 64, H: 1, W: 1}, KH: 1, KW: 5}}, []NM{{40, 200}}},
	} {
		L := tc.L
		W, X := randLayer(r, L.Out, L.In, 60, 0.7)
		for _, pat := range tc.pats {
			groups := nmGroups(L, pat.M)
			H := gram(X, 60, L.In, 1)
			got, err := sparseGPTLayer(W, L.Out, L.In, H, sgptSpec{keep: -1, groups: groups, n: pat.N}, 32)
			if err != nil {
				t.Fatal(err)
			}
			for o := range L.Out {
				for _, g := range groups {
					nz := 0
					for _, i := range g {
						if got[o*L.In+i] != 0 {
							nz++
						}
					}
					if nz != min(pat.N, len(g)) {
						t.Fatalf("in %d, conv %v, %d:%d: row %d group %v has %d non-zeros", L.In, L.Conv != nil, pat.N, pat.M, o, g, nz)
					}
				}
			}
		}
	}
}

// TestGram: gram equals the plain sum over rows of x x^T / n (a double loop here), and is
// bitwise the same for 1 and 3 worker goroutines (fixed chunks summed in order).
func TestGram(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	n, d := 3000, 45
	_, X := randLayer(r, 1, d, n, 0.3)
	H1, H3 := gram(X, n, d, 1), gram(X, n, d, 3)
	for i := range d {
		for j := range d {
			s := 0.0
			for p := range n {
				s += X[p*d+i] * X[p*d+j]
			}
			s /= float64(n)
			if math.Abs(H1[i*d+j]-s) > 1e-12*math.Max(1, s) {
				t.Fatalf("H[%d,%d] = %v, want %v", i, j, H1[i*d+j], s)
			}
			if H1[i*d+j] != H3[i*d+j] {
				t.Fatalf("H[%d,%d]: %v with 1 worker, %v with 3", i, j, H1[i*d+j], H3[i*d+j])
			}
		}
	}
}

// TestSparseGPTPruner runs the whole-model entry points on the 20-16-8-3 test model: exact
// keep counts, a layer with keep = In*Out left as it is, biases unchanged; sequential (a
// layer's H from the pruned network's inputs: layer 1 equals sparseGPTLayer on the output
// of the pruned layer 0, and differs from it on the dense network's); the N:M variant
// respects the layer marks; and the result beats magnitude pruning on the test set.
func TestSparseGPTPruner(t *testing.T) {
	s := loadSmall(t)
	ctx := context.Background()
	p, err := NewPruner(s.m, s.calib, s.nCal, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	keep := []int{60, 30, s.m.Layers[2].In * s.m.Layers[2].Out}
	sm, err := p.SparseGPT(ctx, keep)
	if err != nil {
		t.Fatal(err)
	}
	for l, nz := range sm.NonZeros() {
		if nz != keep[l] {
			t.Errorf("layer %d: %d non-zeros, want %d", l, nz, keep[l])
		}
		if !equal(sm.Layers[l].B, s.m.Layers[l].B) {
			t.Errorf("layer %d: bias changed", l)
		}
	}
	if !equal(sm.Layers[2].W, s.m.Layers[2].W) {
		t.Error("the dense layer changed")
	}
	// Layer 1 by hand: H from the pruned layer 0's outputs.
	post, _ := sm.Apply(0, p.dense[0], p.n)
	in := sm.Next(0, post, p.n)
	L := s.m.Layers[1]
	want, err := sparseGPTLayer(L.W, L.Out, L.In, gram(in, p.n, L.In, 1), sgptSpec{keep: keep[1]}, sgptBlock)
	if err != nil {
		t.Fatal(err)
	}
	if !equal(sm.Layers[1].W, want) {
		t.Error("layer 1 is not SparseGPT on the pruned network's inputs")
	}
	dense, _ := sparseGPTLayer(L.W, L.Out, L.In, gram(p.dense[1], p.n, L.In, 1), sgptSpec{keep: keep[1]}, sgptBlock)
	if equal(dense, want) {
		t.Error("the test cannot tell sequential from parallel")
	}
	acc, mag := sm.Accuracy(s.test, s.nTest, s.testY), Magnitude(s.m, keep).Accuracy(s.test, s.nTest, s.testY)
	t.Logf("SparseGPT %.3f, magnitude %.3f", acc, mag)
	if acc <= mag {
		t.Errorf("SparseGPT %.3f not better than magnitude %.3f", acc, mag)
	}

	on := []bool{false, true, false}
	nm, err := p.SparseGPTNM(ctx, NM{2, 4}, on)
	if err != nil {
		t.Fatal(err)
	}
	wantKeep := NMKeep(s.m, NM{2, 4}, on)
	for l, nz := range nm.NonZeros() {
		if nz != wantKeep[l] {
			t.Errorf("2:4 layer %d: %d non-zeros, want %d", l, nz, wantKeep[l])
		}
	}
	if !equal(nm.Layers[0].W, s.m.Layers[0].W) || !equal(nm.Layers[2].W, s.m.Layers[2].W) {
		t.Error("2:4 changed an unmarked layer")
	}
	if _, err := p.SparseGPT(ctx, keep[:2]); err == nil {
		t.Error("SparseGPT accepted 2 keep counts for 3 layers")
	}
}

func equal(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSparseGPTDataSameAsPruner: SparseGPTData (no Pruner: one layer's inputs at a time)
// gives bitwise the model Pruner.SparseGPT / SparseGPTNM gives, cascade and parallel, on the
// small MLP and on the bundled CNN with random images and a patch cap that makes the
// convolutions sample their positions.
func TestSparseGPTDataSameAsPruner(t *testing.T) {
	ctx := context.Background()
	s := loadSmall(t)
	cnn, err := model.Load("../internal/models/cnn_mnist.onnx")
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(8, 9))
	img := make([]float64, 12*784)
	for i := range img {
		if r.Float64() < 0.3 {
			img[i] = r.Float64()
		}
	}
	for _, tc := range []struct {
		name string
		m    model.Model
		X    []float64
		n    int
		opt  Options
	}{
		{"mlp cascade", s.m, s.calib, s.nCal, Options{Threads: 2}},
		{"mlp parallel", s.m, s.calib, s.nCal, Options{Threads: 2, Parallel: true}},
		{"cnn cascade, sampled positions", cnn, img, 12, Options{Threads: 2, MaxXBytes: 200 << 10}},
	} {
		p, err := NewPruner(tc.m, tc.X, tc.n, tc.opt)
		if err != nil {
			t.Fatal(err)
		}
		keep, err := Budget(tc.m, 0.8)
		if err != nil {
			t.Fatal(err)
		}
		sampled := false
		for _, pos := range p.pos {
			sampled = sampled || pos != nil
		}
		if tc.m.Layers[0].Conv != nil && !sampled {
			t.Fatalf("%s: no convolution samples its positions", tc.name)
		}
		a, err1 := p.SparseGPT(ctx, keep)
		b, err2 := SparseGPTData(ctx, tc.m, tc.X, tc.n, tc.opt, keep, NM{}, nil)
		c, err3 := p.SparseGPTNM(ctx, NM{2, 4}, nil)
		d, err4 := SparseGPTData(ctx, tc.m, tc.X, tc.n, tc.opt, nil, NM{2, 4}, nil)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			t.Fatal(err)
		}
		for l := range tc.m.Layers {
			if !equal(a.Layers[l].W, b.Layers[l].W) || !equal(c.Layers[l].W, d.Layers[l].W) {
				t.Errorf("%s: layer %d differs", tc.name, l)
			}
		}
	}
}
