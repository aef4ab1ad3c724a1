package prune

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"relutrim/prune/model"
)

// bruteForce returns the least sum of interpolated losses over all integer allocations
// within the curves' ranges that add up to total.
func bruteForce(curves [][]Knot, total int) float64 {
	best := math.Inf(1)
	var rec func(l, left int, acc float64)
	rec = func(l, left int, acc float64) {
		c := curves[l]
		if l == len(curves)-1 {
			if left >= c[0].K && left <= c[len(c)-1].K {
				best = math.Min(best, acc+Interp(c, left))
			}
			return
		}
		for k := c[0].K; k <= c[len(c)-1].K && k <= left; k++ {
			rec(l+1, left-k, acc+Interp(c, k))
		}
	}
	rec(0, total, 0)
	return best
}

func lossOf(curves [][]Knot, k []int) float64 {
	s := 0.0
	for l, c := range curves {
		s += Interp(c, k[l])
	}
	return s
}

// randomCurves draws n decreasing loss curves, convex or not, with a few knots each.
func randomCurves(r *rand.Rand, n int) [][]Knot {
	cs := make([][]Knot, n)
	for l := range cs {
		k := r.IntN(4)
		loss := 1 + 3*r.Float64()
		for j := 0; j < 2+r.IntN(4); j++ {
			cs[l] = append(cs[l], Knot{K: k, Loss: loss})
			k += 1 + r.IntN(8)
			loss *= r.Float64()
		}
	}
	return cs
}

// TestAllocateBruteForce: on small synthetic curves (2-4 layers, up to 30 weights each,
// non-convex ones included) Allocate reaches the exhaustive search's least loss, its
// counts lie in each curve's range and add up to the budget exactly.
func TestAllocateBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 300; trial++ {
		cs := randomCurves(r, 2+r.IntN(3))
		lo, hi := 0, 0
		for _, c := range cs {
			lo += c[0].K
			hi += c[len(c)-1].K
		}
		total := lo + r.IntN(hi-lo+1)
		k, err := Allocate(cs, total)
		if err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		sum := 0
		for l, v := range k {
			if v < cs[l][0].K || v > cs[l][len(cs[l])-1].K {
				t.Fatalf("trial %d: layer %d count %d outside its curve %v", trial, l, v, cs[l])
			}
			sum += v
		}
		if sum != total {
			t.Fatalf("trial %d: counts %v add up to %d, want %d", trial, k, sum, total)
		}
		if got, want := lossOf(cs, k), bruteForce(cs, total); got > want+1e-12 {
			t.Fatalf("trial %d: curves %v total %d: Allocate %v has loss %v, exhaustive search %v", trial, cs, total, k, got, want)
		}
	}
}

// TestAllocateLarge: with budgets past maxUnits (counts in units, then the leftover one
// weight at a time) the counts still add up exactly and stay in range, and on convex
// curves the loss is within one unit's worth of the continuous optimum's.
func TestAllocateLarge(t *testing.T) {
	cs := [][]Knot{
		{{1000, 5}, {5000, 2}, {20000, 0.5}, {235200, 0}},
		{{150, 3}, {1000, 1}, {5000, 0.2}, {30000, 0}},
		{{5, 2}, {100, 0.5}, {300, 0.1}, {1000, 0}},
	}
	for _, total := range []int{1155, 13310, 26620, 53240, 133100, 266200} {
		k, err := Allocate(cs, total)
		if err != nil {
			t.Fatal(err)
		}
		sum := 0
		for l, v := range k {
			if v < cs[l][0].K || v > cs[l][len(cs[l])-1].K {
				t.Fatalf("total %d: layer %d count %d out of range", total, l, v)
			}
			sum += v
		}
		if sum != total {
			t.Fatalf("total %d: counts %v add up to %d", total, k, sum)
		}
	}
	if _, err := Allocate(cs, 1154); err == nil {
		t.Error("a budget below the curves' first points was accepted")
	}
	if _, err := Allocate(cs, 266201); err == nil {
		t.Error("a budget above dense was accepted")
	}
}

// TestCurveBudgetSums: on a small random ReLU network the curves start at one weight and
// end dense at zero error, and the budget from them adds up to the level's count exactly,
// down to 99% sparsity (3 of the 330 weights: below the first density point of every
// layer; at least one weight per layer), while 99.9% (0 weights) is refused.
func TestCurveBudgetSums(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	sizes := []int{20, 12, 6, 3}
	var m model.Model
	for i := 0; i+1 < len(sizes); i++ {
		L := model.Layer{Key: string(rune('0' + 2*i)), In: sizes[i], Out: sizes[i+1], W: make([]float64, sizes[i]*sizes[i+1]), B: make([]float64, sizes[i+1])}
		for j := range L.W {
			L.W[j] = r.NormFloat64()
		}
		for j := range L.B {
			L.B[j] = 0.1 * r.NormFloat64()
		}
		m.Layers = append(m.Layers, L)
	}
	n := 200
	X := make([]float64, n*sizes[0])
	for i := range X {
		X[i] = r.NormFloat64()
	}
	p, err := NewPruner(m, X, n, Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := p.Curves(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for l, c := range cs {
		last := c.Points[len(c.Points)-1]
		if last.NonZeros != m.Layers[l].In*m.Layers[l].Out || last.OutErr != 0 {
			t.Errorf("layer %d: last curve point %+v, want dense with no error", l, last)
		}
		if c.Points[0].NonZeros != 1 {
			t.Errorf("layer %d: first curve point %+v, want one weight", l, c.Points[0])
		}
	}
	if _, err := p.CurveBudget(context.Background(), 0.999); err == nil || !strings.Contains(err.Error(), "one weight per layer") {
		t.Errorf("sparsity 0.999 (no weight left): error %v, want a refusal naming one weight per layer", err)
	}
	for _, s := range []float64{0.3, 0.5, 0.8, 0.9, 0.99} {
		k, err := p.CurveBudget(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		sum := 0
		for _, v := range k {
			sum += v
		}
		if want := int(math.Round((1 - s) * float64(m.Weights()))); sum != want {
			t.Errorf("sparsity %v: counts %v add up to %d, want %d", s, k, sum, want)
		}
		if slices.Min(k) < 1 {
			t.Errorf("sparsity %v: counts %v, want at least one weight per layer", s, k)
		}
	}
}

// TestAllocateFlatNotDense: a layer whose curve is flat (its inputs dead on the calibration
// data) is not made dense on a tie: the weights go where they are free too, short of dense.
func TestAllocateFlatNotDense(t *testing.T) {
	cs := [][]Knot{{{2, 0}, {320, 0}}, {{1, 0}, {128, 0}}, {{1, 0}, {24, 0}}}
	k, err := Allocate(cs, 236)
	if err != nil {
		t.Fatal(err)
	}
	if k[0]+k[1]+k[2] != 236 || k[1] == 128 || k[2] == 24 {
		t.Errorf("split %v", k)
	}
}

// TestCurveSamples: the curves' output errors use 1000 samples for the demo MLP (266,200
// multiply-adds per sample) and, for the demo CNN, 3e8 / 2,509,696 = 119 (its multiply-adds
// per image counted by hand from the layer shapes: 9*16*784 + 144*32*196 + 288*64*49 +
// 576*64*16 + 64*10), and never fewer than 100.
func TestCurveSamples(t *testing.T) {
	mlp, err := model.Load("../internal/models/lenet300100.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	cnn, err := model.Load("../internal/models/cnn_mnist.onnx")
	if err != nil {
		t.Fatal(err)
	}
	if got := curveSamples(mlp); got != 1000 {
		t.Errorf("MLP: %d samples, want 1000", got)
	}
	if macs := 9*16*784 + 144*32*196 + 288*64*49 + 576*64*16 + 64*10; macs != 2509696 {
		t.Fatalf("hand count %d", macs)
	}
	if got := curveSamples(cnn); got != 119 {
		t.Errorf("CNN: %d samples, want 119", got)
	}
	big := mlp.Clone()
	big.Layers[0].In *= 1000 // 235 million multiply-adds per sample
	if got := curveSamples(big); got != 100 {
		t.Errorf("a costly model: %d samples, want the floor 100", got)
	}
}
