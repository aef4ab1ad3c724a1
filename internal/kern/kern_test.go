package kern

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// Tolerances, relative to sum_j |x_ij b_jc| (the natural scale of the rounding error
// of a dot product). The pure-Go kernels compute in float64 for both precisions of X
// (float32 values convert exactly), so their error is O(cols * 2^-53) of that scale.
// The openblas backend uses sgemm for float32 X (float32 factor copies, float32
// accumulation), so it gets a float32-sized tolerance there.
const tol64 = 1e-12

func tolFor(is32 bool) float64 {
	if is32 && Backend == "openblas" {
		return 1e-4
	}
	return tol64
}

type testMat struct {
	m     Matrix
	x     []float64 // exact float64 values of X
	is32  bool
	label string
}

func randMat(rng *rand.Rand, rows, cols int, is32 bool) testMat {
	x := make([]float64, rows*cols)
	if is32 {
		x32 := make([]float32, rows*cols)
		for i := range x32 {
			x32[i] = float32(rng.NormFloat64())
			x[i] = float64(x32[i])
		}
		return testMat{NewDense32(x32, rows, cols), x, true, "f32"}
	}
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	return testMat{NewDense64(x, rows, cols), x, false, "f64"}
}

func randVec(rng *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	return v
}

// naiveMul returns X*B and the error scale |X|*|B|.
func naiveMul(x []float64, rows, cols int, B []float64, k int) (want, scale []float64) {
	want = make([]float64, rows*k)
	scale = make([]float64, rows*k)
	for i := range rows {
		for c := range k {
			var s, a float64
			for j := range cols {
				p := x[i*cols+j] * B[j*k+c]
				s += p
				a += math.Abs(p)
			}
			want[i*k+c], scale[i*k+c] = s, a
		}
	}
	return
}

// naiveMulT returns X^T*A and the error scale |X|^T*|A|.
func naiveMulT(x []float64, rows, cols int, A []float64, k int) (want, scale []float64) {
	want = make([]float64, cols*k)
	scale = make([]float64, cols*k)
	for j := range cols {
		for c := range k {
			var s, a float64
			for i := range rows {
				p := x[i*cols+j] * A[i*k+c]
				s += p
				a += math.Abs(p)
			}
			want[j*k+c], scale[j*k+c] = s, a
		}
	}
	return
}

func checkClose(t *testing.T, what string, got, want, scale []float64, tol float64) {
	t.Helper()
	bad := 0
	for i := range want {
		if d := math.Abs(got[i] - want[i]); !(d <= tol*scale[i]+1e-300) {
			if bad < 5 {
				t.Errorf("%s: [%d] got %v want %v (|diff| %.3g > %.3g)", what, i, got[i], want[i], d, tol*scale[i])
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d entries out of tolerance", what, bad, len(want))
	}
}

var shapes = []struct{ rows, cols, k int }{
	{1, 1, 1}, {3, 5, 1}, {7, 1, 3}, {1023, 13, 1}, {1025, 17, 2}, {2500, 1, 1},
	{2500, 1, 7}, {3001, 50, 1}, {3001, 50, 4}, {3001, 50, 10}, {2049, 33, 5},
	{600, 100, 37}, {4100, 9, 300}, {5, 784, 3}, {1500, 101, 9},
}

func TestMulAgainstNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, sh := range shapes {
		for _, is32 := range []bool{false, true} {
			tm := randMat(rng, sh.rows, sh.cols, is32)
			name := fmt.Sprintf("%s/%dx%d/k=%d", tm.label, sh.rows, sh.cols, sh.k)
			B := randVec(rng, sh.cols*sh.k)
			A := randVec(rng, sh.rows*sh.k)
			for _, th := range []int{1, 2} {
				tm.m.(Threaded).SetThreads(th)
				got := randVec(rng, sh.rows*sh.k) // garbage in dst must be overwritten
				tm.m.Mul(got, B, sh.k)
				want, scale := naiveMul(tm.x, sh.rows, sh.cols, B, sh.k)
				checkClose(t, "Mul "+name, got, want, scale, tolFor(is32))

				gotT := randVec(rng, sh.cols*sh.k)
				tm.m.MulT(gotT, A, sh.k)
				wantT, scaleT := naiveMulT(tm.x, sh.rows, sh.cols, A, sh.k)
				checkClose(t, "MulT "+name, gotT, wantT, scaleT, tolFor(is32))
			}
		}
	}
}

func bitsEqual(a, b []float64) int {
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			return i
		}
	}
	return -1
}

// TestThreadDeterminism checks that Mul and MulT give bitwise identical results for
// 1, 2 and 3 worker goroutines (and across repeated calls reusing scratch).
func TestThreadDeterminism(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, sh := range []struct{ rows, cols, k int }{
		{10*ChunkRows + 77, 31, 1}, {7*ChunkRows + 5, 20, 6}, {5 * ChunkRows, 64, 10}, {3*ChunkRows + 1, 7, 33},
	} {
		for _, is32 := range []bool{false, true} {
			tm := randMat(rng, sh.rows, sh.cols, is32)
			B := randVec(rng, sh.cols*sh.k)
			A := randVec(rng, sh.rows*sh.k)
			var ref, refT []float64
			for rep, th := range []int{1, 2, 3, 2, 1, 3} {
				tm.m.(Threaded).SetThreads(th)
				got := make([]float64, sh.rows*sh.k)
				gotT := make([]float64, sh.cols*sh.k)
				tm.m.Mul(got, B, sh.k)
				tm.m.MulT(gotT, A, sh.k)
				if rep == 0 {
					ref, refT = got, gotT
					continue
				}
				if i := bitsEqual(got, ref); i >= 0 {
					t.Errorf("%s %v Mul threads=%d differs from threads=1 at %d: %v vs %v", tm.label, sh, th, i, got[i], ref[i])
				}
				if i := bitsEqual(gotT, refT); i >= 0 {
					t.Errorf("%s %v MulT threads=%d differs from threads=1 at %d: %v vs %v", tm.label, sh, th, i, gotT[i], refT[i])
				}
			}
		}
	}
}

func TestRow(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, is32 := range []bool{false, true} {
		tm := randMat(rng, 9, 6, is32)
		buf := make([]float64, 10)
		r := tm.m.Row(buf, 4)
		if len(r) != 6 {
			t.Fatalf("Row len %d", len(r))
		}
		for j, v := range r {
			if v != tm.x[4*6+j] {
				t.Errorf("%s Row(4)[%d] = %v want %v", tm.label, j, v, tm.x[4*6+j])
			}
		}
		if r, c := tm.m.Dims(); r != 9 || c != 6 {
			t.Errorf("Dims = %d,%d", r, c)
		}
	}
}

func mustPanic(t *testing.T, name string, f func()) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			t.Errorf("%s: no panic", name)
		} else if s, ok := r.(string); !ok || !strings.HasPrefix(s, "kern: ") {
			t.Errorf("%s: panic %v, want a \"kern: ...\" string", name, r)
		}
	}()
	f()
}

func TestPanics(t *testing.T) {
	m := NewDense64(make([]float64, 12), 4, 3)
	mustPanic(t, "NewDense64 size", func() { NewDense64(make([]float64, 11), 4, 3) })
	mustPanic(t, "NewDense32 size", func() { NewDense32(make([]float32, 13), 4, 3) })
	mustPanic(t, "Mul short B", func() { m.Mul(make([]float64, 8), make([]float64, 5), 2) })
	mustPanic(t, "Mul short dst", func() { m.Mul(make([]float64, 7), make([]float64, 6), 2) })
	mustPanic(t, "MulT short A", func() { m.MulT(make([]float64, 6), make([]float64, 7), 2) })
	mustPanic(t, "MulT short dst", func() { m.MulT(make([]float64, 5), make([]float64, 8), 2) })
	mustPanic(t, "Row range", func() { m.Row(make([]float64, 3), 4) })
	mustPanic(t, "Row buf", func() { m.Row(make([]float64, 2), 0) })
}

func TestBackendInfo(t *testing.T) {
	info := BackendInfo()
	t.Logf("Backend=%s info=%q warning=%q", Backend, info, BackendWarning())
	switch Backend {
	case "purego":
		if info != "pure-go" || BackendWarning() != "" {
			t.Errorf("purego: info %q warning %q", info, BackendWarning())
		}
	case "openblas":
		if !strings.HasPrefix(info, "openblas") {
			t.Errorf("openblas: info %q", info)
		}
	default:
		t.Errorf("unknown Backend %q", Backend)
	}
}

// TestNoAllocs checks that steady-state calls do not allocate scratch buffers (a few
// small allocations for goroutine start-up are tolerated in the parallel case).
func TestNoAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	tm := randMat(rng, 4*ChunkRows+9, 20, true)
	B, A := randVec(rng, 20*5), randVec(rng, tm.m.(*dense[float32]).rows*5)
	dst, dstT := make([]float64, len(A)), make([]float64, len(B))
	tm.m.(Threaded).SetThreads(1)
	tm.m.Mul(dst, B, 5)
	tm.m.MulT(dstT, A, 5)
	if n := testing.AllocsPerRun(5, func() { tm.m.Mul(dst, B, 5); tm.m.MulT(dstT, A, 5) }); n > 0 {
		t.Errorf("threads=1: %v allocations per Mul+MulT", n)
	}
	tm.m.(Threaded).SetThreads(2)
	tm.m.Mul(dst, B, 5)
	tm.m.MulT(dstT, A, 5)
	if n := testing.AllocsPerRun(5, func() { tm.m.Mul(dst, B, 5); tm.m.MulT(dstT, A, 5) }); n > 8 {
		t.Errorf("threads=2: %v allocations per Mul+MulT", n)
	}
}
