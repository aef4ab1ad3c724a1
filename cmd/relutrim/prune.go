package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"relutrim/dataio"
	"relutrim/internal/kern"
	"relutrim/prune"
	"relutrim/prune/model"
)

// pruneFlagValues are relutrim prune's flags as given.
type pruneFlagValues struct {
	model, calib, mode, out, report, plot string
	labels, testX, testY, nm, budget      string
	structure, selectBy                   string
	selectRows                            int
	sparsity                              float64
	perLayer                              []float64
	compare, masks, noRefit, unweighted   bool
	threads, maxPatchMiB                  int
}

var pruneFlags pruneFlagValues

// pruneConfig is relutrim prune's command line, checked (pruneConfigOf).
type pruneConfig struct {
	pruneFlagValues
	pat           prune.NM // --nm (N = 0: not given)
	sparsityGiven bool     // --sparsity given: --budget splits it over the layers
}

var pruneCmd = &cobra.Command{
	Use:   "prune --model net.onnx|mlp.safetensors --calib X.npy --sparsity 0.9 --out pruned.onnx|pruned.safetensors",
	Short: "Prune a trained ReLU network (MLP or CNN) layer by layer, refitting each layer to the dense activations",
	Long: `prune takes a trained ReLU network and calibration inputs, and refits every layer with
relutrim's solver to reproduce the dense network's activations (post-ReLU for layers followed
by a ReLU, the outputs for the last, linear layer) with as few weights as the budget allows:
the support is selected on a sample of --select-rows calibration rows (default 2000) by cutting
the dense weights gradually to the exact count with a refit step after each cut (--select
gradual, the default) or from the layer's L1-regularised fit along a lambda path (--select
l1-path; an N:M pattern is SparseGPT's with --select gradual, the path's with l1-path), and the kept weights are then refitted on all
rows with the support fixed. A hidden layer followed by dense layers only
weights each of its units' errors by the unit's effect on the network's output (the root mean
square over calibration samples of its Jacobian column's norm), so that the units the rest of
the network reads most keep more weights; --unweighted fits every unit alike.

Models: a PyTorch nn.Sequential of Linear layers with ReLU between them (its state_dict saved
as safetensors: keys 0.weight, 0.bias, 2.weight, ...), or an ONNX file as torch.onnx.export
writes it (opset 13+, eval mode) holding one chain of Conv (groups 1), Gemm or MatMul (+Add),
BatchNormalization (folded into the layer before it), Relu, MaxPool, AveragePool,
GlobalAveragePool, Flatten, Reshape to (batch, features), Identity and Dropout, or a residual
graph of these ops (ResNet blocks: Add of a block's output and its identity or 1x1-conv
shortcut; the block's last conv is fitted with the shortcut inside its ReLU; weight pruning
only, --structure neurons refuses it). The pruned
model is written in the model's own format; an ONNX output is the same graph with only the
layers' weight and bias initializers changed. A convolution followed by a ReLU is fitted as a
ReLU layer on its unfolded input patches (one row per image and output position; a seeded
sample of positions when they exceed --max-patch-mib, default 32 MiB, reported per layer). Calibration inputs of an
image model are a .npy of shape (N, C, H, W) like the model's input.

--sparsity is the fraction of all weights (biases excluded) that end exactly zero. --budget
says how it is spread over the layers: curves (default; each layer's error curve is measured
on the calibration data, the layer pruned alone, and the counts minimising the sum of the
network's output errors are chosen) or erdos-renyi (a layer keeps weights in proportion to
in+out, so wide layers are pruned hardest); --per-layer sets it layer by layer instead
(in a residual network a block's last conv and its projection shortcut are fitted as one
layer and keep the sum of their two counts);
--nm N:M (e.g. 2:4; alias --pattern) prunes to semi-structured sparsity instead: at most N
non-zeros in every M consecutive inputs of each row, in every layer but the last (kept
dense), or, with --per-layer, in the layers whose value is 1-N/M (0 keeps a layer dense:
--nm 2:4 --per-layer 0.5,0.5,0.5 patterns all three layers of an MLP).
--mode cascade (default) fits layer l on the pruned network's outputs of layer l-1; parallel
fits it on the dense network's own inputs (Net-Trim's two schemes).
--structure neurons removes whole hidden units instead and writes a smaller dense model
(same keys, smaller shapes): --sparsity is then the fraction of every hidden layer's units
removed (the hidden units of a CNN are the output channels of every layer but the last:
every Conv, and a Gemm before the last layer); the units are chosen by a group-L1 path on
the next layer (one group per unit: all the columns that read it), which is then refitted
on the kept units (cascade, first hidden layer first); --compare adds the L2-norm baseline.`,
	Args: cobra.NoArgs,
	RunE: runE(runPrune),
}

func init() {
	f := pruneCmd.Flags()
	fl := &pruneFlags
	f.StringVar(&fl.model, "model", "", "dense model: safetensors state_dict of an nn.Sequential MLP, or .onnx")
	f.StringVar(&fl.calib, "calib", "", "calibration inputs (N x in, or N x C x H x W for an image model): .npy, file.npz:name or .csv")
	f.Float64Var(&fl.sparsity, "sparsity", 0, "overall fraction of weights set exactly to zero, in [0, 1)")
	f.StringVar(&fl.budget, "budget", prune.DefaultBudget, "split of --sparsity over the layers: curves (per-layer counts minimising the summed output error measured on the calibration data) or erdos-renyi")
	f.Float64SliceVar(&fl.perLayer, "per-layer", nil, "sparsity of each layer (comma separated), instead of the automatic split")
	f.StringVar(&fl.nm, "nm", "", "N:M semi-structured sparsity instead, e.g. 2:4 (at most N non-zeros in every M consecutive inputs of each row; every layer but the last, or those --per-layer gives 1-N/M; alias --pattern)")
	f.SetNormalizeFunc(aliasPattern)
	f.StringVar(&fl.mode, "mode", "cascade", "cascade or parallel")
	f.StringVar(&fl.labels, "labels", "", "labels of the calibration rows (.npy/.csv): report accuracy on them")
	f.StringVar(&fl.testX, "test-x", "", "test inputs: report test accuracy (needs --test-y)")
	f.StringVar(&fl.testY, "test-y", "", "test labels")
	f.BoolVar(&fl.compare, "compare", false, "also evaluate magnitude, Wanda-style and SparseGPT pruning at the same per-layer sparsities")
	f.StringVar(&fl.plot, "plot", "", "write a PNG of test accuracy against sparsity (relutrim, magnitude, Wanda, SparseGPT; needs --test-x)")
	f.StringVar(&fl.out, "out", "", "pruned model, in the model's format (safetensors: same keys, shapes and dtype; ONNX: same graph)")
	f.StringVar(&fl.report, "report", "", "JSON report")
	f.BoolVar(&fl.masks, "masks", false, "also write each weight's mask as <key>.weight.mask (uint8)")
	f.BoolVar(&fl.noRefit, "no-refit", false, "skip the refit of the kept weights on the fixed support")
	f.BoolVar(&fl.unweighted, "unweighted", false, "fit every output unit of a layer with the same weight (default: a hidden layer followed by dense layers only weights each unit's error by its effect on the network's output)")
	f.IntVar(&fl.threads, "threads", 0, "solver threads (0 = all CPUs)")
	f.IntVar(&fl.maxPatchMiB, "max-patch-mib", 0, "fit each convolution on at most this many MiB of unfolded input patches (a seeded sample of positions; default 32)")
	f.StringVar(&fl.selectBy, "select", prune.SelectGradual, "support selection: gradual (cuts from the dense weights with a refit step after each) or l1-path (the L1-regularised fit's lambda path, then the same cuts)")
	f.IntVar(&fl.selectRows, "select-rows", prune.DefaultSelectRows, "select each layer's support on a seeded sample of this many of its fit rows, then refit on all (-1: all rows)")
	f.StringVar(&fl.structure, "structure", "weights", "weights (unstructured) or neurons (remove whole hidden units; --sparsity is then the fraction of each hidden layer's units removed)")
	root.AddCommand(pruneCmd)
}

// pruneReport is the JSON report of relutrim prune.
type pruneReport struct {
	Model          string              `json:"model"`
	Calib          string              `json:"calib"`
	N              int                 `json:"calibration_rows"`
	Mode           string              `json:"mode"`
	Budget         string              `json:"budget"`
	TargetSparsity float64             `json:"target_sparsity"`
	Sparsity       float64             `json:"sparsity"`
	Weights        int                 `json:"weights"`
	NonZeros       int                 `json:"nonzeros"`
	Layers         []prune.LayerReport `json:"layers"`
	Accuracy       map[string]float64  `json:"accuracy,omitempty"`
	Backend        string              `json:"backend"`
	Seconds        float64             `json:"seconds"`
	// PeakRSS is the process's peak resident set when the report was made (as fit's).
	PeakRSS int64 `json:"peak_rss_bytes"`
	// SparseGPTSeconds is the time of --compare's SparseGPT at the same split (its test
	// and calibration accuracies are sparsegpt_test and sparsegpt_calib).
	SparseGPTSeconds float64 `json:"sparsegpt_seconds,omitempty"`
	// BudgetKeep is the per-layer split of --sparsity (weights each layer was given);
	// BudgetCurves the error curves it was chosen from (--budget curves).
	BudgetKeep   []int                `json:"budget_keep,omitempty"`
	BudgetCurves []prune.Curve        `json:"budget_curves,omitempty"`
	PlotLevels   []float64            `json:"plot_sparsities,omitempty"`
	PlotAccuracy map[string][]float64 `json:"plot_test_accuracy,omitempty"`
}

type labeled struct {
	X      []float64
	n      int
	labels []int
}

func runPrune(ctx context.Context, cmd *cobra.Command, _ []string) error {
	start := time.Now()
	cfg, err := pruneConfigOf(cmd)
	if err != nil {
		return err
	}
	defer limitThreads(cfg.threads)()
	defer leanGC()()
	if err := checkPrunePaths(cmd, cfg); err != nil {
		return err
	}
	m, err := loadPruneModel(cfg)
	if err != nil {
		return err
	}
	cal, err := loadInputs(cmd, "--calib", cfg.calib, m)
	if err != nil {
		return err
	}
	if err := checkPruneMemory(cmd, cfg, m, cal.Rows, availableMemory()); err != nil {
		return err
	}
	split, err := givenSplit(cfg, m)
	if err != nil {
		return err
	}
	calLab, test, err := loadLabelled(cmd, cfg, m, cal)
	if err != nil {
		return err
	}
	if cfg.structure == "neurons" {
		return runPruneNeurons(ctx, cmd, cfg, m, cal, calLab, test, start)
	}
	pr, err := newPruner(ctx, cmd, cfg, m, cal)
	if err != nil {
		return err
	}
	keep := split.keep
	var curves []prune.Curve
	if keep == nil {
		if keep, curves, err = layerKeep(ctx, pr, cfg.budget, cfg.sparsity); err != nil {
			return err
		}
	}
	pm, reps, err := pr.Prune(ctx, keep)
	if err != nil {
		return interrupted(ctx, err)
	}
	rep := newPruneReport(cfg, m, cal.Rows, split.text, keep, pm, reps)
	rep.BudgetCurves = curves
	models, err := pruneModels(ctx, cfg, rep, pr, m, pm, keep, split.nmOn)
	if err != nil {
		return err
	}
	recordAccuracies(rep.Accuracy, calLab, test, models)
	if cfg.plot != "" {
		if err := sweep(ctx, rep, pr, m, cfg.sparsity, test, cfg.budget); err != nil {
			return err
		}
	}
	rep.Seconds, rep.PeakRSS = time.Since(start).Seconds(), peakRSS()
	return writePrune(ctx, cmd, cfg, rep, pm)
}

// pruneConfigOf checks prune's command line (nothing is read yet) and returns it.
func pruneConfigOf(cmd *cobra.Command) (*pruneConfig, error) {
	cfg := &pruneConfig{pruneFlagValues: pruneFlags}
	changed := cmd.Flags().Changed
	if err := requireFlags(cmd, []requiredFlag{
		{"--model", cfg.model, "the dense model"}, {"--calib", cfg.calib, "the calibration inputs"}, {"--out", cfg.out, "the output file"},
	}); err != nil {
		return nil, err
	}
	if err := checkSelectFlags("prune", cfg.selectBy, cfg.selectRows); err != nil {
		return nil, err
	}
	if err := checkStructureFlags(cmd, cfg); err != nil {
		return nil, err
	}
	given := 0
	// With --nm, --per-layer says which layers get the pattern (nmLayers).
	for _, g := range []bool{changed("sparsity"), cfg.perLayer != nil && !changed("nm"), changed("nm")} {
		if g {
			given++
		}
	}
	if given != 1 {
		return nil, usageErrorf("prune: give exactly one of --sparsity, --per-layer and --nm (--nm with --per-layer picks the patterned layers)")
	}
	if changed("nm") {
		var err error
		if cfg.pat, err = parseNM(cfg.nm); err != nil {
			return nil, usageErrorf("prune: --nm %q: %v", cfg.nm, err)
		}
		if cfg.plot != "" {
			return nil, usageErrorf("prune: --plot sweeps --sparsity levels; it does not go with --nm")
		}
	}
	cfg.sparsityGiven = changed("sparsity")
	if err := checkPruneValues(cfg, changed("budget")); err != nil {
		return nil, err
	}
	return cfg, nil
}

// checkPruneValues checks the values of prune's flags; budgetGiven: --budget was given.
func checkPruneValues(cfg *pruneConfig, budgetGiven bool) error {
	switch {
	case cfg.sparsityGiven && !(cfg.sparsity >= 0 && cfg.sparsity < 1):
		return usageErrorf("prune: --sparsity must be in [0, 1), got %v", cfg.sparsity)
	case cfg.budget != prune.BudgetCurves && cfg.budget != prune.BudgetErdosRenyi:
		return usageErrorf("prune: --budget must be %s or %s, got %q", prune.BudgetCurves, prune.BudgetErdosRenyi, cfg.budget)
	case budgetGiven && !cfg.sparsityGiven:
		return usageErrorf("prune: --budget splits --sparsity over the layers; it does not go with --per-layer or --nm")
	case cfg.mode != "cascade" && cfg.mode != "parallel":
		return usageErrorf("prune: --mode must be cascade or parallel, got %q", cfg.mode)
	case (cfg.testX == "") != (cfg.testY == ""):
		return usageErrorf("prune: --test-x and --test-y go together")
	case cfg.plot != "" && cfg.testX == "":
		return usageErrorf("prune: --plot needs --test-x and --test-y")
	case cfg.threads < 0:
		return usageErrorf("prune: --threads must be >= 0, got %d", cfg.threads)
	case cfg.maxPatchMiB < 0:
		return usageErrorf("prune: --max-patch-mib must be >= 0, got %d", cfg.maxPatchMiB)
	}
	return nil
}

// checkPrunePaths checks the outputs' directories and that no output is an input or
// another output.
func checkPrunePaths(cmd *cobra.Command, cfg *pruneConfig) error {
	outputs := []pathFlag{{"--out", cfg.out}, {"--report", cfg.report}, {"--plot", cfg.plot}}
	for _, c := range outputs {
		if err := checkOutputPath(cmd, c.flag, c.path); err != nil {
			return err
		}
	}
	inputs := []pathFlag{{"--model", cfg.model}, {"--calib", cfg.calib}, {"--labels", cfg.labels}, {"--test-x", cfg.testX}, {"--test-y", cfg.testY}}
	return checkDistinct(cmd, inputs, outputs)
}

// loadPruneModel loads --model and checks that --out (and --masks) suit its format.
func loadPruneModel(cfg *pruneConfig) (model.Model, error) {
	if st, err := os.Stat(cfg.model); err != nil {
		return model.Model{}, usageErrorf("prune: --model %s: %v", cfg.model, cleanErr(errors.Unwrap(err)))
	} else if st.IsDir() {
		return model.Model{}, usageErrorf("prune: --model %s: is a directory, not a file", cfg.model)
	}
	m, err := model.Load(cfg.model)
	if err != nil {
		// A residual graph (ResNet blocks) is pruned weight by weight with the shortcut in
		// the block's fit (prune/residual.go); channel pruning does not handle the
		// channels an Add ties together.
		if g, gerr := model.LoadONNXGraph(cfg.model); gerr == nil && g.Residual() != nil {
			if cfg.structure == "neurons" {
				return g, usageErrorf("prune: --model %s: node %s (Add): residual Add: --structure neurons does not prune residual networks (the channels an Add ties together are not handled); use --structure weights",
					cfg.model, g.Residual()[0])
			}
			m, err = g, nil
		}
	}
	if err != nil {
		return m, usageErrorf("prune: --model %s", cleanErr(err))
	}
	if m.IsONNX() {
		if !strings.EqualFold(filepath.Ext(cfg.out), ".onnx") {
			return m, usageErrorf("prune: --out %s: the model is ONNX, so the pruned model is written as ONNX: give a path ending in .onnx", cfg.out)
		}
		if cfg.masks {
			return m, usageErrorf("prune: --masks writes <key>.weight.mask tensors, which only safetensors output holds; the ONNX output has exact zeros instead")
		}
	} else if strings.EqualFold(filepath.Ext(cfg.out), ".onnx") {
		return m, usageErrorf("prune: --out %s: the model is a safetensors state_dict, so the output is safetensors too, not ONNX", cfg.out)
	}
	return m, nil
}

// pruneSplit is a split of the weights over the layers given on the command line: the
// kept counts (nil: --budget's split of --sparsity, layerKeep), the layers an N:M pattern
// applies to (nil: all but the last) and the report's description.
type pruneSplit struct {
	keep []int
	nmOn []bool
	text string
}

// givenSplit is the split --nm or --per-layer give; for --sparsity only the description
// (--budget's counts come from the Pruner, layerKeep).
func givenSplit(cfg *pruneConfig, m model.Model) (pruneSplit, error) {
	var sp pruneSplit
	var err error
	switch {
	case cfg.pat.N > 0:
		if sp.nmOn, err = nmLayers(cfg.pat, cfg.perLayer, len(m.Layers)); err != nil {
			return sp, err
		}
		sp.keep = prune.NMKeep(m, cfg.pat, sp.nmOn)
		sp.text = fmt.Sprintf("%d:%d pattern: at most %d non-zeros in every %d consecutive inputs of each row, in %s",
			cfg.pat.N, cfg.pat.M, cfg.pat.N, cfg.pat.M, nmLayersText(sp.nmOn, len(m.Layers)))
	case cfg.perLayer != nil:
		if sp.keep, err = prune.PerLayerBudget(m, cfg.perLayer); err != nil {
			return sp, usageErrorf("prune: --per-layer: %v", err)
		}
		sp.text = "per layer, from --per-layer"
	case cfg.budget == prune.BudgetErdosRenyi:
		sp.text = "Erdos-Renyi: each layer keeps weights in proportion to in+out (capped at dense)"
	default:
		sp.text = curvesBudgetText
	}
	return sp, nil
}

// loadLabelled reads --labels (of the calibration rows) and --test-x/--test-y, when given.
func loadLabelled(cmd *cobra.Command, cfg *pruneConfig, m model.Model, cal dataio.Matrix) (calLab, test *labeled, err error) {
	if cfg.labels != "" {
		if calLab, err = loadLabels(cmd, "--labels", cfg.labels, cal.Rows, m); err != nil {
			return nil, nil, err
		}
		calLab.X, calLab.n = cal.Float64(), cal.Rows
	}
	if cfg.testX != "" {
		tx, err := loadInputs(cmd, "--test-x", cfg.testX, m)
		if err != nil {
			return nil, nil, err
		}
		if test, err = loadLabels(cmd, "--test-y", cfg.testY, tx.Rows, m); err != nil {
			return nil, nil, err
		}
		test.X, test.n = tx.Float64(), tx.Rows
	}
	return calLab, test, nil
}

// newPruner sets up the layer-by-layer pruning of m on the calibration rows (the dense
// pass stops when ctx is canceled).
func newPruner(ctx context.Context, cmd *cobra.Command, cfg *pruneConfig, m model.Model, cal dataio.Matrix) (*prune.Pruner, error) {
	opt := prune.Options{Parallel: cfg.mode == "parallel", NoDebias: cfg.noRefit, Unweighted: cfg.unweighted, Threads: cfg.threads,
		NM: cfg.pat, MaxXBytes: cfg.maxPatchMiB << 20, Select: cfg.selectBy, SelectRows: cfg.selectRows}
	if !quiet {
		opt.Log = func(s string) { fmt.Fprintln(cmd.ErrOrStderr(), "  "+s) }
	}
	pr, err := prune.NewPrunerContext(ctx, m, cal.Float64(), cal.Rows, opt)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err() // interrupted during the dense pass: exit 130
		}
		return nil, usageErrorf("prune: %v", err)
	}
	return pr, nil
}

// newPruneReport starts the report of the pruned model pm.
func newPruneReport(cfg *pruneConfig, m model.Model, rows int, budget string, keep []int, pm model.Model, reps []prune.LayerReport) *pruneReport {
	rep := &pruneReport{Model: cfg.model, Calib: cfg.calib, N: rows, Mode: cfg.mode, Budget: budget,
		TargetSparsity: targetOf(m, keep), Layers: reps, Backend: kern.BackendInfo(), Weights: m.Weights()}
	if cfg.sparsityGiven {
		rep.BudgetKeep = keep
	}
	for _, nz := range pm.NonZeros() {
		rep.NonZeros += nz
	}
	rep.Sparsity = 1 - float64(rep.NonZeros)/float64(rep.Weights)
	rep.Accuracy = map[string]float64{}
	return rep
}

// pruneModels returns the models whose accuracies are reported: the dense one, relutrim's
// and, with --compare, magnitude, Wanda and SparseGPT pruning at the same split (N:M with
// --nm); SparseGPT's time goes in the report.
func pruneModels(ctx context.Context, cfg *pruneConfig, rep *pruneReport, pr *prune.Pruner, m, pm model.Model, keep []int, nmOn []bool) ([]namedModel, error) {
	models := []namedModel{{"dense", m}, {"relutrim", pm}}
	if !cfg.compare {
		return models, nil
	}
	var mag, wan, sgpt model.Model
	var err error
	var t0 time.Time
	if pat := cfg.pat; pat.N > 0 {
		mag = prune.MagnitudeNM(m, pat, nmOn)
		wan = prune.WandaNM(m, pat, pr.InputNorms(), nmOn)
		t0 = time.Now()
		sgpt, err = pr.SparseGPTNM(ctx, pat, nmOn)
	} else {
		mag = prune.Magnitude(m, keep)
		wan = prune.Wanda(m, keep, pr.InputNorms())
		t0 = time.Now()
		sgpt, err = pr.SparseGPT(ctx, keep)
	}
	rep.SparseGPTSeconds = time.Since(t0).Seconds()
	if err != nil {
		return nil, interrupted(ctx, err)
	}
	return append(models, namedModel{"magnitude", mag}, namedModel{"wanda", wan}, namedModel{"sparsegpt", sgpt}), nil
}

// writePrune writes the outputs, everything being computed: all of them or none; then the
// summary.
func writePrune(ctx context.Context, cmd *cobra.Command, cfg *pruneConfig, rep *pruneReport, pm model.Model) error {
	outs := []outputFile{{"--out", cfg.out, func(w io.Writer) error { return pm.Encode(w, cfg.masks) }}}
	outs, err := withReport(cmd, outs, cfg.report, rep)
	if err != nil {
		return err
	}
	if cfg.plot != "" {
		png, err := renderPlot(rep)
		if err != nil {
			return fmt.Errorf("prune: --plot %s: %w", cfg.plot, err)
		}
		outs = append(outs, outputFile{"--plot", cfg.plot, png})
	}
	written, err := writeOutputs(ctx, cmd, outs)
	if err != nil {
		return err
	}
	if !quiet {
		printPrune(cmd.OutOrStdout(), rep, written)
	}
	return nil
}

// printAccuracies prints the accuracies sorted by name, names padded to width.
func printAccuracies(w io.Writer, acc map[string]float64, width int) {
	if len(acc) == 0 {
		return
	}
	fmt.Fprintln(w, "\naccuracy:")
	keys := slices.Sorted(maps.Keys(acc))
	for _, k := range keys {
		fmt.Fprintf(w, "  %-*s %.2f%%\n", width, k, 100*acc[k])
	}
}

// namedModel is a model and the name its accuracies are reported under.
type namedModel struct {
	name string
	m    model.Model
}

// recordAccuracies sets acc["<model>_calib"] and acc["<model>_test"] for every model, on the
// labelled calibration and test sets that were given (nil: skipped).
func recordAccuracies(acc map[string]float64, calLab, test *labeled, models []namedModel) {
	for _, d := range []struct {
		name string
		set  *labeled
	}{{"calib", calLab}, {"test", test}} {
		if d.set == nil {
			continue
		}
		for _, nm := range models {
			acc[nm.name+"_"+d.name] = nm.m.Accuracy(d.set.X, d.set.n, d.set.labels)
		}
	}
}

// targetOf is the overall sparsity the kept counts give.
func targetOf(m model.Model, keep []int) float64 {
	k := 0
	for _, v := range keep {
		k += v
	}
	return 1 - float64(k)/float64(m.Weights())
}

// loadInputs reads a model's inputs: rows of its input width, or for an image model a
// .npy of shape (N, C, H, W) (or (N, C*H*W)) matching its input.
func loadInputs(cmd *cobra.Command, flag, spec string, m model.Model) (dataio.Matrix, error) {
	sh := m.InShape()
	x, err := loadArray(cmd, flag, spec, !sh.Flat())
	if err != nil {
		return x, err
	}
	if sh.Flat() {
		if x.Cols != sh.C {
			return x, usageErrorf("prune: %s %s has %d columns but the model's first layer (%s) takes %d inputs", flag, spec, x.Cols, m.Layers[0].Key, sh.C)
		}
		return x, nil
	}
	if x.Cols != sh.Size() || len(x.Shape) > 2 && (len(x.Shape) != 4 || x.Shape[1] != sh.C || x.Shape[2] != sh.H || x.Shape[3] != sh.W) {
		got := fmt.Sprintf("%d columns", x.Cols)
		if len(x.Shape) > 0 {
			got = "shape " + dataio.FormatShape(x.Shape)
		}
		return x, usageErrorf("prune: %s %s has %s but the model's input is (N, %d, %d, %d) (first layer %s)", flag, spec, got, sh.C, sh.H, sh.W, m.Layers[0].Key)
	}
	return x, nil
}

// loadLabels reads integer class labels (a 1-D or N x 1 array) for rows rows.
func loadLabels(cmd *cobra.Command, flag, spec string, rows int, m model.Model) (*labeled, error) {
	y, err := loadMatrix(cmd, flag, spec)
	if err != nil {
		return nil, err
	}
	if y.Cols != 1 || y.Rows != rows {
		return nil, usageErrorf("prune: %s %s has shape %d x %d, want %d labels (one per input row)", flag, spec, y.Rows, y.Cols, rows)
	}
	classes := m.Outputs()
	out := &labeled{labels: make([]int, rows)}
	for i := 0; i < rows; i++ {
		v := y.At(i, 0)
		if v != math.Trunc(v) || v < 0 || int(v) >= classes {
			return nil, usageErrorf("prune: %s %s: row %d holds %v, want a class index in [0, %d)", flag, spec, i, v, classes)
		}
		out.labels[i] = int(v)
	}
	return out, nil
}

// sweep prunes at the plot's sparsities (the target and 0.5, 0.8, 0.9, 0.95), sparsest first
// so the first layer's lambda path is walked once, and records test accuracies.
func sweep(ctx context.Context, rep *pruneReport, pr *prune.Pruner, m model.Model, target float64, test *labeled, budget string) error {
	levels := []float64{0.5, 0.8, 0.9, 0.95}
	if target > 0 {
		levels = append(levels, target)
	}
	sort.Float64s(levels)
	levels = dedup(levels)
	rep.PlotLevels = levels
	rep.PlotAccuracy = map[string][]float64{"relutrim": make([]float64, len(levels)),
		"magnitude": make([]float64, len(levels)), "wanda": make([]float64, len(levels)), "sparsegpt": make([]float64, len(levels))}
	for i := len(levels) - 1; i >= 0; i-- {
		keep, _, err := layerKeep(ctx, pr, budget, levels[i])
		if err != nil {
			return err
		}
		pm, _, err := pr.Prune(ctx, keep)
		if err != nil {
			if ctx.Err() != nil {
				return errInterrupted
			}
			return err
		}
		rep.PlotAccuracy["relutrim"][i] = pm.Accuracy(test.X, test.n, test.labels)
		rep.PlotAccuracy["magnitude"][i] = prune.Magnitude(m, keep).Accuracy(test.X, test.n, test.labels)
		rep.PlotAccuracy["wanda"][i] = prune.Wanda(m, keep, pr.InputNorms()).Accuracy(test.X, test.n, test.labels)
		sg, err := pr.SparseGPT(ctx, keep)
		if err != nil {
			if ctx.Err() != nil {
				return errInterrupted
			}
			return err
		}
		rep.PlotAccuracy["sparsegpt"][i] = sg.Accuracy(test.X, test.n, test.labels)
	}
	return nil
}

func dedup(v []float64) []float64 {
	out := v[:0]
	for i, x := range v {
		if i == 0 || x != v[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// curvesBudgetText is the report's budget for --budget curves.
const curvesBudgetText = "curves: per-layer counts minimising the sum over layers of the network's output error with that layer alone pruned (error curves measured on the calibration data, dense inputs)"

// layerKeep is --budget's split of sparsity s over the layers (prune.Pruner.LayerBudget),
// with the error curves it was chosen from (--budget curves; nil for erdos-renyi).
func layerKeep(ctx context.Context, pr *prune.Pruner, budget string, s float64) ([]int, []prune.Curve, error) {
	var cs []prune.Curve
	if budget == prune.BudgetCurves {
		var err error
		if cs, err = pr.Curves(ctx); err != nil { // for the report (LayerBudget reuses them)
			return nil, nil, interrupted(ctx, err)
		}
	}
	keep, err := pr.LayerBudget(ctx, budget, s)
	switch {
	case err == nil:
		return keep, cs, nil
	case budget == prune.BudgetCurves:
		return nil, nil, usageErrorf("prune: --budget curves: %v; use --budget erdos-renyi or --per-layer", err)
	}
	return nil, nil, usageErrorf("prune: --sparsity: %v", err)
}

func printPrune(w io.Writer, r *pruneReport, written []string) {
	fmt.Fprintf(w, "relutrim prune: %s, %d calibration rows, mode %s\n", r.Model, r.N, r.Mode)
	fmt.Fprintf(w, "budget: %s\n", r.Budget)
	if r.BudgetKeep != nil {
		var ks []string
		for i, k := range r.BudgetKeep {
			ks = append(ks, fmt.Sprintf("%s %d", r.Layers[i].Key, k))
		}
		fmt.Fprintf(w, "split: %s weights kept\n", strings.Join(ks, ", "))
	}
	fmt.Fprintf(w, "sparsity: %.2f%% (%d of %d weights non-zero; target %.2f%%)\n\n", 100*r.Sparsity, r.NonZeros, r.Weights, 100*r.TargetSparsity)
	fmt.Fprintln(w, "| layer | shape | non-zeros | sparsity | lambda | rel. error pre-ReLU | rel. error post-ReLU | refit | time |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, l := range r.Layers {
		fmt.Fprintf(w, "| %s | %d -> %d | %d | %.2f%% | %.3g | %.4f | %.4f | %v | %.1f s |\n", l.Key, l.In, l.Out, l.NonZeros,
			100*l.Sparsity, l.Lambda, l.PreErr, l.PostErr, l.Debiased, l.Seconds)
	}
	printAccuracies(w, r.Accuracy, 16)
	for _, l := range r.Layers {
		if l.Rows != l.Positions {
			fmt.Fprintf(w, "\nlayer %s was fitted on %d of its %d output positions (a seeded sample; %.0f MiB of patches)", l.Key, l.Rows, l.Positions, float64(l.XBytes)/(1<<20))
		}
	}
	fmt.Fprintf(w, "\nwrote %s (%.1f s)\n", strings.Join(written, ", "), r.Seconds)
}

// nmLayers reads --per-layer given with --nm: per layer 0 (kept dense) or the pattern's
// sparsity 1 - N/M (patterned). Without --per-layer it returns nil (every layer but the
// last).
func nmLayers(pat prune.NM, perLayer []float64, layers int) ([]bool, error) {
	if perLayer == nil {
		return nil, nil
	}
	if len(perLayer) != layers {
		return nil, usageErrorf("prune: --per-layer with --nm: %d values for %d layers", len(perLayer), layers)
	}
	s := 1 - float64(pat.N)/float64(pat.M)
	on := make([]bool, layers)
	for l, v := range perLayer {
		switch {
		case v == 0:
		case math.Abs(v-s) < 1e-9:
			on[l] = true
		default:
			return nil, usageErrorf("prune: --per-layer with --nm %d:%d: layer %d's value %v must be 0 (kept dense) or %v (the pattern)", pat.N, pat.M, l+1, v, s)
		}
	}
	return on, nil
}

// nmLayersText names the patterned layers for the report.
func nmLayersText(on []bool, layers int) string {
	if on == nil {
		return "every layer but the last"
	}
	var names []string
	for l, o := range on {
		if o {
			names = append(names, fmt.Sprint(l+1))
		}
	}
	if len(names) == 0 {
		return "no layer"
	}
	return "layers " + strings.Join(names, ", ") + " of " + fmt.Sprint(layers)
}

// parseNM reads "N:M" with 1 <= N < M <= 256.
func parseNM(v string) (prune.NM, error) {
	a, b, ok := strings.Cut(v, ":")
	n, err1 := strconv.Atoi(a)
	m, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil {
		return prune.NM{}, fmt.Errorf("want N:M with two integers, e.g. 2:4")
	}
	p := prune.NM{N: n, M: m}
	if !p.Valid() || m > 256 {
		return prune.NM{}, fmt.Errorf("want 1 <= N < M <= 256")
	}
	return p, nil
}

// aliasPattern makes --pattern (the name in issue 12) another spelling of --nm.
func aliasPattern(_ *pflag.FlagSet, name string) pflag.NormalizedName {
	if name == "pattern" {
		name = "nm"
	}
	return pflag.NormalizedName(name)
}
