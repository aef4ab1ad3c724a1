package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"relutrim/dataio"
	"relutrim/fit"
	"relutrim/internal/collective"
	"relutrim/internal/kern"
	"relutrim/solver"
)

// sparsityTol is the tolerance of --sparsity: half a percentage point.
const sparsityTol = 0.005

// pathLowRatio is the end of the --lambda-path grid relative to lambda_max.
const pathLowRatio = 1e-3

// maxPathPoints bounds --lambda-path before any work. Every point is a full warm-started
// solve and a row of the CSV; at 1000 points consecutive lambdas of the 1000-fold grid are
// 0.7% apart, finer than any support change a user can act on, and the path costs at most
// 1000 solves instead of running out of memory (issue 10: 4611686018427387904 panicked and
// 1e9 allocated 8 GB after the whole fit).
const maxPathPoints = 1000

var fitFlags struct {
	x, y, out, report, pathOut string
	method, maxMemory          string
	lambda, sparsity           float64
	linear, noBias             bool
	threads, lambdaPath        int
}

var fitCmd = &cobra.Command{
	Use:   "fit --x X.npy --y Y.npy (--lambda L | --sparsity S) --out layer.safetensors",
	Short: "Fit one sparse layer to inputs X and outputs Y",
	Long: `Fit one sparse layer y = act(W x + b) to inputs X (N x Nx) and outputs Y (N x Ny).

Inputs: .npy (2-D float32/float64; integer arrays are converted), file.npz:name for one
array of a .npz archive, or .csv (with or without a header row). A 1-D Y is one output.
A float32 X stays float32 in memory and in the output file.

X larger than memory: when X (an .npy file) needs more than --max-memory bytes, it is not
read into memory but memory-mapped read-only (float32 or float64, C order), and every pass
over X reads it from the file; the result is bitwise identical to the in-memory fit (for a
sparse X too as long as its compressed copy fits in half of --max-memory). The default is
the memory available (MemAvailable, or the cgroup's limit when smaller). The report gives
the passes over X, the bytes read from disk and the read rate.

Give exactly one of --lambda (the L1 weight) or --sparsity (the fraction of weights to set
exactly to zero: relutrim searches lambda along a warm-started path from lambda_max and hits
the target within 0.5 percentage points, or warns and keeps the nearest point when the layer
is too small for that).

Outputs: --out is a safetensors file with "weight" (Ny x Nx, the layout of PyTorch's
nn.Linear) and "bias" (Ny; omitted with --no-bias), in X's float type. --report writes a JSON
report, --lambda-path K a CSV of the warm-started path over K lambdas from lambda_max down
to lambda_max/1000 (lambda, F, nonzeros, sparsity, MSE, gap, iterations). Files are written
atomically, and only when the whole run succeeded. A summary goes to stdout.`,
	Example: `  relutrim fit --x X.npy --y Y.npy --lambda 0.01 --out layer.safetensors
  relutrim fit --x acts.npz:x --y acts.npz:y --sparsity 0.9 --out layer.safetensors --report report.json
  relutrim fit --x X.csv --y y.csv --linear --lambda 0.1 --lambda-path 20 --out lasso.safetensors`,
	Args: func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usageErrorf("fit: unexpected argument %q (inputs are given with --x and --y)", args[0])
		}
		return nil
	},
	RunE: runE(runFit),
}

func init() {
	f := fitCmd.Flags()
	f.StringVar(&fitFlags.x, "x", "", "inputs X: N x Nx (.npy, file.npz:name or .csv)")
	f.StringVar(&fitFlags.y, "y", "", "outputs Y: N x Ny, or N for one output")
	f.Float64Var(&fitFlags.lambda, "lambda", 0, "L1 weight lambda (>= 0)")
	f.Float64Var(&fitFlags.sparsity, "sparsity", 0, "target fraction of zero weights, in [0, 1)")
	f.BoolVar(&fitFlags.linear, "linear", false, "identity activation (multi-output Lasso) instead of ReLU")
	f.BoolVar(&fitFlags.noBias, "no-bias", false, "fix the bias at 0")
	f.IntVar(&fitFlags.threads, "threads", 0, "worker goroutines (0: all CPUs); results do not depend on it")
	f.StringVar(&fitFlags.maxMemory, "max-memory", "", "memory for X, e.g. 2G or 512M (default: the memory available); a larger X is read from disk on every pass")
	f.StringVar(&fitFlags.method, "method", "auto", "inner solver: auto (Newton; ADMM on tiny problems), newton or admm")
	f.StringVar(&fitFlags.out, "out", "", "output layer (safetensors)")
	f.StringVar(&fitFlags.report, "report", "", "write a JSON report here")
	f.IntVar(&fitFlags.lambdaPath, "lambda-path", 0, "also solve a warm-started path of K lambdas from lambda_max to lambda_max/1000")
	f.StringVar(&fitFlags.pathOut, "path-out", "", "CSV file for --lambda-path (default: path.csv next to --out)")
	f.SortFlags = false
	root.AddCommand(fitCmd)
}

// fitReport is the JSON report.
type fitReport struct {
	X       string `json:"x"`
	Y       string `json:"y"`
	N       int    `json:"n"`
	Nx      int    `json:"nx"`
	Ny      int    `json:"ny"`
	DType   string `json:"dtype"`
	Link    string `json:"link"`
	Bias    bool   `json:"bias"`
	Out     string `json:"out"`
	Backend string `json:"backend"`
	Threads int    `json:"threads"`

	Lambda    float64 `json:"lambda"`
	LambdaMax float64 `json:"lambda_max"`
	// Sparsity mode only.
	SparsityTarget *float64 `json:"sparsity_target,omitempty"`
	SparsityTol    *float64 `json:"sparsity_tolerance,omitempty"`
	SparsityHit    *bool    `json:"sparsity_hit,omitempty"`
	Warning        string   `json:"warning,omitempty"`
	// Solves counts the solves of the sparsity search; SearchIters their inner iterations.
	Solves      int `json:"solves"`
	SearchIters int `json:"search_iterations"`

	F          float64 `json:"F"`
	LowerBound float64 `json:"lower_bound"`
	Gap        float64 `json:"gap"`
	Status     string  `json:"status"`
	Method     string  `json:"method"`
	Iters      int     `json:"iterations"`
	Passes     float64 `json:"passes"`
	CCPIters   int     `json:"ccp_iterations"`
	Seconds    float64 `json:"time_seconds"`

	// X's memory: MaxMemory the cap (--max-memory or the memory available; 0: unknown),
	// XBytes the bytes of X's data, OutOfCore whether X was memory-mapped from its file.
	MaxMemory int64 `json:"max_memory_bytes"`
	XBytes    int64 `json:"x_bytes"`
	OutOfCore bool  `json:"out_of_core"`
	// XPasses counts the passes over X of the whole run: the input checks (1, rarely 3), the
	// standardisation (1), lambda_max's correlations (2 with a bias, 1 without) and every
	// solve's passes. BytesRead is what the process read from storage during the run
	// (/proc/self/io read_bytes: page-cache misses, so 0 for a file already cached; -1:
	// unknown), ReadRateGBs that over the run's time (GB = 1e9 bytes), SecondsPerPass the
	// run's time over XPasses; PeakRSS the process's peak resident set (VmHWM; a mapped
	// X's resident pages included).
	XPasses        float64 `json:"x_passes"`
	BytesRead      int64   `json:"bytes_read"`
	ReadRateGBs    float64 `json:"read_rate_gb_per_s"`
	SecondsPerPass float64 `json:"seconds_per_pass"`
	PeakRSS        int64   `json:"peak_rss_bytes"`

	Nonzeros          int     `json:"nonzeros"`
	NonzerosPerOutput []int   `json:"nonzeros_per_output"`
	Weights           int     `json:"weights"`
	Sparsity          float64 `json:"sparsity"`
	MSE               float64 `json:"mse"`

	PathOut    string `json:"path_out,omitempty"`
	PathPoints int    `json:"path_points,omitempty"`

	// Across MPI processes only (group.go): their number, and MPI's rows per process and
	// process 0's collectives.
	Processes int        `json:"processes,omitempty"`
	MPI       *mpiReport `json:"mpi,omitempty"`
}

// fitConfig is relutrim fit's command line, checked (fitConfigOf).
type fitConfig struct {
	x, y, out, report, pathOut string
	lambda, sparsity           float64
	useSparsity                bool  // --sparsity given (else --lambda)
	lambdaPath                 int   // --lambda-path (0: no path)
	threads                    int   // --threads as given (0: all CPUs)
	maxMem                     int64 // --max-memory, or the memory available (0: unknown)
	method                     solver.Method
	link                       solver.Link
	noBias                     bool
}

func runFit(ctx context.Context, cmd *cobra.Command, _ []string) error {
	start := time.Now()
	read0 := ioReadBytes()
	cfg, err := fitConfigOf(cmd)
	if err != nil {
		return err
	}
	if err := checkFitPaths(ctx, cmd, cfg); err != nil {
		return err
	}
	d, release, err := loadFitData(cmd, cfg)
	defer release()
	if err != nil {
		return err
	}

	defer limitThreads(cfg.threads)()
	threads := cfg.threads
	if threads == 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	threads = min(threads, kern.MaxThreads()) // what the solver runs (a huge --threads costs nothing)
	prog := &progress{}
	if group == nil || group.rank == 0 {
		prog = newProgress(cmd)
	}
	defer prog.Finish()
	s, grec := fitSettings(cfg, d, threads, prog)
	eng, err := fit.NewEngine(d.X, d.Y, s) // X prepared once for the fit and the path
	if err != nil {
		return fitErr(ctx, err)
	}
	lmax, _ := eng.LambdaMax()
	if cfg.lambdaPath > 0 && !(lmax > 0) {
		return usageErrorf("fit: --lambda-path: lambda_max is 0 for --x %s and --y %s, so there is no path: U = 0 is optimal for every lambda. "+
			"This happens when X or Y is all zero, Y is constant (with a bias) or, with the ReLU link, Y <= 0 everywhere", cfg.x, cfg.y)
	}
	rep := newFitReport(cfg, d, threads, lmax)
	pt, err := solveFit(ctx, cmd, cfg, eng, prog, rep)
	if err != nil {
		return err
	}
	pathRows, err := walkPath(ctx, cfg, eng, prog, rep, lmax)
	if err != nil {
		return err
	}
	prog.Finish()
	if ctx.Err() != nil {
		return errInterrupted
	}
	finishFitReport(rep, pt, start, read0)
	return writeFit(ctx, cmd, cfg, d, rep, pt, pathRows, grec)
}

// fitConfigOf checks fit's command line (nothing is read yet) and returns it.
func fitConfigOf(cmd *cobra.Command) (*fitConfig, error) {
	fl := &fitFlags
	changed := cmd.Flags().Changed
	if err := requireFlags(cmd, []requiredFlag{
		{"--x", fl.x, "the inputs X"}, {"--y", fl.y, "the outputs Y"}, {"--out", fl.out, "the output file"},
	}); err != nil {
		return nil, err
	}
	useSparsity := changed("sparsity")
	switch {
	case changed("lambda") && useSparsity:
		return nil, usageErrorf("fit: --lambda and --sparsity are exclusive: give one")
	case !changed("lambda") && !useSparsity:
		return nil, usageErrorf("fit: give --lambda or --sparsity")
	case !useSparsity && !(fl.lambda >= 0 && !math.IsInf(fl.lambda, 0)):
		return nil, usageErrorf("fit: --lambda must be finite and >= 0, got %v", fl.lambda)
	case useSparsity && !(fl.sparsity >= 0 && fl.sparsity < 1):
		return nil, usageErrorf("fit: --sparsity must be in [0, 1), got %v", fl.sparsity)
	case fl.threads < 0:
		return nil, usageErrorf("fit: --threads must be >= 0, got %d", fl.threads)
	case changed("lambda-path") && (fl.lambdaPath < 2 || fl.lambdaPath > maxPathPoints):
		return nil, usageErrorf("fit: --lambda-path must be in [2, %d], got %d", maxPathPoints, fl.lambdaPath)
	case changed("path-out") && !changed("lambda-path"):
		return nil, usageErrorf("fit: --path-out needs --lambda-path")
	}
	cfg := &fitConfig{x: fl.x, y: fl.y, out: fl.out, report: fl.report, pathOut: fl.pathOut, lambda: fl.lambda, sparsity: fl.sparsity,
		useSparsity: useSparsity, lambdaPath: fl.lambdaPath, threads: fl.threads, maxMem: availableMemory(), link: solver.ReLU, noBias: fl.noBias}
	if changed("max-memory") {
		v, err := parseSize(fl.maxMemory)
		if err != nil {
			return nil, usageErrorf("fit: --max-memory: %v", err)
		}
		cfg.maxMem = v
	}
	method, ok := map[string]solver.Method{"auto": solver.Auto, "newton": solver.Newton, "admm": solver.ADMM}[fl.method]
	if !ok {
		return nil, usageErrorf("fit: --method must be auto, newton or admm, got %q", fl.method)
	}
	cfg.method = method
	if cfg.lambdaPath > 0 && cfg.pathOut == "" {
		cfg.pathOut = filepath.Join(filepath.Dir(cfg.out), "path.csv")
	}
	if fl.linear {
		cfg.link = solver.Identity
	}
	return cfg, nil
}

// checkFitPaths checks the output paths against each other and the inputs (across MPI
// processes, against every process's shard), and refuses a %d shard pattern outside MPI.
func checkFitPaths(ctx context.Context, cmd *cobra.Command, cfg *fitConfig) error {
	outputs := []pathFlag{{"--out", cfg.out}, {"--report", cfg.report}, {"--path-out", cfg.pathOut}}
	if err := group.agree(checkOutputs(cmd, outputs, []pathFlag{{"--x", cfg.x}, {"--y", cfg.y}}), func(e error) int { return exitStatus(ctx, e) }); err != nil {
		return err // across MPI processes, every process checks the outputs against every shard
	}
	if strings.Contains(cfg.x+cfg.y, "%d") && group == nil {
		if !mpiBuilt {
			return usageErrorf("fit: --x %s --y %s: a %%d pattern names one shard per MPI process, but this relutrim is built without MPI "+
				"(build it with go build -tags mpi ./cmd/relutrim and start it with mpirun)", cfg.x, cfg.y)
		}
		return usageErrorf("fit: --x %s --y %s: a %%d pattern names one shard per MPI process: start relutrim with mpirun -np K", cfg.x, cfg.y)
	}
	return nil
}

// fitData is a fit's data as this process holds it.
type fitData struct {
	X, Y        solver.Matrix
	n           int   // the fit's rows (across MPI processes: all of them)
	mapped      bool  // X is memory-mapped from its file because it needs more than --max-memory
	blk         block // across MPI processes: the rows of every process
	checkPasses int   // the passes the input checks made over X
}

// loadFitData loads X and Y: X memory-mapped when it needs more than --max-memory, else
// read; across MPI processes, this process's block of rows (group.go). release is never
// nil and is to be called whether or not err is nil (it unmaps a mapped X).
func loadFitData(cmd *cobra.Command, cfg *fitConfig) (d *fitData, release func() error, err error) {
	d = &fitData{}
	var xm, ym dataio.Matrix
	if group != nil {
		xm, ym, release, err = loadFitBlock(cmd, cfg, d)
	} else {
		xm, ym, release, err = loadFitLocal(cmd, cfg, d)
	}
	if err != nil {
		return nil, release, err
	}
	if w := solver.WorkBytes(xm.Rows, xm.Cols, ym.Cols, nil); d.mapped && w > cfg.maxMem {
		warnf(cmd, "--x %s is read from disk, but the fit itself needs about %.3g GB besides X (N x Ny work arrays and a row sample), "+
			"more than --max-memory (%.3g GB): it may run out of memory", cfg.x, float64(w)/1e9, float64(cfg.maxMem)/1e9)
	}
	d.X = solver.Matrix{Rows: xm.Rows, Cols: xm.Cols, F64: xm.F64, F32: xm.F32}
	d.Y = solver.Matrix{Rows: ym.Rows, Cols: ym.Cols, F64: ym.Float64()}
	d.n = d.X.Rows
	if group != nil {
		d.n = d.blk.rowLo[group.size] // the fit's rows
	}
	return d, release, nil
}

// loadFitBlock loads this process's block of rows across MPI processes (loadBlock).
func loadFitBlock(cmd *cobra.Command, cfg *fitConfig, d *fitData) (xm, ym dataio.Matrix, release func() error, err error) {
	noop := func() error { return nil }
	xm, ym, d.blk, release, d.checkPasses, err = loadBlock(cmd, group, cfg.x, cfg.y, cfg.maxMem)
	if err != nil {
		return xm, ym, noop, err
	}
	elem := int64(8)
	if xm.F32 != nil {
		elem = 4
	}
	// Out of core: this block needs more than --max-memory.
	d.mapped = d.blk.mapped && cfg.maxMem > 0 && int64(xm.Rows)*int64(xm.Cols)*elem > cfg.maxMem
	if d.blk.shards && !kern.ChunkAligned(d.blk.rowLo) && group.rank == 0 {
		warnf(cmd, "the shards of --x %s do not all hold a multiple of %d rows (except the last): the fit is one fit, but "+
			"its reductions are chunked differently from the single-process fit on the concatenated rows, so it equals that "+
			"only up to rounding", cfg.x, kern.ChunkRows)
	}
	return xm, ym, release, nil
}

// loadFitLocal loads X and Y in one process.
func loadFitLocal(cmd *cobra.Command, cfg *fitConfig, d *fitData) (xm, ym dataio.Matrix, release func() error, err error) {
	release = func() error { return nil }
	mapped, unmap, passes, err := mappedX(cmd, "--x", cfg.x, cfg.maxMem)
	switch {
	case err != nil:
		return xm, ym, release, err
	case mapped != nil:
		release, d.mapped, d.checkPasses = unmap, true, passes
		xm = *mapped
	default:
		if xm, d.checkPasses, err = loadMatrixCounted(cmd, "--x", cfg.x, false); err != nil {
			return xm, ym, release, err
		}
	}
	if xm.Vector {
		return xm, ym, release, usageErrorf("fit: --x %s: X is 1-D (%d values); need a 2-D N x Nx array", cfg.x, xm.Rows)
	}
	ym, err = loadMatrix(cmd, "--y", cfg.y)
	if err != nil {
		return xm, ym, release, err
	}
	if ym.Rows != xm.Rows {
		return xm, ym, release, usageErrorf("fit: --y %s has %d rows but --x %s has %d: X and Y need one row per sample", cfg.y, ym.Rows, cfg.x, xm.Rows)
	}
	return xm, ym, release, nil
}

// fitSettings returns the solver's settings for the fit, and across MPI processes the
// recorder that measures the collectives.
func fitSettings(cfg *fitConfig, d *fitData, threads int, prog *progress) (*solver.Settings, *groupRecorder) {
	s := &solver.Settings{Link: cfg.link, NoBias: cfg.noBias, Threads: threads, Recorder: prog.Recorder(), Method: cfg.method}
	var grec *groupRecorder
	if group != nil {
		s.Comm = group.comm
		grec = newGroupRecorder(group, s.Recorder)
		s.Recorder = grec
	}
	if d.mapped {
		s.MaxCopyBytes = cfg.maxMem / 2 // never copy X beyond half the cap (the sparse kernel's CSR)
	}
	return s, grec
}

// newFitReport starts the report with what is known before the solves.
func newFitReport(cfg *fitConfig, d *fitData, threads int, lmax float64) *fitReport {
	n, nx, ny := d.n, d.X.Cols, d.Y.Cols
	rep := &fitReport{X: cfg.x, Y: cfg.y, N: n, Nx: nx, Ny: ny, DType: "float64", Link: cfg.link.String(),
		Bias: !cfg.noBias, Out: cfg.out, Backend: kern.BackendInfo(), Threads: threads, LambdaMax: lmax}
	rep.MaxMemory, rep.OutOfCore = cfg.maxMem, d.mapped
	if group != nil {
		rep.Processes = group.size
		rep.MPI = &mpiReport{Shards: d.blk.shards, ChunkAligned: kern.ChunkAligned(d.blk.rowLo)}
		for r := 0; r < group.size; r++ {
			rep.MPI.Rows = append(rep.MPI.Rows, d.blk.rowLo[r+1]-d.blk.rowLo[r])
		}
	}
	rep.XBytes = int64(n) * int64(nx) * 8
	if d.X.F32 != nil {
		rep.DType = "float32"
		rep.XBytes /= 2
	}
	// Passes over X outside the solves: the input checks (checkLoaded: one, rarely three),
	// the standardisation (solver.Prepare) and the correlations (fit.Correlations: one pass
	// for the column means with a bias, one for the products).
	rep.XPasses = float64(d.checkPasses) + 1 + 2
	if cfg.noBias {
		rep.XPasses--
	}
	return rep
}

// solveFit solves at --lambda, or searches lambda for --sparsity (a miss is a warning in
// the report, not an error), and records the solves in the report.
func solveFit(ctx context.Context, cmd *cobra.Command, cfg *fitConfig, eng *fit.Engine, prog *progress, rep *fitReport) (fit.Point, error) {
	var pt fit.Point
	var err error
	if cfg.useSparsity {
		prog.Describe(fmt.Sprintf("sparsity %.1f%%:", 100*cfg.sparsity))
		var trace []fit.Point
		pt, trace, err = eng.ForSparsity(ctx, cfg.sparsity, sparsityTol)
		var miss *fit.MissError
		switch {
		case errors.As(err, &miss):
			rep.Warning = miss.Error()
		case err != nil:
			return pt, fitErr(ctx, err)
		}
		hit := miss == nil
		target, tol := cfg.sparsity, sparsityTol
		rep.SparsityTarget, rep.SparsityTol, rep.SparsityHit = &target, &tol, &hit
		rep.Solves = len(trace)
		for _, q := range trace {
			rep.SearchIters += q.Iters
			rep.XPasses += q.Passes
		}
	} else {
		prog.Describe(fmt.Sprintf("lambda=%.4g:", cfg.lambda))
		pt, err = eng.Solve(ctx, cfg.lambda, nil)
		if err != nil {
			return pt, fitErr(ctx, err)
		}
		rep.Solves, rep.SearchIters = 1, pt.Iters
		rep.XPasses += pt.Passes
	}
	if pt.Status == solver.NumericalFailure {
		warnf(cmd, "the solver hit a numerical failure at lambda=%g; the last finite point is kept", pt.Lambda)
	}
	return pt, nil
}

// walkPath solves --lambda-path's warm-started path (nil without it).
func walkPath(ctx context.Context, cfg *fitConfig, eng *fit.Engine, prog *progress, rep *fitReport, lmax float64) ([]fit.Point, error) {
	if cfg.lambdaPath <= 0 {
		return nil, nil
	}
	var rows []fit.Point
	err := eng.Walk(ctx, fit.Geometric(lmax, lmax*pathLowRatio, cfg.lambdaPath), nil, func(p fit.Point) error {
		prog.Describe(fmt.Sprintf("path %d/%d:", len(rows)+1, cfg.lambdaPath))
		p.U, p.B = nil, nil
		rows = append(rows, p)
		rep.XPasses += p.Passes
		return nil
	})
	if err != nil {
		return nil, fitErr(ctx, err)
	}
	rep.PathOut, rep.PathPoints = cfg.pathOut, len(rows)
	return rows, nil
}

// finishFitReport records the chosen point and the run's time, reads and memory.
func finishFitReport(rep *fitReport, pt fit.Point, start time.Time, read0 int64) {
	rep.Lambda, rep.F, rep.LowerBound, rep.Gap = pt.Lambda, pt.F, pt.LowerBound, pt.Gap
	rep.Status, rep.Iters, rep.CCPIters, rep.Passes = pt.Status.String(), pt.Iters, pt.CCPIters, pt.Passes
	rep.Method = pt.Method.String()
	rep.Nonzeros, rep.NonzerosPerOutput, rep.Weights = pt.Nonzeros, pt.NonzerosOut, rep.Nx*rep.Ny
	rep.Sparsity, rep.MSE = pt.Sparsity, pt.MSE
	rep.Seconds = time.Since(start).Seconds()
	rep.BytesRead, rep.PeakRSS = -1, peakRSS()
	if r := ioReadBytes(); r >= 0 && read0 >= 0 {
		rep.BytesRead = r - read0
		rep.ReadRateGBs = float64(rep.BytesRead) / 1e9 / rep.Seconds
	}
	rep.SecondsPerPass = rep.Seconds / rep.XPasses
}

// writeFit writes the outputs, only now that everything succeeded: all of them or none
// (across MPI processes, process 0 writes and the others agree on its outcome), then the
// warning and the summary.
func writeFit(ctx context.Context, cmd *cobra.Command, cfg *fitConfig, d *fitData, rep *fitReport, pt fit.Point, pathRows []fit.Point, grec *groupRecorder) error {
	tensors, meta := layerTensors(pt, rep.Nx, rep.Ny, d.X.F32 != nil, !cfg.noBias, rep)
	outs := []outputFile{{"--out", cfg.out, func(w io.Writer) error { return dataio.EncodeSafetensors(w, tensors, meta) }}}
	if pathRows != nil {
		outs = append(outs, outputFile{"--path-out", cfg.pathOut, func(w io.Writer) error { return encodePath(w, pathRows) }})
	}
	if group != nil {
		rep.MPI.fill(group, grec)
	}
	var written []string
	var err error
	if group == nil || group.rank == 0 {
		outs, err = withReport(cmd, outs, cfg.report, rep)
		if err == nil {
			written, err = writeOutputs(ctx, cmd, outs)
		}
	}
	if err := group.agree(err, func(e error) int { return exitStatus(ctx, e) }); err != nil {
		return err
	}
	if group != nil && group.rank != 0 {
		return nil
	}
	if rep.Warning != "" {
		warnf(cmd, "%s", rep.Warning)
	}
	if !quiet {
		printSummary(cmd.OutOrStdout(), rep, written)
	}
	return nil
}

// checkOutputs checks the output paths before any work. Across MPI processes only process
// 0 writes, so only it checks that the outputs' directories exist; but every process
// checks that no output is an input of any process: a %d shard pattern is expanded to the
// shard of every process (shardInputs), so that an --out ys-1.npy cannot replace process
// 1's shard, whichever machine holds it.
func checkOutputs(cmd *cobra.Command, outputs, inputs []pathFlag) error {
	if group == nil || group.rank == 0 {
		for _, c := range outputs {
			if err := checkOutputPath(cmd, c.flag, c.path); err != nil {
				return err
			}
		}
	}
	procs := 1
	if group != nil {
		procs = group.size
	}
	return checkDistinct(cmd, shardInputs(inputs, procs), outputs)
}

// shardInputs returns inputs with every %d shard pattern replaced by the shard files of
// processes 0..procs-1 (shardPath); the pattern itself is kept too (a file may be named
// so literally). Other inputs are returned as they are.
func shardInputs(inputs []pathFlag, procs int) []pathFlag {
	var out []pathFlag
	for _, in := range inputs {
		out = append(out, in)
		if !strings.Contains(in.path, "%d") {
			continue
		}
		for r := 0; r < procs; r++ {
			out = append(out, pathFlag{in.flag, shardPath(in.path, r)})
		}
	}
	return out
}

// fitErr turns an error of the fit into the command's error: cancellation is an
// interruption, the solver's input errors are bad input (exit 2).
func fitErr(ctx context.Context, err error) error {
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return errInterrupted
	}
	var ie *solver.InputError
	if errors.As(err, &ie) {
		return usageErrorf("fit: %v", err)
	}
	var re *collective.RemoteError
	if errors.As(err, &re) {
		return &remoteErr{rank: re.Rank, status: exitUsage} // the solver agrees on its input errors only
	}
	return err
}

// layerTensors returns the layer's tensors, weight (Ny x Nx, U transposed) and bias (Ny),
// and the safetensors metadata.
func layerTensors(p fit.Point, nx, ny int, f32, bias bool, rep *fitReport) (map[string]dataio.Tensor, map[string]string) {
	t := map[string]dataio.Tensor{}
	w := dataio.Tensor{Shape: []int{ny, nx}}
	b := dataio.Tensor{Shape: []int{ny}}
	if f32 {
		w.DType, w.F32 = "F32", make([]float32, nx*ny)
		b.DType, b.F32 = "F32", make([]float32, ny)
		for k := 0; k < nx; k++ {
			for j := 0; j < ny; j++ {
				w.F32[j*nx+k] = float32(p.U[k*ny+j])
			}
		}
		for j := range b.F32 {
			b.F32[j] = float32(p.B[j])
		}
	} else {
		w.DType, w.F64 = "F64", make([]float64, nx*ny)
		b.DType, b.F64 = "F64", slices.Clone(p.B)
		for k := 0; k < nx; k++ {
			for j := 0; j < ny; j++ {
				w.F64[j*nx+k] = p.U[k*ny+j]
			}
		}
	}
	t["weight"] = w
	if bias {
		t["bias"] = b
	}
	meta := map[string]string{
		"format":           "pt",
		"relutrim.link":    rep.Link,
		"relutrim.lambda":  fmt.Sprint(p.Lambda),
		"relutrim.F":       fmt.Sprint(p.F),
		"relutrim.status":  p.Status.String(),
		"relutrim.weights": "weight is Ny x Nx (nn.Linear layout)",
	}
	return t, meta
}

// pathHeader names the columns of the --lambda-path CSV.
var pathHeader = []string{"lambda", "F", "nonzeros", "sparsity", "mse", "lower_bound", "gap", "iterations", "ccp_iterations"}

// encodePath writes the --lambda-path CSV.
func encodePath(w io.Writer, pts []fit.Point) error {
	m := dataio.NewMatrix64("path", len(pts), len(pathHeader))
	for i, p := range pts {
		copy(m.F64[i*m.Cols:], []float64{p.Lambda, p.F, float64(p.Nonzeros), p.Sparsity, p.MSE,
			p.LowerBound, p.Gap, float64(p.Iters), float64(p.CCPIters)})
	}
	return dataio.EncodeCSV(w, m, pathHeader)
}

// printSummary writes the human summary (one screen whatever Ny is).
func printSummary(w io.Writer, r *fitReport, written []string) {
	bias := "with bias"
	if !r.Bias {
		bias = "no bias"
	}
	fmt.Fprintf(w, "relutrim fit: %s layer, %d inputs -> %d outputs, %s, N = %d samples (%s)\n", r.Link, r.Nx, r.Ny, bias, r.N, r.DType)
	fmt.Fprintf(w, "  lambda        %.6g   (lambda_max %.6g)\n", r.Lambda, r.LambdaMax)
	if r.SparsityTarget != nil {
		if *r.SparsityHit {
			fmt.Fprintf(w, "  target        sparsity %.2f%%: reached (%.2f%%) after %d warm-started solves\n", 100**r.SparsityTarget, 100*r.Sparsity, r.Solves)
		} else {
			fmt.Fprintf(w, "  target        sparsity %.2f%%: NOT reached within 0.5 pp; nearest point kept (%.2f%%) after %d solves\n", 100**r.SparsityTarget, 100*r.Sparsity, r.Solves)
			fmt.Fprintf(w, "  WARNING       %s\n", r.Warning)
		}
	}
	fmt.Fprintf(w, "  objective F   %.8g   lower bound %.8g   gap %.3g\n", r.F, r.LowerBound, r.Gap)
	fmt.Fprintf(w, "  status        %s (%s: %d iterations, %d CCP rounds, %.1f passes over X)\n", r.Status, r.Method, r.Iters, r.CCPIters, r.Passes)
	fmt.Fprintf(w, "  nonzeros      %d of %d weights (sparsity %.2f%%)\n", r.Nonzeros, r.Weights, 100*r.Sparsity)
	fmt.Fprintf(w, "  per output    %s\n", perOutput(r.NonzerosPerOutput))
	fmt.Fprintf(w, "  training MSE  %.6g\n", r.MSE)
	if r.PathOut != "" {
		fmt.Fprintf(w, "  lambda path   %d points from %.4g to %.4g\n", r.PathPoints, r.LambdaMax, r.LambdaMax*pathLowRatio)
	}
	fmt.Fprintf(w, "  wrote         %s\n", strings.Join(written, ", "))
	fmt.Fprintf(w, "  time          %.3fs (%s, %d threads)\n", r.Seconds, r.Backend, r.Threads)
	if r.MPI != nil {
		m := r.MPI
		fmt.Fprintf(w, "  processes     %d (MPI, rows %s): process 0 spent %.3gs in %d collectives, %.3g MB sent + received; per Newton step %.3g kB, %.3gs\n",
			r.Processes, perOutput(m.Rows), m.Seconds, m.Calls, float64(m.BytesSent+m.BytesReceived)/1e6, m.BytesPerStep/1e3, m.SecondsPerStep)
	}
	if r.OutOfCore {
		fmt.Fprintf(w, "  X from disk   %.3g GB (over --max-memory %.3g GB): %.1f passes, %.3g GB read at %.3g GB/s, %.3gs per pass\n",
			float64(r.XBytes)/1e9, float64(r.MaxMemory)/1e9, r.XPasses, float64(r.BytesRead)/1e9, r.ReadRateGBs, r.SecondsPerPass)
	}
}

// perOutput lists the nonzeros per output, or summarises them when there are many.
func perOutput(nz []int) string {
	if len(nz) <= 12 {
		parts := make([]string, len(nz))
		for i, v := range nz {
			parts[i] = fmt.Sprint(v)
		}
		return strings.Join(parts, " ")
	}
	s := slices.Clone(nz)
	slices.Sort(s)
	return fmt.Sprintf("min %d, median %d, max %d (over %d outputs)", s[0], s[len(s)/2], s[len(s)-1], len(s))
}
