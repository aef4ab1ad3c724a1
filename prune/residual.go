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
// cascade mode S is the pruned network's shortcut (the block's input), in parallel mode the
// dense network's. A block with a projection conv on its shortcut has its last conv and the
// projection fitted as one layer (jointLayer): both write into the same pre-activation at
// the same output positions, so the fit is over the concatenation of their input patches,
// with no offset, and the L1 penalty and the cuts trade weights between the two branches:
// the pair keeps the sum of their budgets, split as the fit chooses within a floor
// (branchFloor). A join without a
// Relu after it leaves its layers fitted as ordinary linear layers to their own outputs.
// Unit weights (unitGains) assume a chain and are off for residual graphs.

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
	p.joint = map[int]int{}
	for _, s := range m.Shortcuts() {
		if s.Relu {
			p.sc[s.Layer] = s
			if s.Proj >= 0 && m.Layers[s.Proj].Positions() == m.Layers[s.Layer].Positions() {
				p.joint[s.Layer] = s.Proj
			}
		}
	}
	p.order = graphOrder(m)
	p.x0 = model.ToChannelLast(X, n, m.InShape())
	p.dense = make([][]float64, nl+1) // only the output: the layers' inputs are not kept
	p.inNorms = make([][]float64, nl)
	p.curveX = make([][]float64, nl)
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
		p.pos[l], p.yPre[l] = pos, pre
		// What later steps read of the dense input: its fit rows' column norms (InputNorms)
		// and the rows the curves are measured on (curveRows).
		xs, rows := p.fitRows(l, in)
		p.inNorms[l] = colNorms(xs, rows, L.In)
		if idx := p.selectRows(l, rows); idx != nil {
			p.curveX[l] = pickRows(xs, idx, L.In)
		} else {
			p.curveX[l] = slices.Clone(xs)
		}
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
	e := p.graphExec(out)
	projIn := map[int][]float64{} // the inputs of projections fitted with their block
	for _, l := range p.order {
		L := p.m.Layers[l]
		var S []float64
		_, res := p.sc[l]
		q, joint := p.joint[l]
		joint = joint && !p.separateProj
		if res && !joint {
			S = p.sDense[l]
		}
		in, err := e.Input(l)
		if err != nil {
			return model.Model{}, nil, fmt.Errorf("layer %s: %v", L.Key, err)
		}
		if p.isJointProj(l) { // fitted with its block's last layer, which comes next
			projIn[l] = in
			continue
		}
		if joint {
			rl, rq, err := p.jointLayer(ctx, &out, l, q, in, projIn[q], keep[l], keep[q])
			if err != nil {
				return model.Model{}, nil, err
			}
			reps[l], reps[q] = rl, rq
			p.logLayer(rq)
			p.logLayer(rl)
			p.setLayer(e, out, q, projIn[q])
			p.setLayer(e, out, l, in)
			delete(projIn, q)
			continue
		}
		if res && !p.opt.Parallel { // the pruned network's shortcut
			s, err := e.ShortcutValue(l)
			if err != nil {
				return model.Model{}, nil, fmt.Errorf("layer %s: %v", L.Key, err)
			}
			S = pickRows(s, p.pos[l], L.Out)
			if p.pos[l] == nil {
				S = slices.Clone(s) // e may drop or reuse its values
			}
		}
		rep, err := p.layer(ctx, &out, l, in, keep[l], S)
		if err != nil {
			return model.Model{}, nil, err
		}
		reps[l] = rep
		p.logLayer(rep)
		p.setLayer(e, out, l, in)
	}
	return out, reps, nil
}

// graphExec starts the evaluation that gives each layer its input: of the pruned graph out
// in cascade mode, of the dense graph in parallel mode (denseGraph does not keep the dense
// inputs). Layers are then set by setLayer.
func (p *Pruner) graphExec(out model.Model) *model.Exec {
	if p.opt.Parallel {
		return p.m.NewExec(p.x0, p.n)
	}
	return out.NewExec(p.x0, p.n)
}

// setLayer sets layer l's output in e, which evaluates the pruned graph out (cascade) or
// the dense one (parallel), from l's input in.
func (p *Pruner) setLayer(e *model.Exec, out model.Model, l int, in []float64) {
	if p.opt.Parallel {
		out = p.m
	}
	e.SetLayer(l, out.ApplyPost(l, in, p.n))
}

// isJointProj reports whether layer l is a projection conv fitted with its block's last
// layer (jointLayer).
func (p *Pruner) isJointProj(l int) bool {
	if p.separateProj {
		return false
	}
	for _, q := range p.joint {
		if q == l {
			return true
		}
	}
	return false
}

// jointLayer fits a block's last layer l and its projection conv q as one layer, to keep
// kl + kq weights between them (each at least minShare of its own share, branchFloor): the layer whose input rows are l's patches followed by q's at
// l's fit positions (inL and inQ are their inputs, channel-last), whose weights are
// [W_l | W_q] per output, and whose bias is b_l + b_q (written back to l, or to q when l
// has none), fitted with a ReLU to the block's dense output. It runs Pruner.layer on that
// layer through a view of p in which it replaces layer l (a dense layer over the joint
// rows), then splits the weights back. The two reports share the fit's errors, times and
// iterations; each has its own non-zeros, and FittedWith names the other layer.
func (p *Pruner) jointLayer(ctx context.Context, out *model.Model, l, q int, inL, inQ []float64, kl, kq int) (LayerReport, LayerReport, error) {
	k := kl + kq
	L, Q := p.m.Layers[l], p.m.Layers[q]
	xl, rows := p.fitRows(l, inL)
	xq := Q.Conv.Patches(inQ, p.n, p.pos[l])
	in := L.In + Q.In
	xs := make([]float64, rows*in)
	for r := range rows {
		copy(xs[r*in:], xl[r*L.In:(r+1)*L.In])
		copy(xs[r*in+L.In:], xq[r*Q.In:(r+1)*Q.In])
	}
	J := model.Layer{Key: L.Key, In: in, Out: L.Out, W: make([]float64, L.Out*in), B: make([]float64, L.Out),
		Act: model.ActReLU, NoBias: L.NoBias && Q.NoBias}
	for o := range L.Out {
		copy(J.W[o*in:], L.W[o*L.In:(o+1)*L.In])
		copy(J.W[o*in+L.In:], Q.W[o*Q.In:(o+1)*Q.In])
		J.B[o] = L.B[o] + Q.B[o]
	}
	// The view: layer l is J, fitted on rows "samples" of one position each.
	v := *p
	v.m.Layers = slices.Clone(p.m.Layers)
	v.m.Layers[l] = J
	v.n = rows
	if !p.noFloor && k > 0 {
		v.floor = &branchFloor{split: L.In, shareA: float64(kl) / float64(k), shareB: float64(kq) / float64(k)}
	}
	pre := slices.Clone(p.yPre[l]) // J's dense pre-activation: l's plus the shortcut's
	for i, s := range p.sDense[l] {
		pre[i] += s
	}
	v.yPre = slices.Clone(p.yPre)
	v.yPre[l] = pre
	jm := v.m.Clone()
	rep, err := v.layer(ctx, &jm, l, xs, k, nil)
	if err != nil {
		return rep, rep, err
	}
	W, B := jm.Layers[l].W, jm.Layers[l].B
	ol, oq := &out.Layers[l], &out.Layers[q]
	for o := range L.Out {
		copy(ol.W[o*L.In:(o+1)*L.In], W[o*in:o*in+L.In])
		copy(oq.W[o*Q.In:(o+1)*Q.In], W[o*in+L.In:(o+1)*in])
	}
	bl, bq := B, make([]float64, L.Out)
	if L.NoBias {
		bl, bq = bq, bl
	}
	copy(ol.B, bl)
	copy(oq.B, bq)
	nz := out.NonZeros()
	rl, rq := rep, rep
	rl.In, rl.NonZeros, rl.Positions, rl.XBytes, rl.FittedWith = L.In, nz[l], p.n*L.Positions(), int64(rows*L.In)*8, Q.Key
	rq.Key, rq.In, rq.NonZeros, rq.Positions, rq.XBytes, rq.FittedWith = Q.Key, Q.In, nz[q], p.n*Q.Positions(), int64(rows*Q.In)*8, L.Key
	rl.Sparsity = 1 - float64(rl.NonZeros)/float64(L.In*L.Out)
	rq.Sparsity = 1 - float64(rq.NonZeros)/float64(Q.In*Q.Out)
	return rl, rq, nil
}
