package solver

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// TestMajorizerMatchesSurrogate: the hot-loop majoriser (newton.go) against the reference
// pieces of prox.go (surrogateZ + surrogateValue), and its r against a central finite
// difference of the value (r = g'(w)/2 away from the switch point).
func TestMajorizerMatchesSurrogate(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for it := 0; it < 20000; it++ {
		y := 2 * r.NormFloat64()
		w := 3 * r.NormFloat64()
		upper := r.IntN(2) == 0
		id := r.IntN(4) == 0
		v, rr := majorizer(w, y, upper, id)
		z := math.Inf(-1)
		if !id {
			z = surrogateZ(y, upper)
		}
		want := surrogateValue(w, z, y)
		if math.Abs(v-want) > 1e-12*(1+want) {
			t.Fatalf("w=%g y=%g upper=%v id=%v: value %g, surrogateValue %g", w, y, upper, id, v, want)
		}
		if math.Abs(w-z) < 1e-4 {
			continue // the kink: one-sided derivatives differ
		}
		const h = 1e-6
		fd := (surrogateValue(w+h, z, y) - surrogateValue(w-h, z, y)) / (2 * h) / 2
		if math.Abs(rr-fd) > 1e-5*(1+math.Abs(fd)) {
			t.Fatalf("w=%g y=%g upper=%v id=%v: r %g, finite difference %g", w, y, upper, id, rr, fd)
		}
		if curvedAt(w, y, upper, id) != (w > z) {
			t.Fatalf("w=%g y=%g upper=%v id=%v: curvedAt %v, w > z = %v", w, y, upper, id, curvedAt(w, y, upper, id), w > z)
		}
	}
}

// TestCDLassoMatchesISTA: the coordinate descent of the Newton model against proximal
// gradient descent (ISTA, an independent method) run to convergence on random positive
// definite H; and the closed form for diagonal H (soft thresholding).
func TestCDLassoMatchesISTA(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for it := 0; it < 50; it++ {
		m := 1 + r.IntN(12)
		B := make([]float64, 2*m*m)
		for i := range B {
			B[i] = r.NormFloat64()
		}
		H := make([]float64, m*m) // B^T B / (2m) + 0.1 I: positive definite
		for a := 0; a < m; a++ {
			for b := 0; b < m; b++ {
				for k := 0; k < 2*m; k++ {
					H[a*m+b] += B[k*m+a] * B[k*m+b] / float64(2*m)
				}
			}
			H[a*m+a] += 0.1
		}
		q0, v0, l := make([]float64, m), make([]float64, m), make([]float64, m)
		for a := range q0 {
			q0[a], v0[a], l[a] = r.NormFloat64(), r.NormFloat64(), 0.5*r.Float64()
		}
		if it%3 == 0 {
			l[m-1] = 0 // an unpenalised coordinate, like the bias
		}
		v, q := make([]float64, m), make([]float64, m)
		cdLasso(H, m, q0, v0, l, v, q, 100000, 1e-13)
		// ISTA: x <- S_{l/L}(x - grad/L), grad = q0 + H (x - v0), L >= lambda_max(H).
		L := 0.0
		for a := 0; a < m; a++ {
			s := 0.0
			for b := 0; b < m; b++ {
				s += math.Abs(H[a*m+b])
			}
			L = math.Max(L, s)
		}
		x := append([]float64(nil), v0...)
		for k := 0; k < 200000; k++ {
			nx := make([]float64, m)
			for a := 0; a < m; a++ {
				g := q0[a]
				for b := 0; b < m; b++ {
					g += H[a*m+b] * (x[b] - v0[b])
				}
				nx[a] = softThreshold(x[a]-g/L, l[a]/L)
			}
			x = nx
		}
		obj := func(x []float64) float64 {
			f := 0.0
			for a := 0; a < m; a++ {
				f += q0[a]*(x[a]-v0[a]) + l[a]*math.Abs(x[a])
				for b := 0; b < m; b++ {
					f += 0.5 * (x[a] - v0[a]) * H[a*m+b] * (x[b] - v0[b])
				}
			}
			return f
		}
		if fc, fi := obj(v), obj(x); fc > fi+1e-9*(1+math.Abs(fi)) {
			t.Fatalf("case %d (m=%d): CD objective %.12g > ISTA %.12g", it, m, fc, fi)
		}
		for a := range v {
			if math.Abs(v[a]-x[a]) > 1e-5 {
				t.Fatalf("case %d (m=%d): coordinate %d CD %.9g ISTA %.9g", it, m, a, v[a], x[a])
			}
		}
	}
	// Diagonal H: v_a = S_{l/h}(v0 - q0/h), exactly.
	H := []float64{2, 0, 0, 0.5}
	q0, v0, l := []float64{3, -0.1}, []float64{0, 1}, []float64{1, 0.2}
	v, q := make([]float64, 2), make([]float64, 2)
	cdLasso(H, 2, q0, v0, l, v, q, 10, 1e-13)
	want := []float64{softThreshold(0-3.0/2, 1.0/2), softThreshold(1+0.1/0.5, 0.2/0.5)}
	if v[0] != want[0] || math.Abs(v[1]-want[1]) > 1e-15 {
		t.Fatalf("diagonal H: got %v, want %v", v, want)
	}
}

// TestSampleGramMatchesDirect: the Gram of K's columns over chosen sample rows, built from
// X's raw non-zeros and mapped to standardised coordinates (rawGram + toK), against the
// Gram of explicitly standardised rows; dense and sparse X, with and without a bias.
func TestSampleGramMatchesDirect(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, bias := range []bool{true, false} {
		for _, dens := range []float64{1, 0.2} {
			n, nx := 2*gramBlockRows+300, 7 // dense: two full blocks and a partial one
			X := Matrix{Rows: n, Cols: nx, F64: make([]float64, n*nx)}
			for i := range X.F64 {
				if r.Float64() < dens {
					X.F64[i] = 3*r.NormFloat64() + 1
				}
			}
			g, err := newDesign(X, bias, 2, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			smp := newSample(g, 2, hessianRows)
			if smp.dense() != (dens == 1) {
				t.Fatalf("density %v: sample dense() = %v", dens, smp.dense())
			}
			ws := []int{0, 2, 3, 6}
			if bias {
				ws = append(ws, nx)
			}
			m := len(ws)
			use := func(r int) bool { return r%3 != 1 }
			pos := make([]int, nx)
			for k := range pos {
				pos[k] = -1
			}
			H := make([]float64, m*m)
			if smp.dense() { // rows gathered by blocks (the path of dense samples)
				smp.kGram(ws, 0, n, use, H, &gramScratch{})
				for i := range H {
					H[i] /= float64(n)
				}
			} else { // raw non-zeros mapped to K (the path of sparse samples)
				A, s := make([]float64, m*m), make([]float64, m)
				c := smp.rawGram(ws, pos, 0, n, use, A, s, nil, nil)
				smp.toK(ws, A, s, c, H)
			}
			want := make([]float64, m*m)
			for i := 0; i < n; i++ {
				if !use(i) {
					continue
				}
				kr := make([]float64, m)
				for a, k := range ws {
					if k == nx {
						kr[a] = 1
					} else {
						kr[a] = (float64(float32(X.F64[i*nx+k])) - g.mu[k]) / g.d[k] // the sample holds float32 rows
					}
				}
				for a := range kr {
					for b := range kr {
						want[a*m+b] += kr[a] * kr[b] / float64(n)
					}
				}
			}
			for i := range H {
				if math.Abs(H[i]-want[i]) > 1e-12*(1+math.Abs(want[i])) {
					t.Fatalf("bias=%v density=%v: entry %d: %.15g, direct %.15g", bias, dens, i, H[i], want[i])
				}
			}
			p := g.p
			G, _ := smp.sharedGram(p, 2)
			// The complement used when most rows are curved: G minus the other rows' Gram.
			notUse := func(r int) bool { return !use(r) }
			Hn := make([]float64, m*m)
			if smp.dense() {
				smp.kGram(ws, 0, n, notUse, Hn, &gramScratch{})
				for i := range Hn {
					Hn[i] /= float64(n)
				}
			} else {
				A, s := make([]float64, m*m), make([]float64, m)
				cn := smp.rawGram(ws, pos, 0, n, notUse, A, s, nil, nil)
				smp.toK(ws, A, s, cn, Hn)
			}
			for a, ka := range ws {
				for b, kb := range ws {
					if v := G[ka*p+kb] - Hn[a*m+b]; math.Abs(v-want[a*m+b]) > 1e-10*(1+math.Abs(want[a*m+b])) {
						t.Fatalf("bias=%v density=%v: complement Gram (%d,%d): %.15g, direct %.15g", bias, dens, a, b, v, want[a*m+b])
					}
				}
			}
			for a := 0; a < p; a++ {
				for b := 0; b < p; b++ {
					d := 0.0
					for i := 0; i < n; i++ {
						ka, kb := 1.0, 1.0
						if a < nx {
							ka = (float64(float32(X.F64[i*nx+a])) - g.mu[a]) / g.d[a]
						}
						if b < nx {
							kb = (float64(float32(X.F64[i*nx+b])) - g.mu[b]) / g.d[b]
						}
						d += ka * kb / float64(n)
					}
					if math.Abs(G[a*p+b]-d) > 1e-12*(1+math.Abs(d)) {
						t.Fatalf("bias=%v density=%v: shared Gram (%d,%d): %.15g, direct %.15g", bias, dens, a, b, G[a*p+b], d)
					}
				}
			}
		}
	}
}

// TestNewtonMatchesADMM: both inner solvers reach the same F (1e-6 relative) and the same
// support on planted problems, with and without a bias, on both links, with a mask, and
// with float32 X. The ADMM is the reference here (its own tests compare it with the naive
// per-sample ADMM, brute force and scikit-learn).
func TestNewtonMatchesADMM(t *testing.T) {
	type tc struct {
		name  string
		link  Link
		bias  bool
		mask  bool
		f32   bool
		n, nx int
	}
	cases := []tc{
		{"relu", ReLU, true, false, false, 4000, 20},
		{"relu-nobias", ReLU, false, false, false, 4000, 20},
		{"identity", Identity, true, false, false, 4000, 20},
		{"relu-mask", ReLU, true, true, false, 4000, 20},
		{"relu-f32", ReLU, true, false, true, 4000, 20},
		{"relu-coarse", ReLU, true, false, false, 2*hessianRows + 500, 12}, // coarse-to-fine start
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pp := makePlanted(77, c.n, c.nx, 3, 0.3, 0.5, 0.05, c.link)
			X := pp.X
			if c.f32 {
				X = Matrix{Rows: X.Rows, Cols: X.Cols, F32: make([]float32, len(X.F64))}
				for i, v := range pp.X.F64 {
					X.F32[i] = float32(v)
				}
			}
			lambda := 0.02
			var mask []bool
			if c.mask {
				mask = make([]bool, c.nx*3)
				for i := range mask {
					mask[i] = pp.U[i] != 0 || i%5 == 0
				}
			}
			var res [2]*Result
			for i, m := range []Method{ADMM, Newton} {
				r, err := Fit(context.Background(), X, pp.Y, lambda, &Settings{Link: c.link, NoBias: !c.bias, Mask: mask, Method: m})
				if err != nil {
					t.Fatal(err)
				}
				if r.Status != Converged {
					t.Errorf("%v: status %v", m, r.Status)
				}
				if r.Method != m {
					t.Errorf("Result.Method %v, want %v", r.Method, m)
				}
				res[i] = r
			}
			a, nw := res[0], res[1]
			t.Logf("ADMM F=%.12g iters=%d passes=%.1f; Newton F=%.12g iters=%d passes=%.1f", a.F, a.Iters, a.Passes, nw.F, nw.Iters, nw.Passes)
			// Passes, from what each method does: one ADMM iteration is one product K zh and
			// one K^T nu, plus K z and K^T nu once at the start (admm.go), so exactly
			// 2 (Iters + 1); a Newton step reads X at least twice (the gradient K^T r and the
			// forward product K d), plus K z and the first gradient, and its Grams add more.
			// Newton must also need several times fewer passes than the ADMM (the reason it
			// is the default; 6.8-20x on these problems): at most a third.
			if want := 2 * float64(a.Iters+1); a.Passes != want {
				t.Errorf("ADMM passes %v, want 2 (iters + 1) = %v", a.Passes, want)
			}
			if low := 2 * float64(nw.Iters+1); nw.Passes < low {
				t.Errorf("Newton passes %v below 2 (iters + 1) = %v", nw.Passes, low)
			}
			if nw.Passes > a.Passes/3 {
				t.Errorf("Newton passes %v, more than a third of the ADMM's %v", nw.Passes, a.Passes)
			}
			if rel := (nw.F - a.F) / a.F; rel > 1e-6 {
				t.Errorf("Newton F %.12g above ADMM's %.12g by %.2e", nw.F, a.F, rel)
			}
			// F comes from the solver's products: float64 to ~1e-12; with float32 X the
			// OpenBLAS backend multiplies in float32 (relative error ~1e-7 per product).
			ftol := 1e-9
			if c.f32 {
				ftol = 1e-7
			}
			if f := Objective(X, pp.Y, nw.U, nw.B, lambda, c.link); math.Abs(f-nw.F) > ftol*f {
				t.Errorf("reported F %.15g, Objective at the returned point %.15g", nw.F, f)
			}
			for i := range a.U {
				if (a.U[i] == 0) != (nw.U[i] == 0) {
					t.Errorf("support differs at %d: ADMM %g, Newton %g", i, a.U[i], nw.U[i])
				}
				if mask != nil && !mask[i] && nw.U[i] != 0 {
					t.Errorf("masked entry %d is %g", i, nw.U[i])
				}
			}
			if !c.bias {
				for _, b := range nw.B {
					if b != 0 {
						t.Errorf("NoBias: b = %v", nw.B)
					}
				}
			}
		})
	}
}

// TestNewtonThreadsBitwise: results do not depend on the thread count, for dense and
// sparse (CSR) X, float32 X, and the coarse-to-fine path.
func TestNewtonThreadsBitwise(t *testing.T) {
	type tc struct {
		name   string
		n, nx  int
		sparse bool
		f32    bool
	}
	for _, c := range []tc{{"dense", 6000, 10, false, false}, {"sparse", 6000, 30, true, false},
		{"f32", 6000, 10, false, true}, {"coarse", 2*hessianRows + 100, 6, false, false}} {
		t.Run(c.name, func(t *testing.T) {
			pp := makePlanted(13, c.n, c.nx, 3, 0.3, 0.5, 0.05, ReLU)
			X := pp.X
			if c.sparse {
				r := rand.New(rand.NewPCG(1, 2))
				for i := range X.F64 {
					if r.Float64() < 0.8 {
						X.F64[i] = 0
					}
				}
			}
			if c.f32 {
				X = Matrix{Rows: X.Rows, Cols: X.Cols, F32: make([]float32, len(X.F64))}
				for i, v := range pp.X.F64 {
					X.F32[i] = float32(v)
				}
			}
			var first *Result
			for _, th := range []int{1, 2, 3} {
				r, err := Fit(context.Background(), X, pp.Y, 0.01, &Settings{Threads: th, Method: Newton})
				if err != nil {
					t.Fatal(err)
				}
				if first == nil {
					first = r
					continue
				}
				if r.Passes != first.Passes {
					t.Errorf("Threads=%d: passes %v, Threads=1: %v", th, r.Passes, first.Passes)
				}
				if !bitwiseSame(r, first) {
					t.Errorf("Threads=%d: F=%.17g iters=%d, Threads=1: F=%.17g iters=%d", th, r.F, r.Iters, first.F, first.Iters)
				}
			}
		})
	}
}

type failingRecorder struct{ after int }

var errRecorder = errors.New("recorder says stop")

func (f *failingRecorder) Init() error { return nil }
func (f *failingRecorder) Record(Progress) error {
	f.after--
	if f.after < 0 {
		return errRecorder
	}
	return nil
}

type cancelRecorder struct {
	cancel func()
	after  int
}

func (c *cancelRecorder) Init() error { return nil }
func (c *cancelRecorder) Record(Progress) error {
	c.after--
	if c.after == 0 {
		c.cancel()
	}
	return nil
}

// TestNewtonStatuses: iteration limit, cancellation mid-run (best point finite, F equal to
// the objective there), and a Recorder error.
func TestNewtonStatuses(t *testing.T) {
	pp := makePlanted(21, 5000, 15, 2, 0.3, 0.5, 0.05, ReLU)
	res, err := Fit(context.Background(), pp.X, pp.Y, 0.01, &Settings{Method: Newton, MaxIter: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != IterationLimit || res.Iters != 1 {
		t.Errorf("MaxIter 1: status %v after %d iterations", res.Status, res.Iters)
	}
	ctx, cancel := context.WithCancel(context.Background())
	res, err = Fit(ctx, pp.X, pp.Y, 0.01, &Settings{Method: Newton, Recorder: &cancelRecorder{cancel: cancel, after: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != Canceled {
		t.Errorf("canceled: status %v", res.Status)
	}
	if f := Objective(pp.X, pp.Y, res.U, res.B, 0.01, ReLU); !(math.Abs(f-res.F) <= 1e-9*f) {
		t.Errorf("canceled: F %.15g, Objective at the returned point %.15g", res.F, f)
	}
	_, err = Fit(context.Background(), pp.X, pp.Y, 0.01, &Settings{Method: Newton, Recorder: &failingRecorder{after: 1}})
	if !errors.Is(err, errRecorder) {
		t.Errorf("Recorder error: got %v", err)
	}
	if _, err := Fit(context.Background(), pp.X, pp.Y, 0.01, &Settings{Method: Method(9)}); err == nil {
		t.Errorf("Method 9 accepted")
	}
}

// TestNewtonWarmStart: from its own solution the Newton fit converges at once (one
// gradient pass, no step) with the same F.
func TestNewtonWarmStart(t *testing.T) {
	pp := makePlanted(23, 5000, 15, 2, 0.3, 0.5, 0.05, ReLU)
	cold, err := Fit(context.Background(), pp.X, pp.Y, 0.01, &Settings{Method: Newton})
	if err != nil {
		t.Fatal(err)
	}
	warm, err := Fit(context.Background(), pp.X, pp.Y, 0.01, &Settings{Method: Newton, InitU: cold.U, InitB: cold.B})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cold: %d iterations, %.1f passes; warm: %d, %.1f", cold.Iters, cold.Passes, warm.Iters, warm.Passes)
	if warm.Iters > 1 || warm.Passes >= cold.Passes/2 {
		t.Errorf("warm start from the solution: %d iterations, %.1f passes (cold %d, %.1f)", warm.Iters, warm.Passes, cold.Iters, cold.Passes)
	}
	if warm.F > cold.F*(1+1e-12) {
		t.Errorf("warm F %.15g > cold %.15g", warm.F, cold.F)
	}
}

// TestScaleInvariance: scaling X by 1e-12 or 1e12 scales U by the inverse and leaves F and
// the support unchanged (a column whose spread is tiny in absolute terms is not constant).
func TestScaleInvariance(t *testing.T) {
	pp := makePlanted(41, 3000, 8, 2, 0.4, 0.5, 0.05, ReLU)
	ref, err := Fit(context.Background(), pp.X, pp.Y, 0.02, &Settings{Method: Newton})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []float64{1e-12, 1e12} {
		X := Matrix{Rows: pp.X.Rows, Cols: pp.X.Cols, F64: make([]float64, len(pp.X.F64))}
		for i, v := range pp.X.F64 {
			X.F64[i] = v * c
		}
		// U scales with 1/c, so lambda with c keeps lambda ||U||_1 and the problem the same.
		res, err := Fit(context.Background(), X, pp.Y, 0.02*c, &Settings{Method: Newton})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(res.F-ref.F) > 1e-6*ref.F {
			t.Errorf("X * %g: F %.12g, unscaled %.12g", c, res.F, ref.F)
		}
		for i := range ref.U {
			if (ref.U[i] == 0) != (res.U[i] == 0) {
				t.Errorf("X * %g: support differs at %d", c, i)
			}
		}
	}
}
