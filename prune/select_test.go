package prune

import (
	"context"
	"strings"
	"testing"
)

// TestSelectOptions: both selection methods, with the support selected on all rows or on a
// sample of 200 of the small model's 500 calibration rows, keep exactly the budgeted
// count in every layer (on the sample, at most that: a weight reading an input that is
// zero on every sample row is never kept, and the L1 path on the last layer finds one of
// its 8 inputs dead on the sample), report the rows they selected on, and fit the
// calibration logits
// far better than magnitude pruning at the same counts (the reference: Magnitude, a
// method that looks at no data; at 70% it leaves the logits with about twice relutrim's
// error on this model). An unknown method is refused by name.
func TestSelectOptions(t *testing.T) {
	s := loadSmall(t)
	keep, err := Budget(s.m, 0.7)
	if err != nil {
		t.Fatal(err)
	}
	dense := s.m.Forward(s.calib, s.nCal)
	logits := dense[len(dense)-1]
	logitsErr := func(acts [][]float64) float64 { return relErr(acts[len(acts)-1], logits) }
	magErr := logitsErr(Magnitude(s.m, keep).Forward(s.calib, s.nCal))
	for _, sel := range []string{SelectGradual, SelectL1Path} {
		for _, rows := range []int{-1, 200} {
			p, err := NewPruner(s.m, s.calib, s.nCal, Options{Select: sel, SelectRows: rows, Threads: 2})
			if err != nil {
				t.Fatal(err)
			}
			pm, reps, err := p.Prune(context.Background(), keep)
			if err != nil {
				t.Fatal(err)
			}
			want := s.nCal
			if rows > 0 {
				want = rows
			}
			for l, r := range reps {
				if nz := pm.NonZeros()[l]; (nz > keep[l] || rows < 0 && nz != keep[l]) && keep[l] < r.In*r.Out {
					t.Errorf("%s, %d rows: layer %d keeps %d weights, budget %d", sel, rows, l, nz, keep[l])
				}
				if r.SelectRows != want && keep[l] < r.In*r.Out {
					t.Errorf("%s, %d rows: layer %d selected on %d rows, want %d", sel, rows, l, r.SelectRows, want)
				}
			}
			if e := logitsErr(pm.Forward(s.calib, s.nCal)); !(e < 0.75*magErr) {
				t.Errorf("%s, %d rows: logits error %.4f, magnitude's %.4f", sel, rows, e, magErr)
			}
		}
	}
	if _, err := NewPruner(s.m, s.calib, s.nCal, Options{Select: "obs"}); err == nil || !strings.Contains(err.Error(), `"obs"`) {
		t.Errorf("unknown selection: error %v", err)
	}
}

// TestNewPrunerCanceled: a canceled context stops NewPrunerContext before the dense pass
// and returns the context's error.
func TestNewPrunerCanceled(t *testing.T) {
	s := loadSmall(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewPrunerContext(ctx, s.m, s.calib, s.nCal, Options{}); err != context.Canceled {
		t.Errorf("error %v, want context.Canceled", err)
	}
}
