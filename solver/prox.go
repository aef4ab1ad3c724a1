package solver

import "math"

// Every convex surrogate of one term f(w) = (max(0, w) - y)^2 used by the solver has the form
// (docs/method.md, section 2, the table of surrogates)
//
//	g(w) = k + theta(w - z) * ((w - c)^2 - (z - c)^2),   c = y,
//
// a quadratic switched on to the right of z (z = -Inf: a complete quadratic), with the
// constant k = (max(0, z) - c)^2 for finite z (so that g = f where they must agree) and k = 0
// for z = -Inf. Every surrogate has c <= z, so g is non-decreasing right of z.

// surrogateZ returns the switch point z of the surrogate of f(w) = (max(0,w)-y)^2.
//
//	y <= 0                 : f itself, z = 0
//	y > 0, majorised at w0 >= 0: (w - y)^2, z = -Inf
//	y > 0, majorised at w0 < 0 : y^2 + theta(w - 2y)(w^2 - 2wy), z = 2y
func surrogateZ(y float64, upper bool) float64 {
	switch {
	case y <= 0:
		return 0
	case upper:
		return math.Inf(-1)
	default:
		return 2 * y
	}
}

// relaxZ is the switch point of the convex envelope of f: theta(w - y)(w - y)^2 for y > 0.
func relaxZ(y float64) float64 {
	if y <= 0 {
		return 0
	}
	return y
}

// surrogateValue evaluates g(w) for switch point z and centre c.
func surrogateValue(w, z, c float64) float64 {
	if math.IsInf(z, -1) {
		return (w - c) * (w - c)
	}
	k := (math.Max(0, z) - c) * (math.Max(0, z) - c)
	if w <= z {
		return k
	}
	return k + (w-c)*(w-c) - (z-c)*(z-c)
}

// proxSurrogate returns argmin_t g(t) + (s/2)(t - r)^2 for s > 0 (paper section 5, rescaled):
// t = r left of z, t = z on [z, r_U], t = (s r + 2c)/(s + 2) right of r_U.
func proxSurrogate(r, s, z, c float64) float64 {
	if r <= z {
		return r
	}
	t := (s*r + 2*c) / (s + 2)
	if t < z {
		return z
	}
	return t
}

// termValue is f(w) = (act(w) - y)^2 for the link.
func termValue(w, y float64, link Link) float64 {
	if link == ReLU && w < 0 {
		w = 0
	}
	return (w - y) * (w - y)
}

// softThreshold is S_k(v) = sign(v) max(|v| - k, 0).
func softThreshold(v, k float64) float64 {
	switch {
	case v > k:
		return v - k
	case v < -k:
		return v + k
	}
	return 0
}
