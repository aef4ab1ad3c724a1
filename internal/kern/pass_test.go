package kern

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// TestPassEqualsMulAndMulT: Pass must reproduce Mul's rows and MulT's sums bitwise (the
// reference is the same matrix's own Mul and MulT, themselves checked against naive
// products in kern_test.go), for dense and CSR storage in both precisions, for any thread
// count, with k or kt zero, and with rows that are not a multiple of ChunkRows. The CSR
// cases include one whose MulT chunk spans several ChunkRows pieces.
func TestPassEqualsMulAndMulT(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	type mk struct {
		name string
		new  func(x []float64, rows, cols int) Matrix
	}
	f32 := func(x []float64) []float32 {
		v := make([]float32, len(x))
		for i, e := range x {
			v[i] = float32(e)
		}
		return v
	}
	makers := []mk{
		{"dense64", func(x []float64, r, c int) Matrix { return NewDense64(x, r, c) }},
		{"dense32", func(x []float64, r, c int) Matrix { return NewDense32(f32(x), r, c) }},
		{"csr64", func(x []float64, r, c int) Matrix { return NewCSR64(x, r, c) }},
		{"csr32", func(x []float64, r, c int) Matrix { return NewCSR32(f32(x), r, c) }},
	}
	for _, sz := range []struct {
		rows, cols, k, kt int
		density           float64
	}{
		{5000, 17, 3, 4, 0.3}, {3*ChunkRows + 5, 9, 1, 1, 0.3}, {700, 6, 0, 2, 0.3}, {2500, 5, 2, 0, 0.3},
		{20000, 3, 2, 3, 0.002}, // CSR: MulT chunks of several ChunkRows (csrMinChunkNNZPerCol)
	} {
		x := make([]float64, sz.rows*sz.cols)
		for i := range x {
			if rng.Float64() < sz.density {
				x[i] = rng.NormFloat64()
			}
		}
		B := randVec(rng, sz.cols*sz.k)
		A := randVec(rng, sz.rows*sz.kt)
		for _, m := range makers {
			for _, threads := range []int{1, 2, 3} {
				name := fmt.Sprintf("%s/%dx%d/k%d/kt%d/threads%d", m.name, sz.rows, sz.cols, sz.k, sz.kt, threads)
				X := m.new(x, sz.rows, sz.cols)
				if c, ok := X.(*csr[float64]); ok && sz.density < 0.01 && c.tChunk <= ChunkRows {
					t.Fatalf("%s: tChunk %d, the case needs MulT chunks longer than ChunkRows", name, c.tChunk)
				}
				X.(Threaded).SetThreads(threads)
				wantXB := make([]float64, sz.rows*sz.k)
				X.Mul(wantXB, B, sz.k)
				wantT := make([]float64, sz.cols*sz.kt)
				X.MulT(wantT, A, sz.kt)
				gotXB := make([]float64, sz.rows*sz.k)
				gotT := make([]float64, sz.cols*sz.kt)
				for i := range gotT {
					gotT[i] = 99 // must be overwritten
				}
				var mu sync.Mutex
				seen := make([]int, (sz.rows+ChunkRows-1)/ChunkRows)
				X.Pass(gotT, B, sz.k, sz.kt, func(c, lo, hi int, xb, a []float64) {
					if lo != c*ChunkRows || hi != min(sz.rows, lo+ChunkRows) || len(xb) != (hi-lo)*sz.k || len(a) != (hi-lo)*sz.kt {
						t.Errorf("%s: chunk %d = [%d,%d) with len(xb)=%d len(a)=%d", name, c, lo, hi, len(xb), len(a))
						return
					}
					copy(gotXB[lo*sz.k:hi*sz.k], xb)
					copy(a, A[lo*sz.kt:hi*sz.kt])
					mu.Lock()
					seen[c]++
					mu.Unlock()
				})
				for c, s := range seen {
					if s != 1 {
						t.Fatalf("%s: chunk %d visited %d times", name, c, s)
					}
				}
				for i := range wantXB {
					if gotXB[i] != wantXB[i] {
						t.Fatalf("%s: xb[%d] = %v, Mul gives %v", name, i, gotXB[i], wantXB[i])
					}
				}
				for i := range wantT {
					if gotT[i] != wantT[i] {
						t.Fatalf("%s: dst[%d] = %v, MulT gives %v", name, i, gotT[i], wantT[i])
					}
				}
			}
		}
	}
}
