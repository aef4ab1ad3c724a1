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
//
// A unit of a convolution is an output channel. The columns of layer h+1 that read
// channel c of layer h ([Model.InputColumns]) are removed with it: c*KH*KW ..
// (c+1)*KH*KW-1 of a convolution, c*H*W .. (c+1)*H*W-1 of a dense layer after a Flatten of
// C x H x W (PyTorch's channel-first order; after a GlobalAveragePool, H = W = 1). The ops
// between the layers (pooling, padding, flattening) get the new channel count, a
// convolution's geometry its new input channels, and a folded BatchNormalization of layer
// h keeps the kept channels' values.
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
	colsOf := make([][][]int, len(m.Layers)) // colsOf[h+1][c]: layer h+1's inputs reading unit c of h
	for h := range keep {
		cols, err := m.InputColumns(h + 1)
		if err != nil {
			return Model{}, fmt.Errorf("model: Shrink: %v", err)
		}
		colsOf[h+1] = cols
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
			cols = nil
			for _, c := range keep[h-1] {
				cols = append(cols, colsOf[h][c]...)
			}
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
		if L.Conv != nil && h > 0 {
			c := *L.Conv
			c.In.C = len(keep[h-1])
			L.Conv = &c
		}
		if h < len(keep) {
			L.Post = slices.Clone(L.Post)
			s := L.OutShape()
			for k := range L.Post {
				L.Post[k].In = s
				s = L.Post[k].Out()
			}
			L.onnx = L.onnx.shrink(rows)
		}
	}
	return out, nil
}

// InputColumns returns, for each unit of layer l-1 (an output channel of a convolution, or
// an output of a dense layer), the input columns of layer l that read it, increasing: for a
// convolution the channel's KH*KW kernel positions (column (c*KH + i)*KW + j, PyTorch's
// weight layout); for a dense layer the positions the unit's values reach through layer
// l-1's Post operations (pooling keeps a channel's values in its channel; a Flatten of
// C x H x W puts channel c at c*H*W .. (c+1)*H*W-1, PyTorch's order).
func (m Model) InputColumns(l int) ([][]int, error) {
	if l < 1 || l >= len(m.Layers) {
		return nil, fmt.Errorf("layer %d has no layer before it in a model of %d layers", l, len(m.Layers))
	}
	prev, L := m.Layers[l-1], m.Layers[l]
	cols := make([][]int, prev.Out)
	if L.Conv != nil {
		kk := L.Conv.KH * L.Conv.KW
		if L.Conv.In.C != prev.Out {
			return nil, fmt.Errorf("layer %s reads %d channels, layer %s gives %d", L.Key, L.Conv.In.C, prev.Key, prev.Out)
		}
		for c := range cols {
			for k := 0; k < kk; k++ {
				cols[c] = append(cols[c], c*kk+k)
			}
		}
		return cols, nil
	}
	// Channel-first positions per channel: the last Flatten of a grid decides; pooling and
	// padding only change the grid.
	s := prev.OutShape()
	hw := 1
	for _, o := range prev.Post {
		switch o.Kind {
		case MaxPool, AvgPool, GlobalAvgPool, Pad:
		case Flatten:
			if !o.In.Flat() {
				hw = o.In.H * o.In.W
			}
		default:
			return nil, fmt.Errorf("layer %s is followed by %v, whose channels relutrim cannot trace", prev.Key, o.Kind)
		}
		s = o.Out()
	}
	if s.Size() != L.In || prev.Out*hw != L.In {
		return nil, fmt.Errorf("layer %s reads %d inputs, layer %s gives %d channels of %d values", L.Key, L.In, prev.Key, prev.Out, hw)
	}
	for c := range cols {
		for p := 0; p < hw; p++ {
			cols[c] = append(cols[c], c*hw+p)
		}
	}
	return cols, nil
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
