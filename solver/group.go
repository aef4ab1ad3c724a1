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

// groupWeights returns the weights w_k of the group penalty (nil when it is off).
func groupWeights(st *Settings, nx int) []float64 {
	if !st.GroupL1 {
		return nil
	}
	if st.GroupWeights != nil {
		return st.GroupWeights
	}
	w := make([]float64, nx)
	for k := range w {
		w[k] = 1
	}
	return w
}

// validateGroup checks the group-penalty settings (part of validate).
func validateGroup(nx int, s *Settings) error {
	if !s.GroupL1 {
		if s.GroupWeights != nil {
			return inputErr("GroupWeights", "set without GroupL1")
		}
		return nil
	}
	if s.Method == Newton {
		return inputErr("Method", "the group-L1 penalty is solved by the ADMM only (use Auto or ADMM)")
	}
	if s.Starts > 1 {
		return inputErr("Starts", "the group-L1 penalty couples the outputs; only one start is supported, got %d", s.Starts)
	}
	if s.GroupWeights != nil && len(s.GroupWeights) != nx {
		return inputErr("GroupWeights", "has %d values, want Nx = %d", len(s.GroupWeights), nx)
	}
	for k, w := range s.GroupWeights {
		if !(w >= 0) || math.IsInf(w, 0) {
			return inputErr("GroupWeights", "entry %d must be finite and >= 0, got %v", k, w)
		}
	}
	return nil
}

// zUpdateGroup is the z-update of the ADMM iteration under the group penalty: per feature
// row the prox of the group norm in the metric diag(rho) (groupProx); masked coordinates
// stay 0 and the bias is not shrunk.
func (a *admm) zUpdateGroup() {
	p, ny := a.g.p, a.ny
	N := float64(a.n)
	v := make([]float64, 0, ny)
	w := make([]float64, 0, ny)
	x := make([]float64, ny)
	for k := 0; k < p; k++ {
		v, w = v[:0], w[:0]
		for j := 0; j < ny; j++ {
			i := k*ny + j
			if a.mask != nil && !a.mask[i] {
				continue
			}
			v = append(v, a.z[i]-a.G[i]/(N*a.rho[j]))
			w = append(w, a.rho[j])
		}
		var c float64
		if k < a.g.nx {
			c = 2 * a.lambda * a.group[k] / a.g.d[k]
		}
		groupProx(x[:len(v)], v, w, c)
		t := 0
		for j := 0; j < ny; j++ {
			i := k*ny + j
			if a.mask != nil && !a.mask[i] {
				a.zh[i] = 0
				continue
			}
			a.zh[i] = x[t]
			t++
		}
	}
}

// groupPenaltyOut adds the group penalty to f (per output): the penalty of row k,
// lambda w_k/d_k ||z_k,:||, is split over the outputs in proportion to z_kj^2, so the
// parts add up to the penalty (Result.FOut; only their sum is meaningful).
func groupPenaltyOut(f []float64, g *design, z []float64, ny int, lambda float64, w []float64) {
	for k := 0; k < g.nx; k++ {
		s := 0.0
		for j := 0; j < ny; j++ {
			s += z[k*ny+j] * z[k*ny+j]
		}
		if s == 0 {
			continue
		}
		nrm := math.Sqrt(s)
		for j := 0; j < ny; j++ {
			f[j] += lambda * w[k] / g.d[k] * z[k*ny+j] * z[k*ny+j] / nrm
		}
	}
}

// groupScale is the largest s such that s nu is feasible for the dual of the group-penalised
// relaxation: ||(K^T nu)_k,:|| <= gamma_k w_k over the unmasked outputs, gamma_k = 2 N lambda / d_k.
// Any per-output scale in [0, s] is then feasible too (the scaled row is dominated entrywise).
func groupScale(g *design, kt []float64, ny int, lambda float64, w []float64, mask []bool) float64 {
	sMax := math.Inf(1)
	for k := 0; k < g.nx; k++ {
		s := 0.0
		for j := 0; j < ny; j++ {
			if mask != nil && !mask[k*ny+j] {
				continue
			}
			s += kt[k*ny+j] * kt[k*ny+j]
		}
		if s > 0 {
			sMax = math.Min(sMax, 2*float64(g.n)*lambda*w[k]/g.d[k]/math.Sqrt(s))
		}
	}
	return sMax
}

// GroupObjective evaluates F with the group penalty,
//
//	1/(2N) sum_p ||act(U^T x_p + b) - y_p||^2 + lambda sum_k w_k ||U_k,:||_2,
//
// directly from the data (w nil means all 1), like Objective.
func GroupObjective(X, Y Matrix, U, B []float64, lambda float64, w []float64, link Link) float64 {
	f := Objective(X, Y, U, B, 0, link)
	ny := Y.Cols
	for k := 0; k < X.Cols; k++ {
		s := 0.0
		for j := 0; j < ny; j++ {
			s += U[k*ny+j] * U[k*ny+j]
		}
		wk := 1.0
		if w != nil {
			wk = w[k]
		}
		f += lambda * wk * math.Sqrt(s)
	}
	return f
}

// GroupNorms returns ||U_k,:||_2 for each row k of U (Nx x Ny).
func GroupNorms(U []float64, nx, ny int) []float64 {
	if len(U) != nx*ny {
		panic(fmt.Sprintf("solver.GroupNorms: %d values, want %d x %d", len(U), nx, ny))
	}
	out := make([]float64, nx)
	for k := range out {
		s := 0.0
		for _, v := range U[k*ny : (k+1)*ny] {
			s += v * v
		}
		out[k] = math.Sqrt(s)
	}
	return out
}
