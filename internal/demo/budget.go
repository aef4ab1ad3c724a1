package demo

import (
	"context"
	"fmt"

	"relutrim/prune"
	"relutrim/prune/model"
)

// Layer budgets the demo can use (Config.Budget).
const (
	BudgetCurves     = "curves"
	BudgetErdosRenyi = "erdos-renyi"
	// DefaultBudget is the budget of Config's zero value.
	DefaultBudget = BudgetCurves
)

// levelBudget returns the per-layer counts of sparsity s under the named budget.
func levelBudget(ctx context.Context, p *prune.Pruner, m model.Model, s float64, name string) ([]int, error) {
	switch name {
	case BudgetCurves:
		return p.CurveBudget(ctx, s)
	case BudgetErdosRenyi:
		return prune.Budget(m, s)
	}
	return nil, fmt.Errorf("unknown layer budget %q (want %s or %s)", name, BudgetCurves, BudgetErdosRenyi)
}

// budgetLine describes the named budget in the table's header.
func budgetLine(name string) string {
	if name == BudgetCurves {
		return "error curves (per-layer counts minimising the summed output error of each layer pruned alone)"
	}
	return "Erdos-Renyi (keeps ~ in+out per layer)"
}
