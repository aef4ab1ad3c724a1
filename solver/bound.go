package solver

import "math"

// lowerBound returns, per output, a certified lower bound on min F from weak duality for
// the convex relaxation (docs/method.md, section 5): each term f_p is replaced by its convex envelope h_p
// (h_p = f_p for y_p <= 0 and for the identity link; theta(w - y)(w - y)^2 otherwise), and
// since sum_p h_p <= sum_p f_p, any dual-feasible point of the relaxed problem bounds F.
//
// In the sum form  min_u sum_p h_p(K_p u) + sum_k gamma_k |u_k|  (gamma_k = 2 N lambda / d_k,
// bias unpenalised) the dual is
//
//	max_nu  D(nu) = -sum_p h_p*(nu_p)   s.t.  |(K^T nu)_k| <= gamma_k,  (K^T nu)_bias = 0,
//
// with h* from conjugate(). We take nu = h'(K z) at the solution, restore feasibility (centre
// it when there is a bias; with the ReLU link and a free bias only nu = 0 is feasible, since
// h* is finite only for nu >= 0), scale it by s in [0, s_max], and maximise the concave
// D(s nu) over s by golden section. Masked (fixed-zero) coordinates carry no constraint.
// The bound in F's units is D / (2N).
//
// With the group penalty (gw non-nil, group.go) the constraint is ||(K^T nu)_k,:|| <= gamma_k
// w_k per row (per group of rows: groupScale), and every output's scale is limited to the
// common groupScale.
//
// With an offset s (off, n x ny, nil = none) the terms are h_p(w_p + s_p), whose conjugate
// is h_p*(nu_p) - nu_p s_p: the dual gains sum_p nu_p s_p (dualValues, bestScaledDuals), and
// nu = h'(K z + s). D(0) does not change, so neither does the bound of the ReLU link with a
// bias.
func lowerBound(g *design, y, off []float64, ny int, lambda float64, link Link, z []float64, mask []bool, gw *groupSpec) []float64 {
	n, N := g.n, float64(g.N)
	if g.bias && link == ReLU {
		// Only nu = 0 is feasible (see above): D(0) = -sum_p h_p*(0) = sum_{y_p <= 0} y_p^2,
		// computed without the N x Ny work arrays (they would raise the fit's peak memory).
		out := make([]float64, ny)
		g.reduce(out, g.rowSums(ny, func(i int, acc []float64) {
			for j, v := range y[i*ny : (i+1)*ny] {
				if v <= 0 {
					acc[j] += v * v
				}
			}
		}), ny)
		for j := range out {
			out[j] /= 2 * N
		}
		return out
	}
	nu := make([]float64, n*ny)
	kt := make([]float64, g.p*ny)
	w := nu // reuse: nu_p = h_p'(w_p)
	g.mul(w, z, ny)
	for idx := range off {
		w[idx] += off[idx]
	}
	for idx := range nu {
		nu[idx] = relaxGrad(w[idx], y[idx], link)
	}
	if g.bias { // identity link: centre nu so that (K^T nu)_bias = 0
		m := g.colSums(nu, ny)
		for j := range m {
			m[j] /= N
		}
		for i := 0; i < n; i++ {
			for j := 0; j < ny; j++ {
				nu[i*ny+j] -= m[j]
			}
		}
	}
	g.mulT(kt, nu, ny)
	var sGroup float64
	if gw != nil {
		sGroup = groupScale(g, kt, ny, lambda, gw, mask)
	}
	sMax := make([]float64, ny)
	for j := 0; j < ny; j++ {
		sMax[j] = math.Inf(1)
		if gw != nil {
			sMax[j] = sGroup
		}
		for k := 0; k < g.nx && gw == nil; k++ {
			if mask != nil && !mask[k*ny+j] {
				continue
			}
			v := math.Abs(kt[k*ny+j])
			if v > 0 {
				sMax[j] = math.Min(sMax[j], 2*N*lambda/g.d[k]/v)
			}
		}
	}
	out := bestScaledDuals(g, nu, y, off, ny, link, sMax)
	for j := range out {
		out[j] /= 2 * N
	}
	return out
}

// rowSums returns per-chunk partials (ny values per chunk of this process's rows) of
// f(i, acc), which adds row i's terms into acc.
func (g *design) rowSums(width int, f func(i int, acc []float64)) []float64 {
	part := make([]float64, numChunks(g.n)*width)
	forChunks(g.n, g.threads, func(c, lo, hi int) {
		acc := part[c*width : (c+1)*width]
		for i := lo; i < hi; i++ {
			f(i, acc)
		}
	})
	return part
}

// dualValues returns, for each output j and each of its scales s[t][j] (t < len(s)), the
// dual value D_j(s nu_j) = -sum_p h_p*(s nu_pj) (+ s nu_pj off_pj with an offset) over the
// fit's rows, as [t*ny + j].
func dualValues(g *design, nu, y, off []float64, ny int, link Link, s [][]float64) []float64 {
	w := len(s) * ny
	out := make([]float64, w)
	g.reduce(out, g.rowSums(w, func(i int, acc []float64) {
		for t, st := range s {
			for j := 0; j < ny; j++ {
				acc[t*ny+j] -= conjugate(st[j]*nu[i*ny+j], y[i*ny+j], link)
				if off != nil {
					acc[t*ny+j] += st[j] * nu[i*ny+j] * off[i*ny+j]
				}
			}
		}
	}), w)
	return out
}

// bestScaledDuals maximises, for every output j, the concave D_j(s nu_j) over s in
// [0, sMax[j]] by golden section, all outputs in lockstep (one reduction over the rows per
// round).
func bestScaledDuals(g *design, nu, y, off []float64, ny int, link Link, sMax []float64) []float64 {
	// D(0), A = nu.(y - off) and B = nu.nu per output.
	ab := make([]float64, 3*ny)
	g.reduce(ab, g.rowSums(3*ny, func(i int, acc []float64) {
		for j := 0; j < ny; j++ {
			v, yv := nu[i*ny+j], y[i*ny+j]
			acc[j] -= conjugate(0, yv, link)
			if off != nil {
				acc[ny+j] += v * (yv - off[i*ny+j])
			} else {
				acc[ny+j] += v * yv
			}
			acc[2*ny+j] += v * v
		}
	}), 3*ny)
	d0 := ab[:ny]
	best := append([]float64(nil), d0...)
	// Since h* >= v y + v^2/4 for every term, D(s nu) <= -(s A + s^2 B/4) (the offset's
	// s nu.off is in A); beyond the
	// positive root of s^2 B/4 + s A + d0 = 0 that is below D(0), so the maximiser lies in
	// [0, root]. Outputs without a bracket keep D(0).
	lo, hi := make([]float64, ny), make([]float64, ny)
	live := make([]bool, ny)
	anyLive := false
	for j := 0; j < ny; j++ {
		A, B := ab[ny+j], ab[2*ny+j]
		if B == 0 {
			continue
		}
		disc := A*A - B*d0[j]
		if disc <= 0 {
			continue
		}
		hi[j] = math.Min(sMax[j], (-A+math.Sqrt(disc))/(B/2))
		if hi[j] > 0 {
			live[j], anyLive = true, true
		} else {
			hi[j] = 0
		}
	}
	if !anyLive {
		return best
	}
	const phi = 0.6180339887498949 // golden ratio - 1
	a, b := make([]float64, ny), make([]float64, ny)
	for j := range a {
		a[j], b[j] = hi[j]-phi*(hi[j]-lo[j]), lo[j]+phi*(hi[j]-lo[j])
	}
	v := dualValues(g, nu, y, off, ny, link, [][]float64{a, b})
	fa, fb := v[:ny], v[ny:]
	next := make([]float64, ny)
	for it := 0; it < 60; it++ { // 0.618^60 ~ 3e-13 of the bracket
		left := make([]bool, ny)
		for j := 0; j < ny; j++ {
			if fa[j] < fb[j] {
				lo[j], a[j], fa[j] = a[j], b[j], fb[j]
				b[j] = lo[j] + phi*(hi[j]-lo[j])
				next[j] = b[j]
			} else {
				hi[j], b[j], fb[j] = b[j], a[j], fa[j]
				a[j] = hi[j] - phi*(hi[j]-lo[j])
				next[j] = a[j]
				left[j] = true
			}
		}
		f := dualValues(g, nu, y, off, ny, link, [][]float64{next})
		for j := 0; j < ny; j++ {
			if left[j] {
				fa[j] = f[j]
			} else {
				fb[j] = f[j]
			}
		}
	}
	// Any evaluated point is a valid bound; return the best (D(0) included).
	for j := 0; j < ny; j++ {
		if live[j] {
			best[j] = math.Max(d0[j], math.Max(fa[j], fb[j]))
		}
	}
	return best
}

// relaxGrad is h'(w) for the convex envelope h of the term (the right derivative at kinks).
func relaxGrad(w, y float64, link Link) float64 {
	if link == Identity {
		return 2 * (w - y)
	}
	if w > relaxZ(y) {
		return 2 * (w - y)
	}
	return 0
}

// conjugate is h*(v) for the convex envelope h of (act(w) - y)^2:
//
//	identity: v y + v^2/4
//	relu, y > 0 (h = theta(w-y)(w-y)^2): +Inf for v < 0, else v y + v^2/4
//	relu, y <= 0 (h = f):                +Inf for v < 0, -y^2 for v <= -2y, else v y + v^2/4
func conjugate(v, y float64, link Link) float64 {
	if link == ReLU {
		if v < 0 {
			return math.Inf(1)
		}
		if y <= 0 && v <= -2*y {
			return -y * y
		}
	}
	return v*y + v*v/4
}
