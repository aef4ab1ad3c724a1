package solver

import "time"

// Link is the activation applied to the layer's pre-activations U^T x + b.
type Link int

const (
	// ReLU fits relu(U^T x + b) to y. The default.
	ReLU Link = iota
	// Identity fits U^T x + b to y: multi-output Lasso (scikit-learn's Lasso with alpha = lambda).
	Identity
)

func (l Link) String() string {
	switch l {
	case ReLU:
		return "relu"
	case Identity:
		return "identity"
	}
	return "unknown"
}

// Matrix is a dense row-major matrix. Exactly one of F64 and F32 holds its Rows*Cols values.
// X may be float32 to halve memory; Y, warm starts and results are float64.
type Matrix struct {
	Rows, Cols int
	F64        []float64
	F32        []float32
}

// At returns element (i, j) as float64.
func (m Matrix) At(i, j int) float64 {
	if m.F32 != nil {
		return float64(m.F32[i*m.Cols+j])
	}
	return m.F64[i*m.Cols+j]
}

// Method selects the solver of the convex CCP surrogates.
type Method int

const (
	// Auto picks the default inner solver: Newton, or ADMM on tiny problems
	// (N*(Nx+1)*Ny <= 5e4, where several CCP starts are run; see Prepared.Fit). The ADMM
	// options (Rho, FixedRho, InitRho, Relax, PlainConsensus, RemajorizeEvery, EpsAbs) only
	// apply when the ADMM runs.
	Auto Method = iota
	// Newton runs proximal Newton steps on the CCP majoriser (newton.go).
	Newton
	// ADMM runs the paper's consensus ADMM (admm.go).
	ADMM
)

func (m Method) String() string {
	switch m {
	case Auto:
		return "auto"
	case Newton:
		return "newton"
	case ADMM:
		return "admm"
	}
	return "unknown"
}

// Settings configures Fit. The zero value (or a nil *Settings) means the defaults given in
// each field's comment.
type Settings struct {
	// Link is the activation; default ReLU.
	Link Link
	// Method is the inner solver; default Auto.
	Method Method
	// NoBias fixes b = 0 instead of fitting an unpenalised bias.
	NoBias bool
	// InitU (Nx x Ny row-major) and InitB (Ny) warm-start the solver; nil means zero.
	InitU, InitB []float64
	// Mask (Nx x Ny row-major), if non-nil, fixes U[k][j] = 0 wherever Mask is false: the fit
	// runs on the given support only (used for debiasing after support selection).
	Mask []bool
	// GroupL1 replaces the L1 penalty by the group penalty lambda sum_k w_k ||U_k,:||_2 (one
	// group per input feature k, across all outputs, or per set of features with Groups;
	// group.go): whole rows of U become exactly zero. Solved by the ADMM (Auto picks it;
	// Method Newton is an input error) with one start.
	GroupL1 bool
	// GroupWeights are the weights w_g >= 0 of the group penalty, one per group (Nx of them
	// without Groups); nil means all 1.
	GroupWeights []float64
	// Groups (Nx), if non-nil, puts input feature k into group Groups[k] (0 .. G-1, every
	// group non-empty) instead of a group of its own: the penalty is then
	// lambda sum_g w_g ||U_{G_g,:}||_F over all rows of the group and all outputs (one
	// group per convolution channel: its KH*KW columns; group.go). Needs GroupL1.
	Groups []int

	// Offset (N x Ny), if non-empty, is a known offset S inside the activation: the fit
	// minimises 1/(2N) sum_p ||act(U^T x_p + b + s_p) - y_p||^2 + lambda ||U||_1 (a residual
	// block's last layer, whose pre-activation also receives the shortcut; docs/method.md,
	// "A known offset"). The zero Matrix means none. Both inner solvers fit it; with GroupL1
	// or Comm it is an input error (not supported yet).
	Offset Matrix

	// Threads is the number of goroutines for products and elementwise passes;
	// default runtime.GOMAXPROCS(0). Results do not depend on it (fixed chunking).
	Threads int

	// Comm, if non-nil, makes the fit one fit across the processes it connects: X and Y
	// passed to Prepare and Fit hold this process's rows only, a contiguous block of the
	// fit's rows (process r's block before process r+1's), and every process runs the same
	// calls with the same settings (they are collective). Results are identical on every
	// process and, when every block but the last has a multiple of kern.ChunkRows rows
	// (kern.SplitRows), bitwise the single-process fit's. Only the Newton method runs across
	// processes (the ADMM, the group penalty and multi-start fits are input errors), and X
	// is always used with the dense kernel. Read by Prepare only. See dist.go.
	Comm Comm

	// MaxCopyBytes bounds the memory Prepare may spend on a copy of X in another layout:
	// the compressed sparse rows (CSR) that make products with a sparse X (under 40%
	// non-zeros, pure-Go backend) faster, 8 bytes per row plus 8 (float32) or 12 (float64)
	// per non-zero. 0 means no bound (the default). When the CSR copy would need more, the
	// products run on X as given, with the dense kernel, and the result differs from the
	// CSR one in rounding only (for dense X nothing changes). Set it when X is
	// memory-mapped from a file larger than memory (dataio.MapNPYFile, relutrim fit
	// --max-memory), so that X is never copied; docs/scale.md.
	MaxCopyBytes int64

	// HessianRows (Newton only) is the number of rows, a fixed seeded sample, from which
	// the Newton steps estimate curvature; the gradient and the line search always use
	// every row. Default 20000 (sample.go). A small sample makes each step cheaper and
	// less exact: it suits a few steps from a point near the optimum. Read by Prepare only.
	HessianRows int

	// SharedMetric (Newton only) makes every step use the shared metric, one Gram of the
	// curvature sample for all outputs scaled by a per-output step size, instead of each
	// output's own Gram over its curved rows (which the solver otherwise builds whenever
	// it is affordable). A shared-metric step costs a fraction of an own-Gram step and is
	// a poorer Newton step: it suits a few steps whose direction matters more than their
	// precision (the pruner's refine cuts).
	SharedMetric bool

	// MaxIter bounds the total number of inner iterations (ADMM iterations, or Newton
	// steps) over all CCP rounds; default 20000.
	MaxIter int
	// MaxCCP bounds the number of re-majorisations; default 500.
	MaxCCP int
	// RemajorizeEvery (ADMM only) is the number of ADMM iterations between evaluations of F
	// (and Recorder calls); at each, the CCP re-majorises if F has decreased. Default 10.
	// The CCP always re-majorises when the inner problem has converged.
	RemajorizeEvery int
	// RemajorizeTol applies to cold starts (U = 0) only: the first majoriser is solved to
	// RemajorizeTol times the tolerances (ADMM residuals; Newton: KKT residual and
	// decrease) before the first re-majorisation, since re-majorising an immature iterate
	// leaves dead units (docs/method.md, section 2). Default 1000.
	RemajorizeTol float64

	// Starts is the number of CCP runs: the first from InitU/InitB (or zero), the others
	// from seeded random points; the best run is kept per output. Default: 32 for tiny
	// ReLU problems (N*(Nx+1)*Ny <= 5e4) without a warm start, else 1. The ReLU problem is not
	// convex; more starts make finding the global minimum more likely, never less.
	Starts int

	// InitRho (Ny), if non-nil, sets the initial penalty per output: pass a previous
	// Result.Rho when warm-starting along a path, so the adaptive rho need not re-learn it.
	InitRho []float64
	// Rho is the initial ADMM penalty in standardised units; default 1.
	Rho float64
	// FixedRho disables adaptive rho (residual balancing).
	FixedRho bool
	// Relax is the over-relaxation factor in (0, 2); default 1.6 (OSQP's choice).
	Relax float64
	// PlainConsensus uses the paper's per-sample consensus step (metric ||x_p||^2) instead of
	// the default step rescaled by the spectral estimate of the data (see admm.go).
	PlainConsensus bool

	// EpsAbs and EpsRel are the ADMM stopping tolerances on the scaled primal and dual
	// residuals (Boyd et al. 2010, section 3.3); defaults 1e-7 and 1e-6. The Newton solver
	// stops an output when its KKT residual (largest entry of the minimum-norm subgradient
	// in standardised coordinates, divided by y's RMS) is at most EpsRel.
	EpsAbs, EpsRel float64
	// FTol is the relative decrease of F between CCP rounds below which the CCP stops once
	// the majorisation pattern no longer changes; default 1e-9.
	FTol float64

	// Recorder, if non-nil, receives progress at every evaluation of F (ADMM: every
	// RemajorizeEvery iterations and every CCP round; Newton: every step) and at the end.
	Recorder Recorder
}

// Status says why Fit stopped.
type Status int

const (
	// Converged: ADMM residuals below tolerance, majorisation pattern stable, F stationary.
	Converged Status = iota + 1
	// IterationLimit: MaxIter or MaxCCP reached; the best point found is returned.
	IterationLimit
	// Canceled: the context was canceled; the best point found so far is returned.
	Canceled
	// NumericalFailure: a NaN or Inf appeared; the last finite best point is returned.
	NumericalFailure
)

func (s Status) String() string {
	switch s {
	case Converged:
		return "converged"
	case IterationLimit:
		return "iteration limit"
	case Canceled:
		return "canceled"
	case NumericalFailure:
		return "numerical failure"
	}
	return "unknown"
}

// Result is what Fit returns.
type Result struct {
	// U (Nx x Ny row-major) and B (Ny) are the fitted weights and bias.
	U, B []float64
	// F is the objective at (U, B). LowerBound is a certified lower bound on the global
	// minimum of F from a dual-feasible point of the convex relaxation; Gap = F - LowerBound.
	F, LowerBound, Gap float64
	// FOut and BoundOut are the per-output parts of F and LowerBound.
	FOut, BoundOut []float64
	Status         Status
	// CCPIters counts re-majorisations, Iters counts inner iterations (ADMM: one X*B and one
	// X^T*A product each; Newton: steps, each one product of each kind plus its metric).
	CCPIters, Iters int
	// PrimalRes and DualRes are the largest scaled residuals over outputs at the end (ADMM);
	// for Newton, DualRes is the largest KKT residual and PrimalRes is 0.
	PrimalRes, DualRes float64
	// Rho holds the final per-output penalties (standardised units; nil for Newton).
	Rho []float64
	// RhoUpdates counts adaptive rho changes.
	RhoUpdates int
	// Passes counts the work in passes over X: every product with X or X^T counts 1 (one
	// column or many), and a Gram matrix built from r rows with m columns counts
	// r*m*m / (N*Nx*Ny) (its flops in units of one product with all Ny outputs).
	Passes float64
	// Method is the inner solver that ran.
	Method  Method
	Runtime time.Duration
}

// Progress is what a Recorder receives.
type Progress struct {
	CCPIter, Iter int
	F             float64
	// Passes is Result.Passes so far (work in passes over X).
	Passes             float64
	PatternChanges     int
	PrimalRes, DualRes float64
	Elapsed            time.Duration
	// Remajorized marks the records taken at a CCP round (F at the point the CCP
	// re-majorised around); the others are intermediate ADMM iterates, whose F need not
	// decrease monotonically.
	Remajorized bool
	Done        bool
}

// Recorder receives progress. Returning an error from Record stops Fit with that error.
type Recorder interface {
	Init() error
	Record(Progress) error
}
