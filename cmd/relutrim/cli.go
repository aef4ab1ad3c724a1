// Shared plumbing of the relutrim subcommands.
//
// A subcommand is one file that defines a *cobra.Command and registers it in its init with
// root.AddCommand. Its RunE should be runE(f): f gets a context that SIGINT/SIGTERM cancel
// (pass it to the solver), and the error it returns decides the exit status:
//
//	usageErrorf(...)    bad command line or bad input, exit 2 (name the flag/file and the problem)
//	errInterrupted      canceled by a signal, exit 130 (write nothing)
//	any other error     exit 1
//
// Errors cobra raises itself (unknown command or flag, bad flag value) exit 2. Helpers:
// loadMatrix and checkOutputPath (input and output checks with such messages), warnf
// (warnings on stderr), quiet (the persistent --quiet flag) and newProgress (a spinner on
// stderr when it is a terminal and --quiet is off; its Recorder plugs into
// solver.Settings).

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"path/filepath"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"relutrim/dataio"
	"relutrim/internal/kern"
	"relutrim/solver"
)

// Exit statuses.
const (
	exitOK          = 0
	exitFailure     = 1   // the run failed (solver error, cannot write an output, ...)
	exitUsage       = 2   // bad command line or bad input: nothing was computed or written
	exitInterrupted = 130 // SIGINT/SIGTERM: the run was canceled, nothing was written
)

// quiet is the persistent --quiet flag: no progress bar and no summary on stdout. Warnings
// and errors still go to stderr.
var quiet bool

// root is the relutrim command. Subcommands add themselves in their file's init.
var root = &cobra.Command{
	Use:   "relutrim",
	Short: "Fit sparse ReLU layers and prune ReLU networks layer by layer",
	Long: `relutrim fits sparse layers y = act(W x + b) to recorded inputs X and outputs Y by
minimising

    F(U, b) = 1/(2N) sum_p ||act(U^T x_p + b) - y_p||^2 + lambda ||U||_1

(act = ReLU, or the identity with --linear; W = U^T) and reports a certified lower bound on
the optimum (fit). It prunes trained ReLU networks by refitting every layer that way to the
dense network's activations (prune), and shows it end to end on MNIST (demo).

Exit status: 0 on success, 1 when the run fails, 2 for a bad command line or bad input
(nothing written), 130 when interrupted (nothing written).`,
	SilenceUsage:  true,
	SilenceErrors: true,
	// No Run: without a subcommand cobra prints this help.
}

func init() {
	root.PersistentFlags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar and no summary on stdout (warnings and errors still go to stderr)")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		if msg, ok := badFlagValue(err); ok {
			return usageErrorf("%s: %s", c.Name(), msg)
		}
		return usageErrorf("%v (see '%s --help')", err, c.CommandPath())
	})
	root.CompletionOptions.DisableDefaultCmd = true
}

// badFlagValue words pflag's error for a value that does not parse ("invalid argument
// "abc" for "--lambda" flag: strconv.ParseFloat: parsing "abc": invalid syntax") as
// `--lambda: "abc" is not a number`, naming the flag, the value (for a list such as
// --per-layer, the bad element) and what it must be, without Go's internals. ok is false
// for other errors.
func badFlagValue(err error) (msg string, ok bool) {
	var ive *pflag.InvalidValueError
	if !errors.As(err, &ive) {
		return "", false
	}
	f := ive.GetFlag()
	val := ive.GetValue()
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		val = ne.Num
	}
	what := "is not valid"
	switch t := f.Value.Type(); {
	case strings.HasPrefix(t, "float"):
		what = "is not a number"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		what = "is not a whole number"
	case strings.HasPrefix(t, "bool"):
		what = "is not true or false"
	}
	if ne != nil && errors.Is(ne.Err, strconv.ErrRange) {
		what = "is out of range"
	}
	return fmt.Sprintf("--%s: %q %s", f.Name, val, what), true
}

// usageError is a bad command line or bad input: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// usageErrorf returns a usage error. Messages name the flag or file and the problem.
func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errInterrupted is returned by a command canceled by SIGINT or SIGTERM.
var errInterrupted = errors.New("interrupted; no output written")

// interrupted returns errInterrupted when ctx was canceled (a signal arrived), else err.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errInterrupted
	}
	return err
}

// ranError marks an error returned by a command's own RunE (as opposed to cobra's parsing
// errors, which are all usage errors).
type ranError struct{ err error }

func (e *ranError) Error() string { return e.err.Error() }
func (e *ranError) Unwrap() error { return e.err }

// runE wraps a subcommand's body: it receives the signal-aware context and its errors are
// classified by exitStatus.
func runE(f func(ctx context.Context, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if group != nil && cmd.Name() != "fit" {
			return usageErrorf("%s: only relutrim fit runs across MPI processes; run %s without mpirun", cmd.Name(), cmd.Name())
		}
		if w := kern.BackendWarning(); w != "" {
			warnf(cmd, "%s", w) // OpenBLAS picked its slow generic kernels (see README, Backends)
		}
		if err := f(cmd.Context(), cmd, args); err != nil {
			return &ranError{err}
		}
		return nil
	}
}

// exitStatus maps an error from root.Execute to the exit status.
func exitStatus(ctx context.Context, err error) int {
	var ue *usageError
	var re *ranError
	if st, ok := exitOf(err); ok {
		return st // another MPI process failed (group.go)
	}
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, errInterrupted), ctx.Err() != nil && errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.As(err, &re):
		return exitFailure
	}
	// Anything cobra itself rejected (unknown command, arguments, flags).
	return exitUsage
}

// execute runs root with args and returns the exit status. The context passed to the
// commands is canceled on SIGINT or SIGTERM; after the first signal the default behaviour
// is restored, so a second Ctrl-C kills the process at once.
func execute(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	st := exitStatus(ctx, err)
	if err != nil && group.printsError(err) {
		msg := err.Error()
		if st == exitInterrupted {
			msg = errInterrupted.Error()
		}
		fmt.Fprintf(stderr, "relutrim: %s\n", msg)
	}
	return st
}

// limitThreads applies a command's --threads n: n > 0 also bounds runtime.GOMAXPROCS, so
// that the work outside the solver's products (the one-time CSR construction in
// internal/kern, the model's forward passes) uses at most n cores too; 0 keeps all CPUs.
// GOMAXPROCS never goes above the number of CPUs (a huge --threads must not make the
// runtime allocate a scheduler slot per thread). The returned function restores the
// previous value (commands run in-process in tests).
func limitThreads(n int) func() {
	if n <= 0 {
		return func() {}
	}
	old := runtime.GOMAXPROCS(min(n, runtime.NumCPU()))
	return func() { runtime.GOMAXPROCS(old) }
}

// warnf prints a warning line on stderr (also with --quiet).
func warnf(cmd *cobra.Command, format string, args ...any) {
	fmt.Fprintf(cmd.ErrOrStderr(), "relutrim: warning: "+format+"\n", args...)
}

// loadMatrix reads the matrix given by flag (a dataio.Load spec) and checks that it exists,
// is not empty and is finite. Errors are usage errors naming the command, flag and file.
func loadMatrix(cmd *cobra.Command, flag, spec string) (dataio.Matrix, error) {
	m, _, err := loadMatrixCounted(cmd, flag, spec, false)
	return m, err
}

// loadArray is loadMatrix; with nd, a .npy of more than two dimensions (images N x C x H
// x W) is accepted too, its trailing dimensions flattened into the columns.
func loadArray(cmd *cobra.Command, flag, spec string, nd bool) (dataio.Matrix, error) {
	m, _, err := loadMatrixCounted(cmd, flag, spec, nd)
	return m, err
}

// loadMatrixCounted is loadArray that also returns the passes its checks made over the
// matrix (checkLoaded).
func loadMatrixCounted(cmd *cobra.Command, flag, spec string, nd bool) (dataio.Matrix, int, error) {
	name := cmd.Name()
	path, _ := splitNPZ(spec)
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return dataio.Matrix{}, 0, usageErrorf("%s: %s %s: no such file", name, flag, path)
	case err != nil:
		return dataio.Matrix{}, 0, usageErrorf("%s: %s %s: cannot read: %v", name, flag, path, err)
	case st.IsDir():
		return dataio.Matrix{}, 0, usageErrorf("%s: %s %s: is a directory, not a file", name, flag, path)
	}
	var m dataio.Matrix
	if nd && strings.EqualFold(filepath.Ext(spec), ".npy") {
		m, err = dataio.ReadNPYFileND(spec)
	} else {
		m, err = dataio.Load(spec)
	}
	if err != nil {
		return dataio.Matrix{}, 0, usageErrorf("%s: %s %s", name, flag, cleanErr(err))
	}
	passes, err := checkLoaded(cmd, flag, spec, m)
	if err != nil {
		return dataio.Matrix{}, 0, err
	}
	return m, passes, nil
}

// checkLoaded checks that a loaded matrix is not empty, is finite and not too large to
// square (the solver's rule, solver.CheckScale), and returns the passes it made over the
// matrix: one (the largest magnitude and finiteness together), or three when that largest
// magnitude does not already bound the sum of squares below the solver's limit (then the
// exact scaled sum). Each pass over an X larger than memory is a read of its file.
func checkLoaded(cmd *cobra.Command, flag, spec string, m dataio.Matrix) (int, error) {
	name := cmd.Name()
	if m.Rows == 0 || m.Cols == 0 {
		return 0, usageErrorf("%s: %s %s: empty array (%d x %d)", name, flag, spec, m.Rows, m.Cols)
	}
	var big float64
	var finite bool
	if m.F32 != nil {
		big, finite = maxAbs(m.F32)
	} else {
		big, finite = maxAbs(m.F64)
	}
	if !finite {
		if err := dataio.CheckFinite(m); err != nil {
			return 1, usageErrorf("%s: %s %s", name, flag, cleanErr(err))
		}
	}
	exact, err := solver.CheckScale(flag, solver.Matrix{Rows: m.Rows, Cols: m.Cols, F64: m.F64, F32: m.F32}, big)
	passes := 1
	if exact {
		passes = 3
	}
	var ie *solver.InputError
	if errors.As(err, &ie) {
		return passes, usageErrorf("%s: %s %s: %s", name, flag, spec, ie.Msg)
	}
	return passes, err
}

// maxAbs returns the largest magnitude in x and whether every entry is finite, in one pass.
func maxAbs[T float32 | float64](x []T) (float64, bool) {
	var big, bad T
	for _, v := range x {
		if v > big {
			big = v
		} else if -v > big {
			big = -v
		}
		bad += v * 0 // NaN iff some entry is NaN or Inf
	}
	return float64(big), bad == 0
}

// requiredFlag is a flag a command cannot run without: its name, value and what it gives.
type requiredFlag struct{ flag, val, what string }

// requireFlags returns a usage error naming the first of flags that was not given.
func requireFlags(cmd *cobra.Command, flags []requiredFlag) error {
	for _, c := range flags {
		if c.val == "" {
			return usageErrorf("%s: missing %s (%s)", cmd.Name(), c.flag, c.what)
		}
	}
	return nil
}

// checkOutputPath rejects an output path whose directory does not exist or that is a
// directory, before any work is done.
func checkOutputPath(cmd *cobra.Command, flag, path string) error {
	name := cmd.Name()
	if path == "" {
		return nil
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return usageErrorf("%s: %s %s is a directory", name, flag, path)
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		return usageErrorf("%s: %s %s: directory %s does not exist", name, flag, path, dir)
	}
	return nil
}

// pathFlag is a file named on the command line: the flag and its value (for inputs, a
// dataio.Load spec such as "a.npz:x").
type pathFlag struct{ flag, path string }

// sameFileKey resolves path for comparison: absolute, cleaned, with symlinks in its
// directory (and in the file itself, if it exists) resolved, and the file's FileInfo when it
// exists.
func sameFileKey(path string) (string, os.FileInfo) {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = filepath.Clean(path)
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	} else if d, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		abs = filepath.Join(d, filepath.Base(abs))
	}
	st, err := os.Stat(abs)
	if err != nil {
		st = nil
	}
	return abs, st
}

// checkDistinct refuses an output that is the same file as an input (it would be destroyed
// before or while being read) or as another output (one would overwrite the other). Paths
// are compared resolved (absolute, symlinks followed) and, where both files exist, by
// identity (os.SameFile: hard links too). Empty paths are skipped.
func checkDistinct(cmd *cobra.Command, inputs, outputs []pathFlag) error {
	type key struct {
		pathFlag
		abs string
		st  os.FileInfo
	}
	resolve := func(pf pathFlag) key {
		path, _ := splitNPZ(pf.path)
		abs, st := sameFileKey(path)
		return key{pathFlag{pf.flag, path}, abs, st}
	}
	same := func(a, b key) bool {
		return a.abs == b.abs || (a.st != nil && b.st != nil && os.SameFile(a.st, b.st))
	}
	var ins, outs []key
	for _, pf := range inputs {
		if pf.path != "" {
			ins = append(ins, resolve(pf))
		}
	}
	for _, pf := range outputs {
		if pf.path == "" {
			continue
		}
		o := resolve(pf)
		for _, in := range ins {
			if same(o, in) {
				return usageErrorf("%s: %s %s is the same file as the input %s %s: refusing to overwrite an input", cmd.Name(), o.flag, o.path, in.flag, in.path)
			}
		}
		for _, p := range outs {
			if same(o, p) {
				return usageErrorf("%s: %s %s is the same file as %s %s: give each output its own file", cmd.Name(), o.flag, o.path, p.flag, p.path)
			}
		}
		outs = append(outs, o)
	}
	return nil
}

// splitNPZ splits "archive.npz:name" into the file path and the member (as dataio.Load).
func splitNPZ(spec string) (path, member string) {
	if i := strings.LastIndex(strings.ToLower(spec), ".npz:"); i >= 0 {
		return spec[:i+4], spec[i+5:]
	}
	return spec, ""
}

// outputFile is one output of a run: its flag, path and content.
type outputFile struct {
	flag, path string
	write      func(w io.Writer) error
}

// beforeCommit runs after every output is staged and before they are renamed into place
// (tests use it to deliver a signal at that point).
var beforeCommit = func(context.Context) {}

// writeOutputs writes a run's outputs so that they appear together or not at all: each is
// written in full to a temporary beside its target (dataio.Outputs.Stage), and only when all
// of them are written, and no SIGINT/SIGTERM has arrived, are they renamed into place. Stale
// temporaries of the same names, left by a run killed with SIGKILL, are removed first. A
// signal that arrives during the renames (after the last check) does not stop them; the
// outputs are then complete and a warning says so. It returns the paths written.
func writeOutputs(ctx context.Context, cmd *cobra.Command, files []outputFile) ([]string, error) {
	var o dataio.Outputs
	defer o.Discard()
	var written []string
	for _, f := range files {
		if f.path == "" {
			continue
		}
		removed, _ := dataio.CleanStale(f.path)
		for _, r := range removed {
			warnf(cmd, "removed %s, a temporary left by an earlier run that was killed", r)
		}
		if err := o.Stage(f.path, f.write); err != nil {
			return nil, fmt.Errorf("%s: %s %s: %s; no output written", cmd.Name(), f.flag, f.path, cleanErr(err))
		}
		if ctx.Err() != nil {
			return nil, errInterrupted
		}
		written = append(written, f.path)
	}
	beforeCommit(ctx)
	if ctx.Err() != nil {
		return nil, errInterrupted
	}
	if err := o.Commit(); err != nil {
		return nil, fmt.Errorf("%s: %s", cmd.Name(), cleanErr(err))
	}
	if ctx.Err() != nil {
		warnf(cmd, "interrupted while the outputs were being renamed into place; all of them are complete: %s", strings.Join(written, ", "))
	}
	return written, nil
}

// encodeJSON encodes a report, indented. JSON has no NaN or Inf: a report holding one is an
// error (before any output is written), naming the problem.
func encodeJSON(cmd *cobra.Command, flag, path string, v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		var uv *json.UnsupportedValueError
		if errors.As(err, &uv) {
			return nil, fmt.Errorf("%s: %s %s: the report holds %s, which JSON cannot encode; no output written", cmd.Name(), flag, path, uv.Str)
		}
		return nil, fmt.Errorf("%s: %s %s: %v; no output written", cmd.Name(), flag, path, err)
	}
	return append(b, '\n'), nil
}

// cleanErr drops the "dataio: " prefix of dataio errors (the message already names the
// file).
func cleanErr(err error) string {
	return strings.TrimPrefix(err.Error(), "dataio: ")
}

// progress is a spinner with a description on stderr, shown only when stderr is a terminal
// and --quiet is not set; otherwise every method is a no-op.
type progress struct {
	bar    *progressbar.ProgressBar
	prefix string
	solves int
}

// newProgress returns the progress display for cmd.
func newProgress(cmd *cobra.Command) *progress {
	f, ok := cmd.ErrOrStderr().(*os.File)
	if quiet || !ok || !term.IsTerminal(int(f.Fd())) {
		return &progress{}
	}
	bar := progressbar.NewOptions(-1,
		progressbar.OptionSetWriter(f),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetDescription("loading"),
	)
	return &progress{bar: bar}
}

// Describe sets the text shown before the solver's figures (e.g. "lambda=0.01").
func (p *progress) Describe(prefix string) {
	p.prefix = prefix
	if p.bar != nil {
		p.bar.Describe(prefix)
	}
}

// Step shows a progress line (e.g. a finished layer) and advances the spinner.
func (p *progress) Step(line string) {
	if p.bar != nil {
		p.bar.Describe(line)
		_ = p.bar.Add(1)
	}
}

// Finish clears the display.
func (p *progress) Finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

// Recorder returns a solver.Recorder that updates the display (nil when it is hidden).
func (p *progress) Recorder() solver.Recorder {
	if p.bar == nil {
		return nil
	}
	return (*progressRecorder)(p)
}

type progressRecorder progress

func (r *progressRecorder) Init() error {
	r.solves++
	return nil
}

func (r *progressRecorder) Record(pr solver.Progress) error {
	r.bar.Describe(fmt.Sprintf("%s solve %d: CCP %d, ADMM %d, F=%.6g", r.prefix, r.solves, pr.CCPIter, pr.Iter, pr.F))
	return r.bar.Add(1)
}

// withReport appends the --report output to outs when path is set: rep encoded as JSON
// now (so that an encoding error comes before any file is written), written with the
// other outputs.
func withReport(cmd *cobra.Command, outs []outputFile, path string, rep any) ([]outputFile, error) {
	if path == "" {
		return outs, nil
	}
	js, err := encodeJSON(cmd, "--report", path, rep)
	if err != nil {
		return nil, err
	}
	return append(outs, outputFile{"--report", path, func(w io.Writer) error { _, err := w.Write(js); return err }}), nil
}
