package main

// The hidden -solve mode: the harness re-executes a bench binary (one per kernel backend)
// to run relutrim in a child process, so that its peak RSS is measured the same way as
// the Python peers' (ru_maxrss of the child) and a crash cannot take the harness down.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"relutrim/dataio"
	"relutrim/internal/kern"
	"relutrim/solver"
)

type solveArgs struct {
	x, y, result, link string
	method             string // solver.Method: auto, newton, admm
	lambda             float64
	noBias             bool
	timeLimit          float64
}

// traceRecorder collects (elapsed, F, passes over X so far) at every record of the solver,
// on the harness's own clock, which starts right before Fit (so any setup inside Fit counts).
type traceRecorder struct {
	t0    time.Time
	trace [][]float64
	last  solver.Progress
}

func (r *traceRecorder) Init() error { return nil }

func (r *traceRecorder) Record(p solver.Progress) error {
	r.trace = append(r.trace, []float64{time.Since(r.t0).Seconds(), p.F, p.Passes})
	r.last = p
	return nil
}

// loadMatrix reads a .npy with dataio's bulk reader (no second copy of X while loading).
func loadMatrix(path string, keep32 bool) (solver.Matrix, error) {
	m, err := dataio.ReadNPYFile(path)
	if err != nil {
		return solver.Matrix{}, err
	}
	if m.F32 != nil && keep32 {
		return solver.Matrix{Rows: m.Rows, Cols: m.Cols, F32: m.F32}, nil
	}
	return solver.Matrix{Rows: m.Rows, Cols: m.Cols, F64: m.Float64()}, nil
}

// peakRSSKB returns this process's peak resident set so far: VmHWM from /proc/self/status
// (Linux), else ru_maxrss. ru_maxrss alone is wrong for a child of the harness: Go starts
// children with vfork and Linux keeps the high-water mark of the memory image replaced by
// execve, so a child's ru_maxrss is at least the harness's own peak (after generating L,
// the size of X). VmHWM belongs to the process's own memory image.
func peakRSSKB() int64 {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		if kb, ok := parseVmHWM(string(b)); ok {
			return kb
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return -1
	}
	return ru.Maxrss
}

// parseVmHWM reads the "VmHWM:   1234 kB" line of /proc/<pid>/status.
func parseVmHWM(status string) (int64, bool) {
	for _, line := range strings.Split(status, "\n") {
		v, ok := strings.CutPrefix(line, "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, false
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		return kb, err == nil
	}
	return 0, false
}

// solveOutput is what a -solve child writes; the parent turns it into a methodResult.
type solveOutput struct {
	Backend     string      `json:"backend"`
	BackendInfo string      `json:"backend_info"`
	BackendWarn string      `json:"backend_warning,omitempty"`
	Trace       [][]float64 `json:"trace"`
	FinalF      float64     `json:"final_F"`
	LowerBound  float64     `json:"lower_bound"`
	Gap         float64     `json:"gap"`
	U           []float64   `json:"U"`
	B           []float64   `json:"b"`
	NNZ         int         `json:"nnz"`
	Iters       int         `json:"iters"`
	Passes      float64     `json:"passes"`
	MethodRan   string      `json:"method_ran"`
	CCPIters    int         `json:"ccp_iters"`
	Status      string      `json:"status"`
	Wall        float64     `json:"wall_seconds"`
	LoadRSSKB   int64       `json:"rss_after_load_kb"`
	PeakRSSKB   int64       `json:"peak_rss_kb"`
	Threads     int         `json:"threads"`
	XFloat32    bool        `json:"x_float32"`
	Error       string      `json:"error,omitempty"`
}

func runSolve(a solveArgs) error {
	X, err := loadMatrix(a.x, true)
	if err != nil {
		return err
	}
	Y, err := loadMatrix(a.y, false)
	if err != nil {
		return err
	}
	out := solveOutput{Backend: buildBackend, BackendInfo: kern.BackendInfo(), BackendWarn: kern.BackendWarning(),
		LoadRSSKB: peakRSSKB(), Threads: runtime.GOMAXPROCS(0), XFloat32: X.F32 != nil}
	method, err := parseMethod(a.method)
	if err != nil {
		return err
	}
	s := &solver.Settings{NoBias: a.noBias, Method: method}
	switch a.link {
	case "relu":
		s.Link = solver.ReLU
	case "identity":
		s.Link = solver.Identity
	default:
		return fmt.Errorf("unknown link %q", a.link)
	}
	ctx := context.Background()
	if a.timeLimit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(a.timeLimit*float64(time.Second)))
		defer cancel()
	}
	rec := &traceRecorder{}
	s.Recorder = rec
	rec.t0 = time.Now()
	res, err := fit(ctx, X, Y, a.lambda, s)
	out.Wall = time.Since(rec.t0).Seconds()
	out.PeakRSSKB = peakRSSKB()
	out.Trace = rec.trace
	if err != nil {
		out.Error = err.Error()
	}
	if res != nil {
		out.FinalF, out.LowerBound, out.Gap = res.F, res.LowerBound, res.Gap
		out.U, out.B = res.U, res.B
		out.Iters, out.CCPIters, out.Status = res.Iters, res.CCPIters, res.Status.String()
		out.Passes, out.MethodRan = res.Passes, res.Method.String()
		for _, v := range res.U {
			if v != 0 {
				out.NNZ++
			}
		}
		// The final point is what Fit returns; make sure the trace ends with it, with the
		// run's passes over X.
		out.Trace = append(out.Trace, []float64{out.Wall, res.F, res.Passes})
	} else if out.Error == "" {
		out.Error = "Fit returned no result"
	}
	data, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return writeBytes(a.result, data)
}

// parseMethod maps a -methods / -method name to solver.Method.
func parseMethod(name string) (solver.Method, error) {
	for _, m := range []solver.Method{solver.Auto, solver.Newton, solver.ADMM} {
		if m.String() == name {
			return m, nil
		}
	}
	return 0, fmt.Errorf("unknown relutrim method %q (want auto, newton or admm)", name)
}
