package solver

import (
	"context"
	"math"
	"time"
)

// The CCP driven by the ADMM (admm.go holds one ADMM iteration): set-up, the warm start of
// the duals, and the loop that alternates ADMM iterations with re-majorisations.

// newADMM allocates the ADMM state for Y on the prepared X.
func newADMM(pr *Prepared, y []float64, ny int, lambda float64, st *Settings) *admm {
	g := pr.g
	n, nx := g.n, g.nx
	a := &admm{g: g, n: n, ny: ny, lambda: lambda, link: st.Link, y: y, group: newGroupSpec(st, nx),
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
		if a.group != nil && sum(fOut) < sum(bestOut) { // coupled outputs: best point as a whole
			copy(best, a.zh)
			copy(bestOut, fOut)
		}
		for j, fj := range fOut { // the outputs are separate problems: best point per output
			if a.group == nil && fj < bestOut[j] {
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
	return best, bestOut, status, nil
}
