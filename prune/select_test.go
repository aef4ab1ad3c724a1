package prune

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestSelectOptions: both selection methods, with the support selected on all rows or on a
// sample of 200 of the small model's 500 calibration rows, keep exactly the budgeted
// count in every layer (on the sample, at most that: a weight reading an input that is
// zero on every sample row is never kept, and the L1 path on the last layer finds one of
// its 8 inputs dead on the sample), report the rows they selected on, and fit the
// calibration logits
// far better than magnitude pruning at the same counts (the reference: Magnitude, a
// method that looks at no data; at 70% it leaves the logits with about twice relutrim's
// error on this model). An unknown method is refused by name.
func TestSelectOptions(t *testing.T) {
	s := loadSmall(t)
	keep, err := Budget(s.m, 0.7)
	if err != nil {
		t.Fatal(err)
	}
	dense := s.m.Forward(s.calib, s.nCal)
	logits := dense[len(dense)-1]
	logitsErr := func(acts [][]float64) float64 { return relErr(acts[len(acts)-1], logits) }
	magErr := logitsErr(Magnitude(s.m, keep).Forward(s.calib, s.nCal))
	for _, sel := range []string{SelectGradual, SelectL1Path} {
		for _, rows := range []int{-1, 200} {
			p, err := NewPruner(s.m, s.calib, s.nCal, Options{Select: sel, SelectRows: rows, Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			pm, reps, err := p.Prune(context.Background(), keep)
			if err != nil {
				t.Fatal(err)
			}
			want := s.nCal
			if rows > 0 {
				want = rows
			}
			for l, r := range reps {
				if nz := pm.NonZeros()[l]; (nz > keep[l] || rows < 0 && nz != keep[l]) && keep[l] < r.In*r.Out {
					t.Errorf("%s, %d rows: layer %d keeps %d weights, budget %d", sel, rows, l, nz, keep[l])
				}
				if r.SelectRows != want && keep[l] < r.In*r.Out {
					t.Errorf("%s, %d rows: layer %d selected on %d rows, want %d", sel, rows, l, r.SelectRows, want)
				}
			}
			if e := logitsErr(pm.Forward(s.calib, s.nCal)); !(e < 0.75*magErr) {
				t.Errorf("%s, %d rows: logits error %.4f, magnitude's %.4f", sel, rows, e, magErr)
			}
		}
	}
	if _, err := NewPruner(s.m, s.calib, s.nCal, Options{Select: "obs"}); err == nil || !strings.Contains(err.Error(), `"obs"`) {
		t.Errorf("unknown selection: error %v", err)
	}
}

// TestNewPrunerCanceled: a canceled context stops NewPrunerContext before the dense pass
// and returns the context's error.
func TestNewPrunerCanceled(t *testing.T) {
	s := loadSmall(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewPrunerContext(ctx, s.m, s.calib, s.nCal, Options{}); err != context.Canceled {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

// TestTopKStableOrder: topK keeps exactly the entries a stable sort by decreasing
// |U_ij| * norms[i] keeps in its first k (the reference, written here with sort.SliceStable,
// as topK itself was before it selected by threshold), less the zero scores, on random
// weights with many ties (values on a coarse grid, zero inputs and zero weights).
func TestTopKStableOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for trial := 0; trial < 200; trial++ {
		in, out := 1+r.IntN(12), 1+r.IntN(9)
		U, norms := make([]float64, in*out), make([]float64, in)
		for i := range U {
			U[i] = float64(r.IntN(5)-2) / 2 // ties and zeros
		}
		for i := range norms {
			norms[i] = float64(r.IntN(3)) // zero inputs
		}
		k := r.IntN(in*out + 1)
		idx := make([]int, len(U))
		for i := range idx {
			idx[i] = i
		}
		score := func(i int) float64 { return math.Abs(U[i]) * norms[i/out] }
		sort.SliceStable(idx, func(a, b int) bool { return score(idx[a]) > score(idx[b]) })
		want := make([]bool, len(U))
		for _, i := range idx[:k] {
			want[i] = score(i) > 0
		}
		got := topK(U, norms, out, k)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("trial %d (k %d of %d): entry %d kept %v, the stable sort keeps %v", trial, k, len(U), i, got[i], want[i])
			}
		}
	}
}

// TestTopKBranchFloor: with a branch floor (the joint fit of a block's last conv and its
// projection) each branch first gets minShare of its share of the count, then the rest
// goes by score: for scores 8..1 over 8 inputs split 4 + 4 with equal shares and k = 4,
// each branch's minimum is int(0.5 * 0.5 * 4) = 1, so the best of the second branch
// (input 4) displaces input 3; without the floor the top four are inputs 0-3 (by hand).
func TestTopKBranchFloor(t *testing.T) {
	U := []float64{8, 7, 6, 5, 4, 3, 2, 1}
	norms := []float64{1, 1, 1, 1, 1, 1, 1, 1}
	p := &Pruner{}
	want := []bool{true, true, true, true, false, false, false, false}
	if got := p.topK(U, norms, 1, 4); !slices.Equal(got, want) {
		t.Errorf("no floor: %v, want %v", got, want)
	}
	p.floor = &branchFloor{split: 4, shareA: 0.5, shareB: 0.5}
	want = []bool{true, true, true, false, true, false, false, false}
	if got := p.topK(U, norms, 1, 4); !slices.Equal(got, want) {
		t.Errorf("floor: %v, want %v", got, want)
	}
}
