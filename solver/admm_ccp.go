package solver

import (
	"context"
	"math"
	"time"
)

// The CCP driven by the ADMM (admm.go holds one ADMM iteration): set-up, the warm start of
// the duals, and the loop that alternates ADMM iterations with re-majorisations.

// newADMM allocates the ADMM state for Y on the prepared X, with the fit's mask (newMask).
func newADMM(pr *Prepared, y []float64, ny int, lambda float64, mask []bool, st *Settings) *admm {
	g := pr.g
	n, nx := g.n, g.nx
	a := &admm{g: g, n: n, ny: ny, lambda: lambda, link: st.Link, y: y, mask: mask, group: newGroupSpec(st, nx),
		omega: st.Relax, epsAbs: st.EpsAbs, epsRel: st.EpsRel}
	a.alloc()
	pr.admmMetric()
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
	a.yScale = admmYScales(a.y, n, ny)
}

// admmYScales returns the RMS of each output's targets (1 where that is 0), summed row by
// row. It is design.yScales but for the order of the additions (design.yScales sums per
// chunk of rows), which rounds differently when n > ChunkRows; the ADMM keeps its own so
// that its tolerances, and so its results, stay bitwise what they were.
func admmYScales(y []float64, n, ny int) []float64 {
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

// begin sets rho to its start (InitRho, or Rho), z to z0 (masked), and the duals (start).
func (a *admm) begin(st *Settings, z0 []float64) {
	for j := range a.rho {
		a.rho[j] = st.Rho
		if st.InitRho != nil {
			a.rho[j] = st.InitRho[j]
		}
	}
	copy(a.z, z0)
	applyMask(a.z, a.mask)
	a.start()
}

// run is one CCP from the standardised start z0; it returns the best point per output, its
// F per output, and the status. Iteration counts accumulate in res.
func (a *admm) run(ctx context.Context, st *Settings, z0 []float64, res *Result, start time.Time) ([]float64, []float64, Status, error) {
	a.begin(st, z0)
	res.Passes += 2 // K z and K^T nu

	status := IterationLimit
	ccp0 := res.CCPIters
	// From a cold start (U = 0) the first surrogate is solved to RemajorizeTol times the
	// tolerance before re-majorising; a warm start is already a sensible majorisation point.
	cold := isZero(z0) // of the start as given (Newton: of the masked start)
	iter0 := res.Iters
	fOut := a.objective(a.z, a.Q)
	fLast := sum(fOut)
	best := newBestPoint(a.z, fOut, a.ny)
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
		if a.group != nil { // coupled outputs: best point as a whole
			best.offerAll(a.zh, fOut)
		} else {
			for j, fj := range fOut { // the outputs are separate problems: best point per output
				best.offer(j, a.zh, fj)
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
			err := record(st, Progress{CCPIter: res.CCPIters, Iter: it, F: f, Passes: res.Passes,
				PrimalRes: maxOf(a.pri), DualRes: maxOf(a.dua), Elapsed: time.Since(start)})
			if err != nil {
				return nil, nil, 0, err
			}
			continue
		}
		changes := a.remajorize(a.Qh)
		res.CCPIters++
		lastRemaj = it
		decrease := fLast - f
		fLast = f
		pr, du := maxOf(a.pri), maxOf(a.dua)
		err := record(st, Progress{CCPIter: res.CCPIters, Iter: it, F: f, Passes: res.Passes,
			PatternChanges: changes, PrimalRes: pr, DualRes: du, Elapsed: time.Since(start), Remajorized: true})
		if err != nil {
			return nil, nil, 0, err
		}
		if conv && changes == 0 && decrease <= st.FTol*math.Abs(f) {
			status = Converged
			break
		}
		if res.CCPIters >= st.MaxCCP {
			break
		}
	}
	return best.z, best.f, status, nil
}

// coldStart is inner's: the ADMM starts from z0.
func (a *admm) coldStart(_ context.Context, _ *Settings, z0 []float64, _ *Result, _ time.Time) ([]float64, error) {
	return z0, nil
}

// residuals is inner's: the per-output rho and residuals of the last run.
func (a *admm) residuals() *outputResiduals { return &outputResiduals{a.rho, a.pri, a.dua} }
