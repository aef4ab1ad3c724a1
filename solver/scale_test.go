package solver

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestScaleRefused: X or Y whose sum of squares is beyond 1e300 but still finite in float64
// is an InputError naming the input and how far to scale, not a failure inside the solver.
func TestScaleRefused(t *testing.T) {
	const want = "values too large: their sum of squares is about 1e307, beyond the 1e300 that float64 arithmetic " +
		"in the solver can hold (the objective squares them); rescale the data (e.g. divide by 1e4)"
	for _, input := range []string{"X", "Y"} {
		pp := makePlanted(23, 50, 4, 2, 0.5, 0.5, 0.1, ReLU)
		m := pp.X
		if input == "Y" {
			m = pp.Y
		}
		for i := range m.F64 {
			m.F64[i] = 1e152 // 50 x 4 (X) or 50 x 2 (Y) entries: a sum of squares of 1e306 or 2e306
		}
		_, err := Fit(context.Background(), pp.X, pp.Y, 0.01, &Settings{Threads: 1})
		var ie *InputError
		if !errors.As(err, &ie) || ie.Input != input || !strings.HasPrefix(ie.Msg, "values too large: their sum of squares is about 1e30") {
			t.Errorf("%s: got %v, want an InputError for %s", input, err, input)
		}
	}
	X := Matrix{Rows: 100, Cols: 10, F64: make([]float64, 1000)}
	for i := range X.F64 {
		X.F64[i] = 1e152
	}
	exact, err := CheckScale("X", X, 1e152)
	var ie *InputError
	if !exact || !errors.As(err, &ie) || ie.Msg != want {
		t.Errorf("CheckScale: exact %v, %v; want the message %q", exact, err, want)
	}
	if exact, err := CheckScale("X", X, 0); exact || err != nil {
		t.Errorf("an all-zero bound: exact %v, %v", exact, err)
	}
	for i := range X.F64 {
		X.F64[i] = 1e140
	}
	if exact, err := CheckScale("X", X, 1e140); exact || err != nil {
		t.Errorf("1e140: exact %v, %v; want no pass and no error", exact, err)
	}
}

// TestWorkBytes: the estimate follows the Newton solver's row sample.
func TestWorkBytes(t *testing.T) {
	n, nx, ny := 100000, 50, 3
	base := int64(8*n*ny*6 + 16*n)
	if got, want := WorkBytes(n, nx, ny, nil), base+4*int64(hessianRows)*int64(nx+1); got != want {
		t.Errorf("default: %d, want %d", got, want)
	}
	if got, want := WorkBytes(n, nx, ny, &Settings{HessianRows: 500}), base+4*500*int64(nx+1); got != want {
		t.Errorf("HessianRows 500: %d, want %d", got, want)
	}
	if got, want := WorkBytes(1000, nx, ny, nil), int64(8*1000*ny*6+16*1000)+4*1000*int64(nx+1); got != want {
		t.Errorf("N < sample: %d, want %d", got, want)
	}
}
