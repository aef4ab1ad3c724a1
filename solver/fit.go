package solver

import (
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	"relutrim/internal/kern"
)

// Defaults of Settings (each field's comment states it).
const (
	defaultMaxIter  = 20000
	defaultMaxCCP   = 500
	defaultRemaj    = 10
	defaultRemajTol = 1000
	defaultRho      = 1
	defaultRelax    = 1.6 // OSQP's default over-relaxation
	defaultEpsAbs   = 1e-7
	defaultEpsRel   = 1e-6
	defaultFTol     = 1e-9
	powerIters      = 30   // power-iteration steps for the step scale theta
	thetaMargin     = 1.15 // power iteration underestimates lambda_max; stay on the safe side
	adaptEvery      = 10   // iterations between residual-balancing checks
	// Problems with N*(Nx+1)*Ny at most autoStartsSize get autoStarts CCP starts by default
	// (well under a second in all): tiny problems have local minima. On TestTinyGlobal's 200
	// instances one start found the global minimum in 77.5%, 8 starts in 92%, 16 in 96%,
	// 32 in 100%.
	autoStartsSize = 50000
	autoStarts     = 32
)

func (s *Settings) withDefaults() Settings {
	var o Settings
	if s != nil {
		o = *s
	}
	if o.Threads <= 0 {
		o.Threads = runtime.GOMAXPROCS(0)
	}
	if o.MaxIter == 0 {
		o.MaxIter = defaultMaxIter
	}
	if o.MaxCCP == 0 {
		o.MaxCCP = defaultMaxCCP
	}
	if o.RemajorizeTol == 0 {
		o.RemajorizeTol = defaultRemajTol
	}
	if o.RemajorizeEvery == 0 {
		o.RemajorizeEvery = defaultRemaj
	}
	if o.Rho == 0 {
		o.Rho = defaultRho
	}
	if o.Relax == 0 {
		o.Relax = defaultRelax
	}
	if o.EpsAbs == 0 {
		o.EpsAbs = defaultEpsAbs
	}
	if o.EpsRel == 0 {
		o.EpsRel = defaultEpsRel
	}
	if o.FTol == 0 {
		o.FTol = defaultFTol
	}
	return o
}

// Fit minimises
//
//	F(U, b) = 1/(2N) sum_p ||act(U^T x_p + b) - y_p||^2 + lambda ||U||_1
//
// over U (Nx x Ny) and b (Ny), with X N x Nx and Y N x Ny, by the convex-concave procedure
// (each non-convex term replaced by its majoriser at the current point, paper section 3)
// around the consensus ADMM of admm.go. With Link Identity the problem is convex and the
// CCP makes a single round. The returned point is the best one found; Result.LowerBound is a
// certified lower bound on min F (bound.go).
//
// Bad inputs return an error naming the input; reaching an iteration limit or cancellation
// is a Status, not an error.
func Fit(ctx context.Context, X, Y Matrix, lambda float64, s *Settings) (*Result, error) {
	p, err := Prepare(X, s)
	if err != nil {
		return nil, err
	}
	return p.Fit(ctx, Y, lambda, s)
}

// Prepared holds what Fit computes from X alone: the column statistics of the standardised
// operator, the row norms and the spectral step scale. Reuse it for many fits on the same X
// (a lambda path, several targets); X must not change meanwhile.
type Prepared struct {
	X      Matrix
	g      *design
	theta  float64
	noBias bool
	plain  bool

	admmOnce sync.Once
	smpOnce  sync.Once
	smp      *sample // rows for the Newton solver's curvature (sample.go), built on first use
}

// sampleRows returns the Newton solver's row sample, drawing it on first use.
func (pr *Prepared) sampleRows(threads int) *sample {
	pr.smpOnce.Do(func() { pr.smp = newSample(pr.g, threads) })
	return pr.smp
}

// Prepare validates X and precomputes the standardisation (one pass over X). What only one
// inner solver needs is computed on its first use: the ADMM's row norms and step scale
// theta (a pass and a few power-iteration passes, unless s.PlainConsensus), the Newton
// solver's row sample. Only s.NoBias, s.Threads and s.PlainConsensus matter here.
func Prepare(X Matrix, s *Settings) (*Prepared, error) {
	st := s.withDefaults()
	if err := checkShape("X", X); err != nil {
		return nil, err
	}
	g, err := newDesign(X, !st.NoBias, st.Threads)
	if err != nil {
		return nil, err
	}
	return &Prepared{X: X, g: g, noBias: st.NoBias, plain: st.PlainConsensus}, nil
}

// admmMetric computes, once, the row norms and the step scale theta of the ADMM.
func (pr *Prepared) admmMetric() {
	pr.admmOnce.Do(func() {
		pr.g.rowNorms()
		pr.theta = 1.0
		if !pr.plain {
			pr.theta = math.Min(1, thetaMargin*pr.g.spectralScale(powerIters))
		}
	})
}

// Fit is Fit on the prepared X. s.NoBias and s.PlainConsensus must be those given to Prepare.
func (pr *Prepared) Fit(ctx context.Context, Y Matrix, lambda float64, s *Settings) (*Result, error) {
	st := s.withDefaults()
	if st.NoBias != pr.noBias || st.PlainConsensus != pr.plain {
		return nil, inputErr("Settings", "NoBias and PlainConsensus must match those given to Prepare")
	}
	X := pr.X
	if err := validate(X, Y, lambda, &st); err != nil {
		return nil, err
	}
	start := time.Now()
	g := pr.g
	n, ny := X.Rows, Y.Cols
	method := st.Method
	if method == Auto {
		// Newton, except on tiny problems (the multi-start regime below): there speed does
		// not matter, and the ADMM's exact prox handles the convex kinks of terms with
		// y < 0 at w = 0, where small problems' minimisers sit and Newton steps, whose model
		// is smooth, crawl (TestTinyGlobal: 100% of global minima with ADMM, 82% Newton).
		method = Newton
		if n*g.p*ny <= autoStartsSize {
			method = ADMM
		}
	}
	res := &Result{Status: IterationLimit, Method: method}
	var in inner
	var a *admm
	if method == ADMM {
		a = newADMM(pr, Y, lambda, &st)
		in = a
	} else {
		in = newNewton(pr, Y, lambda, &st)
	}
	y, yScale := yF64(Y), yScales(yF64(Y), n, ny)
	if st.Recorder != nil {
		if err := st.Recorder.Init(); err != nil {
			return nil, err
		}
	}
	starts := st.Starts
	if starts == 0 {
		starts = 1
		if n*g.p*ny <= autoStartsSize && st.InitU == nil && st.InitB == nil && st.Link == ReLU {
			starts = autoStarts
		}
	}
	var best, bestOut []float64
	for s := 0; s < starts; s++ {
		z0 := make([]float64, g.p*ny)
		if s == 0 {
			g.toStd(z0, st.InitU, st.InitB, ny)
			if nt, ok := in.(*newton); ok && st.InitU == nil && st.InitB == nil && n >= coarseMinRatio*hessianRows {
				zc, err := nt.coarseStart(ctx, &st, z0, res, start)
				if err != nil {
					return nil, err
				}
				z0 = zc
			}
		} else {
			randomStart(g, y, yScale, n, ny, z0, uint64(s))
		}
		zs, fs, status, err := in.run(ctx, &st, z0, res, start)
		if err != nil {
			return nil, err
		}
		if s == 0 {
			best, bestOut, res.Status = zs, fs, status
		} else {
			// The outputs are separate problems: keep the best start per output. A later
			// start must win by more than rounding (1e-9 relative), so that ties keep the
			// first start's exact zeros.
			for j := 0; j < ny; j++ {
				if fs[j] < bestOut[j]-1e-9*math.Abs(bestOut[j]) {
					bestOut[j] = fs[j]
					for k := 0; k < g.p; k++ {
						best[k*ny+j] = zs[k*ny+j]
					}
				}
			}
			if status != Converged {
				res.Status = status
			}
		}
		if res.Status == Canceled || res.Status == NumericalFailure {
			break
		}
	}
	var mask []bool
	if a != nil {
		res.PrimalRes, res.DualRes = maxOf(a.pri), maxOf(a.dua)
		res.Rho = a.rho
		mask = a.mask
	} else {
		mask = in.(*newton).mask
	}
	res.U, res.B = g.fromStd(best, ny)
	res.FOut = bestOut
	res.F = sum(bestOut)
	res.BoundOut = lowerBound(g, y, ny, lambda, st.Link, best, mask)
	res.LowerBound = sum(res.BoundOut)
	res.Gap = res.F - res.LowerBound
	res.Runtime = time.Since(start)
	if st.Recorder != nil {
		err := st.Recorder.Record(Progress{CCPIter: res.CCPIters, Iter: res.Iters, F: res.F, Passes: res.Passes,
			PrimalRes: res.PrimalRes, DualRes: res.DualRes, Elapsed: res.Runtime, Done: true})
		if err != nil {
			return nil, err
		}
	}
	return res, nil
}

// run is one CCP from the standardised start z0; it returns the best point per output, its
// F per output, and the status. Iteration counts accumulate in res.
func (a *admm) run(ctx context.Context, st *Settings, z0 []float64, res *Result, start time.Time) ([]float64, []float64, Status, error) {
	for j := range a.rho {
		a.rho[j] = st.Rho
		if st.InitRho != nil {
			a.rho[j] = st.InitRho[j]
		}
	}
	copy(a.z, z0)
	if a.mask != nil {
		for i := range a.z {
			if !a.mask[i] {
				a.z[i] = 0
			}
		}
	}
	a.start()
	res.Passes += 2 // K z and K^T nu

	status := IterationLimit
	ccp0 := res.CCPIters
	// From a cold start (U = 0) the first surrogate is solved to RemajorizeTol times the
	// tolerance before re-majorising; a warm start is already a sensible majorisation point.
	cold := true
	for _, v := range z0 {
		if v != 0 {
			cold = false
			break
		}
	}
	iter0 := res.Iters
	fOut := a.objective(a.z, a.Q)
	fLast := sum(fOut)
	best := append([]float64(nil), a.z...)
	bestOut := fOut
	lastRemaj := iter0
	for it := iter0 + 1; ; it++ {
		if err := ctx.Err(); err != nil {
			status = Canceled
			break
		}
		if it > st.MaxIter {
			break
		}
		a.iterate()
		res.Iters = it
		res.Passes += 2
		if it%adaptEvery == 0 && !st.FixedRho {
			res.RhoUpdates += a.adaptRho()
		}
		conv := a.converged()
		if !conv && it-lastRemaj < st.RemajorizeEvery {
			continue
		}
		fOut = a.objective(a.zh, a.Qh) // the prox output: exact zeros (see objective)
		f := sum(fOut)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			status = NumericalFailure
			break
		}
		for j, fj := range fOut { // the outputs are separate problems: best point per output
			if fj < bestOut[j] {
				bestOut[j] = fj
				for k := 0; k < a.g.p; k++ {
					best[k*a.ny+j] = a.zh[k*a.ny+j]
				}
			}
		}
		if !conv && (f > fLast || (cold && res.CCPIters-ccp0 < 1 && !a.within(st.RemajorizeTol))) {
			// Keep the surrogate and iterate on while F has not decreased (MM needs
			// surrogate(new) <= surrogate(old) = F(old)) or the inner problem is still far from
			// solved: re-majorising at an immature iterate switches terms with y > 0 and
			// w < 0 to their flat majoriser, from which they rarely return (a dead unit), and
			// the CCP settles in a poor local minimum (measured on an MNIST hidden layer:
			// F 356 when re-majorising every 10 iterations, 71 when waiting).
			lastRemaj = it
			if st.Recorder != nil {
				err := st.Recorder.Record(Progress{CCPIter: res.CCPIters, Iter: it, F: f, Passes: res.Passes,
					PrimalRes: maxOf(a.pri), DualRes: maxOf(a.dua), Elapsed: time.Since(start)})
				if err != nil {
					return nil, nil, 0, err
				}
			}
			continue
		}
		changes := a.remajorize(a.Qh)
		res.CCPIters++
		lastRemaj = it
		decrease := fLast - f
		fLast = f
		pr, du := maxOf(a.pri), maxOf(a.dua)
		if st.Recorder != nil {
			err := st.Recorder.Record(Progress{CCPIter: res.CCPIters, Iter: it, F: f, Passes: res.Passes,
				PatternChanges: changes, PrimalRes: pr, DualRes: du, Elapsed: time.Since(start), Remajorized: true})
			if err != nil {
				return nil, nil, 0, err
			}
		}
		if conv && changes == 0 && decrease <= st.FTol*math.Abs(f) {
			status = Converged
			break
		}
		if res.CCPIters >= st.MaxCCP {
			break
		}
	}
	return best, bestOut, status, nil
}

// inner is one CCP run of an inner solver from the standardised start z0: it returns the
// best point per output, its F per output, and the status; counts accumulate in res.
type inner interface {
	run(ctx context.Context, st *Settings, z0 []float64, res *Result, start time.Time) ([]float64, []float64, Status, error)
}

// randomStart fills z0 with a seeded random start in standardised coordinates: weights
// N(0, 1/p) times the output's scale (so K z has the scale of y), bias drawn around the
// output's mean. Deterministic in seed.
func randomStart(g *design, y, yScale []float64, n, ny int, z0 []float64, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	p := g.p
	for j := 0; j < ny; j++ {
		mean := 0.0
		for i := 0; i < n; i++ {
			mean += y[i*ny+j]
		}
		mean /= float64(n)
		sc := yScale[j] / math.Sqrt(float64(p))
		for k := 0; k < g.nx; k++ {
			z0[k*ny+j] = sc * r.NormFloat64()
		}
		if g.bias {
			z0[g.nx*ny+j] = mean + yScale[j]*r.NormFloat64()
		}
	}
}

// yScales returns the RMS of each output's targets (1 where that is 0).
func yScales(y []float64, n, ny int) []float64 {
	sc := make([]float64, ny)
	for j := 0; j < ny; j++ {
		s := 0.0
		for i := 0; i < n; i++ {
			s += y[i*ny+j] * y[i*ny+j]
		}
		sc[j] = math.Sqrt(s / float64(n))
		if sc[j] == 0 {
			sc[j] = 1
		}
	}
	return sc
}

// newADMM allocates the ADMM state for Y on the prepared X.
func newADMM(pr *Prepared, Y Matrix, lambda float64, st *Settings) *admm {
	g := pr.g
	n, nx, ny := Y.Rows, g.nx, Y.Cols
	a := &admm{g: g, n: n, ny: ny, lambda: lambda, link: st.Link, y: yF64(Y),
		omega: st.Relax, epsAbs: st.EpsAbs, epsRel: st.EpsRel}
	a.alloc()
	pr.admmMetric()
	if st.Mask != nil {
		a.mask = make([]bool, g.p*ny)
		copy(a.mask, st.Mask)
		for j := 0; j < ny && g.bias; j++ {
			a.mask[nx*ny+j] = true
		}
	}
	for i := range a.m {
		a.m[i] = pr.theta * g.rowNorm[i]
	}
	return a
}

// alloc allocates the ADMM state.
func (a *admm) alloc() {
	p, n, ny := a.g.p, a.n, a.ny
	a.m = make([]float64, n)
	a.rho = make([]float64, ny)
	a.z, a.zh, a.G, a.Gn = make([]float64, p*ny), make([]float64, p*ny), make([]float64, p*ny), make([]float64, p*ny)
	a.Q, a.Qh, a.nu = make([]float64, n*ny), make([]float64, n*ny), make([]float64, n*ny)
	a.upper = make([]bool, n*ny)
	a.pri, a.dua = make([]float64, ny), make([]float64, ny)
	a.epsPri, a.epsDua = make([]float64, ny), make([]float64, ny)
	a.part = make([]float64, numChunks(n)*4*ny)
	a.sums = make([]float64, 4*ny)
	a.yScale = yScales(a.y, n, ny)
}

// start computes Q = K z, majorises at Q, and sets the duals to the surrogate's gradient
// there (a consistent warm start: nu_p = g_p'(K_p z)), and G = K^T nu.
func (a *admm) start() {
	a.g.mul(a.Q, a.z, a.ny)
	for idx, q := range a.Q {
		a.upper[idx] = q >= 0
		z := a.surZ(idx)
		if q > z {
			a.nu[idx] = 2 * (q - a.y[idx])
		}
	}
	a.g.mulT(a.G, a.nu, a.ny)
}

// csrMaxDensity: newKern stores X as sparse CSR when its fraction of nonzeros is below
// this, in the pure-Go build only. Measured (internal/kern/BENCH.md, "Sparse (CSR)"):
// pure-Go CSR beats the dense products ~3-5x at density 0.1-0.2, 1.3-1.8x at 0.3 and ties
// at 0.5 (the crossover); with OpenBLAS the dense products win already at 0.19 for
// k = 300, so that build keeps X dense.
const csrMaxDensity = 0.4

func newKern(X Matrix, threads int, density float64) kern.Matrix {
	var m kern.Matrix
	sparse := kern.Backend == "purego" && density < csrMaxDensity
	switch {
	case X.F32 != nil && sparse:
		m = kern.NewCSR32(X.F32, X.Rows, X.Cols)
	case X.F32 != nil:
		m = kern.NewDense32(X.F32, X.Rows, X.Cols)
	case sparse:
		m = kern.NewCSR64(X.F64, X.Rows, X.Cols)
	default:
		m = kern.NewDense64(X.F64, X.Rows, X.Cols)
	}
	if t, ok := m.(interface{ SetThreads(int) }); ok {
		t.SetThreads(threads)
	}
	return m
}

func yF64(Y Matrix) []float64 {
	if Y.F64 != nil {
		return Y.F64
	}
	y := make([]float64, len(Y.F32))
	for i, v := range Y.F32 {
		y[i] = float64(v)
	}
	return y
}

func sum(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s
}

func maxOf(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		if x > m || math.IsNaN(x) {
			m = x
		}
	}
	return m
}
