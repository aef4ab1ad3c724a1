package kern

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// refTree is the chunk tree's definition written out recursively (the reference): node
// (lo, size) = left + right, or left alone when the right child covers no chunk.
func refTree(parts [][]float64, lo, size int) []float64 {
	if size == 1 {
		return slices.Clone(parts[lo])
	}
	l := refTree(parts, lo, size/2)
	if lo+size/2 < len(parts) {
		r := refTree(parts, lo+size/2, size/2)
		for i := range l {
			l[i] += r[i]
		}
	}
	return l
}

func randParts(rng *rand.Rand, nc, width int) [][]float64 {
	parts := make([][]float64, nc)
	for c := range parts {
		parts[c] = make([]float64, width)
		for i := range parts[c] {
			parts[c][i] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(12)-6))
		}
	}
	return parts
}

// TestTreeSplits: for every nc up to 40 and every split of the chunks into up to four
// contiguous ranges, the frontiers pushed range by range and combined give bitwise the
// recursive definition's root (refTree), and Tree.Nodes' positions are Frontier's. The
// sequential running sum differs from it in rounding (checked once: the test can see an
// order change).
func TestTreeSplits(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const width = 3
	sawOrder := false
	for nc := 1; nc <= 40; nc++ {
		parts := randParts(rng, nc, width)
		want := refTree(parts, 0, RootSize(nc))
		seq := make([]float64, width)
		for _, p := range parts {
			for i, v := range p {
				seq[i] += v
			}
		}
		if !slices.Equal(seq, want) {
			sawOrder = true
		}
		for trial := 0; trial < 30; trial++ {
			k := 1 + rng.IntN(4)
			cuts := []int{0, nc}
			for i := 1; i < k; i++ {
				cuts = append(cuts, rng.IntN(nc+1))
			}
			slices.Sort(cuts)
			var all []Node
			for r := 0; r+1 < len(cuts); r++ {
				c0, c1 := cuts[r], cuts[r+1]
				var tr Tree
				tr.Reset(width, c0, c1, nc, nil)
				for c := c0; c < c1; c++ {
					tr.Push(parts[c])
				}
				nodes := tr.Nodes()
				fr := Frontier(c0, c1, nc)
				if len(nodes) != len(fr) {
					t.Fatalf("nc %d range [%d,%d): %d nodes, Frontier %d", nc, c0, c1, len(nodes), len(fr))
				}
				for i := range fr {
					if nodes[i].Lo != fr[i].Lo || nodes[i].Size != fr[i].Size {
						t.Fatalf("nc %d range [%d,%d): node %d at (%d,%d), Frontier (%d,%d)", nc, c0, c1, i,
							nodes[i].Lo, nodes[i].Size, fr[i].Lo, fr[i].Size)
					}
					all = append(all, Node{Lo: nodes[i].Lo, Size: nodes[i].Size, V: slices.Clone(nodes[i].V)})
				}
			}
			got := make([]float64, width)
			Combine(got, all, nc, nil)
			if !slices.Equal(got, want) {
				t.Fatalf("nc %d cuts %v: %v, want %v", nc, cuts, got, want)
			}
		}
	}
	if !sawOrder {
		t.Error("the running sum equalled the tree everywhere: the test cannot see the order")
	}
}

// TestMulTTreeMatchesMulT: a dense X split into row blocks on chunk boundaries, each
// block's MulTTree combined, is bitwise the whole X's MulT (itself checked against float64
// references elsewhere), for 1 and 3 threads.
func TestMulTTreeMatchesMulT(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	rows, cols, k := 7*ChunkRows+300, 9, 4
	x := make([]float64, rows*cols)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	a := make([]float64, rows*k)
	for i := range a {
		a[i] = rng.NormFloat64()
	}
	whole := NewDense64(x, rows, cols)
	want := make([]float64, cols*k)
	whole.MulT(want, a, k)
	nc := nChunks(rows)
	for _, threads := range []int{1, 3} {
		for _, cuts := range [][]int{{0, nc}, {0, 3, nc}, {0, 1, 5, nc}, {0, 2, 4, 6, nc}} {
			var all []Node
			for r := 0; r+1 < len(cuts); r++ {
				lo, hi := cuts[r]*ChunkRows, min(rows, cuts[r+1]*ChunkRows)
				m := NewDense64(x[lo*cols:hi*cols], hi-lo, cols)
				m.(Threaded).SetThreads(threads)
				var tr Tree
				tr.Reset(cols*k, cuts[r], cuts[r+1], nc, nil)
				m.(TreeMulT).MulTTree(&tr, a[lo*k:hi*k], k)
				for _, n := range tr.Nodes() {
					all = append(all, Node{Lo: n.Lo, Size: n.Size, V: slices.Clone(n.V)})
				}
			}
			got := make([]float64, cols*k)
			Combine(got, all, nc, nil)
			if !slices.Equal(got, want) {
				t.Errorf("threads %d cuts %v: differs from MulT", threads, cuts)
			}
		}
	}
}
