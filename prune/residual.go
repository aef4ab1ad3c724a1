package prune

import (
	"context"
	"fmt"
	"slices"

	"relutrim/prune/model"
)

// Residual graphs (issue 21). A model read by model.FromONNXGraph is a DAG: each layer's
// input comes from the graph (model.Exec), not from the layer before. A block's last layer
// l, whose raw output is added to a shortcut and then goes through a Relu
// (model.Shortcut), is fitted to the dense block's output relu(pre_l + S) with the
// shortcut's value S as a known offset inside the ReLU (solver.Settings.Offset): in
// cascade mode S is the pruned network's shortcut (the block's input, or the pruned
// projection conv's output), in parallel mode the dense network's. A projection conv is
// pruned as an ordinary linear layer fitted to its own dense output, before its block's
// last layer, so that S includes its pruning. (The joint fit of the last conv and
// the projection over their concatenated patches is not done yet.) A join without a Relu
// after it leaves its layers fitted as ordinary linear layers to their own outputs. Unit
// weights (unitGains) assume a chain and are off for residual graphs.

// graphOrder is the order residual graph layers are fitted in: graph (index) order, except
// that a block's projection conv comes right before the block's last layer.
func graphOrder(m model.Model) []int {
	proj := map[int]int{} // last layer -> its projection, when the projection comes later
	for _, s := range m.Shortcuts() {
		if s.Proj > s.Layer {
			proj[s.Layer] = s.Proj
		}
	}
	var order []int
	done := make([]bool, len(m.Layers))
	for l := range m.Layers {
		if q, ok := proj[l]; ok && !done[q] {
			order = append(order, q)
			done[q] = true
		}
		if !done[l] {
			order = append(order, l)
			done[l] = true
		}
	}
	return order
}

// denseGraph is NewPrunerContext's dense pass for a residual graph.
func (p *Pruner) denseGraph(ctx context.Context, X []float64) error {
	m, n := p.m, p.n
	nl := len(m.Layers)
	p.sc = map[int]model.Shortcut{}
	for _, s := range m.Shortcuts() {
		if s.Relu {
			p.sc[s.Layer] = s
		}
	}
	p.order = graphOrder(m)
	p.x0 = model.ToChannelLast(X, n, m.InShape())
	p.dense = make([][]float64, nl+1)
	p.pos = make([][]int, nl)
	p.yPost = make([][]float64, nl)
	p.yPre = make([][]float64, nl)
	p.sDense = make([][]float64, nl)
	e := m.NewExec(p.x0, n)
	for _, l := range p.order {
		if err := ctx.Err(); err != nil {
			return err
		}
		L := m.Layers[l]
		in, err := e.Input(l)
		if err != nil {
			return fmt.Errorf("layer %s: %v", L.Key, err)
		}
		pos := p.positions(L, l)
		post, pre := m.ApplyAt(l, in, n, pos)
		p.dense[l], p.pos[l], p.yPre[l] = in, pos, pre
		if _, ok := p.sc[l]; ok {
			S, err := e.ShortcutValue(l)
			if err != nil {
				return fmt.Errorf("layer %s: %v", L.Key, err)
			}
			s := pickRows(S, pos, L.Out)
			y := make([]float64, len(pre))
			for i, v := range pre {
				y[i] = max(v+s[i], 0)
			}
			p.sDense[l], p.yPost[l] = s, y
		} else {
			p.yPost[l] = pickRows(post, pos, L.Out)
		}
		e.SetLayer(l, post)
	}
	out, err := e.Output()
	if err != nil {
		return err
	}
	p.dense[nl] = out
	p.gain = make([][]float64, nl) // unweighted: unitGains assumes a chain
	p.yFit = p.yPost
	return nil
}

// pruneGraph is Prune for a residual graph: the layers in p.order, each on its input from
// the pruned graph (cascade) or the dense one (parallel); reports in layer order.
func (p *Pruner) pruneGraph(ctx context.Context, keep []int) (model.Model, []LayerReport, error) {
	out := p.m.Clone()
	reps := make([]LayerReport, len(p.m.Layers))
	var e *model.Exec
	if !p.opt.Parallel {
		e = out.NewExec(p.x0, p.n)
	}
	for _, l := range p.order {
		L := p.m.Layers[l]
		in := p.dense[l]
		var S []float64
		_, res := p.sc[l]
		if res {
			S = p.sDense[l]
		}
		if e != nil {
			var err error
			if in, err = e.Input(l); err != nil {
				return model.Model{}, nil, fmt.Errorf("layer %s: %v", L.Key, err)
			}
			if res {
				s, err := e.ShortcutValue(l)
				if err != nil {
					return model.Model{}, nil, fmt.Errorf("layer %s: %v", L.Key, err)
				}
				S = pickRows(s, p.pos[l], L.Out)
				if p.pos[l] == nil {
					S = slices.Clone(s) // e may drop or reuse its values
				}
			}
		}
		rep, err := p.layer(ctx, &out, l, in, keep[l], S)
		if err != nil {
			return model.Model{}, nil, err
		}
		reps[l] = rep
		p.logLayer(rep)
		if e != nil {
			e.SetLayer(l, out.ApplyPost(l, in, p.n))
		}
	}
	return out, reps, nil
}
