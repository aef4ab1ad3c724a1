package fit

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"relutrim/solver"
)

// TestEngineOffset: the Engine passes Settings.Offset to every solve: a solve's F equals
// the objective with the offset recomputed row by row from the returned U, b and S (and
// differs from the fit without it); LambdaMax is that of Y - S (computed independently by
// LambdaMax on Y - S), at which the solve returns U = 0 and below which it does not; the
// sparsity search hits its target; a malformed offset is an InputError naming Offset.
func TestEngineOffset(t *testing.T) {
	const n, nx, ny = 600, 20, 3
	X, Y := planted(n, nx, ny, 0.05, 21)
	r := rand.New(rand.NewPCG(4, 4))
	S := solver.Matrix{Rows: n, Cols: ny, F64: make([]float64, n*ny)}
	ys := solver.Matrix{Rows: n, Cols: ny, F64: make([]float64, n*ny)}
	for i := range S.F64 {
		S.F64[i] = r.NormFloat64()
		ys.F64[i] = Y.F64[i] - S.F64[i]
	}
	st := &solver.Settings{Threads: 2, Offset: S}
	e, err := NewEngine(X, Y, st)
	if err != nil {
		t.Fatal(err)
	}
	lmax, _ := e.LambdaMax()
	want, _ := LambdaMax(X, ys, solver.ReLU, false)
	if math.Abs(lmax-want) > 1e-12*want {
		t.Errorf("LambdaMax %.15g, of Y - S %.15g", lmax, want)
	}
	at, err := e.Solve(bg, lmax, nil)
	if err != nil {
		t.Fatal(err)
	}
	if nnz(at.U) != 0 {
		t.Errorf("at LambdaMax %d nonzeros, want 0", nnz(at.U))
	}
	lam := lmax / 20
	p, err := e.Solve(bg, lam, nil)
	if err != nil {
		t.Fatal(err)
	}
	if nnz(p.U) == 0 {
		t.Errorf("at LambdaMax/20 no nonzeros")
	}
	f := 0.0
	for i := 0; i < n; i++ {
		for j := 0; j < ny; j++ {
			w := p.B[j] + S.F64[i*ny+j]
			for k := 0; k < nx; k++ {
				w += X.F64[i*nx+k] * p.U[k*ny+j]
			}
			f += (math.Max(0, w) - Y.F64[i*ny+j]) * (math.Max(0, w) - Y.F64[i*ny+j])
		}
	}
	f /= 2 * n
	for _, u := range p.U {
		f += lam * math.Abs(u)
	}
	if math.Abs(p.F-f) > 1e-10*f {
		t.Errorf("Point.F %.15g, recomputed with the offset %.15g", p.F, f)
	}
	plain, err := NewEngine(X, Y, &solver.Settings{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	q, err := plain.Solve(bg, lam, nil)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(q.F-p.F) < 1e-3*p.F {
		t.Errorf("F with the offset %.10g equals F without %.10g: the offset was not passed", p.F, q.F)
	}
	pt, _, err := e.ForSparsity(bg, 0.8, 0.05)
	if err != nil {
		t.Fatal(err)
	}
	if sp := 1 - float64(nnz(pt.U))/float64(nx*ny); math.Abs(sp-0.8) > 0.05 {
		t.Errorf("ForSparsity(0.8) reached %.3f", sp)
	}
	bad := S
	bad.Rows = n - 1
	_, err = NewEngine(X, Y, &solver.Settings{Offset: bad})
	var ie *solver.InputError
	if !errors.As(err, &ie) || ie.Input != "Offset" {
		t.Errorf("malformed offset: %v, want an InputError on Offset", err)
	}
}

func nnz(u []float64) int {
	c := 0
	for _, v := range u {
		if v != 0 {
			c++
		}
	}
	return c
}
