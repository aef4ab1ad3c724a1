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
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"path/filepath"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
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
		return usageErrorf("%v (see '%s --help')", err, c.CommandPath())
	})
	root.CompletionOptions.DisableDefaultCmd = true
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

// ranError marks an error returned by a command's own RunE (as opposed to cobra's parsing
// errors, which are all usage errors).
type ranError struct{ err error }

func (e *ranError) Error() string { return e.err.Error() }
func (e *ranError) Unwrap() error { return e.err }

// runE wraps a subcommand's body: it receives the signal-aware context and its errors are
// classified by exitStatus.
func runE(f func(ctx context.Context, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
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
	if err != nil {
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
	name := cmd.Name()
	path := spec
	if i := strings.LastIndex(strings.ToLower(spec), ".npz:"); i >= 0 {
		path = spec[:i+4]
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return dataio.Matrix{}, usageErrorf("%s: %s %s: no such file", name, flag, path)
	case err != nil:
		return dataio.Matrix{}, usageErrorf("%s: %s %s: cannot read: %v", name, flag, path, err)
	case st.IsDir():
		return dataio.Matrix{}, usageErrorf("%s: %s %s: is a directory, not a file", name, flag, path)
	}
	m, err := dataio.Load(spec)
	if err != nil {
		return dataio.Matrix{}, usageErrorf("%s: %s %s", name, flag, cleanErr(err))
	}
	if m.Rows == 0 || m.Cols == 0 {
		return dataio.Matrix{}, usageErrorf("%s: %s %s: empty array (%d x %d)", name, flag, spec, m.Rows, m.Cols)
	}
	if err := dataio.CheckFinite(m); err != nil {
		return dataio.Matrix{}, usageErrorf("%s: %s %s", name, flag, cleanErr(err))
	}
	return m, nil
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
