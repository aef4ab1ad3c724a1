package solver

import (
	"context"
	"time"
)

// The coarse start of a large cold fit: the same problem solved on the row sample.

// coarseMinRatio: a cold fit with N >= coarseMinRatio * hessianRows rows starts from the
// solution of the same problem on the row sample (coarse-to-fine). The prototype measured
// the gain at N = 2e5 and 1e6 (2.1x -> 2.8x and 2.9x -> 8x the speed of L-BFGS-B);
// below twice the sample the subproblem is most of the work it would save.
const coarseMinRatio = 2

// coarseHessianStep: see coarseStart.
const coarseHessianStep = 4

// coldStart is inner's: a cold fit with at least coarseMinRatio times HessianRows rows
// starts from coarseStart, a smaller one from z0.
func (nt *newton) coldStart(ctx context.Context, st *Settings, z0 []float64, res *Result, start time.Time) ([]float64, error) {
	if nt.N < coarseMinRatio*nt.hrows {
		return z0, nil
	}
	return nt.coarseStart(ctx, st, z0, res, start)
}

// coarseStart solves the problem on the row sample from z0 (the sample's own design, its
// rows as the Hessian sample) and returns its solution as the start of the full fit. The
// sample's passes count in res.Passes at their share S/N of a full pass; its iterations are
// not counted in res.Iters.
func (nt *newton) coarseStart(ctx context.Context, st *Settings, z0 []float64, res *Result, start time.Time) ([]float64, error) {
	smp, ny := nt.smp, nt.ny
	ys := smp.gatherY(nt.y, ny)
	// The subproblem's own Hessian comes from every coarseHessianStep-th sample row for the
	// ReLU link: its solution is only a start, as far from the full problem's solution as
	// the sample's statistical error, and its per-output Grams on all 20,000 rows were most
	// of its cost (M of the benchmark, idle, three runs each: time to 1e-6 0.28 -> 0.25 s).
	// The identity link keeps them all: its metric is the one shared Gram, built once, and a
	// coarser one cost more full steps (LS: 0.150 -> 0.163 s).
	step := coarseHessianStep
	if nt.link == Identity {
		step = 1
	}
	sg, whole := smp.design(nt.threads, step)
	lo, hi := sg.sp.rowLo[sg.sp.rank], sg.sp.rowLo[sg.sp.rank+1] // this process's sample rows
	ysub := ys[lo*ny : hi*ny]
	sub := newNewtonOn(sg, whole, ysub, sg.yScales(ysub, ny), ny, nt.lambda, nt.lam, nt.mask, st)
	sst := *st
	sst.Recorder = nil
	var sres Result
	zs, _, status, err := sub.run(ctx, &sst, z0, &sres, start)
	if err != nil {
		return nil, err
	}
	res.Passes += sres.Passes * float64(len(smp.rows)) / float64(nt.N)
	if status == NumericalFailure {
		return z0, nil // start from z0 as if there were no sample
	}
	return zs, nil
}
