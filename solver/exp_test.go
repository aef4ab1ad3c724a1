package solver

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
)

func planted(n, nx, ny int, noise float64, seed uint64, scale float64) (Matrix, Matrix, []float64) {
	r := rand.New(rand.NewPCG(seed, 1))
	X := Matrix{Rows: n, Cols: nx, F64: make([]float64, n*nx)}
	for i := range X.F64 {
		X.F64[i] = r.NormFloat64() * scale
	}
	U := make([]float64, nx*ny)
	for i := range U {
		if r.Float64() < 0.2 {
			U[i] = r.NormFloat64() / scale
		}
	}
	Y := Matrix{Rows: n, Cols: ny, F64: make([]float64, n*ny)}
	for i := 0; i < n; i++ {
		for j := 0; j < ny; j++ {
			w := 0.1
			for k := 0; k < nx; k++ {
				w += X.F64[i*nx+k] * U[k*ny+j]
			}
			Y.F64[i*ny+j] = math.Max(0, w) + noise*r.NormFloat64()
		}
	}
	return X, Y, U
}

func TestExp(t *testing.T) {
	if os.Getenv("EXP") == "" {
		t.Skip()
	}
	n, _ := strconv.Atoi(os.Getenv("N"))
	nx, _ := strconv.Atoi(os.Getenv("NX"))
	ny, _ := strconv.Atoi(os.Getenv("NY"))
	sc, _ := strconv.ParseFloat(os.Getenv("SCALE"), 64)
	X, Y, _ := planted(n, nx, ny, 0.1, 1, sc)
	lam := 0.01
	ref, _ := Fit(context.Background(), X, Y, lam, &Settings{EpsAbs: 1e-12, EpsRel: 1e-11, FTol: 1e-15, MaxIter: 5000})
	fmt.Printf("ref F=%.12g iters=%d ccp=%d status=%v\n", ref.F, ref.Iters, ref.CCPIters, ref.Status)
	if os.Getenv("DEF") != "" {
		var hit3, hit6 int
		rec := &recFn{f: func(p Progress) {
			if hit3 == 0 && p.F <= ref.F*(1+1e-3) {
				hit3 = p.Iter
			}
			if hit6 == 0 && p.F <= ref.F*(1+1e-6) {
				hit6 = p.Iter
			}
		}}
		res, _ := Fit(context.Background(), X, Y, lam, &Settings{Recorder: rec})
		fmt.Printf("default: F rel=%.2e iters=%d ccp=%d to1e-3=%d to1e-6=%d status=%v rho=%v time=%v ref time=%v\n", (res.F-ref.F)/ref.F, res.Iters, res.CCPIters, hit3, hit6, res.Status, res.Rho, res.Runtime, ref.Runtime)
		return
	}
	for _, rho := range []float64{0.25, 1, 4} {
		for _, plain := range []bool{false, true} {
			for _, relax := range []float64{1, 1.6} {
				for _, fixed := range []bool{false, true} {
					var hit3, hit6 int
					rec := &recFn{f: func(p Progress) {
						if hit3 == 0 && p.F <= ref.F*(1+1e-3) {
							hit3 = p.Iter
						}
						if hit6 == 0 && p.F <= ref.F*(1+1e-6) {
							hit6 = p.Iter
						}
					}}
					res, _ := Fit(context.Background(), X, Y, lam, &Settings{Rho: rho, PlainConsensus: plain, Relax: relax, FixedRho: fixed, Recorder: rec, MaxIter: 3000})
					fmt.Printf("rho=%g plain=%v relax=%g fixed=%v: F rel=%.2e iters=%d ccp=%d to1e-3=%d to1e-6=%d status=%v rho=%.3g\n", rho, plain, relax, fixed, (res.F-ref.F)/ref.F, res.Iters, res.CCPIters, hit3, hit6, res.Status, res.Rho[0])
				}
			}
		}
	}
}

type recFn struct{ f func(Progress) }

func (r *recFn) Init() error { return nil }
func (r *recFn) Record(p Progress) error {
	r.f(p)
	return nil
}
