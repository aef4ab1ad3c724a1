package model

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
)

// TestShrinkMatchesZeroedUnits: the shrunk model computes the same outputs as the original
// model with the removed units switched off by zeroing their incoming weights and biases
// (relu(0) = 0: nothing downstream sees them) - an independent construction of the same
// function - and has the new shapes; it survives Save and Load with those shapes and
// dtypes.
func TestShrinkMatchesZeroedUnits(t *testing.T) {
	m, err := Load(filepath.Join(testdata, "small.safetensors")) // 20-16-8-3, float32
	if err != nil {
		t.Fatal(err)
	}
	keep := [][]int{{0, 2, 3, 7, 8, 15}, {1, 4, 5}}
	s, err := m.Shrink(keep)
	if err != nil {
		t.Fatal(err)
	}
	wantShapes := [][2]int{{20, 6}, {6, 3}, {3, 3}}
	for l, L := range s.Layers {
		if L.In != wantShapes[l][0] || L.Out != wantShapes[l][1] || len(L.W) != L.In*L.Out || len(L.B) != L.Out {
			t.Fatalf("layer %d: %d -> %d with %d weights, want %v", l, L.In, L.Out, len(L.W), wantShapes[l])
		}
	}
	if !slices.Equal(s.Units(), []int{6, 3}) {
		t.Errorf("units %v", s.Units())
	}
	z := m.Clone()
	for h, ks := range keep {
		L := z.Layers[h]
		for o := 0; o < L.Out; o++ {
			if slices.Contains(ks, o) {
				continue
			}
			for i := 0; i < L.In; i++ {
				L.W[o*L.In+i] = 0
			}
			L.B[o] = 0
		}
	}
	r := rand.New(rand.NewPCG(3, 3))
	n := 50
	X := make([]float64, n*20)
	for i := range X {
		X[i] = r.NormFloat64()
	}
	a, b := s.Forward(X, n), z.Forward(X, n)
	la, lb := a[len(a)-1], b[len(b)-1]
	for i := range la {
		if math.Abs(la[i]-lb[i]) > 1e-12*(1+math.Abs(lb[i])) {
			t.Fatalf("output %d: shrunk %v, zeroed %v", i, la[i], lb[i])
		}
	}
	// The zeroed model must differ from the original (the test would pass trivially otherwise).
	full := m.Forward(X, n)
	diff := 0.0
	for i, v := range full[len(full)-1] {
		diff = math.Max(diff, math.Abs(v-lb[i]))
	}
	if diff < 1e-3 {
		t.Fatalf("removing units changed the outputs by only %g", diff)
	}
	path := filepath.Join(t.TempDir(), "shrunk.safetensors")
	if err := s.Save(path, false); err != nil {
		t.Fatal(err)
	}
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for l, L := range back.Layers {
		if L.In != s.Layers[l].In || L.Out != s.Layers[l].Out || L.WType != m.Layers[l].WType {
			t.Errorf("layer %d reloaded as %d -> %d %s", l, L.In, L.Out, L.WType)
		}
	}
	for _, bad := range [][][]int{{{0, 1}}, {{}, {1}}, {{0, 0}, {1}}, {{16}, {1}}, {{1, 0}, {1}}} {
		if _, err := m.Shrink(bad); err == nil {
			t.Errorf("Shrink(%v): no error", bad)
		}
	}
}
