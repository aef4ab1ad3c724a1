package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"relutrim/dataio"
	"relutrim/internal/collective"
	"relutrim/internal/kern"
	"relutrim/solver"
)

// One fit across MPI processes (docs/scale.md, "Many processes (MPI)"): with the build tag mpi and
// started by mpirun, every process runs `relutrim fit` on its own block of rows (see
// loadBlock) and the solver combines the reductions over rows through MPI (solver.Comm).
// The processes agree on the outcome at every point where one of them can fail alone
// (agree): after the command-line checks, after loading, inside the solver, and after
// process 0 wrote the outputs; and main ends every process with the same status (finish).
// Only process 0 prints the summary and writes the outputs.

// procGroup is the set of processes of an MPI run.
type procGroup struct {
	comm       solver.Comm
	rank, size int
	stats      func() mpiStats
	abort      func(code int)
	finalize   func()
}

// group is this run's process group; nil in one process (no MPI).
var group *procGroup

// mpiStats counts the collectives of this process (internal/mpi.Stats).
type mpiStats struct {
	Calls         int     `json:"calls"`
	BytesSent     int64   `json:"bytes_sent"`
	BytesReceived int64   `json:"bytes_received"`
	Seconds       float64 `json:"seconds"`
}

// remoteErr is the error of a process that did not fail when another one did: it exits
// with the failing process's status, and only process 0 says so.
type remoteErr struct{ rank, status int }

func (e *remoteErr) Error() string {
	return fmt.Sprintf("process %d of the MPI run failed (its message is above); nothing written", e.rank)
}

// localErr is an error of one process (its own input, its own shard): every process that
// has one prints it, naming itself.
type localErr struct {
	rank int
	err  error
}

func (e *localErr) Error() string { return fmt.Sprintf("process %d: %v", e.rank, e.err) }
func (e *localErr) Unwrap() error { return e.err }

// gatherInts all-gathers vals (the same length on every process) and returns them per
// process.
func (g *procGroup) gatherInts(vals []int) [][]int {
	send := make([]byte, 8*len(vals))
	for i, v := range vals {
		for b := 0; b < 8; b++ {
			send[8*i+b] = byte(uint64(v) >> (8 * b))
		}
	}
	counts := make([]int, g.size)
	for r := range counts {
		counts[r] = len(send)
	}
	recv := make([]byte, len(send)*g.size)
	g.comm.AllGather(send, counts, recv)
	out := make([][]int, g.size)
	for r := range out {
		out[r] = make([]int, len(vals))
		for i := range vals {
			var u uint64
			for b := 0; b < 8; b++ {
				u |= uint64(recv[len(send)*r+8*i+b]) << (8 * b)
			}
			out[r][i] = int(u)
		}
	}
	return out
}

// agree is the collective check after a step that can fail on some processes only
// (collective.FirstFailure, as the solver's): it returns err on the processes that have
// one and, on the others, a *remoteErr with the status of the first process that failed;
// nil when none did. status maps an error to its exit status.
func (g *procGroup) agree(err error, status func(error) int) error {
	if g == nil {
		return err
	}
	st := 0
	if err != nil {
		st = status(err)
	}
	r, rst := collective.FirstFailure(g.comm, st)
	if err != nil {
		return err
	}
	if r >= 0 {
		return &remoteErr{rank: r, status: rst}
	}
	return nil
}

// finish ends the run: every process exits with the same status (the largest: interrupted
// over usage over failure), after MPI_Finalize.
func (g *procGroup) finish(st int) int {
	all := g.gatherInts([]int{st})
	final := 0
	for _, v := range all {
		final = max(final, v[0])
	}
	g.finalize()
	return final
}

// printsError reports whether this process prints err: process 0 prints every error
// (for a remoteErr, that another process failed); the others only their own input's
// (localErr) and the solver's input errors (which only the process holding the row finds).
func (g *procGroup) printsError(err error) bool {
	if g == nil || g.rank == 0 {
		return true
	}
	var le *localErr
	var ie *solver.InputError
	return errors.As(err, &le) || errors.As(err, &ie)
}

// exitOf is the exit status of a remoteErr (others: ok = false).
func exitOf(err error) (int, bool) {
	var re *remoteErr
	if errors.As(err, &re) {
		return re.status, true
	}
	return 0, false
}

// shardPath returns the file of process rank for a --x/--y value with a %d pattern.
func shardPath(pattern string, rank int) string { return fmt.Sprintf(pattern, rank) }

// block is this process's part of the rows of an MPI fit.
type block struct {
	rowLo  []int // the first row of every process, and N
	shards bool  // one file per process (--x shard-%d.npy)
	mapped bool  // X is memory-mapped from its file
}

// loadBlock loads this process's rows of X and Y for a fit across the processes of g:
// with a %d in --x and --y the files shardPath(spec, rank), else the rows
// kern.SplitRows(N, size)[rank..rank+1] of the one file (memory-mapped when it is a
// float32/float64 .npy in C order, so that the processes of one machine share its pages).
// It is collective: errors of one process (a missing shard, a bad value) end all of them
// (agree), and shards that disagree on X's columns, X's dtype or Y's columns are an error
// naming the files and processes. unmap releases a mapped X.
func loadBlock(cmd *cobra.Command, g *procGroup, xspec, yspec string, maxMem int64) (xm, ym dataio.Matrix, blk block, unmap func() error, passes int, err error) {
	name := cmd.Name()
	unmap = func() error { return nil }
	xShard, yShard := strings.Contains(xspec, "%d"), strings.Contains(yspec, "%d")
	if xShard != yShard {
		return xm, ym, blk, unmap, 0, usageErrorf("%s: --x %s and --y %s: give both as %%d patterns (one shard per process) or neither", name, xspec, yspec)
	}
	blk.shards = xShard
	var local error
	var ny int
	if blk.shards {
		xm, ym, unmap, passes, blk.mapped, local = loadShard(cmd, g, xspec, yspec, maxMem)
	} else {
		xm, ym, blk.rowLo, unmap, passes, blk.mapped, err = loadRows(cmd, g, xspec, yspec)
		if err != nil {
			return xm, ym, blk, unmap, 0, err // the same on every process
		}
	}
	if local != nil {
		local = &localErr{rank: g.rank, err: local}
	}
	if err := g.agree(local, func(e error) int { return exitStatus(cmd.Context(), e) }); err != nil {
		unmap()
		return xm, ym, blk, func() error { return nil }, 0, err
	}
	// Every process loaded its part: check that they fit together.
	f32 := 0
	if xm.F32 != nil {
		f32 = 1
	}
	ny = ym.Cols
	all := g.gatherInts([]int{xm.Rows, xm.Cols, f32, ny})
	file := func(spec string, r int) string {
		if blk.shards {
			return shardPath(spec, r)
		}
		return spec
	}
	dtype := map[int]string{0: "float64", 1: "float32"}
	for r := 1; r < g.size; r++ {
		var msg string
		switch {
		case all[r][1] != all[0][1]:
			msg = fmt.Sprintf("--x %s (process %d) has %d columns but %s (process 0) has %d: every shard of X needs the same columns",
				file(xspec, r), r, all[r][1], file(xspec, 0), all[0][1])
		case all[r][2] != all[0][2]:
			msg = fmt.Sprintf("--x %s (process %d) is %s but %s (process 0) is %s: every shard of X needs the same dtype",
				file(xspec, r), r, dtype[all[r][2]], file(xspec, 0), dtype[all[0][2]])
		case all[r][3] != all[0][3]:
			msg = fmt.Sprintf("--y %s (process %d) has %d columns but %s (process 0) has %d: every shard of Y needs the same columns",
				file(yspec, r), r, all[r][3], file(yspec, 0), all[0][3])
		}
		if msg != "" {
			unmap()
			return xm, ym, blk, func() error { return nil }, 0, usageErrorf("%s: %s", name, msg)
		}
	}
	if blk.shards {
		blk.rowLo = make([]int, g.size+1)
		for r := range all {
			blk.rowLo[r+1] = blk.rowLo[r] + all[r][0]
		}
	}
	return xm, ym, blk, unmap, passes, nil
}

// loadShard loads this process's shard files (errors are this process's own).
func loadShard(cmd *cobra.Command, g *procGroup, xspec, yspec string, maxMem int64) (xm, ym dataio.Matrix, unmap func() error, passes int, mapped bool, err error) {
	name := cmd.Name()
	unmap = func() error { return nil }
	xf, yf := shardPath(xspec, g.rank), shardPath(yspec, g.rank)
	mx, um, passes, err := mappedX(cmd, "--x", xf, maxMem)
	switch {
	case err != nil:
		return xm, ym, unmap, 0, false, err
	case mx != nil:
		xm, unmap, mapped = *mx, um, true
	default:
		if xm, passes, err = loadMatrixCounted(cmd, "--x", xf, false); err != nil {
			return xm, ym, unmap, 0, false, err
		}
	}
	fail := func(e error) (dataio.Matrix, dataio.Matrix, func() error, int, bool, error) {
		unmap()
		return xm, ym, func() error { return nil }, 0, false, e
	}
	if xm.Vector {
		return fail(usageErrorf("%s: --x %s: X is 1-D (%d values); need a 2-D N x Nx array", name, xf, xm.Rows))
	}
	if ym, err = loadMatrix(cmd, "--y", yf); err != nil {
		return fail(err)
	}
	if ym.Rows != xm.Rows {
		return fail(usageErrorf("%s: --y %s has %d rows but --x %s has %d: each shard of Y needs one row per row of its shard of X", name, yf, ym.Rows, xf, xm.Rows))
	}
	return xm, ym, unmap, passes, mapped, nil
}

// loadRows loads this process's block of rows of the one X and Y file. Its errors are the
// same on every process (they read the same files), except the checks of the block's
// values, which it returns as a localErr after agreeing.
func loadRows(cmd *cobra.Command, g *procGroup, xspec, yspec string) (xm, ym dataio.Matrix, rowLo []int, unmap func() error, passes int, mapped bool, err error) {
	name := cmd.Name()
	unmap = func() error { return nil }
	path, member := splitNPZ(xspec)
	var whole dataio.Matrix
	n := 0
	in, ierr := dataio.InspectNPYFile(path)
	if member == "" && strings.EqualFold(pathExt(path), ".npy") && ierr == nil && in.Mappable {
		whole, unmap, err = dataio.MapNPYFile(path)
		if err != nil {
			return xm, ym, nil, unmap, 0, false, usageErrorf("%s: --x %s", name, cleanErr(err))
		}
		mapped = true
	} else if whole, err = loadWhole(cmd, "--x", xspec); err != nil {
		return xm, ym, nil, unmap, 0, false, err
	}
	n = whole.Rows
	fail := func(e error) (dataio.Matrix, dataio.Matrix, []int, func() error, int, bool, error) {
		unmap()
		return xm, ym, nil, func() error { return nil }, 0, false, e
	}
	if whole.Vector {
		return fail(usageErrorf("%s: --x %s: X is 1-D (%d values); need a 2-D N x Nx array", name, xspec, whole.Rows))
	}
	rowLo = kern.SplitRows(n, g.size)
	for r := 0; r < g.size; r++ {
		if rowLo[r+1] <= rowLo[r] {
			nc := (n + kern.ChunkRows - 1) / kern.ChunkRows
			return fail(usageErrorf("%s: --x %s has %d rows, %d chunks of %d rows, which cannot be split among %d processes "+
				"(each needs at least one chunk): run at most %d", name, xspec, n, nc, kern.ChunkRows, g.size, nc))
		}
	}
	lo, hi := rowLo[g.rank], rowLo[g.rank+1]
	xm = rowsOf(whole, lo, hi, !mapped)
	yw, err := loadWhole(cmd, "--y", yspec)
	if err != nil {
		return fail(err)
	}
	if yw.Rows != n {
		return fail(usageErrorf("%s: --y %s has %d rows but --x %s has %d: X and Y need one row per sample", name, yspec, yw.Rows, xspec, n))
	}
	ym = rowsOf(yw, lo, hi, true)
	// The values of this block: checked here, by this process only.
	px, errx := checkBlock(cmd, "--x", xspec, xm, lo)
	_, erry := checkBlock(cmd, "--y", yspec, ym, lo)
	local := errors.Join(errx, erry)
	if local != nil {
		local = &localErr{rank: g.rank, err: errOr(errx, erry)}
	}
	if err := g.agree(local, func(e error) int { return exitStatus(cmd.Context(), e) }); err != nil {
		return fail(err)
	}
	return xm, ym, rowLo, unmap, px, mapped, nil
}

// checkBlock is checkLoaded on the rows [lo, lo+m.Rows) of the file spec, naming the file's
// row of a value that is not finite. It returns the passes it made over m.
func checkBlock(cmd *cobra.Command, flag, spec string, m dataio.Matrix, lo int) (int, error) {
	var nf *dataio.NonFiniteError
	if err := dataio.CheckFinite(m); errors.As(err, &nf) {
		return 1, usageErrorf("%s: %s %s: row %d, column %d (0-based) is not finite (%v)", cmd.Name(), flag, spec, nf.Row+lo, nf.Col, nf.Value)
	}
	p, err := checkLoaded(cmd, flag, fmt.Sprintf("%s (rows %d..%d)", spec, lo, lo+m.Rows-1), m)
	return p + 1, err
}

// errOr returns the first non-nil error.
func errOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// loadWhole reads a whole matrix file without the value checks (loadRows checks each
// process's block).
func loadWhole(cmd *cobra.Command, flag, spec string) (dataio.Matrix, error) {
	path, _ := splitNPZ(spec)
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return dataio.Matrix{}, usageErrorf("%s: %s %s: no such file", cmd.Name(), flag, path)
	case err != nil:
		return dataio.Matrix{}, usageErrorf("%s: %s %s: cannot read: %v", cmd.Name(), flag, path, err)
	case st.IsDir():
		return dataio.Matrix{}, usageErrorf("%s: %s %s: is a directory, not a file", cmd.Name(), flag, path)
	}
	m, err := dataio.Load(spec)
	if err != nil {
		return m, usageErrorf("%s: %s %s", cmd.Name(), flag, cleanErr(err))
	}
	if m.Rows == 0 || m.Cols == 0 {
		return m, usageErrorf("%s: %s %s: empty array (%d x %d)", cmd.Name(), flag, spec, m.Rows, m.Cols)
	}
	return m, nil
}

// rowsOf returns rows [lo, hi) of m, copied when copyRows (so that the rest can be freed).
func rowsOf(m dataio.Matrix, lo, hi int, copyRows bool) dataio.Matrix {
	b := m
	b.Rows = hi - lo
	if m.F32 != nil {
		b.F32 = m.F32[lo*m.Cols : hi*m.Cols]
		if copyRows {
			b.F32 = slices.Clone(b.F32)
		}
	} else {
		b.F64 = m.F64[lo*m.Cols : hi*m.Cols]
		if copyRows {
			b.F64 = slices.Clone(b.F64)
		}
	}
	return b
}

// mpiReport is the report's "mpi" block: the rows of each process, whether they came from
// shards and start on chunk boundaries (then the fit is bitwise the single-process one),
// and process 0's collectives: over the whole run, and per Newton step (the median over the
// steps of the solves, between consecutive progress records).
type mpiReport struct {
	Rows         []int `json:"rows_per_process"`
	Shards       bool  `json:"shards"`
	ChunkAligned bool  `json:"chunk_aligned"`
	mpiStats
	Steps          int     `json:"steps_measured"`
	BytesPerStep   float64 `json:"bytes_per_step"`
	SecondsPerStep float64 `json:"seconds_per_step"`
}

func (m *mpiReport) fill(g *procGroup, rec *groupRecorder) {
	m.mpiStats = g.stats()
	m.Steps = len(rec.bytes)
	if m.Steps > 0 {
		b, t := slices.Clone(rec.bytes), slices.Clone(rec.secs)
		slices.Sort(b)
		slices.Sort(t)
		m.BytesPerStep, m.SecondsPerStep = b[len(b)/2], t[len(t)/2]
	}
}

// groupRecorder passes progress on to the display (process 0) and measures the
// collectives between consecutive steps. Test hook: RELUTRIM_MPI_TEST_KILL=r:s makes
// process r kill itself with SIGKILL at step s (a process that dies mid-run).
type groupRecorder struct {
	inner    solver.Recorder
	g        *procGroup
	last     *mpiStats
	bytes    []float64
	secs     []float64
	killStep int
}

func newGroupRecorder(g *procGroup, inner solver.Recorder) *groupRecorder {
	r := &groupRecorder{inner: inner, g: g}
	var rank, step int
	if v := os.Getenv("RELUTRIM_MPI_TEST_KILL"); v != "" {
		if _, err := fmt.Sscanf(v, "%d:%d", &rank, &step); err == nil && rank == g.rank {
			r.killStep = step
		}
	}
	return r
}

func (r *groupRecorder) Init() error {
	r.last = nil // a new solve: no difference across solves
	if r.inner != nil {
		return r.inner.Init()
	}
	return nil
}

func (r *groupRecorder) Record(p solver.Progress) error {
	if r.killStep > 0 && p.Iter >= r.killStep {
		fmt.Fprintf(os.Stderr, "relutrim: process %d: killing itself at step %d (RELUTRIM_MPI_TEST_KILL)\n", r.g.rank, p.Iter)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	if !p.Done {
		st := r.g.stats()
		if r.last != nil {
			r.bytes = append(r.bytes, float64(st.BytesSent+st.BytesReceived-r.last.BytesSent-r.last.BytesReceived))
			r.secs = append(r.secs, st.Seconds-r.last.Seconds)
		}
		r.last = &st
	} else {
		r.last = nil
	}
	if r.inner != nil {
		return r.inner.Record(p)
	}
	return nil
}
