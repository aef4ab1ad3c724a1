package main

// The pruning bench (-prune): relutrim against SparseGPT (prune.Pruner.SparseGPT, in Go)
// on the demo MLP and the demo CNN, at several sparsities and N:M patterns, each method
// in its own child process (this binary with -prune-child), so that each one's time and
// peak RSS are its own. See README.md, "Pruning bench".

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"relutrim/internal/kern"
	"relutrim/internal/mnist"
	"relutrim/internal/models"
	"relutrim/prune"
	"relutrim/prune/model"
)

var (
	pruneMode     = flag.Bool("prune", false, "run the pruning bench (relutrim against SparseGPT) instead of the solver bench")
	pruneModels   = flag.String("prune-models", "mlp,cnn", "-prune: models, mlp (LeNet-300-100) and/or cnn (the demo's all-conv CNN)")
	pruneLevels   = flag.String("prune-levels", "0.5,0.8,0.9,0.95", "-prune: overall sparsities (split over the layers by relutrim's error curves)")
	pruneNM       = flag.String("prune-nm", "2:4", "-prune: N:M patterns (every layer but the last; empty: none)")
	pruneMethods  = flag.String("prune-methods", "relutrim,sparsegpt", "-prune: methods, relutrim and/or sparsegpt")
	pruneMLPCalib = flag.Int("prune-mlp-calib", 10000, "-prune: MNIST training images used as calibration data for the MLP")
	pruneCNNCalib = flag.Int("prune-cnn-calib", 2000, "-prune: MNIST training images used as calibration data for the CNN")
	pruneMaxPatch = flag.Int("prune-max-patch-mib", 0, "-prune: MiB of unfolded patches per convolution (0: relutrim prune's default, prune.DefaultMaxXBytes)")
	pruneResults  = flag.String("prune-results", "", "-prune: also write the section into this markdown file (e.g. bench/RESULTS.md), replacing the section of an earlier run")

	pcChild  = flag.Bool("prune-child", false, "internal: prune one model with one method and write -pc-result")
	pcModel  = flag.String("pc-model", "", "internal (-prune-child): mlp or cnn")
	pcMethod = flag.String("pc-method", "", "internal (-prune-child): relutrim or sparsegpt")
	pcLevel  = flag.Float64("pc-level", 0, "internal (-prune-child): overall sparsity")
	pcNM     = flag.String("pc-nm", "", "internal (-prune-child): N:M pattern instead of -pc-level")
	pcCalib  = flag.Int("pc-calib", 0, "internal (-prune-child): calibration images")
	pcKeep   = flag.String("pc-keep", "", "internal (-prune-child): per-layer keep counts (sparsegpt; default: relutrim's split, computed in the child and not timed)")
	pcResult = flag.String("pc-result", "", "internal (-prune-child): result JSON")
	pcDense  = flag.Bool("pc-dense", false, "internal (-prune-child): also measure the dense model's test accuracy")
)

// pruneMain runs the pruning bench or its child if asked to, and reports whether it did
// (and the exit code).
func pruneMain(outDir string) (bool, int) {
	switch {
	case *pcChild:
		if err := pruneChild(); err != nil {
			fmt.Fprintln(os.Stderr, "bench -prune-child:", err)
			return true, 1
		}
		return true, 0
	case *pruneMode:
		if err := pruneBench(filepath.Join(outDir, "prune")); err != nil {
			fmt.Fprintln(os.Stderr, "bench -prune:", err)
			return true, 1
		}
		return true, 0
	}
	return false, 0
}

// pruneOut is what a -prune-child writes.
type pruneOut struct {
	Model    string  `json:"model"`
	Method   string  `json:"method"`
	Level    float64 `json:"level,omitempty"`
	Pattern  string  `json:"pattern,omitempty"`
	Calib    int     `json:"calibration_images"`
	TestRows int     `json:"test_images"`
	Keep     []int   `json:"keep"`
	NonZeros []int   `json:"nonzeros"`
	Sizes    []int   `json:"layer_weights"`
	Sparsity float64 `json:"sparsity"`
	// Seconds is the method's time from the loaded data to the pruned model: Setup (the
	// Pruner: the dense network on the calibration data; 0 for SparseGPT, which runs
	// prune.SparseGPTData) + Split (relutrim's error curves and split; 0 for SparseGPT,
	// which is given relutrim's) + Prune.
	LoadSeconds  float64 `json:"load_seconds"`
	SetupSeconds float64 `json:"setup_seconds"`
	SplitSeconds float64 `json:"split_seconds"`
	PruneSeconds float64 `json:"prune_seconds"`
	Seconds      float64 `json:"seconds"`
	// RSS (VmHWM, KB) after loading the model and calibration data, and at the end of
	// pruning (before the test set is read).
	LoadRSSKB int64 `json:"rss_after_load_kb"`
	PeakRSSKB int64 `json:"peak_rss_kb"`
	// SplitInChild: the child computed relutrim's split itself (-pc-keep not given); the
	// peak RSS was reset after it where the kernel allows (/proc/self/clear_refs).
	SplitInChild bool    `json:"split_in_child,omitempty"`
	Accuracy     float64 `json:"test_accuracy"`
	Dense        float64 `json:"dense_test_accuracy,omitempty"`
	Backend      string  `json:"backend"`
}

func loadBenchModel(name string) (model.Model, error) {
	switch name {
	case "mlp":
		return models.LeNet300100()
	case "cnn":
		return models.CNNMNIST()
	}
	return model.Model{}, fmt.Errorf("unknown model %q (want mlp or cnn)", name)
}

func parsePattern(s string) (prune.NM, error) {
	a, b, ok := strings.Cut(s, ":")
	n, err1 := strconv.Atoi(a)
	m, err2 := strconv.Atoi(b)
	p := prune.NM{N: n, M: m}
	if !ok || err1 != nil || err2 != nil || !p.Valid() {
		return p, fmt.Errorf("pattern %q: want N:M with 1 <= N < M", s)
	}
	return p, nil
}

// curveSplit is `relutrim prune`'s default split of sparsity s (--budget curves).
func curveSplit(ctx context.Context, p *prune.Pruner, s float64) ([]int, error) {
	if _, err := p.Curves(ctx); err != nil {
		return nil, err
	}
	return p.CurveBudget(ctx, s)
}

func pruneChild() error {
	ctx := context.Background()
	out := pruneOut{Model: *pcModel, Method: *pcMethod, Level: *pcLevel, Pattern: *pcNM, Calib: *pcCalib, Backend: kern.BackendInfo()}
	if *pcMethod != "relutrim" && *pcMethod != "sparsegpt" {
		return fmt.Errorf("unknown method %q", *pcMethod)
	}
	t0 := time.Now()
	m, err := loadBenchModel(*pcModel)
	if err != nil {
		return err
	}
	dir, err := mnist.Dir()
	if err != nil {
		return err
	}
	train, err := mnist.LoadFirst(dir, true, *pcCalib)
	if err != nil {
		return err
	}
	if train.N < *pcCalib {
		return fmt.Errorf("%d calibration images asked for, MNIST has %d", *pcCalib, train.N)
	}
	n := *pcCalib
	calib := train.X[:n*784]
	out.LoadSeconds = time.Since(t0).Seconds()
	out.LoadRSSKB = peakRSSKB()

	// The options of `relutrim prune` (its defaults); SparseGPT uses only MaxXBytes (the
	// same sampled patch rows as relutrim).
	opt := prune.Options{MaxXBytes: *pruneMaxPatch << 20}
	var pat prune.NM
	if *pcNM != "" {
		if pat, err = parsePattern(*pcNM); err != nil {
			return err
		}
	}
	var keep []int
	switch {
	case pat.N > 0:
		keep = prune.NMKeep(m, pat, nil)
	case *pcKeep != "":
		for _, f := range strings.Split(*pcKeep, ",") {
			k, err := strconv.Atoi(f)
			if err != nil {
				return fmt.Errorf("-pc-keep: %v", err)
			}
			keep = append(keep, k)
		}
	}
	var pm model.Model
	if *pcMethod == "relutrim" {
		t0 = time.Now()
		p, err := prune.NewPruner(m, calib, n, opt)
		if err != nil {
			return err
		}
		out.SetupSeconds = time.Since(t0).Seconds()
		if keep == nil {
			t0 = time.Now()
			if keep, err = curveSplit(ctx, p, *pcLevel); err != nil {
				return err
			}
			out.SplitSeconds = time.Since(t0).Seconds()
		}
		t0 = time.Now()
		if pm, _, err = p.WithNM(pat).Prune(ctx, keep); err != nil {
			return err
		}
		out.PruneSeconds = time.Since(t0).Seconds()
	} else {
		if keep == nil {
			// relutrim's split, computed here (not timed); then the Pruner is dropped and
			// the peak RSS reset to the current RSS (Linux >= 4.0), so that the peak is
			// SparseGPT's.
			p, err := prune.NewPruner(m, calib, n, prune.Options{MaxXBytes: opt.MaxXBytes})
			if err != nil {
				return err
			}
			if keep, err = curveSplit(ctx, p, *pcLevel); err != nil {
				return err
			}
			p = nil
			runtime.GC()
			debug.FreeOSMemory()
			out.SplitInChild = true
			_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
		}
		// SparseGPT from the calibration data, without relutrim's Pruner (which would
		// hold the dense network's activations of every layer).
		t0 = time.Now()
		if pm, err = prune.SparseGPTData(ctx, m, calib, n, opt, keep, pat, nil); err != nil {
			return err
		}
		out.PruneSeconds = time.Since(t0).Seconds()
	}
	out.Keep = keep
	out.Seconds = out.SetupSeconds + out.SplitSeconds + out.PruneSeconds
	out.PeakRSSKB = peakRSSKB()

	out.NonZeros = pm.NonZeros()
	nz, size := 0, 0
	for _, L := range m.Layers {
		out.Sizes = append(out.Sizes, L.In*L.Out)
		size += L.In * L.Out
	}
	for _, v := range out.NonZeros {
		nz += v
	}
	out.Sparsity = 1 - float64(nz)/float64(size)
	test, err := mnist.Load(dir, false)
	if err != nil {
		return err
	}
	out.TestRows = test.N
	out.Accuracy = pm.Accuracy(test.X, test.N, test.Labels)
	if *pcDense {
		out.Dense = m.Accuracy(test.X, test.N, test.Labels)
	}
	b, err := json.MarshalIndent(out, "", " ")
	if err != nil {
		return err
	}
	return writeBytes(*pcResult, append(b, '\n'))
}

// pruneRow is one line of the table: a model at one level or pattern, by method.
type pruneRow struct {
	Model   string               `json:"model"`
	Level   float64              `json:"level,omitempty"`
	Pattern string               `json:"pattern,omitempty"`
	Methods map[string]*pruneOut `json:"methods"`
	Errors  map[string]string    `json:"errors,omitempty"`
}

// label is the row's sparsity ("90%") or pattern ("2:4").
func (r *pruneRow) label() string {
	if r.Pattern != "" {
		return r.Pattern
	}
	return fmt.Sprintf("%g%%", 100*r.Level)
}

type pruneRun struct {
	Date     string  `json:"date"`
	CPU      string  `json:"cpu"`
	Cores    int     `json:"cores"`
	Go       string  `json:"go"`
	Backend  string  `json:"backend"`
	LoadAvg  string  `json:"loadavg_start"`
	LoadEnd  string  `json:"loadavg_end"`
	Command  string  `json:"command"`
	Seconds  float64 `json:"seconds"`
	MLPCalib int     `json:"mlp_calibration_images"`
	CNNCalib int     `json:"cnn_calibration_images"`
	MaxPatch int     `json:"max_patch_mib"`
	// ResultsPath is results.json's path (relative to the working directory if given so).
	ResultsPath string     `json:"-"`
	Rows        []pruneRow `json:"rows"`
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func pruneBench(outDir string) error {
	start := time.Now()
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	methods := splitList(*pruneMethods)
	for _, m := range methods {
		if m != "relutrim" && m != "sparsegpt" {
			return fmt.Errorf("-prune-methods: unknown method %q", m)
		}
	}
	var levels []float64
	for _, f := range splitList(*pruneLevels) {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || !(v > 0 && v < 1) {
			return fmt.Errorf("-prune-levels: %q is not a sparsity in (0, 1)", f)
		}
		levels = append(levels, v)
	}
	nms := splitList(*pruneNM)
	for _, s := range nms {
		if _, err := parsePattern(s); err != nil {
			return fmt.Errorf("-prune-nm: %v", err)
		}
	}
	cpu, _ := cpuInfo()
	run := pruneRun{Date: time.Now().UTC().Format(time.RFC3339), CPU: cpu, Cores: runtime.NumCPU(), Go: runtime.Version(),
		Backend: kern.BackendInfo(), LoadAvg: loadAvg(), Command: benchCommand(),
		MLPCalib: *pruneMLPCalib, CNNCalib: *pruneCNNCalib, MaxPatch: *pruneMaxPatch}
	logf := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
	}
	for _, mod := range splitList(*pruneModels) {
		if _, err := loadBenchModel(mod); err != nil {
			return err
		}
		calib := *pruneMLPCalib
		if mod == "cnn" {
			calib = *pruneCNNCalib
		}
		type job struct {
			level float64
			nm    string
		}
		var jobs []job
		for _, l := range levels {
			jobs = append(jobs, job{level: l})
		}
		for _, s := range nms {
			jobs = append(jobs, job{nm: s})
		}
		dense := true // the first child of the model measures the dense accuracy
		for _, j := range jobs {
			row := pruneRow{Model: mod, Level: j.level, Pattern: j.nm, Methods: map[string]*pruneOut{}, Errors: map[string]string{}}
			name := fmt.Sprintf("%s_%g", mod, j.level)
			if j.nm != "" {
				name = mod + "_" + strings.ReplaceAll(j.nm, ":", "of")
			}
			var keep []int
			for _, meth := range methods {
				res := filepath.Join(outDir, name+"_"+meth+".json")
				args := []string{"-prune-child", "-pc-model", mod, "-pc-method", meth, "-pc-calib", fmt.Sprint(calib),
					"-pc-result", res, "-prune-max-patch-mib", fmt.Sprint(*pruneMaxPatch)}
				if dense {
					args = append(args, "-pc-dense")
				}
				if j.nm != "" {
					args = append(args, "-pc-nm", j.nm)
				} else {
					args = append(args, "-pc-level", fmt.Sprint(j.level))
					if meth == "sparsegpt" && keep != nil {
						var ks []string
						for _, k := range keep {
							ks = append(ks, fmt.Sprint(k))
						}
						args = append(args, "-pc-keep", strings.Join(ks, ","))
					}
				}
				logf("%s: %s", name, meth)
				_ = os.Remove(res)
				cmd := exec.Command(exe, args...)
				if os.Getenv("GOGC") == "" {
					// The garbage collector's target of relutrim prune and demo (both
					// methods alike): cmd/relutrim's leanGCPercent.
					cmd.Env = append(os.Environ(), "GOGC=25")
				}
				logPath := filepath.Join(outDir, name+"_"+meth+".log")
				lf, err := os.Create(logPath)
				if err != nil {
					return err
				}
				cmd.Stdout, cmd.Stderr = lf, lf
				err = cmd.Run()
				lf.Close()
				var o pruneOut
				if err == nil {
					err = readJSON(res, &o)
				}
				if err != nil {
					tail, _ := os.ReadFile(logPath)
					row.Errors[meth] = truncate(fmt.Sprintf("%v: %s", err, lastLines(string(tail), 3)), 300)
					logf("%s: %s failed: %s", name, meth, row.Errors[meth])
					continue
				}
				row.Methods[meth] = &o
				dense = dense && o.Dense == 0
				if meth == "relutrim" {
					keep = o.Keep
				}
				logf("%s: %s %.2f%% in %.1f s, peak RSS %.0f MB", name, meth, 100*o.Accuracy, o.Seconds, float64(o.PeakRSSKB)/1024)
			}
			run.Rows = append(run.Rows, row)
		}
	}
	run.Seconds = time.Since(start).Seconds()
	run.LoadEnd = loadAvg()
	b, err := json.MarshalIndent(run, "", " ")
	if err != nil {
		return err
	}
	if err := writeBytes(filepath.Join(outDir, "results.json"), append(b, '\n')); err != nil {
		return err
	}
	run.ResultsPath = filepath.Join(outDir, "results.json")
	sec := pruneSection(&run)
	if err := writeBytes(filepath.Join(outDir, "section.md"), []byte(sec)); err != nil {
		return err
	}
	fmt.Print(sec)
	if *pruneResults != "" {
		old, err := os.ReadFile(*pruneResults)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := writeBytes(*pruneResults, []byte(replaceSection(string(old), sec))); err != nil {
			return err
		}
		logf("updated %s", *pruneResults)
	}
	return nil
}

// benchCommand is the command line of this run, for the section.
func benchCommand() string {
	args := []string{"go run ./bench"}
	flag.Visit(func(f *flag.Flag) {
		if f.Value.String() == "true" {
			args = append(args, "-"+f.Name)
		} else {
			args = append(args, "-"+f.Name+"="+strconv.Quote(f.Value.String()))
		}
	})
	if len(args) == 1 {
		args = append(args, "-prune")
	}
	return strings.Join(args, " ")
}

// The markers around the pruning bench's section of RESULTS.md (replaced on a rerun with
// -prune-results).
const (
	sectionBegin = "<!-- prune bench: begin -->"
	sectionEnd   = "<!-- prune bench: end -->"
)

// replaceSection returns doc with the text between the markers replaced by sec (which
// carries the markers), or with sec appended if doc has none.
func replaceSection(doc, sec string) string {
	i, j := strings.Index(doc, sectionBegin), strings.Index(doc, sectionEnd)
	if i >= 0 && j > i {
		return doc[:i] + sec + strings.TrimPrefix(doc[j+len(sectionEnd):], "\n")
	}
	if doc != "" && !strings.HasSuffix(doc, "\n\n") {
		doc = strings.TrimRight(doc, "\n") + "\n\n"
	}
	return doc + sec
}

func fmtKeep(o *pruneOut) string {
	var s []string
	for l, k := range o.Keep {
		s = append(s, fmt.Sprintf("%.1f", 100*(1-float64(k)/float64(o.Sizes[l]))))
	}
	return strings.Join(s, " / ")
}

// pruneSection formats the run as a markdown section between the markers.
func pruneSection(r *pruneRun) string {
	var b strings.Builder
	fmt.Fprintln(&b, sectionBegin)
	fmt.Fprintln(&b, "## Pruning: relutrim against SparseGPT (Go)")
	fmt.Fprintln(&b)
	fmt.Fprintf(&b, "- date: %s; machine: %s (%d logical cores); %s; kernels %s\n", r.Date, r.CPU, r.Cores, r.Go, r.Backend)
	fmt.Fprintf(&b, "- load average at the start %s, at the end %s (1, 5, 15 min)\n", r.LoadAvg, r.LoadEnd)
	fmt.Fprintf(&b, "- command: `%s` (%.0f s in all)\n", r.Command, r.Seconds)
	patch := fmt.Sprintf("%d MiB (relutrim prune's default; at most 131072 positions)", prune.DefaultMaxXBytes>>20)
	if r.MaxPatch > 0 {
		patch = fmt.Sprintf("%d MiB", r.MaxPatch)
	}
	fmt.Fprintf(&b, "- calibration: the first %d MNIST training images for the MLP (LeNet-300-100), %d for the CNN (the demo's all-conv network; unfolded patches per convolution capped at %s); test accuracy on the 10,000 MNIST test images\n", r.MLPCalib, r.CNNCalib, patch)
	var dense []string
	seen := map[string]bool{}
	for _, row := range r.Rows {
		for _, o := range row.Methods {
			if !seen[row.Model] && o.Dense > 0 {
				seen[row.Model] = true
				dense = append(dense, fmt.Sprintf("%s %.2f%%", row.Model, 100*o.Dense))
			}
		}
	}
	if len(dense) > 0 {
		fmt.Fprintf(&b, "- dense test accuracy: %s\n", strings.Join(dense, ", "))
	}
	fmt.Fprintln(&b)
	fmt.Fprintln(&b, "Each method runs in its own process. Time: from the loaded data to the pruned model (relutrim: the dense network on the calibration data, the error curves and split, the pruning; SparseGPT: `prune.SparseGPTData`, layer after layer on the pruned network's inputs). SparseGPT is given relutrim's per-layer split (N:M: the same pattern in every layer but the last) and its time excludes it. Peak RSS: the process's VmHWM at the end of pruning (model, calibration data and everything the method held), before the test set is read.")
	fmt.Fprintln(&b)
	fmt.Fprintln(&b, "| model | sparsity | per-layer sparsity % (relutrim's split) | relutrim acc. | SparseGPT acc. | relutrim time | SparseGPT time | time ratio | relutrim peak RSS | SparseGPT peak RSS |")
	fmt.Fprintln(&b, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, row := range r.Rows {
		level := row.label()
		rel, sg := row.Methods["relutrim"], row.Methods["sparsegpt"]
		split := "-"
		for _, o := range []*pruneOut{rel, sg} {
			if o != nil && len(o.Keep) > 0 {
				split = fmtKeep(o)
				break
			}
		}
		acc := func(o *pruneOut) string {
			if o == nil {
				return "-"
			}
			return fmt.Sprintf("%.2f%%", 100*o.Accuracy)
		}
		sec := func(o *pruneOut) string {
			if o == nil {
				return "-"
			}
			return fmt.Sprintf("%.2f s", o.Seconds)
		}
		mb := func(o *pruneOut) string {
			if o == nil {
				return "-"
			}
			return fmt.Sprintf("%.0f MB", float64(o.PeakRSSKB)/1024)
		}
		ratio := "-"
		if rel != nil && sg != nil && sg.Seconds > 0 {
			ratio = fmt.Sprintf("%.1fx", rel.Seconds/sg.Seconds)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", row.Model, level, split, acc(rel), acc(sg), sec(rel), sec(sg), ratio, mb(rel), mb(sg))
	}
	var errs []string
	for _, row := range r.Rows {
		for _, m := range slices.Sorted(maps.Keys(row.Errors)) {
			errs = append(errs, fmt.Sprintf("- %s %s, %s: %s", row.Model, row.label(), m, cell(row.Errors[m])))
		}
	}
	if len(errs) > 0 {
		fmt.Fprintln(&b)
		fmt.Fprintln(&b, "Failures:")
		fmt.Fprintln(&b)
		for _, e := range errs {
			fmt.Fprintln(&b, e)
		}
	}
	fmt.Fprintln(&b)
	fmt.Fprintf(&b, "Breakdown (setup / split / prune seconds, RSS after load) in `%s`.\n", r.ResultsPath)
	fmt.Fprintln(&b, sectionEnd)
	return b.String()
}
