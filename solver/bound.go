package solver

import "math"

// lowerBound returns, per output, a certified lower bound on min F from weak duality for
// the convex relaxation (MATH.md): each term f_p is replaced by its convex envelope h_p
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
func lowerBound(g *design, y []float64, ny int, lambda float64, link Link, z []float64, mask []bool, gw *groupSpec) []float64 {
	n := g.n
	if g.bias && link == ReLU {
		// Only nu = 0 is feasible (see above): D(0) = -sum_p h_p*(0) = sum_{y_p <= 0} y_p^2,
		// computed without the N x Ny work arrays (they would raise the fit's peak memory).
		out := make([]float64, ny)
		for i, v := range y {
			if v <= 0 {
				out[i%ny] += v * v
			}
		}
		for j := range out {
			out[j] /= 2 * float64(n)
		}
		return out
	}
	nu := make([]float64, n*ny)
	kt := make([]float64, g.p*ny)
	w := nu // reuse: nu_p = h_p'(w_p)
	g.mul(w, z, ny)
	for idx := range nu {
		nu[idx] = relaxGrad(w[idx], y[idx], link)
	}
	if g.bias { // identity link: centre nu so that (K^T nu)_bias = 0
		for j := 0; j < ny; j++ {
			m := 0.0
			for i := 0; i < n; i++ {
				m += nu[i*ny+j]
			}
			m /= float64(n)
			for i := 0; i < n; i++ {
				nu[i*ny+j] -= m
			}
		}
	}
	g.mulT(kt, nu, ny)
	out := make([]float64, ny)
	col := make([]float64, n)
	yc := make([]float64, n)
	var sGroup float64
	if gw != nil {
		sGroup = groupScale(g, kt, ny, lambda, gw, mask)
	}
	for j := 0; j < ny; j++ {
		sMax := math.Inf(1)
		if gw != nil {
			sMax = sGroup
		}
		for k := 0; k < g.nx && gw == nil; k++ {
			if mask != nil && !mask[k*ny+j] {
				continue
			}
			v := math.Abs(kt[k*ny+j])
			if v > 0 {
				sMax = math.Min(sMax, 2*float64(n)*lambda/g.d[k]/v)
			}
		}
		for i := 0; i < n; i++ {
			col[i], yc[i] = nu[i*ny+j], y[i*ny+j]
		}
		out[j] = bestScaledDual(col, yc, link, sMax) / (2 * float64(n))
	}
	return out
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

// dualValue is D(s nu) = -sum_p h_p*(s nu_p).
func dualValue(s float64, nu, y []float64, link Link) float64 {
	d := 0.0
	for i, v := range nu {
		d -= conjugate(s*v, y[i], link)
	}
	return d
}

// bestScaledDual maximises the concave D(s nu) over s in [0, sMax].
func bestScaledDual(nu, y []float64, link Link, sMax float64) float64 {
	d0 := dualValue(0, nu, y, link)
	// Since h* >= v y + v^2/4 for every term, D(s nu) <= -(s A + s^2 B/4) with A = nu.y and
	// B = nu.nu; beyond the positive root of s^2 B/4 + s A + d0 = 0 that is below D(0), so the
	// maximiser lies in [0, root].
	A, B := dot(nu, y), dot(nu, nu)
	if B == 0 {
		return d0
	}
	disc := A*A - B*d0
	if disc <= 0 {
		return d0
	}
	hi := math.Min(sMax, (-A+math.Sqrt(disc))/(B/2))
	if !(hi > 0) {
		return d0
	}
	lo := 0.0
	const phi = 0.6180339887498949 // golden ratio - 1
	a, b := hi-phi*(hi-lo), lo+phi*(hi-lo)
	fa, fb := dualValue(a, nu, y, link), dualValue(b, nu, y, link)
	for it := 0; it < 60; it++ { // 0.618^60 ~ 3e-13 of the bracket
		if fa < fb {
			lo, a, fa = a, b, fb
			b = lo + phi*(hi-lo)
			fb = dualValue(b, nu, y, link)
		} else {
			hi, b, fb = b, a, fa
			a = hi - phi*(hi-lo)
			fa = dualValue(a, nu, y, link)
		}
	}
	// Any evaluated point is a valid bound; return the best (D(0) included).
	return math.Max(d0, math.Max(fa, fb))
}
