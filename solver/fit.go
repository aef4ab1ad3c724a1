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
	o.Threads = min(o.Threads, kern.MaxThreads()) // a huge count costs nothing (issue 22)
	if o.HessianRows == 0 {
		o.HessianRows = hessianRows
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
	x      Matrix
	g      *design
	theta  float64
	noBias bool
	plain  bool
	hrows  int // Settings.HessianRows (defaulted)

	admmOnce sync.Once
	smpOnce  sync.Once
	smp      *sample // rows for the Newton solver's curvature (sample.go), built on first use
}

// sampleRows returns the Newton solver's row sample, drawing it on first use.
func (pr *Prepared) sampleRows(threads int) *sample {
	pr.smpOnce.Do(func() { pr.smp = newSample(pr.g, threads, pr.hrows) })
	return pr.smp
}

// Prepare validates X and precomputes the standardisation (one pass over X). What only one
// inner solver needs is computed on its first use: the ADMM's row norms and step scale
// theta (a pass and a few power-iteration passes, unless s.PlainConsensus), the Newton
// solver's row sample. Only s.NoBias, s.Threads, s.HessianRows and s.PlainConsensus
// matter here.
func Prepare(X Matrix, s *Settings) (*Prepared, error) {
	st := s.withDefaults()
	err := checkShape("X", X)
	if err == nil && st.HessianRows < 0 {
		err = inputErr("HessianRows", "must be >= 0 (0: the default), got %d", st.HessianRows)
	}
	if st.Comm != nil {
		// Collective from here on: a process whose X is unusable stops all of them.
		err = (&span{comm: st.Comm, size: st.Comm.Size(), rank: st.Comm.Rank()}).agree(err)
	}
	if err != nil {
		return nil, err
	}
	g, err := newDesign(X, !st.NoBias, st.Threads, st.MaxCopyBytes, st.Comm)
	if err != nil {
		return nil, err
	}
	return &Prepared{x: X, g: g, noBias: st.NoBias, plain: st.PlainConsensus, hrows: st.HessianRows}, nil
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
	err := validate(pr.x, Y, lambda, &st)
	if ie, ok := err.(*InputError); ok && ie.Row >= 0 && ie.Input == "Y" {
		ie.Row += pr.g.sp.rowLo[pr.g.sp.rank] // the fit's row
	}
	if err := pr.g.sp.agree(err); err != nil {
		return nil, err
	}
	start := time.Now()
	g, ny := pr.g, Y.Cols
	method := pr.chooseMethod(&st, ny)
	if err := pr.checkDistributed(&st, method, ny); err != nil {
		return nil, err
	}
	res := &Result{Status: IterationLimit, Method: method}
	y := yF64(Y)      // Y as float64, converted once (no copy when it already is)
	var off []float64 // Settings.Offset as float64, nil = none
	if hasOffset(st.Offset) {
		off = yF64(st.Offset)
	}
	yScale := g.yScales(y, ny)
	mask := newMask(st.Mask, g, ny)
	var in inner
	if method == ADMM {
		a := newADMM(pr, y, ny, lambda, mask, &st)
		a.off = off
		in = a
	} else {
		nt := newNewton(pr, y, yScale, ny, lambda, mask, &st)
		nt.off = off
		in = nt
	}
	if st.Recorder != nil {
		if err := st.Recorder.Init(); err != nil {
			return nil, err
		}
	}
	best, kept, err := pr.multiStart(ctx, in, &st, y, off, yScale, Y.Rows, ny, res, start)
	if err != nil {
		return nil, err
	}
	if kept != nil {
		res.PrimalRes, res.DualRes = maxOf(kept.pri), maxOf(kept.dua)
		res.Rho = kept.rho
	}
	res.U, res.B = g.fromStd(best.z, ny)
	res.FOut = best.f
	res.F = sum(best.f)
	res.BoundOut = lowerBound(g, y, off, ny, lambda, st.Link, best.z, mask, newGroupSpec(&st, g.nx))
	res.LowerBound = sum(res.BoundOut)
	res.Gap = res.F - res.LowerBound
	res.Runtime = time.Since(start)
	err = record(&st, Progress{CCPIter: res.CCPIters, Iter: res.Iters, F: res.F, Passes: res.Passes,
		PrimalRes: res.PrimalRes, DualRes: res.DualRes, Elapsed: res.Runtime, Done: true})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// multiStart runs the CCP (in.run) from each start (Prepared.starts: the first from
// InitU/InitB or cold, the others random) and keeps the best point per output, with the
// status and residuals of the start kept for it; res.Status becomes the worst of these
// statuses, or Canceled or NumericalFailure, which end the starts.
func (pr *Prepared) multiStart(ctx context.Context, in inner, st *Settings, y, off, yScale []float64, rows, ny int, res *Result, start time.Time) (*bestPoint, *outputResiduals, error) {
	g := pr.g
	var best *bestPoint       // per output, over the starts
	var kept *outputResiduals // of the start kept per output (ADMM)
	var statusOut []Status
	for s := 0; s < pr.starts(st, ny); s++ {
		z0 := make([]float64, g.p*ny)
		if s == 0 {
			g.toStd(z0, st.InitU, st.InitB, ny)
			if st.InitU == nil && st.InitB == nil {
				zc, err := in.coldStart(ctx, st, z0, res, start)
				if err != nil {
					return nil, nil, err
				}
				z0 = zc
			}
		} else {
			randomStart(g, y, off, yScale, rows, ny, z0, uint64(s)) // one process only (checkDistributed)
		}
		zs, fs, status, err := in.run(ctx, st, z0, res, start) // the CCP: majorise, solve, repeat
		if err != nil {
			return nil, nil, err
		}
		if s == 0 {
			best = &bestPoint{z: zs, f: fs, ny: ny}
			statusOut = make([]Status, ny)
			for j := range statusOut {
				statusOut[j] = status
			}
			kept = in.residuals().clone()
		} else {
			for _, j := range best.keep(zs, fs) {
				statusOut[j] = status // the status, rho and residuals of the start kept for j
				kept.take(j, in.residuals())
			}
		}
		if status == Canceled || status == NumericalFailure {
			res.Status = status
			return best, kept, nil
		}
	}
	res.Status = Converged // the worst status over the starts kept per output
	for _, st := range statusOut {
		if st != Converged {
			res.Status = st
		}
	}
	return best, kept, nil
}

// chooseMethod resolves Auto: Newton, except on tiny problems (the multi-start regime of
// starts): there speed does not matter, and the ADMM's exact prox handles the convex kinks
// of terms with y < 0 at w = 0, where small problems' minimisers sit and Newton steps, whose
// model is smooth, crawl (TestTinyGlobal: 100% of global minima with ADMM, 82% Newton).
func (pr *Prepared) chooseMethod(st *Settings, ny int) Method {
	if st.Method != Auto {
		return st.Method
	}
	if st.GroupL1 {
		return ADMM // group.go: the penalty couples the outputs
	}
	if pr.g.N*pr.g.p*ny <= autoStartsSize {
		return ADMM
	}
	return Newton
}

// checkDistributed refuses, for a fit across processes, what only runs in one process.
func (pr *Prepared) checkDistributed(st *Settings, method Method, ny int) error {
	if !pr.g.sp.distributed() {
		return nil
	}
	switch {
	case st.GroupL1:
		return inputErr("GroupL1", "the group penalty is solved by the ADMM, which does not run across processes")
	case method == ADMM && st.Method == Auto:
		return inputErr("Method", "the problem is tiny (N*(Nx+1)*Ny = %d <= %d), where the ADMM with %d starts is the default, "+
			"and the ADMM does not run across processes: fit it in one process, or choose the Newton method", pr.g.N*pr.g.p*ny, autoStartsSize, autoStarts)
	case method == ADMM:
		return inputErr("Method", "the ADMM does not run across processes: choose the Newton method (or Auto)")
	case pr.starts(st, ny) > 1:
		return inputErr("Starts", "multi-start fits (%d starts; the default on tiny ReLU problems) do not run across processes: "+
			"fit it in one process, or set one start", pr.starts(st, ny))
	}
	return nil
}

// N returns the number of rows of the fit (of all processes, with Settings.Comm).
func (pr *Prepared) N() int { return pr.g.N }

// starts is the number of CCP runs (Settings.Starts).
func (pr *Prepared) starts(st *Settings, ny int) int {
	if st.Starts > 0 {
		return st.Starts
	}
	if st.GroupL1 {
		return 1 // group.go: a per-output choice among starts would break the coupling
	}
	if pr.g.N*pr.g.p*ny <= autoStartsSize && st.InitU == nil && st.InitB == nil && st.Link == ReLU {
		return autoStarts
	}
	return 1
}

// record passes pr to the Recorder, if any.
func record(st *Settings, pr Progress) error {
	if st.Recorder == nil {
		return nil
	}
	return st.Recorder.Record(pr)
}

// randomStart fills z0 with a seeded random start in standardised coordinates: weights
// N(0, 1/p) times the output's scale (so K z has the scale of y), bias drawn around the
// output's mean (minus the offset's mean, off n x ny, nil = none). Deterministic in seed.
func randomStart(g *design, y, off, yScale []float64, n, ny int, z0 []float64, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	p := g.p
	for j := 0; j < ny; j++ {
		mean := 0.0
		for i := 0; i < n; i++ {
			mean += y[i*ny+j]
		}
		if off != nil {
			for i := 0; i < n; i++ {
				mean -= off[i*ny+j]
			}
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
