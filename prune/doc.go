// Package prune prunes a trained ReLU network (a prune/model.Model: an MLP or a chain-shaped
// CNN) layer by layer, refitting every layer with relutrim's solver so that it reproduces
// the dense network's activations on calibration inputs with as few weights as its budget
// allows.
//
// For each layer (Pruner.Prune), in order from the input:
//
//   - the inputs are the pruned network's previous outputs (cascade, the default) or the
//     dense network's (Options.Parallel); the targets are the dense post-ReLU activations
//     (the logits for the last layer); a convolution is fitted on its unfolded patches;
//   - a hidden layer followed by dense layers only weights each unit's error by its effect
//     on the network's output (gains.go; Options.Unweighted turns this off);
//   - the support is selected on a seeded sample of the layer's rows (Options.SelectRows):
//     from about three times the budgeted number of non-zeros, either the dense weights
//     cut by |W_ij| ||x_j|| (SelectGradual, the default) or a point of a warm-started L1
//     path (SelectL1Path, fit.Engine; always for N:M), the support is cut gradually
//     (refine, with refit steps between the cuts) to the budgeted number of largest
//     |U_ij| ||x_i||, or the largest per group for an N:M pattern;
//   - the kept weights are refitted with the support fixed and lambda = 0 (on the sample,
//     then one step on all rows), and the refit is kept if it lowers the layer's error.
//
// Budgets (weights kept per layer): Pruner.CurveBudget (measured error curves split by
// Allocate), Budget (Erdos-Renyi), PerLayerBudget, NMKeep. Baselines at the same budgets:
// Magnitude, Wanda, MagnitudeNM, WandaNM, SparseGPT, SparseGPTNM. Structured pruning (whole units or channels, by
// a group-L1 fit of the next layer): UnitsKeep, PruneNeurons, L2Neurons.
//
// A residual graph (model.FromONNXGraph) is pruned in graph order, each layer on its input
// from the graph, a block's last layer with its shortcut's value inside the ReLU
// (residual.go).
//
// docs/method.md explains each step; docs/cli.md the `relutrim prune` command built on it.
package prune
