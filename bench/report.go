package main

// The pure parts of the harness: time-to-target from a trace, f* selection, and the
// markdown table. Tested in report_test.go.

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Targets are relative to f*: a method reaches target eps once F <= f*(1+eps).
const (
	eps3 = 1e-3
	eps6 = 1e-6
)

// methodResult is one method's run on one problem.
type methodResult struct {
	Method  string `json:"method"`            // "relutrim" or a peer name
	Backend string `json:"backend,omitempty"` // relutrim kernel backend
	Solver  string `json:"solver,omitempty"`  // relutrim inner solver requested (solver.Method)
	// Trace holds (elapsed seconds, F) or (elapsed seconds, F, passes over X so far) points
	// as reported by the method itself.
	Trace [][]float64 `json:"trace"`
	// FinalF is the method's own value at its returned point; VerifiedF is F recomputed
	// by the harness from the returned U and b.
	FinalF    float64 `json:"final_F"`
	VerifiedF float64 `json:"verified_F"`
	NNZ       int     `json:"nnz"`
	SizeU     int     `json:"size_U"`
	Iters     int     `json:"iters"`
	// Passes is the work of the whole run in passes over X (see README.md for how each
	// method's figure is obtained); Passes6 is the work when the 1e-6 target was first
	// reached, when the trace point that reached it carries a pass count.
	Passes  float64  `json:"passes"`
	Passes6 *float64 `json:"passes_to_1e-6,omitempty"`
	Status  string   `json:"status"`
	Wall    float64  `json:"wall_seconds"`
	// PeakRSSKB is the child process's peak RSS (its own VmHWM at the end; ru_maxrss
	// from wait4 only if the child reported none); LoadRSSKB is its peak right after
	// loading the data.
	PeakRSSKB int64          `json:"peak_rss_kb"`
	LoadRSSKB int64          `json:"rss_after_load_kb"`
	Threads   int            `json:"threads"`
	Info      map[string]any `json:"info,omitempty"`
	Error     string         `json:"error,omitempty"`
	// u and b hold the returned point until verify has computed VerifiedF.
	u, b []float64

	// Filled by fillTargets.
	T3    *float64 `json:"time_to_1e-3"`
	T6    *float64 `json:"time_to_1e-6"`
	Ratio *float64 `json:"relutrim_over_this_1e-6,omitempty"`
}

func (m *methodResult) label() string {
	var tags []string
	for _, t := range []string{m.Backend, m.Solver} {
		if t != "" {
			tags = append(tags, t)
		}
	}
	if len(tags) > 0 {
		return m.Method + " [" + strings.Join(tags, ", ") + "]"
	}
	return m.Method
}

func (m *methodResult) ok() bool {
	return m.Error == "" && !math.IsNaN(m.VerifiedF) && !math.IsInf(m.VerifiedF, 0)
}

// timeTo returns the earliest time at which the trace has F <= target, and the index of
// that point (-1: never). Trace points need not be sorted (the Lasso peer's trace is a set
// of independent runs, where the fastest run reaching the target counts).
func timeTo(trace [][]float64, target float64) (float64, int) {
	best, idx := math.Inf(1), -1
	for i, p := range trace {
		if len(p) >= 2 && p[1] <= target && p[0] < best {
			best, idx = p[0], i
		}
	}
	return best, idx
}

// fStar returns the lowest verified final F over the successful methods, and the index of
// the method that reached it (-1 if none succeeded).
func fStar(ms []methodResult) (float64, int) {
	f, idx := math.Inf(1), -1
	for i := range ms {
		if ms[i].ok() && ms[i].VerifiedF < f {
			f, idx = ms[i].VerifiedF, i
		}
	}
	return f, idx
}

// target returns f*(1+eps) (F >= 0, so this is a relative target).
func target(fstar, eps float64) float64 { return fstar * (1 + eps) }

// fillTargets computes the times to the two targets and the relutrim/method ratio of the
// 1e-6 times (using the fastest relutrim backend). A method is credited with a target only
// if its verified final F also meets it (up to 1e-9 relative), so a trace that reports
// optimistic F values cannot win.
func fillTargets(ms []methodResult, fstar float64) {
	for i := range ms {
		m := &ms[i]
		m.T3, m.T6, m.Ratio, m.Passes6 = nil, nil, nil, nil
		if !m.ok() {
			continue
		}
		for _, e := range []struct {
			eps float64
			dst **float64
		}{{eps3, &m.T3}, {eps6, &m.T6}} {
			tg := target(fstar, e.eps)
			if m.VerifiedF > tg*(1+1e-9) {
				continue
			}
			if t, i := timeTo(m.Trace, tg); i >= 0 {
				*e.dst = &t
				if e.eps == eps6 && len(m.Trace[i]) >= 3 {
					p := m.Trace[i][2]
					m.Passes6 = &p
				}
			}
		}
	}
	var best *float64
	for i := range ms {
		if ms[i].Method == "relutrim" && ms[i].T6 != nil && (best == nil || *ms[i].T6 < *best) {
			best = ms[i].T6
		}
	}
	for i := range ms {
		m := &ms[i]
		if m.Method == "relutrim" || best == nil || m.T6 == nil || *m.T6 <= 0 {
			continue
		}
		r := *best / *m.T6
		m.Ratio = &r
	}
}

// problemResult collects all methods on one problem.
type problemResult struct {
	Problem problem        `json:"problem"`
	FStar   float64        `json:"fstar"`
	FStarBy string         `json:"fstar_by"`
	Methods []methodResult `json:"methods"`
	Error   string         `json:"error,omitempty"`
}

// runResult is the whole of results.json.
type runResult struct {
	Date      string            `json:"date"`
	CPU       string            `json:"cpu"`
	Cores     int               `json:"cores"`
	GoVersion string            `json:"go_version"`
	Backends  map[string]string `json:"backends"` // backend -> BackendInfo or why skipped
	PeerEnv   map[string]string `json:"peer_env"`
	PeerBLAS  string            `json:"peer_blas"`
	Quick     bool              `json:"quick"`
	TimeLimit float64           `json:"time_limit_seconds"`
	Command   string            `json:"command"`
	Problems  []problemResult   `json:"problems"`
}

func fmtSec(t *float64) string {
	if t == nil {
		return "-"
	}
	switch {
	case *t >= 100:
		return fmt.Sprintf("%.0f", *t)
	case *t >= 1:
		return fmt.Sprintf("%.2f", *t)
	default:
		return fmt.Sprintf("%.3f", *t)
	}
}

func fmtRel(f, fstar float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "-"
	}
	d := f/fstar - 1
	if fstar == 0 {
		d = f
	}
	if d == 0 {
		return "0"
	}
	return fmt.Sprintf("%.1e", d)
}

func fmtMB(kb int64) string {
	if kb <= 0 {
		return "?"
	}
	return fmt.Sprintf("%.0f", float64(kb)/1024)
}

// fmtPasses formats a pass count: one decimal below 100 (subsample passes are fractions).
func fmtPasses(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// fmtPasses6 is the passes-to-1e-6 cell: the count at the trace point that reached the
// target; "<=" the run's total when that point carries no count; "-" if never reached.
func fmtPasses6(m *methodResult) string {
	switch {
	case m.T6 == nil:
		return "-"
	case m.Passes6 != nil:
		return fmtPasses(*m.Passes6)
	case m.Passes > 0:
		return "<=" + fmtPasses(m.Passes)
	}
	return "?"
}

// fmtPeakX is the child's peak RSS over the size of X's data ("?" if either is unknown).
func fmtPeakX(kb, xBytes int64) string {
	if kb <= 0 || xBytes <= 0 {
		return "?"
	}
	return fmt.Sprintf("%.2f", float64(kb)*1024/float64(xBytes))
}

func fmtRatio(m *methodResult, haveRelutrim6 bool) string {
	switch {
	case m.Method == "relutrim" || !m.ok():
		return ""
	case m.Ratio != nil:
		return fmt.Sprintf("%.3g", *m.Ratio)
	case m.T6 == nil && haveRelutrim6:
		return "peer never"
	}
	return "-"
}

func cell(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", "/"), "\n", " ") }

// formatTable renders the run as markdown.
func formatTable(r *runResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# relutrim benchmark\n\n")
	fmt.Fprintf(&b, "- date: %s\n- CPU: %s (%d logical cores)\n- Go: %s\n", r.Date, r.CPU, r.Cores, r.GoVersion)
	keys := make([]string, 0, len(r.Backends))
	for k := range r.Backends {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "- relutrim backend %s: %s\n", k, cell(r.Backends[k]))
	}
	if r.PeerBLAS != "" {
		fmt.Fprintf(&b, "- peers' BLAS: %s\n", cell(r.PeerBLAS))
	}
	if r.Quick {
		fmt.Fprintf(&b, "- QUICK run (reduced sizes): not representative\n")
	}
	fmt.Fprintf(&b, "- time limit per method: %gs; command: `%s`\n\n", r.TimeLimit, r.Command)

	fmt.Fprintf(&b, "| problem | N | Nx | Ny | link | lambda (frac of lambda_max) | f* (by) |\n")
	fmt.Fprintf(&b, "|---|---:|---:|---:|---|---|---|\n")
	for _, pr := range r.Problems {
		p := pr.Problem
		if p.Skip != "" || pr.Error != "" {
			why := p.Skip
			if pr.Error != "" {
				why = "error: " + pr.Error
			}
			fmt.Fprintf(&b, "| %s | | | | | skipped: %s | |\n", p.Name, cell(why))
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %s%s | %.4g (%.3g) | %.10g (%s) |\n", p.Name, p.N, p.Nx, p.Ny,
			p.Link, map[bool]string{true: "", false: ", no bias"}[p.Bias], p.Lambda, p.LambdaFrac,
			pr.FStar, pr.FStarBy)
	}
	fmt.Fprintf(&b, "\nTimes in seconds from after data load to F <= f*(1+eps) (\"-\": never). "+
		"ratio = fastest relutrim t(1e-6) / this method's t(1e-6) (< 1: relutrim faster). "+
		"F/f*-1 and nnz at the returned point (F recomputed by the harness). "+
		"passes = work in passes over X (products with X or X^T; Gram builds in product flops): "+
		"to 1e-6 (\"<=\": only the run's total is known) and in the whole run. "+
		"RSS = child process peak (after load -> peak, MB); peak/X = peak RSS / bytes of X.\n\n")
	fmt.Fprintf(&b, "| problem | method | t(1e-3) | t(1e-6) | passes to 1e-6 | passes | F/f*-1 | nnz/size | RSS MB | peak/X | iters | ratio | status |\n")
	fmt.Fprintf(&b, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, pr := range r.Problems {
		if pr.Problem.Skip != "" || pr.Error != "" {
			continue
		}
		have := false
		for i := range pr.Methods {
			if pr.Methods[i].Method == "relutrim" && pr.Methods[i].T6 != nil {
				have = true
			}
		}
		for i := range pr.Methods {
			m := &pr.Methods[i]
			if !m.ok() {
				fmt.Fprintf(&b, "| %s | %s | | | | | | | | | | | failed: %s |\n", pr.Problem.Name, m.label(), cell(truncate(m.Error, 120)))
				continue
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %d/%d | %s->%s | %s | %d | %s | %s |\n",
				pr.Problem.Name, m.label(), fmtSec(m.T3), fmtSec(m.T6), fmtPasses6(m), fmtPasses(m.Passes),
				fmtRel(m.VerifiedF, pr.FStar), m.NNZ, m.SizeU, fmtMB(m.LoadRSSKB), fmtMB(m.PeakRSSKB),
				fmtPeakX(m.PeakRSSKB, pr.Problem.XBytes()), m.Iters, fmtRatio(m, have),
				cell(truncate(m.Status, 60)))
		}
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
