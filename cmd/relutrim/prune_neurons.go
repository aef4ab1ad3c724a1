package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"relutrim/dataio"
	"relutrim/internal/kern"
	"relutrim/prune"
	"relutrim/prune/model"
)

// relutrim prune --structure neurons: structured pruning of hidden units (prune/neurons.go).

// checkStructureFlags checks --structure and the flags that do not go with neurons.
func checkStructureFlags(cmd *cobra.Command, fl *pruneConfig) error {
	switch fl.structure {
	case "weights":
		return nil
	case "neurons":
	default:
		return usageErrorf("prune: --structure must be weights or neurons, got %q", fl.structure)
	}
	changed := cmd.Flags().Changed
	if !changed("sparsity") {
		return usageErrorf("prune: --structure neurons needs --sparsity (the fraction of each hidden layer's units removed)")
	}
	for _, c := range []struct {
		flag string
		set  bool
	}{{"--per-layer", fl.perLayer != nil}, {"--nm", changed("nm")}, {"--plot", fl.plot != ""}, {"--masks", fl.masks},
		{"--mode parallel", fl.mode == "parallel"}} {
		if c.set {
			return usageErrorf("prune: %s does not go with --structure neurons", c.flag)
		}
	}
	return nil
}

// neuronReport is the JSON report of relutrim prune --structure neurons.
type neuronReport struct {
	Model     string `json:"model"`
	Calib     string `json:"calib"`
	N         int    `json:"calibration_rows"`
	Structure string `json:"structure"`
	// Removed is the requested fraction of each hidden layer's units removed.
	Removed float64 `json:"units_removed_fraction"`
	// Units and Kept are the units of each hidden layer before and after; KeptUnits the
	// indices of the kept units in the dense model.
	Units     []int              `json:"units"`
	Kept      []int              `json:"units_kept"`
	KeptUnits [][]int            `json:"kept_unit_indices"`
	Shapes    [][2]int           `json:"shapes"` // [out, in] of every layer of the written model
	Weights   int                `json:"weights"`
	Dense     int                `json:"weights_dense"`
	Layers    []prune.UnitReport `json:"layers"`
	Accuracy  map[string]float64 `json:"accuracy,omitempty"`
	Backend   string             `json:"backend"`
	Seconds   float64            `json:"seconds"`

	// WeightShapes are the written weight tensors' shapes: [out, in], or a convolution's
	// [out channels, in channels, kh, kw].
	WeightShapes [][]int `json:"weight_shapes"`
}

func runPruneNeurons(ctx context.Context, cmd *cobra.Command, fl *pruneConfig, m model.Model, cal dataio.Matrix, calLab, test *labeled, start time.Time) error {
	if len(m.Layers) < 2 {
		return usageErrorf("prune: --structure neurons: the model has no hidden layer (%d layer)", len(m.Layers))
	}
	for l := 1; l < len(m.Layers); l++ {
		if _, err := m.InputColumns(l); err != nil {
			return usageErrorf("prune: --structure neurons: %s: %v", fl.model, err)
		}
	}
	keep, err := prune.UnitsKeep(m, fl.sparsity)
	if err != nil {
		return usageErrorf("prune: --sparsity: %v", err)
	}
	opt := prune.NeuronOptions{NoRefit: fl.noRefit, Threads: fl.threads, MaxXBytes: fl.maxPatchMiB << 20}
	if !quiet {
		opt.Log = func(s string) { fmt.Fprintln(cmd.ErrOrStderr(), "  "+s) }
	}
	X := cal.Float64()
	pm, kept, reps, err := prune.PruneNeurons(ctx, m, X, cal.Rows, keep, opt)
	if err != nil {
		if ctx.Err() != nil {
			return errInterrupted
		}
		return err
	}
	rep := &neuronReport{Model: fl.model, Calib: fl.calib, N: cal.Rows, Structure: "neurons", Removed: fl.sparsity,
		Units: m.Units(), Kept: pm.Units(), KeptUnits: kept, Layers: reps, Weights: pm.Weights(), Dense: m.Weights(),
		Backend: kern.BackendInfo()}
	for _, L := range pm.Layers {
		rep.Shapes = append(rep.Shapes, [2]int{L.Out, L.In})
		ws := []int{L.Out, L.In}
		if L.Conv != nil {
			ws = []int{L.Out, L.Conv.In.C, L.Conv.KH, L.Conv.KW}
		}
		rep.WeightShapes = append(rep.WeightShapes, ws)
	}
	var l2, l2r model.Model
	if fl.compare {
		if l2, _, err = prune.L2Neurons(m, keep); err != nil {
			return err
		}
		o := opt
		o.Select, o.Log = prune.SelectL2, nil
		if l2r, _, _, err = prune.PruneNeurons(ctx, m, X, cal.Rows, keep, o); err != nil {
			if ctx.Err() != nil {
				return errInterrupted
			}
			return err
		}
	}
	rep.Accuracy = map[string]float64{}
	models := []namedModel{{"dense", m}, {"relutrim", pm}}
	if fl.compare {
		models = append(models, namedModel{"l2norm", l2}, namedModel{"l2norm_refit", l2r})
	}
	recordAccuracies(rep.Accuracy, calLab, test, models)
	rep.Seconds = time.Since(start).Seconds()

	outs := []outputFile{{"--out", fl.out, func(w io.Writer) error { return pm.Encode(w, false) }}}
	outs, err = withReport(cmd, outs, fl.report, rep)
	if err != nil {
		return err
	}
	written, err := writeOutputs(ctx, cmd, outs)
	if err != nil {
		return err
	}
	if !quiet {
		printNeurons(cmd.OutOrStdout(), rep, written)
	}
	return nil
}

func printNeurons(w io.Writer, r *neuronReport, written []string) {
	fmt.Fprintf(w, "relutrim prune --structure neurons: %s, %d calibration rows\n", r.Model, r.N)
	fmt.Fprintf(w, "removed: %.0f%% of each hidden layer's units; weights %d of %d (%.1f%%)\n\n", 100*r.Removed, r.Weights, r.Dense, 100*float64(r.Weights)/float64(r.Dense))
	fmt.Fprintln(w, "| layer | units kept | refitted layer | its rel. error | without refit | group lambda | time |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, l := range r.Layers {
		fmt.Fprintf(w, "| %s | %d / %d | %s | %.4f | %.4f | %.3g | %.1f s |\n", l.Key, l.Kept, l.Units, l.Next, l.PostErr, l.PostErrNoRefit, l.Lambda, l.Seconds)
	}
	var shapes []string
	for _, s := range r.WeightShapes {
		d := make([]string, len(s))
		for i, v := range s {
			d[i] = fmt.Sprint(v)
		}
		shapes = append(shapes, strings.Join(d, "x"))
	}
	for _, l := range r.Layers {
		if l.Rows < l.Positions {
			fmt.Fprintf(w, "\nlayer %s was fitted on %d of its %d output positions (a seeded sample; --max-patch-mib)", l.Next, l.Rows, l.Positions)
		}
	}
	fmt.Fprintf(w, "\nwritten weight shapes (out x in; a conv's out x in channels x kh x kw): %s\n", strings.Join(shapes, ", "))
	printAccuracies(w, r.Accuracy, 20)
	fmt.Fprintf(w, "\nwrote %s (%.1f s)\n", strings.Join(written, ", "), r.Seconds)
}
