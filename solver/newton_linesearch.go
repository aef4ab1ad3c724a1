package solver

import "math"

// The line search of a Newton step: Armijo backtracking on the current majoriser.

const (
	// armijo is the sufficient-decrease constant of the line search (Nocedal & Wright 3.1).
	armijo = 1e-4
	// maxBacktracks bounds the line search; 2^-30 ~ 1e-9 is far below any useful step.
	maxBacktracks = 30
)

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
		todo = nt.backtrack(act, todo, trial, phis)
	}
	nt.adaptStepScale(act)
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

// backtrack accepts the trial step of each output of todo (indices into act) whose
// majoriser phis meets the Armijo condition (alpha_j = trial) and returns the others, with
// their next, shorter trial.
func (nt *newton) backtrack(act, todo []int, trial, phis []float64) (still []int) {
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
	return still
}

// adaptStepScale updates the step scale t_j of the outputs of act on the shared metric:
// larger after a full step, smaller after a shortened one, within [1, tMax].
func (nt *newton) adaptStepScale(act []int) {
	for _, j := range act {
		if nt.shared[j] {
			if nt.alpha[j] == 1 {
				nt.t[j] = math.Min(tMax, 1.5*nt.t[j])
			} else {
				nt.t[j] = math.Max(1, 0.5*nt.t[j])
			}
		}
	}
}
