package solver

import (
	"math"
)

// admm holds the state of the inner solver for the current convex surrogate, for all Ny
// outputs at once (all N x Ny arrays are row-major, sample-major).
//
// The iteration is consensus ADMM with one local copy u_p per sample (Boyd et al. 2010,
// ch. 7; paper section 4) in a reduced form (docs/method.md, section 3): because each local term depends on
// u_p only through K_p^T u_p, every local copy and dual is a shared vector plus a multiple of
// K_p, so the state is the consensus variable z (p x Ny) and one scalar per (sample, output).
// Written in the scalar duals nu_p = g_p'(t_p) it is the diagonally preconditioned
// primal-dual (Chambolle-Pock) iteration with steps
//
//	tau_j = 1 / (N rho_j)       on z,        sigma_pj = rho_j / m_p     on nu_p,
//
// with m_p = ||K_p||^2 for the paper's consensus ADMM. By default m_p = theta ||K_p||^2 with
// theta the power-iteration estimate of lambda_max(K^T diag(1/||K_p||^2) K)/N (times a safety
// margin), the largest steps for which the iteration still converges (tau sigma ||K||^2 <= 1
// in the preconditioned norm). For well-conditioned data theta ~ 1/Nx, which removes most of
// the iterations plain consensus ADMM spends (docs/method.md, section 3).
//
// One iteration, with over-relaxation omega (Chambolle & Pock 2016, relaxed form):
//
//	zh  = S_{tau lambda~}(z - tau K^T nu)                   soft threshold, bias unshrunk
//	r_p = nu_p / sigma_p + (K(2 zh - z))_p
//	t_p = prox_{g_p, sigma_p}(r_p)                           closed form, prox.go
//	nuh_p = sigma_p (r_p - t_p)
//	(z, nu) += omega ((zh, nuh) - (z, nu))
//
// Products: K zh and K^T nu (two passes over X). K z and K^T nu are carried along linearly.
type admm struct {
	g      *design
	n, ny  int
	lambda float64
	link   Link
	y      []float64 // n x ny targets
	off    []float64 // n x ny: Settings.Offset, nil = none; term p is g_p(q + s_p) of Q = K z
	mask   []bool    // p x ny, nil = no mask; false = coordinate fixed at 0
	m      []float64 // per-row metric
	rho    []float64 // per output
	omega  float64
	group  *groupSpec // the group-L1 penalty (group.go), nil = L1

	z, zh, G, Gn []float64 // p x ny
	Q, Qh, nu    []float64 // n x ny: Q = K z, Qh = K zh
	upper        []bool    // n x ny: majorised at w0 >= 0 (only read where y > 0)

	// Residuals of the last iteration per output, scaled (see residuals) and their
	// tolerances.
	pri, dua, epsPri, epsDua []float64
	part                     []float64 // per-chunk partial sums, 4 per output
	sums                     []float64 // their reduction (4 per output)
	yScale                   []float64 // RMS of y per output (1 if zero)
	epsAbs, epsRel           float64
}

// surZ is the switch point of the current surrogate of term (i, j).
func (a *admm) surZ(idx int) float64 {
	if a.link == Identity {
		return math.Inf(-1)
	}
	return surrogateZ(a.y[idx], a.upper[idx])
}

// iterate runs one ADMM iteration and updates the residuals.
func (a *admm) iterate() {
	p, ny, n := a.g.p, a.ny, a.n
	N := float64(n)
	// zh = S(z - tau G), tau_j = 1/(N rho_j); threshold tau_j * 2 N lambda / d_k = 2 lambda/(rho_j d_k)
	if a.group != nil {
		a.zUpdateGroup()
	}
	for k := 0; k < p && a.group == nil; k++ {
		for j := 0; j < ny; j++ {
			i := k*ny + j
			if a.mask != nil && !a.mask[i] {
				a.zh[i] = 0
				continue
			}
			v := a.z[i] - a.G[i]/(N*a.rho[j])
			if k < a.g.nx {
				v = softThreshold(v, 2*a.lambda/(a.rho[j]*a.g.d[k]))
			}
			a.zh[i] = v
		}
	}
	a.g.mul(a.Qh, a.zh, ny) // Qh = K zh
	// Fused dual pass: prox per term, dual-residual sums, relaxed update of nu and Q.
	om := a.omega
	part := a.part
	clear(part)
	forChunks(n, a.g.threads, func(c, lo, hi int) {
		acc := part[c*4*ny : (c+1)*4*ny]
		for i := lo; i < hi; i++ {
			for j := 0; j < ny; j++ {
				idx := i*ny + j
				sig := a.rho[j] / a.m[i]
				q, qh, v := a.Q[idx], a.Qh[idx], a.nu[idx]
				r := v/sig + 2*qh - q // r = nu/sigma + K(2 zh - z)
				var t float64         // t = prox_{g, sigma}(r)
				if a.off == nil {
					t = proxSurrogate(r, sig, a.surZ(idx), a.y[idx])
				} else { // the prox of g(. + s) at r is prox_g(r + s) - s
					s := a.off[idx]
					t = proxSurrogate(r+s, sig, a.surZ(idx), a.y[idx]) - s
				}
				vh := sig * (r - t) // nuh = sigma (r - t)
				dv := (vh - v) / sig
				dres := (qh - q) - dv // dual residual: K(zh - z) - (nuh - nu)/sigma
				acc[4*j] += dres * dres
				acc[4*j+1] += qh * qh
				acc[4*j+2] += dv * dv
				acc[4*j+3] += q * q
				a.nu[idx] = v + om*(vh-v)
				a.Q[idx] = q + om*(qh-q)
			}
		}
	})
	sums := a.sums
	reduceChunks(sums, part, 4*ny)
	a.g.mulT(a.Gn, a.nu, ny) // Gn = K^T nu (new, relaxed)
	// Primal residual: (z - zh)/tau - (G - Gh), Gh = K^T nuh = (Gn - (1-om) G)/om.
	for j := 0; j < ny; j++ {
		tau := 1 / (N * a.rho[j])
		var pr, s1, s2, s3 float64
		for k := 0; k < p; k++ {
			i := k*ny + j
			gh := (a.Gn[i] - (1-om)*a.G[i]) / om
			dz := (a.z[i] - a.zh[i]) / tau
			e := dz - (a.G[i] - gh)
			pr += e * e
			s1 += dz * dz
			s2 += gh * gh
			s3 += a.G[i] * a.G[i]
			a.z[i] += om * (a.zh[i] - a.z[i])
			a.G[i] = a.Gn[i]
		}
		// Scale to per-sample units of y so that tolerances do not depend on N or on y's scale.
		sy := a.yScale[j]
		a.pri[j] = math.Sqrt(pr) / (N * sy)
		a.epsPri[j] = a.epsAbs*math.Sqrt(float64(p)) + a.epsRel*math.Sqrt(max(s1, s2, s3))/(N*sy)
		a.dua[j] = math.Sqrt(sums[4*j]) / (math.Sqrt(N) * sy)
		a.epsDua[j] = a.epsAbs + a.epsRel*math.Sqrt(max(sums[4*j+1], sums[4*j+2], sums[4*j+3]))/(math.Sqrt(N)*sy)
	}
}

// converged reports whether every output's residuals are within tolerance.
func (a *admm) converged() bool {
	for j := range a.pri {
		if !(a.pri[j] <= a.epsPri[j] && a.dua[j] <= a.epsDua[j]) { // NaN never converges
			return false
		}
	}
	return true
}

// within reports whether every output's residuals are within factor times their tolerances.
func (a *admm) within(factor float64) bool {
	for j := range a.pri {
		if !(a.pri[j] <= factor*a.epsPri[j] && a.dua[j] <= factor*a.epsDua[j]) {
			return false
		}
	}
	return true
}

// adaptRho balances the residuals (Boyd et al. 3.4.1, in the primal-dual form of Goldstein,
// Li & Yuan 2015: rho scales tau and sigma inversely, their product and the iterates are
// unchanged, so no state needs rescaling). Returns the number of outputs whose rho changed.
func (a *admm) adaptRho() int {
	const mu, kappa = 5, 2 // imbalance that triggers a change; factor of the change
	// rho stays within [rhoMin, rhoMax] of the standardised scale: an output whose terms are
	// all flat (a unit never active on the data) has residuals at rounding level, and their
	// ratio must not drive rho to 1e50.
	const rhoMin, rhoMax = 1e-4, 1e4
	changed := 0
	for j := range a.rho {
		if a.pri[j] <= a.epsPri[j] && a.dua[j] <= a.epsDua[j] {
			continue // this output has converged: leave it alone
		}
		rp := a.pri[j] / a.epsPri[j]
		rd := a.dua[j] / a.epsDua[j]
		switch {
		case rp > mu*rd && a.rho[j] > rhoMin: // z far from optimal for nu: larger primal step, smaller rho
			a.rho[j] /= kappa
			changed++
		case rd > mu*rp && a.rho[j] < rhoMax:
			a.rho[j] *= kappa
			changed++
		}
	}
	return changed
}

// remajorize re-centres the CCP surrogates at the pre-activations Q = K z (+ the offset) of the point at
// which F was last evaluated and returns the number of terms whose surrogate changed.
func (a *admm) remajorize(Q []float64) int {
	if a.link == Identity {
		return 0
	}
	counts := make([]float64, numChunks(a.n))
	forChunks(a.n, a.g.threads, func(c, lo, hi int) {
		for idx := lo * a.ny; idx < hi*a.ny; idx++ {
			if a.y[idx] <= 0 {
				continue
			}
			w := Q[idx]
			if a.off != nil {
				w += a.off[idx]
			}
			up := w >= 0
			if up != a.upper[idx] {
				a.upper[idx] = up
				counts[c]++
			}
		}
	})
	s := 0.0
	for _, v := range counts {
		s += v
	}
	return int(s)
}

// objective returns F per output at z (using Q = K z).
//
// Fit evaluates F at the prox output zh (with Qh = K zh), not at the relaxed iterate z: zh
// is exactly zero wherever the soft threshold (or the mask) makes it so, while with
// over-relaxation z = z + omega (zh - z) only decays to zero geometrically, so a returned z
// would have tiny nonzeros in place of the L1 solution's zeros.
func (a *admm) objective(z, Q []float64) []float64 {
	ny := a.ny
	part := make([]float64, numChunks(a.n)*ny)
	forChunks(a.n, a.g.threads, func(c, lo, hi int) {
		acc := part[c*ny : (c+1)*ny]
		for i := lo; i < hi; i++ {
			for j := 0; j < ny; j++ {
				idx := i*ny + j
				w := Q[idx]
				if a.off != nil {
					w += a.off[idx]
				}
				acc[j] += termValue(w, a.y[idx], a.link)
			}
		}
	})
	f := make([]float64, ny)
	reduceChunks(f, part, ny)
	for j := range f {
		f[j] /= 2 * float64(a.n)
		for k := 0; k < a.g.nx && a.group == nil; k++ {
			f[j] += a.lambda * math.Abs(z[k*ny+j]) / a.g.d[k]
		}
	}
	if a.group != nil {
		groupPenaltyOut(f, a.g, z, ny, a.lambda, a.group)
	}
	return f
}
