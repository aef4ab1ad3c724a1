package prune

import (
	"context"
	"fmt"
	"math"

	"relutrim/prune/model"
)

// Layer budgets: the ways LayerBudget splits an overall sparsity over the layers.
const (
	// BudgetCurves: the counts minimising the summed output error of each layer pruned
	// alone, from the layers' error curves measured on the calibration data (CurveBudget).
	BudgetCurves = "curves"
	// BudgetErdosRenyi: the Erdos-Renyi allocation (Budget).
	BudgetErdosRenyi = "erdos-renyi"
	// DefaultBudget is the budget of relutrim prune and the demo unless one is named.
	DefaultBudget = BudgetCurves
)

// LayerBudget returns the number of weights each layer of p's model keeps at the overall
// sparsity s under the named budget: BudgetCurves or BudgetErdosRenyi.
func (p *Pruner) LayerBudget(ctx context.Context, name string, s float64) ([]int, error) {
	switch name {
	case BudgetCurves:
		return p.CurveBudget(ctx, s)
	case BudgetErdosRenyi:
		return Budget(p.m, s)
	}
	return nil, fmt.Errorf("unknown layer budget %q (want %s or %s)", name, BudgetCurves, BudgetErdosRenyi)
}

// Budget spreads an overall sparsity s (fraction of all weights, biases excluded, that end
// exactly zero) over the layers and returns the number of weights each layer keeps; the
// counts add up to round((1-s) * total) exactly.
//
// The rule is the Erdos-Renyi allocation (Mocanu et al. 2018, "SET"; Evci et al. 2020,
// "RigL"): layer l keeps a density proportional to (In_l + Out_l) / (In_l * Out_l), so the
// number of kept weights grows with In + Out rather than with In * Out. Wide layers (an
// MNIST 784-input layer) are pruned hardest and small ones (a 10-output classifier) stay
// nearly dense. Layers whose density would exceed 1 are kept dense and the remainder is
// re-spread over the others. For a convolution the rule is its extension ERK (Evci et al.
// 2020): density proportional to (C_in + C_out + KH + KW) / (C_in * C_out * KH * KW).
func Budget(m model.Model, s float64) ([]int, error) {
	if !(s >= 0 && s < 1) {
		return nil, fmt.Errorf("sparsity %v is outside [0, 1)", s)
	}
	n := len(m.Layers)
	size := make([]float64, n)
	total := 0.0
	for i, l := range m.Layers {
		size[i] = float64(l.In * l.Out)
		total += size[i]
	}
	keep := math.Round((1 - s) * total)
	dense := make([]bool, n)
	dens := make([]float64, n)
	for {
		// Solve c: sum over non-dense layers of c*(In+Out) = keep - sum of dense layers' sizes.
		rest, weight := keep, 0.0
		for i, l := range m.Layers {
			if dense[i] {
				rest -= size[i]
			} else {
				weight += erWeight(l)
			}
		}
		c := rest / weight
		capped := false
		for i, l := range m.Layers {
			if dense[i] {
				dens[i] = 1
				continue
			}
			dens[i] = c * erWeight(l) / size[i]
			if dens[i] > 1 {
				dense[i], capped = true, true
			}
		}
		if !capped {
			break
		}
	}
	return roundCounts(dens, size, int(keep)), nil
}

// erWeight is the numerator of the Erdos-Renyi density: In + Out, or C_in + C_out + KH + KW.
func erWeight(l model.Layer) float64 {
	if c := l.Conv; c != nil {
		return float64(c.In.C + l.Out + c.KH + c.KW)
	}
	return float64(l.In + l.Out)
}

// PerLayerBudget converts per-layer sparsities (one per layer, each in [0, 1)) into kept
// counts. Errors name the layer (1-based, with its state_dict key).
func PerLayerBudget(m model.Model, sp []float64) ([]int, error) {
	if len(sp) != len(m.Layers) {
		return nil, fmt.Errorf("got %d values, want one sparsity per layer (the model has %d layers)", len(sp), len(m.Layers))
	}
	out := make([]int, len(sp))
	for i, s := range sp {
		if !(s >= 0 && s < 1) {
			return nil, fmt.Errorf("sparsity %v of layer %d (%s.weight) is outside [0, 1)", s, i+1, m.Layers[i].Key)
		}
		l := m.Layers[i]
		out[i] = int(math.Round((1 - s) * float64(l.In*l.Out)))
	}
	return out, nil
}

// roundCounts rounds dens*size to integers that sum to keep (largest remainders first).
func roundCounts(dens, size []float64, keep int) []int {
	out := make([]int, len(dens))
	sum := 0
	for i := range dens {
		out[i] = int(math.Floor(dens[i] * size[i]))
		sum += out[i]
	}
	for sum < keep {
		best, bestR := -1, -1.0
		for i := range dens {
			r := dens[i]*size[i] - float64(out[i])
			if float64(out[i]) < size[i] && r > bestR {
				best, bestR = i, r
			}
		}
		out[best]++
		sum++
	}
	return out
}
