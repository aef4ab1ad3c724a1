// Package solver fits one layer of a ReLU network with an L1 penalty:
//
//	F(U, b) = 1/(2N) sum_p ||act(U^T x_p + b) - y_p||^2 + lambda ||U||_1     (bias unpenalised)
//
// by the convex-concave procedure (CCP) of Johnston's 2017 research note (docs/method.md): every
// non-convex term is replaced by its convex majoriser at the current point (prox.go), the
// convex surrogate is minimised, and the procedure repeats. Two inner solvers minimise the
// surrogates:
//
//   - newton.go (the default): proximal Newton steps with curvature from a row sample
//     (sample.go), one file per step: newton_step.go (working set and metric),
//     newton_cd.go (exact zeros by coordinate descent on the L1 model),
//     newton_linesearch.go (a line search on the majoriser), newton_pass.go (the fused
//     pass that re-majorises after every step), newton_coarse.go (the coarse start);
//   - admm.go: the paper's consensus ADMM in a reduced form (one scalar per sample and
//     output), selectable with Settings.Method = ADMM and used by Auto on tiny problems.
//
// Both work in standardised coordinates (design.go: X's columns centred and scaled
// implicitly, so the solver is invariant to their scale). fit.go holds the driver shared by
// the two (Fit, Prepare, multi-start, results), inner.go the pieces they share (the inner
// interface, the mask, the cold start, the best point per output), bound.go the certified
// lower bound, and validate.go the checks of every input. The products with X are
// internal/kern's.
package solver
