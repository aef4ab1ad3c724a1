package solver

import (
	"context"
	"math"
	"time"
)

// newton is the default inner solver: proximal Newton steps on the CCP majoriser, for all
// Ny outputs at once (their problems are separate; they share the passes over X).
//
// At the current point z (standardised coordinates, design.go) every term is majorised as
// in the paper (prox.go: a quadratic switched on to the right of a point); the majoriser is
// convex and piecewise quadratic, with gradient and generalised Hessian
//
//	grad_j = (1/N) sum_p 2/2 (w_pj - y_pj) [w_pj curved] K_p        w = K z
//	H_j    = (1/N) sum_p [w_pj curved] K_p K_p^T                    ("curved": right of the switch)
//
// One step (Lee, Sun & Saunders 2014, proximal Newton; the CCP supplies the convexity) is
// iterate; each part has a file:
//
//  1. gradient: one pass over X (K^T r), fused with part 5;
//  2. metric (newton_step.go: plan, workingSet, sharedMetric, ownMetric): H_j estimated
//     from a fixed sample of rows (sample.go), restricted to the working set of output j
//     (its non-zeros and at most max(16, #non-zeros) coordinates whose gradient is near
//     the L1 threshold); when more than half the sample rows are curved, as the shared
//     Gram minus the flat rows' Gram. When the output's own Gram would cost more than
//     gramBudget times its share of a pass, the shared metric G = K_S^T K_S / S (one Gram
//     for all outputs, built once per X) divided by a per-output step scale t_j is used
//     instead (a numpy prototype on the MNIST 784-300 layer reached the optimum 2.6-9x
//     faster than L-BFGS-B that way), for at most sharedPatience steps;
//  3. the L1-regularised quadratic model is minimised by coordinate descent, exact zeros
//     (newton_step.go: step, direction; newton_cd.go: cdLasso);
//  4. forward: one pass over X (K d), then an Armijo backtracking line search on the
//     majoriser along w + alpha K d, which needs no further pass
//     (newton_linesearch.go: lineSearch, trialValues, backtrack);
//  5. re-majorise at the new point, the next CCP round (newton_pass.go: remajorize, one
//     fused pass, settle, that also forms F and the next gradient).
//
// From a cold start (z = 0) the first majoriser is minimised to RemajorizeTol times the
// tolerance before the first re-majorisation, for the reason given in begin (dead units).
// The stop rule (stopRule, converged, coldRoundDone, trackDecrease): an output stops when
// the largest entry of its minimum-norm subgradient, in units of y's RMS, is at most
// EpsRel (its KKT residual, kktOf), or when two steps in a row decrease F by at most FTol
// relative (the residual misses the convex kinks of terms with y < 0 at w = 0); stopped
// outputs leave the passes. Large cold fits start from the solution on the sample
// (newton_coarse.go: coarseStart).
type newton struct {
	g      *design
	smp    *sample
	n, ny  int // n: this process's rows (dist.go)
	N      int // the fit's rows
	p      int
	lambda float64
	// forceShared: every step on the shared metric (Settings.SharedMetric).
	forceShared bool
	link        Link
	y           []float64 // n x ny
	off         []float64 // n x ny: Settings.Offset, inside the activation (w = K z + off); nil = none
	mask        []bool    // p x ny, nil = none (newMask)
	hrows       int       // Settings.HessianRows (defaulted), for coldStart
	lam         []float64 // p: L1 weight of each standardised coordinate (lambda/d_k; 0 for the bias)
	yScale      []float64 // ny
	threads     int
	eps         float64
	tol         []float64 // ny: KKT tolerance of each output (see newNewtonOn)
	nxny        float64   // N * Nx * Ny: the flops of one pass, for Result.Passes

	z, grad, d []float64   // p x ny
	w          []float64   // n x ny: K z (during a line search: K (z + d) for the tried outputs)
	upper      bitset      // n x ny: majorised at w0 >= 0 (read only where y > 0)
	t          []float64   // ny: step scale of the shared metric
	fOut, phi  []float64   // ny: F and the current majoriser (both with the L1 term) at z
	kkt, delta []float64   // ny: KKT residual at z; model decrease of the step (< 0)
	alpha      []float64   // ny: accepted step length
	changes    []int       // ny: pattern changes at the last re-majorisation
	cold       []bool      // ny: still on the first majoriser of a cold start
	small      []int       // ny: consecutive steps that decreased F by at most FTol relative
	prev       []float64   // ny: the majoriser's value before the last step
	shared     []bool      // ny: the step uses the shared metric (set by plan)
	curved     []int       // ny: curved sample rows (set by plan)
	cmask      []bool      // S x nact: sample row r is curved for act[jj] (set by plan)
	nact       int         // len(act) of the last plan
	ws         [][]int     // ny: working set of the next step (set by plan)
	gramCost   []float64   // ny: estimated multiply-adds of the output's own Gram (set by plan)
	sharedRun  []int       // ny: steps taken on the shared metric
	work       []float64   // ny: Gram flops of the last step
	work1      []*stepWork // per-worker scratch of steps
	pna        []float64   // p x len(act) scratch of the gradient and of the directions
}

// newNewton sets up the solver for targets y (with RMS yScale per output, design.yScales)
// on the prepared X, with the fit's mask (newMask).
func newNewton(pr *Prepared, y, yScale []float64, ny int, lambda float64, mask []bool, st *Settings) *newton {
	g := pr.g
	lam := make([]float64, g.p)
	for k := 0; k < g.nx; k++ {
		lam[k] = lambda / g.d[k]
	}
	nt := newNewtonOn(g, pr.sampleRows(st.Threads), y, yScale, ny, lambda, lam, mask, st)
	nt.hrows = pr.hrows
	return nt
}

// newNewtonOn sets up the solver on design g with targets y (g.n x ny) and their RMS
// yScale, the row sample smp of g's rows, the L1 weights lam of the standardised
// coordinates, and the mask (p x ny, nil = none).
func newNewtonOn(g *design, smp *sample, y, yScale []float64, ny int, lambda float64, lam []float64, mask []bool, st *Settings) *newton {
	n := g.n
	nt := &newton{g: g, smp: smp, n: n, N: g.N, ny: ny, p: g.p, lambda: lambda, lam: lam,
		link: st.Link, y: y, mask: mask, yScale: yScale, threads: st.Threads, eps: st.EpsRel,
		nxny: float64(g.N) * float64(g.nx) * float64(ny), forceShared: st.SharedMetric}
	// The KKT tolerance per output: EpsRel, and for the identity link (convex, with an
	// informative lower bound) also at most EpsRel times the smallest L1 weight in y's units:
	// the bound's dual point is scaled down by the relative violation |gradient|/weight - 1,
	// so a residual of EpsRel*y alone left bounds 1.2e-3 below the optimum at lambda = 2e-3
	// (bound_ref_test.go); the floor 1e-3 keeps lambda -> 0 finite.
	nt.tol = make([]float64, ny)
	lmin := math.Inf(1)
	for k := 0; k < g.nx; k++ {
		lmin = math.Min(lmin, lam[k])
	}
	for j := range nt.tol {
		nt.tol[j] = nt.eps
		if nt.link == Identity {
			nt.tol[j] = nt.eps * math.Max(1e-3, math.Min(1, lmin/nt.yScale[j]))
		}
	}
	pny := g.p * ny
	nt.z, nt.grad, nt.d = make([]float64, pny), make([]float64, pny), make([]float64, pny)
	nt.w = make([]float64, n*ny)
	nt.upper = newBitset(n * ny)
	nt.t, nt.fOut, nt.phi = make([]float64, ny), make([]float64, ny), make([]float64, ny)
	nt.kkt, nt.delta, nt.alpha = make([]float64, ny), make([]float64, ny), make([]float64, ny)
	nt.changes = make([]int, ny)
	nt.small, nt.prev, nt.cold = make([]int, ny), make([]float64, ny), make([]bool, ny)
	nt.shared, nt.work, nt.curved = make([]bool, ny), make([]float64, ny), make([]int, ny)
	nt.ws = make([][]int, ny)
	nt.gramCost = make([]float64, ny)
	nt.sharedRun = make([]int, ny)
	return nt
}

// residuals is inner's: Newton has no per-output rho or ADMM residuals.
func (nt *newton) residuals() *outputResiduals { return nil }

// majorizer returns the current majoriser of one term at w (surrogateValue with the switch
// point of surrogateZ, written out for the hot loops) and r = its derivative / 2.
//
//	identity, or y > 0 majorised at w0 >= 0:  (w - y)^2 everywhere
//	y <= 0:                                   y^2 left of 0, (w - y)^2 right of it (= the term)
//	y > 0 majorised at w0 < 0:                y^2 left of 2y, (w - y)^2 right of it
func majorizer(w, y float64, upper, identity bool) (value, r float64) {
	if curvedAt(w, y, upper, identity) {
		e := w - y
		return e * e, e
	}
	return y * y, 0
}

// curvedAt reports whether the majoriser of majorizer is curved (right of its switch
// point) at w.
func curvedAt(w, y float64, upper, identity bool) bool {
	switch {
	case identity || (y > 0 && upper):
		return true
	case y <= 0:
		return w > 0
	}
	return w > 2*y
}

// run is one CCP from the standardised start z0 (see the type's comment); it returns the
// best point per output, its F per output, and the status. Counts accumulate in res.
func (nt *newton) run(ctx context.Context, st *Settings, z0 []float64, res *Result, start time.Time) ([]float64, []float64, Status, error) {
	act := nt.begin(z0)
	res.Passes += 2 // K z and the gradient
	best := newBestPoint(nt.z, nt.fOut, nt.ny)
	status := IterationLimit
	for {
		if nt.g.sp.canceled(ctx) { // on any process: all stop at the same iteration
			status = Canceled
			break
		}
		act = nt.stopRule(act, st)
		if len(act) == 0 {
			status = Converged
			break
		}
		if res.Iters >= st.MaxIter || res.CCPIters >= st.MaxCCP {
			break
		}
		res.Iters++
		remaj := nt.iterate(act, st, res)
		for _, j := range act {
			best.offer(j, nt.z, nt.fOut[j])
		}
		f := sum(nt.fOut)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			status = NumericalFailure
			break
		}
		if err := nt.report(st, act, f, remaj, res, start); err != nil {
			return nil, nil, 0, err
		}
	}
	res.DualRes = math.Max(res.DualRes, maxOf(nt.kkt))
	return best.z, best.f, status, nil
}

// begin sets z to z0 (masked), resets the per-output state, majorises every output at z
// (the first pass) and returns the active outputs: all of them.
//
// From a cold start (U = 0) the first majoriser is minimised to RemajorizeTol times the
// tolerance before re-majorising: re-majorising at an immature iterate switches terms
// with y > 0 and w < 0 to their flat majoriser, from which they rarely return (a dead
// unit; measured with the ADMM on an MNIST hidden layer: F 356 against 71).
func (nt *newton) begin(z0 []float64) []int {
	copy(nt.z, z0)
	applyMask(nt.z, nt.mask)
	cold := isZero(nt.z) // of the masked start
	for j := 0; j < nt.ny; j++ {
		nt.alpha[j], nt.changes[j], nt.small[j] = 0, 0, 0
		nt.sharedRun[j] = 0
		nt.cold[j] = cold && nt.link == ReLU
	}
	act := make([]int, nt.ny)
	for j := range act {
		act[j] = j
	}
	nt.majorize(act)
	for _, j := range act {
		nt.kkt[j] = nt.kktOf(j)
	}
	nt.initStepScale()
	return act
}

// iterate is one proximal Newton step of the outputs of act: plan (working sets and
// metrics), steps (directions by coordinate descent), lineSearch, then remajorize at the
// new point, the decrease test of the stop rule, and the move of z. It reports whether
// any output was re-majorised (a CCP round).
func (nt *newton) iterate(act []int, st *Settings, res *Result) bool {
	if nt.plan(act) {
		if _, built := nt.smp.sharedGram(nt.p, nt.threads); built {
			d := float64(nt.smp.nnz) / float64(len(nt.smp.rows)) // non-zeros per row
			res.Passes += float64(len(nt.smp.rows)) * d * d / 2 / (nt.nxny * nt.g.passFrac)
		}
	}
	nt.steps(act)
	for _, j := range act {
		res.Passes += nt.work[j] / (nt.nxny * nt.g.passFrac)
	}
	copy(nt.prev, nt.phi)
	fix, work := nt.lineSearch(act)
	nt.remajorize(act, fix)
	res.Passes += work + 1 + float64(len(fix))/float64(len(act)) // + the gradient, + K d of fix
	remaj := nt.trackDecrease(act, st)
	if remaj {
		res.CCPIters++
	}
	nt.move(act)
	return remaj
}

// move sets z += alpha d for the outputs of act and their KKT residuals at the new z (with
// the gradient remajorize formed there).
func (nt *newton) move(act []int) {
	ny, p := nt.ny, nt.p
	for _, j := range act {
		a := nt.alpha[j]
		for k := 0; k < p; k++ {
			i := k*ny + j
			nt.z[i] += a * nt.d[i]
		}
		nt.kkt[j] = nt.kktOf(j)
	}
}

// stopRule returns the outputs of act that go on. An output past its cold round stops
// (leaves the passes) when converged; an output on the first majoriser of a cold start
// ends its cold round when coldRoundDone, and the update after this step re-majorises it.
func (nt *newton) stopRule(act []int, st *Settings) []int {
	newAct := act[:0:0]
	for _, j := range act {
		if nt.cold[j] {
			if nt.coldRoundDone(j, st) {
				nt.cold[j] = false
				nt.small[j] = 0
			}
		} else if nt.converged(j) {
			continue
		}
		newAct = append(newAct, j)
	}
	return newAct
}

// converged reports whether output j is done: its KKT residual is within its tolerance, or
// two steps in a row decreased F by at most FTol relative (trackDecrease).
func (nt *newton) converged(j int) bool {
	return nt.kkt[j] <= nt.tol[j] || nt.small[j] >= 2
}

// coldRoundDone reports whether output j's first majoriser of a cold start is minimised to
// RemajorizeTol times the tolerances (KKT residual, or one small decrease).
func (nt *newton) coldRoundDone(j int, st *Settings) bool {
	return nt.kkt[j] <= st.RemajorizeTol*nt.eps || nt.small[j] >= 1
}

// trackDecrease counts, per output of act, the consecutive steps that decreased F (on the
// first majoriser of a cold start: the majoriser, with RemajorizeTol times FTol) by at
// most FTol relative without a pattern change, and reports whether any output of act was
// re-majorised. Stationarity by decrease: the KKT residual misses the convex kinks of the
// terms with y < 0 at w = 0 (and of the majorisers at their switch points), where
// minimisers often sit; there F stops decreasing while the one-sided gradient does not
// vanish.
func (nt *newton) trackDecrease(act []int, st *Settings) bool {
	remaj := false
	for _, j := range act {
		remaj = remaj || !nt.cold[j]
		dec := nt.prev[j] - nt.fOut[j]
		tol := st.FTol
		if nt.cold[j] {
			dec = nt.prev[j] - nt.phi[j]
			tol *= st.RemajorizeTol
		}
		if dec <= tol*math.Abs(nt.fOut[j]) && nt.changes[j] == 0 {
			nt.small[j]++
		} else {
			nt.small[j] = 0
		}
	}
	return remaj
}

// report passes the step's progress to the Recorder.
func (nt *newton) report(st *Settings, act []int, f float64, remaj bool, res *Result, start time.Time) error {
	changes := 0
	for _, j := range act {
		changes += nt.changes[j]
	}
	return record(st, Progress{CCPIter: res.CCPIters, Iter: res.Iters, F: f, Passes: res.Passes,
		PatternChanges: changes, DualRes: nt.maxKKT(act), Elapsed: time.Since(start),
		Remajorized: remaj})
}

// l1 is sum_k lam_k |z_kj + a d_kj| (d may be nil when a = 0).
func (nt *newton) l1(z []float64, j int, a float64, d []float64) float64 {
	s := 0.0
	for k := 0; k < nt.g.nx; k++ {
		v := z[k*nt.ny+j]
		if a != 0 {
			v += a * d[k*nt.ny+j]
		}
		s += nt.lam[k] * math.Abs(v)
	}
	return s
}

// kktOf is the largest entry of the minimum-norm subgradient of output j's majoriser at z
// (masked coordinates excluded), divided by y's RMS.
func (nt *newton) kktOf(j int) float64 {
	m := 0.0
	for k := 0; k < nt.p; k++ {
		i := k*nt.ny + j
		if nt.mask != nil && !nt.mask[i] {
			continue
		}
		g, l, z := nt.grad[i], nt.lam[k], nt.z[i]
		var v float64
		switch {
		case z > 0:
			v = math.Abs(g + l)
		case z < 0:
			v = math.Abs(g - l)
		default:
			v = math.Max(0, math.Abs(g)-l)
		}
		if v > m || math.IsNaN(v) {
			m = v
		}
	}
	return m / nt.yScale[j]
}

func (nt *newton) maxKKT(act []int) float64 {
	m := 0.0
	for _, j := range act {
		if nt.kkt[j] > m || math.IsNaN(nt.kkt[j]) {
			m = nt.kkt[j]
		}
	}
	return m
}
