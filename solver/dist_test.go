package solver

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"

	"relutrim/internal/collective"
	"relutrim/internal/kern"
	"relutrim/internal/localcomm"
)

// rowBlock returns rows [lo, hi) of m.
func rowBlock(m Matrix, lo, hi int) Matrix {
	b := Matrix{Rows: hi - lo, Cols: m.Cols}
	if m.F32 != nil {
		b.F32 = m.F32[lo*m.Cols : hi*m.Cols]
	} else {
		b.F64 = m.F64[lo*m.Cols : hi*m.Cols]
	}
	return b
}

// fitAcross runs Prepare and Fit on k simulated processes (localcomm: goroutines), each
// with the rows [rowLo[r], rowLo[r+1]) of X and Y, and returns every process's result.
func fitAcross(t *testing.T, X, Y Matrix, rowLo []int, lambda float64, s Settings) ([]*Result, []error) {
	t.Helper()
	k := len(rowLo) - 1
	res := make([]*Result, k)
	errs := localcomm.Run(k, func(r int, c *localcomm.Comm) error {
		st := s
		st.Comm = c
		x, y := rowBlock(X, rowLo[r], rowLo[r+1]), rowBlock(Y, rowLo[r], rowLo[r+1])
		pr, err := Prepare(x, &st)
		if err != nil {
			return err
		}
		res[r], err = pr.Fit(context.Background(), y, lambda, &st)
		return err
	})
	return res, errs
}

// sameResult reports the first field in which a differs from b (bitwise), or "".
func sameResult(a, b *Result) string {
	switch {
	case !slices.Equal(a.U, b.U):
		return "U"
	case !slices.Equal(a.B, b.B):
		return "B"
	case a.F != b.F || !slices.Equal(a.FOut, b.FOut):
		return "F"
	case a.LowerBound != b.LowerBound || !slices.Equal(a.BoundOut, b.BoundOut):
		return "LowerBound"
	case a.Iters != b.Iters || a.CCPIters != b.CCPIters || a.Passes != b.Passes:
		return "iterations/passes"
	case a.Status != b.Status || a.DualRes != b.DualRes:
		return "status/KKT"
	}
	return ""
}

// TestFitAcrossProcessesBitwise: a fit split over K = 1, 2, 3 simulated processes on chunk
// boundaries (SplitRows) equals the single-process fit (the reference: Fit without a
// Comm, itself tested against scikit-learn and brute force elsewhere) bitwise in every
// field of the Result, on every process. The cases cover the ReLU and identity links
// (the lower bound's two paths), no bias, float32 X, and a problem large enough for the
// row sample and the coarse start (N >= 40000).
func TestFitAcrossProcessesBitwise(t *testing.T) {
	relu := makePlanted(11, 5000, 7, 3, 0.5, 0.5, 0.1, ReLU)
	lin := makePlanted(12, 3500, 6, 2, 0.5, 0.5, 0.1, Identity)
	big := makePlanted(13, 41000, 5, 2, 0.6, 0.5, 0.1, ReLU)
	x32 := Matrix{Rows: relu.N, Cols: relu.Nx, F32: make([]float32, len(relu.X.F64))}
	for i, v := range relu.X.F64 {
		x32.F32[i] = float32(v)
	}
	cases := []struct {
		name   string
		X, Y   Matrix
		lambda float64
		s      Settings
	}{
		{"relu", relu.X, relu.Y, 0.01, Settings{Method: Newton}},
		{"relu-nobias", relu.X, relu.Y, 0.01, Settings{Method: Newton, NoBias: true}},
		{"relu-f32", x32, relu.Y, 0.02, Settings{Method: Newton}},
		{"identity", lin.X, lin.Y, 0.005, Settings{Method: Newton, Link: Identity}},
		{"coarse-start", big.X, big.Y, 0.01, Settings{Method: Newton}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, threads := range []int{1, 2} {
				s := c.s
				s.Threads = threads
				want, err := Fit(context.Background(), c.X, c.Y, c.lambda, &s)
				if err != nil {
					t.Fatal(err)
				}
				for k := 1; k <= 3; k++ {
					res, errs := fitAcross(t, c.X, c.Y, kern.SplitRows(c.X.Rows, k), c.lambda, s)
					for r := range res {
						if errs[r] != nil {
							t.Fatalf("K=%d rank %d: %v", k, r, errs[r])
						}
						if d := sameResult(res[r], want); d != "" {
							t.Errorf("threads %d, K=%d, rank %d: %s differs from the single-process fit (F %v vs %v)",
								threads, k, r, d, res[r].F, want.F)
						}
					}
				}
			}
		})
	}
}

// TestFitAcrossUnalignedBlocks: blocks that do not start on chunk boundaries still give
// one fit (every process the same result), equal to the single-process fit up to the
// rounding of a different chunking (here within 1e-9 relative in F).
func TestFitAcrossUnalignedBlocks(t *testing.T) {
	pp := makePlanted(21, 4000, 6, 2, 0.5, 0.5, 0.1, ReLU)
	s := Settings{Method: Newton, Threads: 1}
	want, err := Fit(context.Background(), pp.X, pp.Y, 0.01, &s)
	if err != nil {
		t.Fatal(err)
	}
	res, errs := fitAcross(t, pp.X, pp.Y, []int{0, 1500, 2900, 4000}, 0.01, s)
	for r := range res {
		if errs[r] != nil {
			t.Fatal(errs[r])
		}
		if d := sameResult(res[r], res[0]); d != "" {
			t.Errorf("rank %d: %s differs from rank 0's", r, d)
		}
	}
	if d := relDiff(res[0].F, want.F); d > 1e-9 {
		t.Errorf("F %v vs single-process %v (rel %.2g)", res[0].F, want.F, d)
	}
}

// TestFitAcrossRefusals: what does not run across processes is an input error on every
// process (and no process hangs): the ADMM, Auto on a tiny problem (the ADMM's
// multi-start), the group penalty; and a NaN in one process's Y names the fit's row.
func TestFitAcrossRefusals(t *testing.T) {
	pp := makePlanted(31, 3000, 5, 2, 0.5, 0.5, 0.1, ReLU)
	tiny := makePlanted(32, 300, 4, 1, 0.5, 0.5, 0.1, ReLU)
	for _, c := range []struct {
		name  string
		X, Y  Matrix
		s     Settings
		input string
	}{
		{"admm", pp.X, pp.Y, Settings{Method: ADMM}, "Method"},
		{"empty-block", tiny.X, tiny.Y, Settings{Method: Newton}, "X"}, // kern.SplitRows(300, 2): process 0 has no row
		{"tiny-auto", tiny.X, tiny.Y, Settings{}, "Method"},
		{"tiny-newton", tiny.X, tiny.Y, Settings{Method: Newton}, "Starts"},
		{"group", pp.X, pp.Y, Settings{GroupL1: true}, "GroupL1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			lo := []int{0, c.X.Rows / 2, c.X.Rows}
			if c.input == "X" {
				lo = kern.SplitRows(c.X.Rows, 2)
			}
			_, errs := fitAcross(t, c.X, c.Y, lo, 0.01, c.s)
			for r, err := range errs {
				var ie *InputError
				var re *collective.RemoteError
				if !errors.As(err, &ie) || ie.Input != c.input {
					if c.input == "X" && errors.As(err, &re) && re.Rank == 0 {
						continue // the other process
					}
					t.Errorf("rank %d: %v, want an input error on %s", r, err, c.input)
				}
			}
		})
	}
	y := Matrix{Rows: pp.N, Cols: pp.Ny, F64: slices.Clone(pp.Y.F64)}
	y.F64[2100*pp.Ny+1] = math.NaN() // row 2100: process 1's (rows 2048..)
	_, errs := fitAcross(t, pp.X, y, kern.SplitRows(pp.N, 2), 0.01, Settings{Method: Newton})
	var ie *InputError
	if !errors.As(errs[1], &ie) || ie.Input != "Y" || ie.Row != 2100 || ie.Col != 1 {
		t.Errorf("rank 1: %v, want Y row 2100 column 1", errs[1])
	}
	var re *collective.RemoteError
	if !errors.As(errs[0], &re) || re.Rank != 1 {
		t.Errorf("rank 0: %v, want a RemoteError naming rank 1", errs[0])
	}
}
