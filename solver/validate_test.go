package solver

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

// TestBadInput: every bad input makes Fit return a *InputError naming the input (and, for
// non-finite data, the row and column), never a panic.
func TestBadInput(t *testing.T) {
	X := Matrix{Rows: 4, Cols: 2, F64: []float64{1, 2, 3, 4, 5, 6, 7, 8}}
	Y := Matrix{Rows: 4, Cols: 1, F64: []float64{1, 0, -1, 2}}
	withX := func(i int, v float64) Matrix {
		m := X
		m.F64 = append([]float64(nil), X.F64...)
		m.F64[i] = v
		return m
	}
	withY := func(i int, v float64) Matrix {
		m := Y
		m.F64 = append([]float64(nil), Y.F64...)
		m.F64[i] = v
		return m
	}
	x32 := Matrix{Rows: 4, Cols: 2, F32: []float32{1, 2, 3, 4, 5, float32(math.Inf(1)), 7, 8}}
	cases := []struct {
		name   string
		X, Y   Matrix
		lambda float64
		s      *Settings
		input  string
		where  string // substring of the message, if any
	}{
		{"Y rows != X rows", X, Matrix{Rows: 3, Cols: 1, F64: []float64{1, 2, 3}}, 0.1, nil, "Y", "3 rows"},
		{"X data too short", Matrix{Rows: 4, Cols: 2, F64: X.F64[:7]}, Y, 0.1, nil, "X", "holds 7"},
		{"Y data too long", X, Matrix{Rows: 4, Cols: 1, F64: []float64{1, 2, 3, 4, 5}}, 0.1, nil, "Y", "holds 5"},
		{"X both F64 and F32", Matrix{Rows: 4, Cols: 2, F64: X.F64, F32: make([]float32, 8)}, Y, 0.1, nil, "X", "exactly one"},
		{"X no data", Matrix{Rows: 4, Cols: 2}, Y, 0.1, nil, "X", "exactly one"},
		{"N = 0", Matrix{Rows: 0, Cols: 2}, Matrix{Rows: 0, Cols: 1}, 0.1, nil, "X", "empty"},
		{"Nx = 0", Matrix{Rows: 4, Cols: 0}, Y, 0.1, nil, "X", "empty"},
		{"Ny = 0", X, Matrix{Rows: 4, Cols: 0}, 0.1, nil, "Y", "empty"},
		{"negative rows", Matrix{Rows: -1, Cols: 2}, Y, 0.1, nil, "X", "empty"},
		{"NaN in X", withX(5, math.NaN()), Y, 0.1, nil, "X", "row 2, column 1"},
		{"+Inf in X", withX(0, math.Inf(1)), Y, 0.1, nil, "X", "row 0, column 0"},
		{"-Inf in float32 X", x32, Y, 0.1, nil, "X", "row 2, column 1"},
		{"NaN in Y", X, withY(3, math.NaN()), 0.1, nil, "Y", "row 3, column 0"},
		{"Inf in Y", X, withY(1, math.Inf(-1)), 0.1, nil, "Y", "row 1, column 0"},
		{"negative lambda", X, Y, -1e-3, nil, "lambda", ""},
		{"NaN lambda", X, Y, math.NaN(), nil, "lambda", ""},
		{"Inf lambda", X, Y, math.Inf(1), nil, "lambda", ""},
		{"InitU wrong length", X, Y, 0.1, &Settings{InitU: []float64{1}}, "InitU", ""},
		{"InitU NaN", X, Y, 0.1, &Settings{InitU: []float64{0, math.NaN()}}, "InitU", "row 1, column 0"},
		{"InitB wrong length", X, Y, 0.1, &Settings{InitB: []float64{1, 2}}, "InitB", ""},
		{"InitB Inf", X, Y, 0.1, &Settings{InitB: []float64{math.Inf(1)}}, "InitB", ""},
		{"Mask wrong length", X, Y, 0.1, &Settings{Mask: []bool{true}}, "Mask", ""},
		{"negative EpsAbs", X, Y, 0.1, &Settings{EpsAbs: -1}, "EpsAbs", ""},
		{"negative EpsRel", X, Y, 0.1, &Settings{EpsRel: -1e-6}, "EpsRel", ""},
		{"NaN FTol", X, Y, 0.1, &Settings{FTol: math.NaN()}, "FTol", ""},
		{"negative FTol", X, Y, 0.1, &Settings{FTol: -1}, "FTol", ""},
		{"negative Rho", X, Y, 0.1, &Settings{Rho: -1}, "Rho", ""},
		{"Relax = 2", X, Y, 0.1, &Settings{Relax: 2}, "Relax", ""},
		{"Relax < 0", X, Y, 0.1, &Settings{Relax: -0.5}, "Relax", ""},
		{"Relax NaN", X, Y, 0.1, &Settings{Relax: math.NaN()}, "Relax", ""},
		{"unknown link", X, Y, 0.1, &Settings{Link: Link(7)}, "Link", ""},
		{"negative MaxIter", X, Y, 0.1, &Settings{MaxIter: -1}, "MaxIter", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var res *Result
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("panic: %v", r)
					}
				}()
				res, err = Fit(context.Background(), tc.X, tc.Y, tc.lambda, tc.s)
			}()
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("want *InputError, got %v (result %v)", err, res)
			}
			if res != nil {
				t.Errorf("result %v returned with an error", res)
			}
			if !strings.HasPrefix(ie.Input, tc.input) {
				t.Errorf("error names input %q, want %q (%v)", ie.Input, tc.input, err)
			}
			if !strings.Contains(err.Error(), tc.input) || !strings.Contains(err.Error(), tc.where) {
				t.Errorf("message %q should name %q and contain %q", err.Error(), tc.input, tc.where)
			}
		})
	}
	// And valid inputs pass validation (the table above is not rejecting everything).
	if _, err := Fit(context.Background(), X, Y, 0.1, &Settings{Relax: 1.9, InitU: []float64{0, 1}, InitB: []float64{0}, Mask: []bool{true, false}}); err != nil {
		t.Errorf("valid input rejected: %v", err)
	}
}
