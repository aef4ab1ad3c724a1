package kern

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestAxpy: y + a x against the plain loop (the definition), to rounding (one FMA per
// element can differ from a multiply and an add by half an ulp of the product), for every
// length 0..70 (the kernel's blocks of 16 and the tail), with x longer than y.
func TestAxpy(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for n := 0; n <= 70; n++ {
		x, y := randVec(rng, n+3), randVec(rng, n)
		a := rng.NormFloat64()
		want := make([]float64, n)
		for i := range want {
			want[i] = y[i] + a*x[i]
		}
		Axpy(y, a, x)
		for i := range want {
			if math.Abs(y[i]-want[i]) > 1e-15*(math.Abs(want[i])+math.Abs(a*x[i])) {
				t.Fatalf("n=%d: y[%d] = %v, want %v", n, i, y[i], want[i])
			}
		}
	}
}
