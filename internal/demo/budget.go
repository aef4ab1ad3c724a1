package demo

import "relutrim/prune"

// budgetLine describes the named budget (prune.Pruner.LayerBudget) in the table's header.
func budgetLine(name string) string {
	if name == prune.BudgetCurves {
		return "error curves (per-layer counts minimising the summed output error of each layer pruned alone)"
	}
	return "Erdos-Renyi (keeps ~ in+out per layer)"
}
