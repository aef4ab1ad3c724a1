package demo

import (
	"context"
	"fmt"
	"strings"
	"time"

	"relutrim/internal/mnist"
	"relutrim/prune"
	"relutrim/prune/model"
)

// NeuronRow is the demo's line for structured pruning: whole hidden units removed
// (Config.Neurons of each hidden layer's units), relutrim (group-L1 selection on the next
// layer, refit) against the L2-norm baseline (units with the largest incoming-weight norm,
// no refit) and the same baseline with relutrim's refit.
type NeuronRow struct {
	Removed               float64
	Units, Kept           []int
	Relutrim, L2, L2Refit float64
	Seconds               float64
	Layers                []prune.UnitReport
}

// runNeurons prunes m's hidden units for the demo.
func runNeurons(ctx context.Context, cfg Config, m model.Model, calib []float64, n int, test mnist.Set) (*NeuronRow, error) {
	t0 := time.Now()
	keep, err := prune.UnitsKeep(m, cfg.Neurons)
	if err != nil {
		return nil, err
	}
	opt := prune.NeuronOptions{Threads: cfg.Threads, Log: cfg.Log}
	pm, _, reps, err := prune.PruneNeurons(ctx, m, calib, n, keep, opt)
	if err != nil {
		return nil, err
	}
	row := &NeuronRow{Removed: cfg.Neurons, Units: m.Units(), Kept: pm.Units(), Layers: reps}
	row.Relutrim = pm.Accuracy(test.X, test.N, test.Labels)
	row.Seconds = time.Since(t0).Seconds()
	l2, _, err := prune.L2Neurons(m, keep)
	if err != nil {
		return nil, err
	}
	row.L2 = l2.Accuracy(test.X, test.N, test.Labels)
	opt.Select, opt.Log = prune.SelectL2, nil
	l2r, _, _, err := prune.PruneNeurons(ctx, m, calib, n, keep, opt)
	if err != nil {
		return nil, err
	}
	row.L2Refit = l2r.Accuracy(test.X, test.N, test.Labels)
	if cfg.Log != nil {
		cfg.Log(fmt.Sprintf("neurons done: %.0f%% of hidden units removed, relutrim %.2f%%, %.1f s", 100*cfg.Neurons, 100*row.Relutrim, row.Seconds))
	}
	return row, nil
}

// line is the row's line under the demo table.
func (r *NeuronRow) line(times bool) string {
	var ks []string
	for h, k := range r.Kept {
		ks = append(ks, fmt.Sprintf("%d/%d", k, r.Units[h]))
	}
	s := fmt.Sprintf("neurons: %.0f%% of hidden units removed (kept %s): relutrim %.2f%%, L2-norm %.2f%% (with relutrim's refit %.2f%%)",
		100*r.Removed, strings.Join(ks, ", "), 100*r.Relutrim, 100*r.L2, 100*r.L2Refit)
	if times {
		s += fmt.Sprintf(", %.1f s", r.Seconds)
	}
	return s
}
