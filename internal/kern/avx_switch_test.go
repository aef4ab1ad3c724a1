//go:build amd64 && !openblas

package kern

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"golang.org/x/sys/cpu"
)

// withAVX runs f with the AVX2/FMA micro-kernels switched on or off. haveAVX is read at
// every product, so flipping it here selects the kernel in this one test binary (setting
// RELUTRIM_NOAVX=1 instead acts only at package init, which go test's cache does not see).
func withAVX(on bool, f func()) {
	old := haveAVX
	haveAVX = on
	defer func() { haveAVX = old }()
	f()
}

// TestAVXAgainstGeneric computes Mul, MulT, Pass, Gram and Axpy with the micro-kernels off
// (gonum's Dgemv path, what CPUs without AVX2/FMA run) and on, for float64 and float32 X,
// and checks both against the naive float64 sums of kern_test.go (the independent
// reference), within tol64 times |X| |B|. The two paths must also differ in rounding on
// at least one AVX-eligible product (k >= 4): FMA and another summation order change
// the last bits, so bitwise equal results everywhere would mean that the switch did not
// switch.
func TestAVXAgainstGeneric(t *testing.T) {
	if !(cpu.X86.HasAVX2 && cpu.X86.HasFMA) {
		t.Skip("SKIPPED: this CPU has no AVX2/FMA, so only the generic kernels can run")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	differ := 0
	for _, sh := range []struct{ rows, cols, k int }{
		{7, 3, 1}, {1025, 17, 3}, {2500, 13, 4}, {3001, 50, 10}, {2049, 33, 13}, {1500, 101, 25}, {600, 64, 300},
	} {
		for _, is32 := range []bool{false, true} {
			tm := randMat(rng, sh.rows, sh.cols, is32)
			name := fmt.Sprintf("%s/%dx%d/k=%d", tm.label, sh.rows, sh.cols, sh.k)
			B := randVec(rng, sh.cols*sh.k)
			A := randVec(rng, sh.rows*sh.k)
			want, scale := naiveMul(tm.x, sh.rows, sh.cols, B, sh.k)
			wantT, scaleT := naiveMulT(tm.x, sh.rows, sh.cols, A, sh.k)
			var res [2][4][]float64 // [off, on][Mul, MulT, Pass's X B, Pass's X^T A]
			for i, on := range []bool{false, true} {
				withAVX(on, func() {
					mul := make([]float64, sh.rows*sh.k)
					tm.m.Mul(mul, B, sh.k)
					mulT := make([]float64, sh.cols*sh.k)
					tm.m.MulT(mulT, A, sh.k)
					xb := make([]float64, sh.rows*sh.k)
					passT := make([]float64, sh.cols*sh.k)
					tm.m.Pass(passT, B, sh.k, sh.k, func(c, lo, hi int, chunk, a []float64) {
						copy(xb[lo*sh.k:hi*sh.k], chunk)
						copy(a, A[lo*sh.k:hi*sh.k])
					})
					res[i] = [4][]float64{mul, mulT, xb, passT}
				})
				what := fmt.Sprintf("%s (AVX %v)", name, on)
				checkClose(t, "Mul "+what, res[i][0], want, scale, tol64)
				checkClose(t, "MulT "+what, res[i][1], wantT, scaleT, tol64)
				checkClose(t, "Pass X B "+what, res[i][2], want, scale, tol64)
				checkClose(t, "Pass X^T A "+what, res[i][3], wantT, scaleT, tol64)
			}
			for p := range res[0] {
				if sh.k >= 4 && bitsEqual(res[0][p], res[1][p]) >= 0 {
					differ++
				}
			}
		}
	}
	if differ == 0 {
		t.Errorf("the AVX and generic paths gave bitwise equal results on every product: is haveAVX still selecting the kernel?")
	}

	// Gram and Axpy, which the Newton solver's per-output metrics run on.
	for _, sh := range []struct{ rows, m int }{{5, 3}, {300, 4}, {700, 17}, {1024, 40}} {
		Bm := randVec(rng, sh.rows*sh.m)
		want, scale := naiveMulT(Bm, sh.rows, sh.m, Bm, sh.m) // B^T B
		for _, on := range []bool{false, true} {
			got := make([]float64, sh.m*sh.m)
			withAVX(on, func() { Gram(got, Bm, sh.rows, sh.m, &GramScratch{}) })
			checkClose(t, fmt.Sprintf("Gram %dx%d (AVX %v)", sh.rows, sh.m, on), got, want, scale, tol64)
		}
	}
	for _, n := range []int{3, 16, 37, 1000} {
		x, y0 := randVec(rng, n), randVec(rng, n)
		const a = -1.7
		for _, on := range []bool{false, true} {
			y := append([]float64(nil), y0...)
			withAVX(on, func() { Axpy(y, a, x) })
			for i := range y {
				want := y0[i] + a*x[i]
				if d := math.Abs(y[i] - want); d > 1e-15*(math.Abs(y0[i])+math.Abs(a*x[i])) {
					t.Errorf("Axpy n=%d (AVX %v): y[%d] = %v, want %v", n, on, i, y[i], want)
				}
			}
		}
	}
}
