package solver

import (
	"fmt"
	"math"
)

// The group-L1 penalty (Settings.GroupL1): one group per input feature k, across all of
// the layer's outputs,
//
//	lambda sum_k w_k ||U_k,:||_2          (w_k = Settings.GroupWeights[k], default 1),
//
// so that a whole row of U (everything that reads input k) becomes exactly zero: input k,
// a unit of the previous layer, can then be removed (structured pruning, prune/neurons.go).
//
// Only the ADMM solves it (Auto picks the ADMM, an explicit Newton is an input error): the
// Newton solver's model and coordinate descent are per output, and the penalty couples the
// outputs. In the ADMM only the z-update changes. In standardised coordinates
// (z_k = d_k u_k, design.go) the penalty is lambda w_k / d_k ||z_k,:||, and with the
// per-output steps tau_j = 1/(N rho_j) the z-update of row k is
//
//	argmin_x  sum_j (rho_j/2) (x_j - v_j)^2 + c ||x||_2,     c = 2 lambda w_k / d_k,
//
// the prox of the group norm in the metric diag(rho): groupProx. With rho equal over the
// outputs it is the group soft threshold x = v (1 - c/(rho ||v||))_+; with the ADMM's
// per-output rho (residual balancing) it has no closed form, and groupProx finds its one
// scalar (the shrink factor) by a safeguarded 1-D root find.
//
// The outputs are no longer separate problems: the CCP keeps the best iterate as a whole
// (not per output), and a fit makes one start (per-output multi-start would mix points).
//
// Groups of several features (Settings.Groups: a convolution channel is read by KH*KW
// columns of the next layer) penalise lambda w_g ||U_G||_F over all rows k in the group G
// and all outputs j. In standardised coordinates that is lambda w_g ||(z_kj / d_k)||, and
// with y_kj = z_kj / d_k the z-update of the group is
//
//	argmin_y  sum_{k in G, j} (rho_j d_k^2 / 2) (y_kj - v_kj / d_k)^2 + 2 lambda w_g ||y||,
//
// the same prox (groupProx) in the metric diag(rho_j d_k^2), followed by z_kj = d_k y_kj.
// For one feature it is the single-row update above (d_k factors out of the metric); that
// case, and any group whose d_k are all equal, runs in the single-row form, so results
// without Groups are unchanged to the last bit.

// groupProx sets x = argmin_x sum_j (a_j/2)(x_j - v_j)^2 + c ||x||_2 for a_j > 0, c >= 0.
//
// Optimality: x = 0 iff ||a.v|| <= c (0 is in a.(0 - v) + c B). Otherwise x != 0 and
// a_j (x_j - v_j) + c x_j/||x|| = 0, i.e. x_j = a_j v_j / (a_j + mu) with mu = c/||x|| > 0,
// where mu solves
//
//	g(mu) = sum_j (a_j v_j mu / (a_j + mu))^2 = c^2 .
//
// g increases from 0 (mu = 0) to ||a.v||^2 (mu -> Inf), so the root is unique, and since
// mu/(a_max + mu) <= mu/(a_j + mu) <= mu/(a_min + mu) it lies in
// [c a_min/(||a.v|| - c), c a_max/(||a.v|| - c)] (one point when all a_j are equal: the
// group soft threshold). Newton steps on g, safeguarded by bisection of that bracket.
func groupProx(x, v, a []float64, c float64) {
	nav2 := 0.0
	amin, amax := math.Inf(1), 0.0
	for j, vj := range v {
		t := a[j] * vj
		nav2 += t * t
		if vj != 0 {
			amin, amax = math.Min(amin, a[j]), math.Max(amax, a[j])
		}
	}
	if nav2 <= c*c {
		clear(x)
		return
	}
	if c == 0 {
		copy(x, v)
		return
	}
	nav := math.Sqrt(nav2)
	lo, hi := c*amin/(nav-c), c*amax/(nav-c)
	mu := lo
	if hi > lo*(1+1e-15) {
		mu = 0.5 * (lo + hi)
		for it := 0; it < 200; it++ {
			g, dg := 0.0, 0.0
			for j, vj := range v {
				av := a[j] * vj
				q := mu / (a[j] + mu)
				g += av * av * q * q
				dg += 2 * av * av * q * a[j] / ((a[j] + mu) * (a[j] + mu))
			}
			g -= c * c
			if g > 0 {
				hi = mu
			} else {
				lo = mu
			}
			if g == 0 || hi-lo <= 1e-15*hi {
				break
			}
			next := mu - g/dg
			if !(next > lo && next < hi) || dg == 0 {
				next = 0.5 * (lo + hi)
			}
			if math.Abs(next-mu) <= 1e-15*mu {
				mu = next
				break
			}
			mu = next
		}
	}
	for j, vj := range v {
		x[j] = a[j] * vj / (a[j] + mu)
	}
}

// groupSpec is the structure of the group penalty: each group's features (increasing)
// and weight.
type groupSpec struct {
	members [][]int
	w       []float64
}

// newGroupSpec returns the group penalty of the settings (nil when it is off); the
// settings are valid (validateGroup).
func newGroupSpec(st *Settings, nx int) *groupSpec {
	if !st.GroupL1 {
		return nil
	}
	var gs groupSpec
	if st.Groups == nil {
		gs.members = make([][]int, nx)
		for k := range gs.members {
			gs.members[k] = []int{k}
		}
	} else {
		gs.members = make([][]int, numGroups(st))
		for k, g := range st.Groups {
			gs.members[g] = append(gs.members[g], k)
		}
	}
	gs.w = st.GroupWeights
	if gs.w == nil {
		gs.w = make([]float64, len(gs.members))
		for g := range gs.w {
			gs.w[g] = 1
		}
	}
	return &gs
}

// numGroups is the number of groups of valid settings with Groups set: len(GroupWeights),
// or without weights the largest group index plus one.
func numGroups(st *Settings) int {
	if st.GroupWeights != nil {
		return len(st.GroupWeights)
	}
	ng := 0
	for _, g := range st.Groups {
		ng = max(ng, g+1)
	}
	return ng
}

// validateGroup checks the group-penalty settings (part of validate).
func validateGroup(nx int, s *Settings) error {
	if !s.GroupL1 {
		if s.GroupWeights != nil {
			return inputErr("GroupWeights", "set without GroupL1")
		}
		if s.Groups != nil {
			return inputErr("Groups", "set without GroupL1")
		}
		return nil
	}
	if s.Method == Newton {
		return inputErr("Method", "the group-L1 penalty is solved by the ADMM only (use Auto or ADMM)")
	}
	if s.Starts > 1 {
		return inputErr("Starts", "the group-L1 penalty couples the outputs; only one start is supported, got %d", s.Starts)
	}
	ng := nx
	if s.Groups != nil {
		if len(s.Groups) != nx {
			return inputErr("Groups", "has %d values, want Nx = %d", len(s.Groups), nx)
		}
		for k, g := range s.Groups {
			if g < 0 || (s.GroupWeights != nil && g >= len(s.GroupWeights)) {
				return inputErr("Groups", "entry %d is group %d, want 0 .. %d", k, g, len(s.GroupWeights)-1)
			}
		}
		ng = numGroups(s)
		used := make([]bool, ng)
		for _, g := range s.Groups {
			used[g] = true
		}
		for g, u := range used {
			if !u {
				return inputErr("Groups", "group %d has no feature (groups must be numbered 0 .. G-1 without gaps)", g)
			}
		}
	}
	if s.GroupWeights != nil && len(s.GroupWeights) != ng {
		if s.Groups != nil {
			return inputErr("GroupWeights", "has %d values, want one per group (%d)", len(s.GroupWeights), ng)
		}
		return inputErr("GroupWeights", "has %d values, want Nx = %d", len(s.GroupWeights), nx)
	}
	for k, w := range s.GroupWeights {
		if !(w >= 0) || math.IsInf(w, 0) {
			return inputErr("GroupWeights", "entry %d must be finite and >= 0, got %v", k, w)
		}
	}
	return nil
}

// zUpdateGroup is the z-update of the ADMM iteration under the group penalty: per group
// the prox of the group norm in the metric diag(rho_j d_k^2) (groupProx; the header
// comment); masked coordinates stay 0 and the bias is not shrunk.
func (a *admm) zUpdateGroup() {
	ny := a.ny
	N := float64(a.n)
	gs := a.group
	v := make([]float64, 0, ny)
	w := make([]float64, 0, ny)
	x := make([]float64, ny)
	for g, ks := range gs.members {
		v, w = v[:0], w[:0]
		// One scale d for the whole group (a single feature, or all d_k equal): the
		// single-row form, threshold c = 2 lambda w_g / d in the metric diag(rho_j).
		d := a.g.d[ks[0]]
		same := true
		for _, k := range ks[1:] {
			same = same && a.g.d[k] == d
		}
		for _, k := range ks {
			dk := a.g.d[k]
			for j := 0; j < ny; j++ {
				i := k*ny + j
				if a.mask != nil && !a.mask[i] {
					continue
				}
				vj := a.z[i] - a.G[i]/(N*a.rho[j])
				if same {
					v = append(v, vj)
					w = append(w, a.rho[j])
				} else {
					v = append(v, vj/dk)
					w = append(w, a.rho[j]*dk*dk)
				}
			}
		}
		c := 2 * a.lambda * gs.w[g]
		if same {
			c /= d
		}
		if cap(x) < len(v) {
			x = make([]float64, len(v))
		}
		groupProx(x[:len(v)], v, w, c)
		t := 0
		for _, k := range ks {
			dk := a.g.d[k]
			for j := 0; j < ny; j++ {
				i := k*ny + j
				if a.mask != nil && !a.mask[i] {
					a.zh[i] = 0
					continue
				}
				if same {
					a.zh[i] = x[t]
				} else {
					a.zh[i] = dk * x[t]
				}
				t++
			}
		}
	}
	for k := a.g.nx; k < a.g.p; k++ { // the bias row: not penalised
		for j := 0; j < ny; j++ {
			i := k*ny + j
			a.zh[i] = a.z[i] - a.G[i]/(N*a.rho[j])
		}
	}
}

// groupPenaltyOut adds the group penalty to f (per output): the penalty of group g,
// lambda w_g ||(z_kj/d_k)||, is split over the outputs in proportion to sum_k (z_kj/d_k)^2,
// so the parts add up to the penalty (Result.FOut; only their sum is meaningful).
func groupPenaltyOut(f []float64, g *design, z []float64, ny int, lambda float64, gs *groupSpec) {
	for gi, ks := range gs.members {
		if len(ks) == 1 {
			k := ks[0]
			s := 0.0
			for j := 0; j < ny; j++ {
				s += z[k*ny+j] * z[k*ny+j]
			}
			if s == 0 {
				continue
			}
			nrm := math.Sqrt(s)
			for j := 0; j < ny; j++ {
				f[j] += lambda * gs.w[gi] / g.d[k] * z[k*ny+j] * z[k*ny+j] / nrm
			}
			continue
		}
		s := 0.0
		for _, k := range ks {
			for j := 0; j < ny; j++ {
				u := z[k*ny+j] / g.d[k]
				s += u * u
			}
		}
		if s == 0 {
			continue
		}
		nrm := math.Sqrt(s)
		for _, k := range ks {
			for j := 0; j < ny; j++ {
				u := z[k*ny+j] / g.d[k]
				f[j] += lambda * gs.w[gi] * u * u / nrm
			}
		}
	}
}

// groupScale is the largest s such that s nu is feasible for the dual of the group-penalised
// relaxation: ||(d_k (K^T nu)_kj)_{k in G, j}|| <= 2 N lambda w_g over the unmasked outputs
// (for one feature, ||(K^T nu)_k,:|| <= gamma_k w_k, gamma_k = 2 N lambda / d_k: the dual
// norm of the penalty in standardised coordinates). Any per-output scale in [0, s] is then
// feasible too (the scaled rows are dominated entrywise).
func groupScale(g *design, kt []float64, ny int, lambda float64, gs *groupSpec, mask []bool) float64 {
	sMax := math.Inf(1)
	for gi, ks := range gs.members {
		if len(ks) == 1 {
			k := ks[0]
			s := 0.0
			for j := 0; j < ny; j++ {
				if mask != nil && !mask[k*ny+j] {
					continue
				}
				s += kt[k*ny+j] * kt[k*ny+j]
			}
			if s > 0 {
				sMax = math.Min(sMax, 2*float64(g.n)*lambda*gs.w[gi]/g.d[k]/math.Sqrt(s))
			}
			continue
		}
		s := 0.0
		for _, k := range ks {
			for j := 0; j < ny; j++ {
				if mask != nil && !mask[k*ny+j] {
					continue
				}
				v := g.d[k] * kt[k*ny+j]
				s += v * v
			}
		}
		if s > 0 {
			sMax = math.Min(sMax, 2*float64(g.n)*lambda*gs.w[gi]/math.Sqrt(s))
		}
	}
	return sMax
}

// groupObjective evaluates F with the group penalty,
//
//	1/(2N) sum_p ||act(U^T x_p + b) - y_p||^2 + lambda sum_k w_k ||U_k,:||_2,
//
// directly from the data (w nil means all 1), like Objective.
func groupObjective(X, Y Matrix, U, B []float64, lambda float64, w []float64, link Link) float64 {
	return groupObjectiveOf(X, Y, U, B, lambda, nil, w, link)
}

// groupObjectiveOf is groupObjective for groups of features (Settings.Groups; nil: one
// per feature): the penalty is lambda sum_g w_g ||U_{G_g,:}||_F.
func groupObjectiveOf(X, Y Matrix, U, B []float64, lambda float64, groups []int, w []float64, link Link) float64 {
	f := Objective(X, Y, U, B, 0, link)
	ng := X.Cols
	if groups != nil {
		ng = 0
		for _, g := range groups {
			ng = max(ng, g+1)
		}
	}
	for g, nrm := range GroupNormsOf(U, X.Cols, Y.Cols, groups, ng) {
		wg := 1.0
		if w != nil {
			wg = w[g]
		}
		f += lambda * wg * nrm
	}
	return f
}

// groupNorms returns ||U_k,:||_2 for each row k of U (Nx x Ny).
func groupNorms(U []float64, nx, ny int) []float64 {
	return GroupNormsOf(U, nx, ny, nil, nx)
}

// GroupNormsOf returns, for each of the ng groups, the Frobenius norm of the rows of U
// (Nx x Ny) in it: groups[k] is row k's group (nil: one group per row, ng = nx).
func GroupNormsOf(U []float64, nx, ny int, groups []int, ng int) []float64 {
	if len(U) != nx*ny || (groups != nil && len(groups) != nx) || (groups == nil && ng != nx) {
		panic(fmt.Sprintf("solver.GroupNormsOf: %d values, %d group indices, %d groups for %d x %d", len(U), len(groups), ng, nx, ny))
	}
	out := make([]float64, ng)
	for k := 0; k < nx; k++ {
		g := k
		if groups != nil {
			g = groups[k]
		}
		for _, v := range U[k*ny : (k+1)*ny] {
			out[g] += v * v
		}
	}
	for g := range out {
		out[g] = math.Sqrt(out[g])
	}
	return out
}
