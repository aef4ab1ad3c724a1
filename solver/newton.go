package solver

import (
	"cmp"
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"relutrim/internal/kern"
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
// One step (Lee, Sun & Saunders 2014, proximal Newton; the CCP supplies the convexity):
//
//  1. gradient: one pass over X (K^T r);
//  2. metric (plan, step): H_j estimated from a fixed sample of rows (sample.go),
//     restricted to the working set of output j (its non-zeros and at most max(16, #non-
//     zeros) coordinates whose gradient is near the L1 threshold); when more than half the
//     sample rows are curved, as the shared Gram minus the flat rows' Gram. When the
//     output's own Gram would cost more than gramBudget times its share of a pass, the
//     shared metric G = K_S^T K_S / S (one Gram for all outputs, built once per X) divided
//     by a per-output step scale t_j is used instead (a numpy prototype on the MNIST 784-300
//     layer reached the optimum 2.6-9x faster than L-BFGS-B that way),
//     for at most sharedPatience steps;
//  3. the L1-regularised quadratic model is minimised by coordinate descent (exact zeros);
//  4. forward: one pass over X (K d), then an Armijo backtracking line search on the
//     majoriser along w + alpha K d, which needs no further pass;
//  5. re-majorise at the new point (the next CCP round).
//
// From a cold start (z = 0) the first majoriser is minimised to RemajorizeTol times the
// tolerance before the first re-majorisation, for the reason given in run (dead units).
// An output stops when the largest entry of its minimum-norm subgradient, in units of
// y's RMS, is at most EpsRel (its KKT residual), or when two steps in a row decrease F by
// at most FTol relative (the residual misses the convex kinks of terms with y < 0 at
// w = 0); stopped outputs leave the passes. Large cold fits start from the solution on
// the sample (coarseStart).
type newton struct {
	g       *design
	smp     *sample
	n, ny   int // n: this process's rows (dist.go)
	N       int // the fit's rows
	p       int
	lambda  float64
	link    Link
	y       []float64 // n x ny
	mask    []bool    // p x ny, nil = none
	lam     []float64 // p: L1 weight of each standardised coordinate (lambda/d_k; 0 for the bias)
	yScale  []float64 // ny
	threads int
	eps     float64
	tol     []float64 // ny: KKT tolerance of each output (see newNewtonOn)
	nxny    float64   // N * Nx * Ny: the flops of one pass, for Result.Passes

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

const (
	// gramBudget: an output's own Gram is built when its multiply-adds (curved sample rows
	// times (working-set non-zeros per row)^2 / 2) are at most this many times the output's
	// share of one pass; beyond, the shared metric is used. An own Gram buys Newton's few
	// steps, the shared metric costs many more (260 in the wide-layer prototype at
	// lambda = 0.01 lambda_max). Measured on the full demo (4 levels, idle machine): budgets 2, 6 and 20
	// took 31.4, 31.6 and 34.1 s with the same table up to +-0.07 points; on W 7.0 s (6) and
	// 6.8 s (20); M and L never reach the budget. 20 is the one whose demo table is nowhere
	// below the ADMM's.
	gramBudget = 20.0
	// wsFraction: a zero coordinate enters the working set when |gradient| > wsFraction
	// times its L1 weight; the KKT check at the next step catches any it missed.
	wsFraction = 0.9
	// wsMinGrow: a working set may grow by at least this many coordinates per step.
	wsMinGrow = 16
	// tMax bounds the shared metric's step scale; 64 and the start 0.9/(fraction of curved
	// rows) are the wide-layer prototype's, which kept rarely active outputs alive.
	tMax = 64.0
	// armijo is the sufficient-decrease constant of the line search (Nocedal & Wright 3.1).
	armijo = 1e-4
	// maxBacktracks bounds the line search; 2^-30 ~ 1e-9 is far below any useful step.
	maxBacktracks = 30
	// cdTol: coordinate descent stops when the largest coordinate move of a sweep (in the
	// metric) is below cdTol times the largest move seen; the outer line search absorbs the
	// rest (1e-2 against 1e-3: the full demo in 31.6 instead of 33.5 s, same table within
	// 0.01 points). cdMaxSweeps bounds it on small working sets.
	cdTol        = 1e-2
	cdMaxSweeps  = 200
	sharedSweeps = 3
	// sharedPatience: steps an output may take on the shared metric before its own Gram
	// is built whatever it costs (see plan).
	sharedPatience = 5
	// diagFloor keeps the model's diagonal positive when a coordinate is (nearly) zero on
	// the curved sample rows: at least diagFloor times the output's curved fraction (a
	// standardised column has unit mean square).
	diagFloor = 1e-3
)

func newNewton(pr *Prepared, y []float64, ny int, lambda float64, st *Settings) *newton {
	g := pr.g
	lam := make([]float64, g.p)
	for k := 0; k < g.nx; k++ {
		lam[k] = lambda / g.d[k]
	}
	return newNewtonOn(g, pr.sampleRows(st.Threads), y, ny, lambda, lam, st)
}

// newNewtonOn sets up the solver on design g with targets y (g.n x ny), the row sample
// smp of g's rows, and the L1 weights lam of the standardised coordinates.
func newNewtonOn(g *design, smp *sample, y []float64, ny int, lambda float64, lam []float64, st *Settings) *newton {
	n := g.n
	nt := &newton{g: g, smp: smp, n: n, N: g.N, ny: ny, p: g.p, lambda: lambda, lam: lam,
		link: st.Link, y: y, threads: st.Threads, eps: st.EpsRel,
		nxny: float64(g.N) * float64(g.nx) * float64(ny)}
	nt.yScale = g.yScales(nt.y, ny)
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
	if st.Mask != nil {
		nt.mask = make([]bool, g.p*ny)
		copy(nt.mask, st.Mask)
		for j := 0; j < ny && g.bias; j++ {
			nt.mask[g.nx*ny+j] = true
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

// coarseMinRatio: a cold fit with N >= coarseMinRatio * hessianRows rows starts from the
// solution of the same problem on the row sample (coarse-to-fine). The prototype measured
// the gain at N = 2e5 and 1e6 (2.1x -> 2.8x and 2.9x -> 8x the speed of L-BFGS-B);
// below twice the sample the subproblem is most of the work it would save.
const coarseMinRatio = 2

// coarseHessianStep: see coarseStart.
const coarseHessianStep = 4

// coarseStart solves the problem on the row sample from z0 (the sample's own design, its
// rows as the Hessian sample) and returns its solution as the start of the full fit. The
// sample's passes count in res.Passes at their share S/N of a full pass; its iterations are
// not counted in res.Iters.
func (nt *newton) coarseStart(ctx context.Context, st *Settings, z0 []float64, res *Result, start time.Time) ([]float64, error) {
	smp, ny := nt.smp, nt.ny
	ys := smp.gatherY(nt.y, ny)
	// The subproblem's own Hessian comes from every coarseHessianStep-th sample row for the
	// ReLU link: its solution is only a start, as far from the full problem's solution as
	// the sample's statistical error, and its per-output Grams on all 20,000 rows were most
	// of its cost (M of the benchmark, idle, three runs each: time to 1e-6 0.28 -> 0.25 s).
	// The identity link keeps them all: its metric is the one shared Gram, built once, and a
	// coarser one cost more full steps (LS: 0.150 -> 0.163 s).
	step := coarseHessianStep
	if nt.link == Identity {
		step = 1
	}
	sg, whole := smp.design(nt.threads, step)
	lo, hi := sg.sp.rowLo[sg.sp.rank], sg.sp.rowLo[sg.sp.rank+1] // this process's sample rows
	sub := newNewtonOn(sg, whole, ys[lo*ny:hi*ny], ny, nt.lambda, nt.lam, st)
	sub.mask = nt.mask
	sst := *st
	sst.Recorder = nil
	var sres Result
	zs, _, status, err := sub.run(ctx, &sst, z0, &sres, start)
	if err != nil {
		return nil, err
	}
	res.Passes += sres.Passes * float64(len(smp.rows)) / float64(nt.N)
	if status == NumericalFailure {
		return z0, nil // start from z0 as if there were no sample
	}
	return zs, nil
}

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
	ny, p := nt.ny, nt.p
	copy(nt.z, z0)
	cold := true
	for i := range nt.z {
		if nt.mask != nil && !nt.mask[i] {
			nt.z[i] = 0
		}
		if nt.z[i] != 0 {
			cold = false
		}
	}
	// From a cold start (U = 0) the first majoriser is minimised to RemajorizeTol times the
	// tolerance before re-majorising: re-majorising at an immature iterate switches terms
	// with y > 0 and w < 0 to their flat majoriser, from which they rarely return (a dead
	// unit; measured with the ADMM on an MNIST hidden layer: F 356 against 71).
	for j := 0; j < ny; j++ {
		nt.alpha[j], nt.changes[j], nt.small[j] = 0, 0, 0
		nt.sharedRun[j] = 0
		nt.cold[j] = cold && nt.link == ReLU
	}
	act := make([]int, ny)
	for j := range act {
		act[j] = j
	}
	nt.settle(act, nil, true, true)
	res.Passes += 2 // K z and the gradient
	for _, j := range act {
		nt.kkt[j] = nt.kktOf(j)
	}
	nt.initStepScale()
	best := append([]float64(nil), nt.z...)
	bestOut := append([]float64(nil), nt.fOut...)
	status := IterationLimit
	for {
		if nt.g.sp.canceled(ctx) { // on any process: all stop at the same iteration
			status = Canceled
			break
		}
		newAct := act[:0:0]
		for _, j := range act {
			if nt.cold[j] {
				// Per output: once its first majoriser is minimised to RemajorizeTol times
				// the tolerances, the update after this step re-majorises it.
				if nt.kkt[j] <= st.RemajorizeTol*nt.eps || nt.small[j] >= 1 {
					nt.cold[j] = false
					nt.small[j] = 0
				}
			} else if nt.kkt[j] <= nt.tol[j] || nt.small[j] >= 2 { // converged: leaves the passes
				continue
			}
			newAct = append(newAct, j)
		}
		act = newAct
		if len(act) == 0 {
			status = Converged
			break
		}
		if res.Iters >= st.MaxIter || res.CCPIters >= st.MaxCCP {
			break
		}
		res.Iters++
		if nt.plan(act) {
			if _, built := nt.smp.sharedGram(p, nt.threads); built {
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
		nt.settle(act, fix, false, false)
		res.Passes += work + 1 + float64(len(fix))/float64(len(act)) // + the gradient, + K d of fix
		remaj := false
		for _, j := range act {
			remaj = remaj || !nt.cold[j]
			// Stationarity by decrease: the KKT residual misses the convex kinks of the
			// terms with y < 0 at w = 0 (and of the majorisers at their switch points),
			// where minimisers often sit; there F stops decreasing while the one-sided
			// gradient does not vanish.
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
		if remaj {
			res.CCPIters++
		}
		for _, j := range act {
			a := nt.alpha[j]
			for k := 0; k < p; k++ {
				i := k*ny + j
				nt.z[i] += a * nt.d[i]
			}
			nt.kkt[j] = nt.kktOf(j) // at the new z, with the gradient settle formed there
			if nt.fOut[j] < bestOut[j] {
				bestOut[j] = nt.fOut[j]
				for k := 0; k < p; k++ {
					best[k*ny+j] = nt.z[k*ny+j]
				}
			}
		}
		f := sum(nt.fOut)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			status = NumericalFailure
			break
		}
		changes := 0
		for _, j := range act {
			changes += nt.changes[j]
		}
		err := record(st, Progress{CCPIter: res.CCPIters, Iter: res.Iters, F: f, Passes: res.Passes,
			PatternChanges: changes, DualRes: nt.maxKKT(act), Elapsed: time.Since(start),
			Remajorized: remaj})
		if err != nil {
			return nil, nil, 0, err
		}

	}
	res.DualRes = math.Max(res.DualRes, maxOf(nt.kkt))
	return best, bestOut, status, nil
}

// initStepScale sets t_j = 0.9 / (fraction of curved sample rows), within [1, tMax].
func (nt *newton) initStepScale() {
	all := make([]int, nt.ny)
	for j := range all {
		all[j] = j
	}
	counts := nt.markCurved(all, make([]bool, len(nt.smp.rows)*nt.ny))
	for j := 0; j < nt.ny; j++ {
		frac := float64(counts[j]) / float64(len(nt.smp.rows)) // curved sample rows
		nt.t[j] = math.Min(tMax, math.Max(1, 0.9/math.Max(frac, 1e-3)))
	}
}

// markCurved sets cm (S x len(act)) to whether sample row r's majoriser of output act[jj]
// is curved, and returns the curved rows per output. Each process marks the sample rows it
// holds; across processes the marks are all-gathered (bits).
func (nt *newton) markCurved(act []int, cm []bool) []int {
	ny, na, smp := nt.ny, len(act), nt.smp
	isId := nt.link == Identity
	for r := smp.own0; r < smp.own1; r++ {
		i := smp.rows[r] - smp.off
		wr, yr := nt.w[i*ny:(i+1)*ny], nt.y[i*ny:(i+1)*ny]
		c := cm[r*na : (r+1)*na]
		for jj, j := range act {
			c[jj] = curvedAt(wr[j], yr[j], nt.upper.get(i*ny+j), isId)
		}
	}
	lo := make([]int, len(smp.ownLo))
	for r, v := range smp.ownLo {
		lo[r] = v * na
	}
	smp.sp.gatherBits(cm[:len(smp.rows)*na], lo)
	counts := make([]int, na)
	for r := range smp.rows {
		for jj, c := range cm[r*na : (r+1)*na] {
			if c {
				counts[jj]++
			}
		}
	}
	return counts
}

// settle is the pass at a new point, one read of X: per chunk of rows it completes the
// move of w (init: w = K z for every output; else w += (alpha_j - 1) K d_j for the outputs
// in fix, whose line search wrote w + K d_j but accepted alpha_j != 1), re-majorises the
// outputs of act past their cold round (every output if all), sums F and the majoriser's
// value per output, and forms the residual r = (w - y) [curved] of the chunk, from which
// the same pass accumulates the gradient grad = K^T r / N and the KKT residuals of act. No
// n x ny array besides w exists.
func (nt *newton) settle(act, fix []int, all, init bool) {
	ny, na, n, p := nt.ny, len(act), nt.n, nt.p
	const width = 3
	part := make([]float64, numChunks(n)*width*na)
	isId := nt.link == Identity
	remajs := make([]bool, na) // re-majorise this column: warm outputs, or all
	for jj, j := range act {
		remajs[jj] = all || !nt.cold[j]
	}
	var B []float64 // p x k: z (init) or the directions of fix
	k := 0
	step := make([]float64, len(fix)) // alpha_j - 1 per column of fix
	switch {
	case init:
		B, k = nt.z, ny
	case len(fix) > 0:
		k = len(fix)
		B = make([]float64, p*k)
		for f, j := range fix {
			for c := 0; c < p; c++ {
				B[c*k+f] = nt.d[c*ny+j]
			}
			step[f] = nt.alpha[j] - 1
		}
	}
	W, Yv, Up := nt.w, nt.y, nt.upper // locals: the compiler cannot keep fields
	gc := growF(&nt.pna, p*na)        // K^T r for the columns act
	nt.g.pass(gc, B, k, na, func(c, lo, hi int, kb, r []float64) {
		acc := part[c*width*na : (c+1)*width*na]
		for i := lo; i < hi; i++ { // the moves
			wr := W[i*ny : (i+1)*ny]
			kr := kb[(i-lo)*k : (i-lo+1)*k]
			if init {
				copy(wr, kr)
			} else {
				for f, j := range fix {
					wr[j] += step[f] * kr[f]
				}
			}
		}
		// Per output, the chunk's rows in order, with the sums in registers (the same
		// sequence of additions per output as a row-major loop).
		for jj, j := range act {
			remaj := remajs[jj]
			var tsum, ssum, nch float64
			rc := r[jj:]
			if isId { // every term is its own quadratic
				for i := lo; i < hi; i++ {
					idx := i*ny + j
					e := W[idx] - Yv[idx]
					tsum += e * e
					ssum += e * e
					rc[(i-lo)*na] = e
				}
			} else {
				for i := lo; i < hi; i++ {
					idx := i*ny + j
					w, y := W[idx], Yv[idx]
					up := Up.get(idx)
					if remaj && y > 0 && (w >= 0) != up {
						up = !up
						Up.flip(idx)
						nch++
					}
					if w < 0 { // the term: (relu(w) - y)^2
						tsum += y * y
					} else {
						e := w - y
						tsum += e * e
					}
					sv, rv := majorizer(w, y, up, false)
					ssum += sv
					rc[(i-lo)*na] = rv
				}
			}
			acc[width*jj] += tsum
			acc[width*jj+1] += ssum
			acc[width*jj+2] += nch
		}
	})
	sums := make([]float64, width*na)
	nt.g.reduce(sums, part, width*na)
	inv := 1 / (2 * float64(nt.N))
	invN := 1 / float64(nt.N)
	for jj, j := range act {
		l1 := nt.l1(nt.z, j, 0, nil)
		if a := nt.alpha[j]; !init && a != 0 {
			l1 = nt.l1(nt.z, j, a, nt.d)
		}
		nt.fOut[j] = sums[width*jj]*inv + l1
		nt.phi[j] = sums[width*jj+1]*inv + l1
		nt.changes[j] = int(sums[width*jj+2])
		// The gradient at the new point (z + alpha d, which the caller forms after).
		for c := 0; c < p; c++ {
			nt.grad[c*ny+j] = gc[c*na+jj] * invN
		}
	}
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

// plan marks the curved sample rows of every output of act (one row-major pass) and
// chooses each output's metric for the next step: its own Gram when that costs at most
// gramBudget times the output's share of one pass (the Gram's cost estimated from the
// working set's column densities), else the shared metric. It reports whether any output
// needs the shared metric.
func (nt *newton) plan(act []int) bool {
	na := len(act)
	nt.nact = na
	S := len(nt.smp.rows)
	if cap(nt.cmask) < S*na {
		nt.cmask = make([]bool, S*na)
	}
	nt.cmask = nt.cmask[:S*na]
	counts := nt.markCurved(act, nt.cmask)
	pass := float64(nt.N) * float64(nt.g.nx) * nt.g.passFrac
	any := false
	for jj, j := range act {
		nt.curved[j] = counts[jj]
		nt.ws[j] = nt.workingSet(j, nt.ws[j][:0])
		dens := 0.0
		for _, k := range nt.ws[j] {
			if k < nt.g.nx {
				dens += nt.smp.colDens[k]
			} else {
				dens++
			}
		}
		cost := float64(counts[jj]) * dens * (dens + 1) / 2
		nt.gramCost[j] = cost
		// Budget, or patience: an output still running after sharedPatience steps on the
		// shared metric converges too slowly on it; its own Gram costs a few passes once
		// and then converges in a few steps (measured on the MNIST demo's first layer:
		// stragglers at 60 shared steps with the KKT residual stuck near 2e-4).
		nt.shared[j] = cost > gramBudget*pass && nt.sharedRun[j] < sharedPatience
		if nt.link == Identity {
			// Every row is curved: the shared Gram is the output's own (built once per X and
			// kept by Prepared, so a lambda path pays for it once).
			nt.shared[j] = true
		}
		if nt.shared[j] {
			nt.sharedRun[j]++
		}
		// The shared metric also serves own Grams with most rows curved (step: complement).
		any = any || nt.shared[j] || 2*counts[jj] > len(nt.smp.rows)
	}
	return any
}

// workingSet appends to ws the coordinates free in output j's step model (ascending): the
// bias, the non-zeros, and the zero coordinates whose gradient exceeds wsFraction times
// their L1 weight - at most max(wsMinGrow, #non-zeros) of these, the largest
// |gradient| / weight first (working sets that at most double per step, as in glmnet's and
// celer's working-set schemes; the KKT check of the next step finds any coordinate left
// out). Masked coordinates never enter.
func (nt *newton) workingSet(j int, ws []int) []int {
	ny, p := nt.ny, nt.p
	type cand struct {
		k     int
		score float64
	}
	var cands []cand
	nnz := 0
	for k := 0; k < p; k++ {
		i := k*ny + j
		if nt.mask != nil && !nt.mask[i] {
			continue
		}
		switch {
		case k == nt.g.nx || nt.z[i] != 0:
			ws = append(ws, k)
			if k != nt.g.nx {
				nnz++
			}
		case math.Abs(nt.grad[i]) > wsFraction*nt.lam[k]:
			sc := math.Inf(1)
			if nt.lam[k] > 0 {
				sc = math.Abs(nt.grad[i]) / nt.lam[k]
			}
			cands = append(cands, cand{k, sc})
		}
	}
	if limit := max(wsMinGrow, nnz); len(cands) > limit {
		slices.SortStableFunc(cands, func(a, b cand) int { return cmp.Compare(b.score, a.score) })
		cands = cands[:limit]
	}
	for _, c := range cands {
		ws = append(ws, c.k)
	}
	slices.Sort(ws)
	return ws
}

// stepWork is the scratch of one worker of steps.
type stepWork struct {
	pos, nz      []int
	H, xw, A, B  []float64
	val          []float64
	q0, v0, l, v []float64
	q            []float64
	gram         gramScratch
}

// steps computes the direction d_j and the model decrease delta_j of every output in act,
// in parallel over outputs (each output on one goroutine: deterministic).
func (nt *newton) steps(act []int) {
	nw := max(1, min(nt.threads, len(act)))
	for len(nt.work1) < nw { // per-worker scratch, kept across steps (no garbage per step)
		nt.work1 = append(nt.work1, &stepWork{})
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < nw; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sw := nt.work1[w]
			for {
				c := int(next.Add(1) - 1)
				if c >= len(act) {
					return
				}
				nt.step(act[c], c, sw)
			}
		}()
	}
	wg.Wait()
}

// step computes output j's direction: working set, metric, coordinate descent.
func (nt *newton) step(j, jj int, sw *stepWork) {
	ny, p, nx := nt.ny, nt.p, nt.g.nx
	ws := nt.ws[j] // chosen by plan
	m := len(ws)
	for k := 0; k < p; k++ {
		nt.d[k*ny+j] = 0
	}
	nt.work[j] = 0
	if m == 0 {
		nt.delta[j] = 0
		return
	}
	grow := func(b []float64, n int) []float64 {
		if cap(b) < n {
			return make([]float64, n)
		}
		return b[:n]
	}
	sw.H = grow(sw.H, m*m)
	sw.xw, sw.q0, sw.v0 = grow(sw.xw, m), grow(sw.q0, m), grow(sw.v0, m)
	sw.l, sw.v, sw.q = grow(sw.l, m), grow(sw.v, m), grow(sw.q, m)
	H := sw.H
	clear(H)
	S := len(nt.smp.rows)
	frac := float64(nt.curved[j]) / float64(S)
	useShared := nt.shared[j] // chosen by plan
	scale := 1.0
	if useShared {
		G := nt.smp.gram
		scale = 1 / nt.t[j]
		if nt.link == Identity {
			scale = 1
		}
		for a, ka := range ws {
			for b, kb := range ws {
				H[a*m+b] = G[ka*p+kb] * scale
			}
		}
	} else {
		if cap(sw.pos) < nx {
			sw.pos = make([]int, nx)
			for k := range sw.pos {
				sw.pos[k] = -1
			}
			sw.nz, sw.val = make([]int, 0, p), make([]float64, 0, p)
		}
		na, cm := nt.nact, nt.cmask
		c := nt.curved[j]
		// With more than half the sample rows curved, the Gram over the flat rows is the
		// cheaper one: H = G - (flat rows' Gram), G the shared metric (linear in the rows).
		complement := 2*c > S && nt.smp.gram != nil
		use := func(r int) bool { return cm[r*na+jj] != complement }
		rows := c
		if complement {
			rows = S - c
		}
		if nt.smp.dense() {
			// Dense data: the rows' standardised working-set columns, gathered by blocks
			// (kGram; single-threaded here, the outputs run in parallel).
			nt.smp.kGram(ws, 0, S, use, H, &sw.gram)
			inv := 1 / float64(S)
			for i := range H {
				H[i] *= inv
			}
		} else {
			sw.A = grow(sw.A, m*m)
			clear(sw.A)
			clear(sw.xw) // column sums
			cnt := nt.smp.rawGram(ws, sw.pos, 0, S, use, sw.A, sw.xw, sw.nz, sw.val)
			nt.smp.toK(ws, sw.A, sw.xw, cnt, H)
		}
		if complement {
			G := nt.smp.gram
			for a, ka := range ws {
				for b, kb := range ws {
					H[a*m+b] = G[ka*p+kb] - H[a*m+b]
				}
			}
		}
		nt.work[j] = nt.gramCost[j] * float64(rows) / float64(max(c, 1))
	}
	floor := diagFloor * math.Max(frac, 1/float64(S)) * scale
	for a := 0; a < m; a++ {
		if H[a*m+a] < floor {
			H[a*m+a] = floor
		}
	}
	for a, k := range ws {
		i := k*ny + j
		sw.q0[a], sw.v0[a], sw.l[a] = nt.grad[i], nt.z[i], nt.lam[k]
	}
	sweeps := cdMaxSweeps
	if useShared {
		// The shared metric is only a scaled stand-in for the output's curvature: solving
		// its model precisely buys little. The wide-layer prototype did 2 sweeps.
		sweeps = sharedSweeps
	}
	cdLasso(H, m, sw.q0, sw.v0, sw.l, sw.v, sw.q, sweeps, cdTol)
	// Model decrease delta = grad . d + L1(z + d) - L1(z) (the Armijo reference).
	delta := 0.0
	for a, k := range ws {
		i := k*ny + j
		dv := sw.v[a] - sw.v0[a]
		nt.d[i] = dv
		delta += sw.q0[a]*dv + nt.lam[k]*(math.Abs(sw.v[a])-math.Abs(sw.v0[a]))
	}
	nt.delta[j] = delta
}

// cdLasso minimises over v (m coordinates)
//
//	q0^T (v - v0) + 1/2 (v - v0)^T H (v - v0) + sum_k l_k |v_k|
//
// by cyclic coordinate descent from v = v0, keeping q = q0 + H (v - v0) current (the
// smooth part's gradient; scikit-learn's Gram variant of the Lasso CD). Full sweeps
// alternate with sweeps over the non-zero coordinates until these settle (glmnet's active
// set), until a sweep's largest move is below tol times the largest move seen. H is
// symmetric m x m with a positive diagonal.
func cdLasso(H []float64, m int, q0, v0, l, v, q []float64, maxSweeps int, tol float64) int {
	copy(v, v0)
	copy(q, q0)
	full := true
	big := 0.0
	sweeps := 0
	for sweeps < maxSweeps {
		sweeps++
		moved := 0.0
		for k := 0; k < m; k++ {
			vk := v[k]
			if !full && vk == 0 {
				continue
			}
			h := H[k*m+k]
			nv := softThreshold(vk-q[k]/h, l[k]/h) // argmin over v_k with the others fixed
			if nv == vk {
				continue
			}
			dl := nv - vk
			v[k] = nv
			kern.Axpy(q, dl, H[k*m:(k+1)*m]) // q += H e_k dl (vectorised axpy)
			moved = math.Max(moved, math.Abs(dl)*math.Sqrt(h))
		}
		big = math.Max(big, moved)
		if moved <= tol*big { // settled: done if this was a full sweep, else verify with one
			if full {
				break
			}
			full = true
		} else {
			full = false // iterate on the non-zero coordinates
		}
	}
	return sweeps
}

// lineSearch finds alpha_j per output of act by Armijo backtracking on the current
// majoriser along z + alpha d. Its first trial (alpha = 1 for every output with a descent
// direction) is one pass over X that computes K d chunk by chunk and writes w + K d into w,
// so that an accepted full step (the usual Newton outcome) costs no further pass; each
// backtracking round is a pass over the outputs still searching. It returns the outputs
// whose w holds w + K d but whose alpha is not 1 (settle completes their move) and the
// passes spent, in units of a product with all of act's columns.
func (nt *newton) lineSearch(act []int) (fix []int, passes float64) {
	na := len(act)
	trial := make([]float64, na)
	var todo []int // indices into act
	for jj, j := range act {
		nt.alpha[j] = 0
		if nt.delta[j] < 0 {
			trial[jj] = 1
			todo = append(todo, jj)
		}
	}
	moved := append([]int(nil), todo...) // w holds w + K d for these
	phis := make([]float64, na)
	for tries := 0; len(todo) > 0 && tries < maxBacktracks; tries++ {
		nt.trialValues(act, todo, trial, phis, tries == 0)
		passes += float64(len(todo)) / float64(na)
		var still []int
		for _, jj := range todo {
			j := act[jj]
			a := trial[jj]
			if phis[jj] <= nt.phi[j]+armijo*a*nt.delta[j] {
				nt.alpha[j] = a
				continue
			}
			// Quadratic interpolation of phi(0), phi'(0) ~ delta, phi(a), kept in [0.1a, 0.5a].
			curv := phis[jj] - nt.phi[j] - a*nt.delta[j]
			an := 0.5 * a
			if curv > 0 && !math.IsNaN(phis[jj]) {
				an = math.Min(0.5*a, math.Max(0.1*a, -nt.delta[j]*a*a/(2*curv)))
			}
			trial[jj] = an
			still = append(still, jj)
		}
		todo = still
	}
	for _, j := range act {
		if nt.shared[j] {
			if nt.alpha[j] == 1 {
				nt.t[j] = math.Min(tMax, 1.5*nt.t[j])
			} else {
				nt.t[j] = math.Max(1, 0.5*nt.t[j])
			}
		}
	}
	for _, jj := range moved {
		if j := act[jj]; nt.alpha[j] != 1 {
			fix = append(fix, j)
		}
	}
	return fix, passes
}

// trialValues sets phis[jj] = majoriser of output act[jj] at z + trial d, for jj in todo,
// in one pass over X that computes K d for those outputs chunk by chunk. On the first
// trial (every trial 1) it also writes w + K d into w; later trials read w + K d from w and
// evaluate w + (trial - 1) K d.
func (nt *newton) trialValues(act, todo []int, trial, phis []float64, first bool) {
	ny, n, p := nt.ny, nt.n, nt.p
	nt2 := len(todo)
	isId := nt.link == Identity
	part := make([]float64, numChunks(n)*nt2)
	cols := make([]int, nt2) // output of each trial
	steps := make([]float64, nt2)
	B := make([]float64, p*nt2) // the directions of the trials
	for tt, jj := range todo {
		j := act[jj]
		cols[tt], steps[tt] = j, trial[jj]-1
		for c := 0; c < p; c++ {
			B[c*nt2+tt] = nt.d[c*ny+j]
		}
	}
	W, Yv, Up := nt.w, nt.y, nt.upper
	nt.g.pass(nil, B, nt2, 0, func(c, lo, hi int, kb, _ []float64) {
		acc := part[c*nt2 : (c+1)*nt2]
		for tt, j := range cols { // per output, the chunk's rows in order
			st := steps[tt]
			var sum float64
			kc := kb[tt:]
			for i := lo; i < hi; i++ {
				idx := i*ny + j
				kd := kc[(i-lo)*nt2]
				var v float64
				if first {
					v = W[idx] + kd
					W[idx] = v
				} else {
					v = W[idx] + st*kd
				}
				sv, _ := majorizer(v, Yv[idx], Up.get(idx), isId)
				sum += sv
			}
			acc[tt] += sum
		}
	})
	s := make([]float64, nt2)
	nt.g.reduce(s, part, nt2)
	inv := 1 / (2 * float64(nt.N))
	for tt, jj := range todo {
		j := act[jj]
		phis[jj] = s[tt]*inv + nt.l1(nt.z, j, trial[jj], nt.d)
	}
}

// bitset is a packed []bool: the majorisation pattern takes one bit per entry of the
// n x ny array. Row chunks (kern.ChunkRows rows, a multiple of 64) own whole words, so
// the chunks of a pass may set their bits concurrently.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) get(i int) bool { return b[i>>6]>>(uint(i)&63)&1 != 0 }

func (b bitset) flip(i int) { b[i>>6] ^= 1 << (uint(i) & 63) }

// growF returns (*b)[:n], reallocating *b when it is too small.
func growF(b *[]float64, n int) []float64 {
	if cap(*b) < n {
		*b = make([]float64, n)
	}
	*b = (*b)[:n]
	return *b
}
