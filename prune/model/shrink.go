package model

import "fmt"

// Shrink returns a smaller dense model without the hidden units that keep does not list
// (structured pruning): keep[h] lists, in increasing order, the outputs of layer h that
// stay, for every hidden layer h = 0 .. len(Layers)-2 (the last layer's outputs, the
// classes, are never removed). Layer h loses the other rows of W and entries of B, layer
// h+1 the matching columns of W. Keys and dtypes are kept, so Save writes the same
// state_dict keys with the new shapes. A removed unit must be one that nothing reads for
// the result to compute the same function (prune/neurons.go refits layer h+1 on the kept
// units first); Shrink itself just removes.
func (m Model) Shrink(keep [][]int) (Model, error) {
	if len(keep) != len(m.Layers)-1 {
		return Model{}, fmt.Errorf("model: Shrink: %d lists of kept units, want one per hidden layer (%d)", len(keep), len(m.Layers)-1)
	}
	for h, ks := range keep {
		if len(ks) == 0 {
			return Model{}, fmt.Errorf("model: Shrink: layer %s would keep no unit", m.Layers[h].Key)
		}
		for i, u := range ks {
			if u < 0 || u >= m.Layers[h].Out || (i > 0 && u <= ks[i-1]) {
				return Model{}, fmt.Errorf("model: Shrink: layer %s: kept units must be increasing indices in [0, %d), got %v", m.Layers[h].Key, m.Layers[h].Out, ks)
			}
		}
	}
	out := m.Clone()
	for h := range out.Layers {
		L := &out.Layers[h]
		rows := allIndices(L.Out)
		if h < len(keep) {
			rows = keep[h]
		}
		cols := allIndices(L.In)
		if h > 0 {
			cols = keep[h-1]
		}
		W := make([]float64, 0, len(rows)*len(cols))
		B := make([]float64, 0, len(rows))
		for _, o := range rows {
			for _, i := range cols {
				W = append(W, m.Layers[h].W[o*m.Layers[h].In+i])
			}
			B = append(B, m.Layers[h].B[o])
		}
		L.W, L.B, L.Out, L.In = W, B, len(rows), len(cols)
	}
	return out, nil
}

// Units returns the number of outputs of each hidden layer (the units structured pruning
// removes).
func (m Model) Units() []int {
	u := make([]int, 0, len(m.Layers)-1)
	for _, L := range m.Layers[:len(m.Layers)-1] {
		u = append(u, L.Out)
	}
	return u
}

func allIndices(n int) []int {
	ix := make([]int, n)
	for i := range ix {
		ix[i] = i
	}
	return ix
}
