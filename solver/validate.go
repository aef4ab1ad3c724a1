package solver

import (
	"fmt"
	"math"
)

// InputError reports a bad input to Fit: which input, where (row and column, -1 when not
// applicable), and what is wrong.
type InputError struct {
	Input    string
	Row, Col int
	Msg      string
}

func (e *InputError) Error() string {
	if e.Row >= 0 {
		return fmt.Sprintf("solver: %s: row %d, column %d: %s", e.Input, e.Row, e.Col, e.Msg)
	}
	return fmt.Sprintf("solver: %s: %s", e.Input, e.Msg)
}

func inputErr(input, format string, args ...any) error {
	return &InputError{Input: input, Row: -1, Col: -1, Msg: fmt.Sprintf(format, args...)}
}

// validate checks every input once, at entry.
// X itself was checked by Prepare.
func validate(X, Y Matrix, lambda float64, s *Settings) error {
	if err := checkMatrix("Y", Y); err != nil {
		return err
	}
	if Y.Rows != X.Rows {
		return inputErr("Y", "has %d rows but X has %d", Y.Rows, X.Rows)
	}
	if math.IsNaN(lambda) || math.IsInf(lambda, 0) || lambda < 0 {
		return inputErr("lambda", "must be finite and >= 0, got %v", lambda)
	}
	nx, ny := X.Cols, Y.Cols
	if s.InitU != nil && len(s.InitU) != nx*ny {
		return inputErr("InitU", "has %d values, want Nx*Ny = %d*%d", len(s.InitU), nx, ny)
	}
	if s.InitB != nil && len(s.InitB) != ny {
		return inputErr("InitB", "has %d values, want Ny = %d", len(s.InitB), ny)
	}
	if s.InitRho != nil && len(s.InitRho) != ny {
		return inputErr("InitRho", "has %d values, want Ny = %d", len(s.InitRho), ny)
	}
	for j, v := range s.InitRho {
		if !(v > 0) || math.IsInf(v, 0) {
			return inputErr("InitRho", "entry %d must be finite and > 0, got %v", j, v)
		}
	}
	if s.Mask != nil && len(s.Mask) != nx*ny {
		return inputErr("Mask", "has %d values, want Nx*Ny = %d*%d", len(s.Mask), nx, ny)
	}
	for i, v := range s.InitU {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return &InputError{Input: "InitU", Row: i / ny, Col: i % ny, Msg: fmt.Sprintf("not finite (%v)", v)}
		}
	}
	for j, v := range s.InitB {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return inputErr("InitB", "entry %d is not finite (%v)", j, v)
		}
	}
	if hasOffset(s.Offset) {
		if err := checkMatrix("Offset", s.Offset); err != nil {
			return err
		}
		if s.Offset.Rows != Y.Rows || s.Offset.Cols != ny {
			return inputErr("Offset", "is %d x %d, want N x Ny = %d x %d (Y's shape)", s.Offset.Rows, s.Offset.Cols, Y.Rows, ny)
		}
		switch {
		case s.GroupL1:
			return inputErr("Offset", "Offset is not supported with GroupL1 yet")
		case s.Comm != nil:
			return inputErr("Offset", "Offset is not supported across processes (Comm) yet")
		}
	}
	if err := validateGroup(nx, s); err != nil {
		return err
	}
	if s.Link != ReLU && s.Link != Identity {
		return inputErr("Link", "unknown link %d", int(s.Link))
	}
	for _, c := range []struct {
		name string
		v    float64
	}{{"EpsAbs", s.EpsAbs}, {"EpsRel", s.EpsRel}, {"FTol", s.FTol}, {"Rho", s.Rho}, {"RemajorizeTol", s.RemajorizeTol}} {
		if math.IsNaN(c.v) || c.v < 0 {
			return inputErr(c.name, "must be >= 0, got %v", c.v)
		}
	}
	if !(s.Relax > 0 && s.Relax < 2) {
		return inputErr("Relax", "must be in (0, 2), got %v", s.Relax)
	}
	if s.Method < Auto || s.Method > ADMM {
		return inputErr("Method", "unknown method %d (want Auto, Newton or ADMM)", int(s.Method))
	}
	if s.MaxIter < 0 || s.MaxCCP < 0 || s.RemajorizeEvery < 0 || s.Starts < 0 {
		return inputErr("MaxIter/MaxCCP/RemajorizeEvery/Starts", "must be >= 0")
	}
	return nil
}

// hasOffset reports whether Settings.Offset is set: anything but the zero Matrix.
func hasOffset(m Matrix) bool {
	return m.Rows != 0 || m.Cols != 0 || m.F64 != nil || m.F32 != nil
}

// checkMatrix checks the shape of m, that every entry is finite and that the sum of their
// squares is within what float64 arithmetic in the solver can hold (CheckScale).
func checkMatrix(name string, m Matrix) error {
	if err := checkShape(name, m); err != nil {
		return err
	}
	l := len(m.F64) + len(m.F32)
	big := 0.0
	for i := 0; i < l; i++ {
		v := m.At(i/m.Cols, i%m.Cols)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return &InputError{Input: name, Row: i / m.Cols, Col: i % m.Cols, Msg: fmt.Sprintf("not finite (%v)", v)}
		}
		big = max(big, math.Abs(v))
	}
	_, err := CheckScale(name, m, big)
	return err
}

// checkShape checks that m is non-empty and holds Rows*Cols values in exactly one slice.
func checkShape(name string, m Matrix) error {
	if m.Rows <= 0 || m.Cols <= 0 {
		return inputErr(name, "is empty (%d x %d)", m.Rows, m.Cols)
	}
	if (m.F64 == nil) == (m.F32 == nil) {
		return inputErr(name, "exactly one of F64 and F32 must hold the data")
	}
	l := len(m.F64) + len(m.F32)
	if l != m.Rows*m.Cols {
		return inputErr(name, "holds %d values, want %d x %d = %d", l, m.Rows, m.Cols, m.Rows*m.Cols)
	}
	return nil
}

// Objective evaluates F(U, B) directly from the data, row by row (independent of the
// solver's standardised operator; tests and drivers use it to check reported values).
// U is Nx x Ny row-major, B has Ny entries (nil means zero).
func Objective(X, Y Matrix, U, B []float64, lambda float64, link Link) float64 {
	nx, ny := X.Cols, Y.Cols
	f := 0.0
	for i := 0; i < X.Rows; i++ {
		for j := 0; j < ny; j++ {
			w := 0.0
			if B != nil {
				w = B[j]
			}
			for k := 0; k < nx; k++ {
				w += X.At(i, k) * U[k*ny+j]
			}
			f += termValue(w, Y.At(i, j), link)
		}
	}
	f /= 2 * float64(X.Rows)
	for _, u := range U {
		f += lambda * math.Abs(u)
	}
	return f
}
