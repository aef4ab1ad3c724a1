package model

// PruneBytes estimates, from the shapes alone, the memory that pruning m on n calibration
// samples needs at least: the dense network's input to every layer and its output, kept
// for the whole run (8-byte values), the largest output and pre-activation a layer
// computes at once (with its Post operations' results), and the largest convolution's
// unfolded input patches, at most maxPatchBytes (a sample of positions beyond, drawn from a
// permutation of all positions). It is a
// lower bound (the pruned network's activations and the solver's work arrays come on
// top), computed in float64 so that it cannot overflow; the CLI refuses a run whose bound
// exceeds the memory available instead of dying out of memory (issue 22: a padding that
// turned 8x8 into 6006x6006 asked for 230 GB). A residual graph's pruner keeps only the
// input and the output (and samples of each layer), and evaluates the graph with a few
// activations alive at once: the bound counts the largest layer output three more times
// (a block's input, its first conv's output and the sum) instead of every layer's input.
func (m Model) PruneBytes(n int, maxPatchBytes int64) float64 {
	N := float64(n)
	kept := float64(m.InShape().Size()) // the model's input, converted
	transient, patches := 0.0, 0.0
	for _, L := range m.Layers {
		out := float64(L.Positions()) * float64(L.Out)
		t := 2 * out // post and pre
		s := L.OutShape()
		for _, o := range L.Post {
			s = o.Out()
			t += float64(s.C) * float64(s.H) * float64(s.W)
		}
		transient = max(transient, t)
		kept += float64(s.C) * float64(s.H) * float64(s.W) // the next layer's input (or the output)
		if L.Conv != nil {
			full := 8 * N * float64(L.Positions()) * float64(L.In)
			p := min(float64(maxPatchBytes), full)
			if full > float64(maxPatchBytes) {
				p += 8 * N * float64(L.Positions()) // the permutation the sample of positions is drawn from
			}
			patches = max(patches, p)
		}
	}
	if m.graph != nil {
		largest := 0.0
		for _, L := range m.Layers {
			largest = max(largest, float64(L.Positions())*float64(L.Out))
		}
		s := m.Layers[len(m.Layers)-1].OutShape()
		kept = float64(m.InShape().Size()) + float64(s.C)*float64(s.H)*float64(s.W) + 3*largest
	}
	return 8*N*(kept+transient) + patches
}
