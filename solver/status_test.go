package solver

import (
	"context"
	"errors"
	"math"
	"testing"
)

// Tests of the statuses and errors Fit promises (types.go: Status, Recorder; fit.go:
// Prepared.Fit), run for each inner solver. In a tree without the Newton solver, Method:
// Newton runs the ADMM (Fit ignores Method), so both rows test the ADMM; after Newton is
// merged the "newton" rows test it.

var methods = []struct {
	name string
	m    Method
}{{"admm", ADMM}, {"newton", Newton}}

// finitePoint fails unless every entry of res.U, res.B and res.F is finite.
func finitePoint(t *testing.T, res *Result) {
	t.Helper()
	for _, v := range append(append([]float64{res.F}, res.U...), res.B...) {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("non-finite value in the result (F=%v, U=%v, B=%v)", res.F, res.U, res.B)
		}
	}
}

// checkF fails unless res.F is Objective at the returned point.
func checkF(t *testing.T, pp plantedProblem, res *Result, lambda float64, link Link) {
	t.Helper()
	// 1e-10 relative: the solver sums F per output in standardised coordinates, Objective
	// row by row in the original ones.
	if f := Objective(pp.X, pp.Y, res.U, res.B, lambda, link); relDiff(res.F, f) > 1e-10 {
		t.Errorf("F = %.15g but Objective at (U, B) = %.15g", res.F, f)
	}
}

// cancelOnRecord cancels a context at the first intermediate Record.
type cancelOnRecord struct {
	cancel  context.CancelFunc
	records int
}

func (c *cancelOnRecord) Init() error { return nil }
func (c *cancelOnRecord) Record(p Progress) error {
	if !p.Done {
		c.records++
		c.cancel()
	}
	return nil
}

// TestCanceledMidRun: a context canceled during the run (at the first progress record)
// ends Fit with status Canceled, no error, a finite best point whose F is the objective
// there and no worse than the start U = 0, B = 0, and fewer iterations than a full run.
// A context canceled before the call also gives Canceled with a finite point.
func TestCanceledMidRun(t *testing.T) {
	const lambda = 1e-3
	pp := makePlanted(21, 3000, 40, 3, 0.3, 0.5, 0.1, ReLU)
	f0 := Objective(pp.X, pp.Y, make([]float64, 40*3), make([]float64, 3), lambda, ReLU)
	for _, m := range methods {
		t.Run(m.name, func(t *testing.T) {
			full, err := Fit(context.Background(), pp.X, pp.Y, lambda, &Settings{Method: m.m, Threads: 1, Starts: 1})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			rec := &cancelOnRecord{cancel: cancel}
			res, err := Fit(ctx, pp.X, pp.Y, lambda, &Settings{Method: m.m, Threads: 1, Starts: 1, Recorder: rec})
			if err != nil {
				t.Fatal(err)
			}
			if rec.records == 0 {
				t.Fatal("no progress record before the end: nothing canceled the run")
			}
			if res.Status != Canceled {
				t.Errorf("status %v, want canceled", res.Status)
			}
			finitePoint(t, res)
			checkF(t, pp, res, lambda, ReLU)
			if res.F > f0*(1+1e-12) {
				t.Errorf("F %.10g worse than the start's %.10g", res.F, f0)
			}
			if res.Iters >= full.Iters {
				t.Errorf("canceled run took %d iterations, the full run %d", res.Iters, full.Iters)
			}

			pre, stop := context.WithCancel(context.Background())
			stop()
			res, err = Fit(pre, pp.X, pp.Y, lambda, &Settings{Method: m.m, Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != Canceled {
				t.Errorf("pre-canceled: status %v", res.Status)
			}
			finitePoint(t, res)
		})
	}
}

// TestIterationLimit: MaxIter and MaxCCP end the run with status IterationLimit (a status,
// not an error), within the limit, at a finite point whose F is the objective there.
func TestIterationLimit(t *testing.T) {
	const lambda = 1e-3
	pp := makePlanted(22, 2000, 30, 2, 0.3, 0.5, 0.1, ReLU)
	for _, m := range methods {
		t.Run(m.name, func(t *testing.T) {
			res, err := Fit(context.Background(), pp.X, pp.Y, lambda, &Settings{Method: m.m, Threads: 1, Starts: 1, MaxIter: 5})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != IterationLimit || res.Iters > 5 {
				t.Errorf("MaxIter 5: status %v after %d iterations", res.Status, res.Iters)
			}
			finitePoint(t, res)
			checkF(t, pp, res, lambda, ReLU)

			full, err := Fit(context.Background(), pp.X, pp.Y, lambda, &Settings{Method: m.m, Threads: 1, Starts: 1})
			if err != nil {
				t.Fatal(err)
			}
			if full.CCPIters < 2 {
				t.Fatalf("the full run needs %d CCP rounds: MaxCCP 1 would not bind", full.CCPIters)
			}
			res, err = Fit(context.Background(), pp.X, pp.Y, lambda, &Settings{Method: m.m, Threads: 1, Starts: 1, MaxCCP: 1})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != IterationLimit || res.CCPIters != 1 {
				t.Errorf("MaxCCP 1: status %v after %d CCP rounds", res.Status, res.CCPIters)
			}
			finitePoint(t, res)
			checkF(t, pp, res, lambda, ReLU)
		})
	}
}

// TestNumericalFailureIsHonest: data whose squares overflow float64 (entries 1e155, finite,
// so validation passes) must not come back as converged: the status is NumericalFailure
// whenever the result holds a NaN or Inf.
//
// Such data is now refused up front: an InputError for X or Y whose sum of squares exceeds
// 1e300 (CheckScale, the rule the CLI reports too); this test accepts that error.
func TestNumericalFailureIsHonest(t *testing.T) {
	pp := makePlanted(23, 50, 4, 2, 0.5, 0.5, 0.1, ReLU)
	for i := range pp.X.F64 {
		pp.X.F64[i] *= 1e155
	}
	for _, m := range methods {
		t.Run(m.name, func(t *testing.T) {
			res, err := Fit(context.Background(), pp.X, pp.Y, 0.01, &Settings{Method: m.m, Threads: 1})
			var ie *InputError
			if errors.As(err, &ie) {
				return // the proposed validation
			}
			if err != nil {
				t.Fatal(err)
			}
			bad := false
			for _, v := range append(append([]float64{res.F, res.LowerBound}, res.U...), res.B...) {
				bad = bad || math.IsNaN(v) || math.IsInf(v, 0)
			}
			if bad && res.Status != NumericalFailure {
				t.Errorf("non-finite result with status %v", res.Status)
			}
			if !bad && res.Status == Converged {
				// Finite and converged would be fine if true: check F honestly.
				checkF(t, pp, res, 0.01, ReLU)
			}
		})
	}
}

// stopAfter is a Recorder whose Record fails at call k (and Init fails if initErr).
type stopAfter struct {
	k, calls int
	initErr  bool
}

var errStop = errors.New("recorder says stop")

func (s *stopAfter) Init() error {
	if s.initErr {
		return errStop
	}
	return nil
}
func (s *stopAfter) Record(Progress) error {
	s.calls++
	if s.calls >= s.k {
		return errStop
	}
	return nil
}

// TestRecorderErrorStopsFit: an error from Record (at the first or second call) or from
// Init stops Fit, which returns that error and no result; no further Record call follows.
func TestRecorderErrorStopsFit(t *testing.T) {
	pp := makePlanted(24, 1000, 20, 2, 0.3, 0.5, 0.1, ReLU)
	for _, m := range methods {
		for _, rec := range []*stopAfter{{k: 1}, {k: 2}, {initErr: true}} {
			res, err := Fit(context.Background(), pp.X, pp.Y, 1e-3, &Settings{Method: m.m, Threads: 1, Starts: 1, Recorder: rec})
			if !errors.Is(err, errStop) || res != nil {
				t.Errorf("%s, recorder %+v: got (%v, %v), want the recorder's error", m.name, rec, res, err)
			}
			if rec.calls > rec.k {
				t.Errorf("%s: Record called %d times after failing at call %d", m.name, rec.calls, rec.k)
			}
		}
	}
}

// TestPreparedSettingsMismatch: Prepared.Fit refuses NoBias or PlainConsensus different
// from Prepare's with an *InputError naming Settings; with matching settings it gives
// exactly Fit's result.
func TestPreparedSettingsMismatch(t *testing.T) {
	pp := makePlanted(25, 500, 10, 2, 0.3, 0.5, 0.1, ReLU)
	for _, m := range methods {
		t.Run(m.name, func(t *testing.T) {
			for _, c := range []struct{ prep, fit Settings }{
				{Settings{NoBias: true}, Settings{}},
				{Settings{}, Settings{NoBias: true}},
				{Settings{PlainConsensus: true}, Settings{}},
				{Settings{}, Settings{PlainConsensus: true}},
			} {
				c.prep.Method, c.fit.Method = m.m, m.m
				p, err := Prepare(pp.X, &c.prep)
				if err != nil {
					t.Fatal(err)
				}
				_, err = p.Fit(context.Background(), pp.Y, 1e-3, &c.fit)
				var ie *InputError
				if !errors.As(err, &ie) || ie.Input != "Settings" {
					t.Errorf("Prepare %+v, Fit %+v: got %v, want an InputError for Settings", c.prep, c.fit, err)
				}
			}
			s := &Settings{Method: m.m, Threads: 1, NoBias: true}
			p, err := Prepare(pp.X, s)
			if err != nil {
				t.Fatal(err)
			}
			a, err := p.Fit(context.Background(), pp.Y, 1e-3, s)
			if err != nil {
				t.Fatal(err)
			}
			b, err := Fit(context.Background(), pp.X, pp.Y, 1e-3, s)
			if err != nil {
				t.Fatal(err)
			}
			if a.F != b.F || a.Iters != b.Iters {
				t.Errorf("Prepare+Fit F=%v iters=%d, Fit F=%v iters=%d", a.F, a.Iters, b.F, b.Iters)
			}
		})
	}
}
