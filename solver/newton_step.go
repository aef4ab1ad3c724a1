package solver

import (
	"cmp"
	"math"
	"slices"
	"sync"
	"sync/atomic"
)

// One Newton step per output (see the newton type): plan chooses each output's working set
// and metric, steps runs step for every output in parallel, and step builds the metric and
// minimises the L1-regularised quadratic model (newton_cd.go).

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
	// sharedPatience: steps an output may take on the shared metric before its own Gram
	// is built whatever it costs (see plan).
	sharedPatience = 5
	// diagFloor keeps the model's diagonal positive when a coordinate is (nearly) zero on
	// the curved sample rows: at least diagFloor times the output's curved fraction (a
	// standardised column has unit mean square).
	diagFloor = 1e-3
)

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
		// stragglers at 60 shared steps with the KKT residual stuck near 2e-4). With
		// Settings.SharedMetric, always the shared metric.
		nt.shared[j] = cost > gramBudget*pass && nt.sharedRun[j] < sharedPatience || nt.forceShared
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

// step computes output j's direction d_j and model decrease delta_j: the metric on its
// working set (sharedMetric or ownMetric, chosen by plan), then coordinate descent on the
// L1-regularised quadratic model (direction).
func (nt *newton) step(j, jj int, sw *stepWork) {
	ny, p := nt.ny, nt.p
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
	sw.resize(m)
	H := sw.H
	clear(H)
	S := len(nt.smp.rows)
	frac := float64(nt.curved[j]) / float64(S)
	useShared := nt.shared[j] // chosen by plan
	scale := 1.0
	if useShared {
		scale = nt.sharedMetric(j, ws, H)
	} else {
		nt.ownMetric(j, jj, ws, sw)
	}
	floor := diagFloor * math.Max(frac, 1/float64(S)) * scale
	for a := 0; a < m; a++ {
		if H[a*m+a] < floor {
			H[a*m+a] = floor
		}
	}
	nt.direction(j, ws, sw, useShared)
}

// resize sizes the scratch for a working set of m coordinates.
func (sw *stepWork) resize(m int) {
	sw.H = growTo(sw.H, m*m)
	sw.xw, sw.q0, sw.v0 = growTo(sw.xw, m), growTo(sw.q0, m), growTo(sw.v0, m)
	sw.l, sw.v, sw.q = growTo(sw.l, m), growTo(sw.v, m), growTo(sw.q, m)
}

// growTo returns b[:n], or a new slice when b is too small (the contents are not kept).
func growTo(b []float64, n int) []float64 {
	if cap(b) < n {
		return make([]float64, n)
	}
	return b[:n]
}

// sharedMetric sets H (m x m, m = len(ws)) to the shared metric G restricted to the working
// set, divided by output j's step scale t_j (not for the identity link, where G is the
// output's own Gram), and returns the scale 1/t_j applied.
func (nt *newton) sharedMetric(j int, ws []int, H []float64) float64 {
	m, p := len(ws), nt.p
	G := nt.smp.gram
	scale := 1 / nt.t[j]
	if nt.link == Identity {
		scale = 1
	}
	for a, ka := range ws {
		for b, kb := range ws {
			H[a*m+b] = G[ka*p+kb] * scale
		}
	}
	return scale
}

// ownMetric sets sw.H to output j's own Gram on the working set, over its curved sample
// rows (cmask column jj, marked by plan), and nt.work[j] to its cost. With more than half
// the sample rows curved it is the shared Gram minus the flat rows' Gram (cheaper).
func (nt *newton) ownMetric(j, jj int, ws []int, sw *stepWork) {
	m, p, nx := len(ws), nt.p, nt.g.nx
	H := sw.H
	S := len(nt.smp.rows)
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
		sw.A = growTo(sw.A, m*m)
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

// direction minimises output j's model on the working set from the metric sw.H by
// coordinate descent (cdLasso; a few sweeps on the shared metric) and sets d_j and the
// model decrease delta_j.
func (nt *newton) direction(j int, ws []int, sw *stepWork, useShared bool) {
	ny, m := nt.ny, len(ws)
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
	cdLasso(sw.H, m, sw.q0, sw.v0, sw.l, sw.v, sw.q, sweeps, cdTol)
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
