package dataio

import (
	"fmt"
	"math"
)

// Matrix is a dense row-major 2-D array. Exactly one of F64 and F32 is
// non-nil (possibly empty); it holds Rows*Cols elements, element (i, j) at
// index i*Cols+j.
type Matrix struct {
	Rows, Cols int
	F64        []float64
	F32        []float32
	// Vector is true when the data came from a 1-D array; such a matrix has
	// Cols == 1. Callers treat a 1-D target as a single output.
	Vector bool
	// Name is the file or spec the matrix was read from, for error messages.
	Name string
	// Header holds the CSV column names when the file had a header row.
	Header []string
	// Shape is the shape of the .npy array the matrix was read from (nil for CSV).
	Shape []int
}

// NewMatrix64 returns a zeroed float64 matrix.
func NewMatrix64(name string, rows, cols int) Matrix {
	return Matrix{Rows: rows, Cols: cols, F64: make([]float64, rows*cols), Name: name}
}

// NewMatrix32 returns a zeroed float32 matrix.
func NewMatrix32(name string, rows, cols int) Matrix {
	return Matrix{Rows: rows, Cols: cols, F32: make([]float32, rows*cols), Name: name}
}

// Len returns Rows*Cols.
func (m Matrix) Len() int { return m.Rows * m.Cols }

// IsFloat32 reports whether the matrix stores float32 elements.
func (m Matrix) IsFloat32() bool { return m.F32 != nil }

// At returns element (i, j) as a float64.
func (m Matrix) At(i, j int) float64 {
	if m.F32 != nil {
		return float64(m.F32[i*m.Cols+j])
	}
	return m.F64[i*m.Cols+j]
}

// Float64 returns the elements as float64: F64 itself when set, otherwise a
// converted copy of F32.
func (m Matrix) Float64() []float64 {
	if m.F32 == nil {
		return m.F64
	}
	out := make([]float64, len(m.F32))
	for i, v := range m.F32 {
		out[i] = float64(v)
	}
	return out
}

// Validate checks the invariants documented on Matrix.
func (m Matrix) Validate() error {
	if m.Rows < 0 || m.Cols < 0 {
		return fileErr(m.Name, ErrShape, "negative dimensions %dx%d", m.Rows, m.Cols)
	}
	if (m.F64 == nil) == (m.F32 == nil) {
		return fmt.Errorf("dataio: %s: exactly one of F64 and F32 must be set", m.Name)
	}
	n := len(m.F64) + len(m.F32)
	if m.Cols != 0 && m.Rows > math.MaxInt/m.Cols || n != m.Rows*m.Cols {
		return fmt.Errorf("dataio: %s: %d elements for a %dx%d matrix", m.Name, n, m.Rows, m.Cols)
	}
	if m.Vector && m.Cols != 1 {
		return fmt.Errorf("dataio: %s: vector matrix with %d columns", m.Name, m.Cols)
	}
	return nil
}

// NonFiniteError reports the first NaN or infinity found by CheckFinite.
// Row and Col are 0-based; the message shows them 0-based as well, the way
// NumPy would index the array.
type NonFiniteError struct {
	Name     string
	Row, Col int
	Value    float64
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("dataio: %s: %v: %v at row %d, column %d (0-based)", e.Name, ErrNonFinite, e.Value, e.Row, e.Col)
}

// Unwrap returns ErrNonFinite.
func (e *NonFiniteError) Unwrap() error { return ErrNonFinite }

// CheckFinite returns nil if every element of m is finite. Otherwise it
// returns a *NonFiniteError (wrapping ErrNonFinite) naming m.Name and the row
// and column of the first NaN or infinity in row-major order.
func CheckFinite(m Matrix) error {
	bad := -1
	var val float64
	if m.F32 != nil {
		for i, v := range m.F32 {
			// v-v is NaN for both NaN and ±Inf.
			if v-v != 0 {
				bad, val = i, float64(v)
				break
			}
		}
	} else {
		for i, v := range m.F64 {
			if v-v != 0 {
				bad, val = i, v
				break
			}
		}
	}
	if bad < 0 {
		return nil
	}
	cols := max(m.Cols, 1)
	return &NonFiniteError{Name: m.Name, Row: bad / cols, Col: bad % cols, Value: val}
}
