package solver

import "math"

// maxLog10SumSquares bounds log10 of the sum of an input's squared entries (X's, Y's). The
// solver forms sums of squares of X's columns and of Y (the objective at U = 0 is
// ||Y||^2/(2N)), products of them, and power-iteration estimates of ||X||^2; float64
// overflows at 1.8e308, so inputs must stay well below: 1e300 leaves a factor 1e8 for those
// products and sums. Measured: with N = 50, 4 columns and entries scaled by 1e154 (sum of
// squares about 1e310), fit failed inside the solver ("InitU: not finite" or a
// numerical-failure status); at 1e153 it still solved.
const maxLog10SumSquares = 300

// CheckScale returns an *InputError for the input name when the sum of m's squared entries
// is beyond what the solver's float64 arithmetic can hold (about 1e300; the message says
// how far to scale the data down). Fit and Prepare check X and Y so; callers that read
// data can check it at once. maxAbs is the largest magnitude among m's entries, which must
// be finite: when it bounds the sum below the limit, CheckScale makes no pass over m;
// otherwise it computes the sum exactly (scaled, without overflow: two passes) and exact
// is true.
func CheckScale(name string, m Matrix, maxAbs float64) (exact bool, err error) {
	l := len(m.F64) + len(m.F32)
	// sum v^2 <= len * maxAbs^2: only when that bound is above the limit is the sum needed.
	if maxAbs == 0 || math.Log10(float64(l))+2*math.Log10(maxAbs) <= maxLog10SumSquares {
		return false, nil
	}
	if e := log10SumSquares(m); e > maxLog10SumSquares {
		return true, scaleError(name, e)
	}
	return true, nil
}

// scaleError is the InputError for an input whose sum of squares is about 10^e.
func scaleError(name string, e float64) error {
	return inputErr(name, "values too large: their sum of squares is about 1e%.0f, beyond the 1e%d that "+
		"float64 arithmetic in the solver can hold (the objective squares them); rescale the data (e.g. divide by 1e%.0f)",
		e, maxLog10SumSquares, math.Ceil((e-maxLog10SumSquares)/2))
}

// log10SumSquares returns log10(sum of m's squared entries) without overflowing (-Inf for
// an all-zero matrix).
func log10SumSquares(m Matrix) float64 {
	l := len(m.F64) + len(m.F32)
	big := 0.0
	for i := 0; i < l; i++ {
		big = math.Max(big, math.Abs(entry(m, i)))
	}
	if big == 0 {
		return math.Inf(-1)
	}
	s := 0.0
	for i := 0; i < l; i++ {
		v := entry(m, i) / big
		s += v * v
	}
	return math.Log10(s) + 2*math.Log10(big)
}

// entry is m's i-th entry in storage order.
func entry(m Matrix, i int) float64 {
	if m.F32 != nil {
		return float64(m.F32[i])
	}
	return m.F64[i]
}

// WorkBytes estimates the memory a fit of N x Nx inputs to N x Ny outputs needs besides X
// (docs/scale.md): at most six N x Ny float64 arrays (Y and the ADMM's iterate and three
// scalar duals; the Newton solver needs three: Y, w = X U + b and the bound's dual point),
// two per-row vectors, and the Newton solver's row sample of at most s.HessianRows rows
// of X (default 20,000) in float32. s may be nil (the defaults).
func WorkBytes(n, nx, ny int, s *Settings) int64 {
	rows := hessianRows
	if s != nil && s.HessianRows > 0 {
		rows = s.HessianRows
	}
	k := int64(min(n, rows))
	return 8*int64(n)*int64(ny)*6 + 16*int64(n) + 4*k*int64(nx+1)
}
