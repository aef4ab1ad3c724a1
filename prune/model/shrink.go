package model

import (
	"fmt"
	"slices"
)

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
	for h, L := range m.Layers {
		if L.Conv != nil {
			return Model{}, fmt.Errorf("model: Shrink: layer %s is a convolution; removing channels is not supported", L.Key)
		}
		for _, o := range L.Post {
			if h < len(keep) && !(o.Kind == Flatten && o.In.Flat()) {
				return Model{}, fmt.Errorf("model: Shrink: layer %s is followed by %v; only dense chains are shrunk", L.Key, o.Kind)
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
		if h < len(keep) {
			L.Post = slices.Clone(L.Post)
			for k := range L.Post {
				L.Post[k].In = Shape{len(rows), 1, 1}
			}
			L.onnx = L.onnx.shrink(rows)
		}
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

// shrink returns the ONNX placement of a layer that keeps only the output rows: a folded
// BatchNormalization's per-channel values are cut to them, and the rows of the original
// channels are remembered, so that EncodeONNX cuts the graph's tensors the same way.
func (p *onnxParams) shrink(rows []int) *onnxParams {
	if p == nil || p.bn == nil {
		return p
	}
	q, f := *p, *p.bn
	cut := func(v []float64) []float64 {
		out := make([]float64, len(rows))
		for k, o := range rows {
			out[k] = v[o]
		}
		return out
	}
	f.s, f.mean, f.b0 = cut(f.s), cut(f.mean), cut(f.b0)
	orig := make([]int, len(rows))
	for k, o := range rows {
		orig[k] = o
		if p.bn.rows != nil {
			orig[k] = p.bn.rows[o]
		}
	}
	f.rows = orig
	q.bn = &f
	return &q
}
