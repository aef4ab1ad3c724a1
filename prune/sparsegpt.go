package prune

// SparseGPT as a baseline: Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be
// Accurately Pruned in One-Shot", ICML 2023 (arXiv:2301.00774). Written from the paper's
// algorithm (its Algorithm 1 and section 3), in float64.
//
// The layer-wise problem: keep a given number of the weights W (Out x In) and change the
// kept ones so that the layer's pre-activation output on the calibration rows X (n x In;
// a convolution's unfolded patches, Pruner.fitRows) changes as little as possible,
// ||X W^T - X W'^T||_F^2. Its Hessian in each row of W is H = X^T X / n (the same for every
// row). Optimal Brain Surgeon (OBS) prunes one weight w_j of a row at a time: it costs
// w_j^2 / [H^{-1}]_jj and the best correction of the row's other weights is
// -w_j [H^{-1}]_{j,:} / [H^{-1}]_jj. SparseGPT sweeps the columns left to right and, when
// it reaches column j, corrects only the columns to its right; the inverse Hessians of
// those shrinking column sets are the rows of the upper Cholesky factor U of H^{-1}
// (H^{-1} = U^T U): the correction of row o's columns j.. for pruning its weight in column
// j is -(w_oj / U_jj) U_{j, j:}, and the cost w_oj^2 / U_jj^2. Per layer:
//
//  1. H = X^T X / n. Inputs that are zero on every row (H_ii = 0) get H_ii = 1 and their
//     weights are set to zero. Then 1% of the mean diagonal is added to the diagonal
//     (damping; the paper's default, in the same order as its reference implementation:
//     dead inputs first).
//  2. U = the upper Cholesky factor of H^{-1}.
//  3. The columns are swept in blocks of 128 (sgptBlock). At the start of a block, the
//     block's prune mask is chosen (adaptive mask selection): the entries of W[:, block]
//     (all rows, all of the block's columns, as the weights stand then) with the smallest
//     w^2 / U_jj^2. Then, column by column, q = w with the masked entries zeroed,
//     err = (w - q) / U_jj, and the block's later columns get W[:, j'] -= err U_{j,j'};
//     after the block, the columns to its right get all of it at once (lazy batch update):
//     W[:, rest] -= Err U[block, rest].
//
// Exact counts (relutrim's addition): the paper prunes a fraction p of every block. Here the
// layer must keep exactly keep weights, so the P = In*Out - keep pruned entries are split
// over the blocks in proportion to their entries, by rounding the cumulative share down:
// block b prunes floor(P e_b / E) - floor(P e_{b-1} / E) entries, where e_b counts the
// entries of the blocks up to and including b and E = In*Out. The counts add up to P
// exactly and each is within one of its proportional share. Ties in the score are broken
// by position (row-major in the block), so the result is deterministic.
//
// N:M (the paper's section 3, "semi-structured"): every group of M inputs of a row keeps
// the N weights of largest w^2 / U_jj^2, decided when the sweep reaches the group's first
// column, from the weights as they stand then. The groups are relutrim's own (nmGroups),
// so the pattern is the one the other methods produce: M consecutive inputs of a dense
// layer (there the sweep is the paper's), but for a convolution M consecutive input
// channels at one kernel position, which are KH*KW columns apart in the weight's
// (im2col) order. So that every group is contiguous in the sweep, the columns are swept
// group after group (the order nmGroups lists them: kernel position, then channel; the
// natural order for a dense layer) and a block ends at the last group boundary within
// 128 columns of its start. The order in which OBS visits the columns is free; only the
// mask's groups are fixed by the pattern.
//
// Sequential: layer l's H is built from the inputs the already pruned layers 0..l-1
// produce (as in the paper), or from the dense network's in Options.Parallel mode. Biases
// are not changed. A layer that keeps all its weights (or, for N:M, is not marked) is left
// as it is.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"

	"relutrim/internal/kern"
	"relutrim/prune/model"
)

const (
	// sgptBlock is the paper's block size (columns per lazy batch update and per adaptive
	// mask).
	sgptBlock = 128
	// sgptDamp is the paper's damping: this fraction of the mean diagonal of H is added to
	// its diagonal.
	sgptDamp = 0.01
)

// SparseGPT prunes every layer l to keep exactly keep[l] weights with SparseGPT (see the
// comment at the top of sparsegpt.go), layer after layer on the calibration data p was
// built with; a layer with keep[l] >= In*Out is left dense. The split keep is the caller's:
// give it relutrim's own (the same per-layer counts Magnitude and Wanda get).
func (p *Pruner) SparseGPT(ctx context.Context, keep []int) (model.Model, error) {
	if err := checkKeep(p.m, keep); err != nil {
		return model.Model{}, err
	}
	return p.sparseGPT(ctx, keep, NM{}, nil, false)
}

func checkKeep(m model.Model, keep []int) error {
	if len(keep) != len(m.Layers) {
		return fmt.Errorf("sparsegpt: %d keep counts for %d layers", len(keep), len(m.Layers))
	}
	for l, k := range keep {
		if k < 0 {
			return fmt.Errorf("sparsegpt: layer %d: negative keep count %d", l, k)
		}
	}
	return nil
}

func checkNMArgs(m model.Model, pat NM, on []bool) ([]bool, error) {
	if !pat.Valid() {
		return nil, fmt.Errorf("sparsegpt: invalid pattern %d:%d", pat.N, pat.M)
	}
	if on == nil {
		on = DefaultNMLayers(m)
	}
	if len(on) != len(m.Layers) {
		return nil, fmt.Errorf("sparsegpt: %d layer marks for %d layers", len(on), len(m.Layers))
	}
	return on, nil
}

// SparseGPTNM prunes the layers marked in on (nil: DefaultNMLayers) to the N:M pattern pat
// with SparseGPT's semi-structured variant, in relutrim's groups (nmGroups); the other
// layers are left dense.
func (p *Pruner) SparseGPTNM(ctx context.Context, pat NM, on []bool) (model.Model, error) {
	on, err := checkNMArgs(p.m, pat, on)
	if err != nil {
		return model.Model{}, err
	}
	return p.sparseGPT(ctx, nil, pat, on, false)
}

// SparseGPTData is SparseGPT (pat.N == 0: Pruner.SparseGPT with keep; else
// Pruner.SparseGPTNM with pat and on) on the calibration inputs X of n samples (as
// NewPruner takes them) without a Pruner: it holds the inputs of one layer at a time (and
// in Options.Parallel mode the dense network's too) instead of the dense network's
// activations of every layer, and computes no unit weights. The result is the same as
// through NewPruner with the same Options (the same sampled convolution positions).
func SparseGPTData(ctx context.Context, m model.Model, X []float64, n int, opt Options, keep []int, pat NM, on []bool) (model.Model, error) {
	if in := m.InShape().Size(); n == 0 || len(X) != n*in {
		return model.Model{}, fmt.Errorf("calibration data has %d values, want N x %d (the model's input size %s)", len(X), in, m.InShape())
	}
	if opt.MaxXBytes == 0 {
		opt.MaxXBytes = DefaultMaxXBytes
	}
	var err error
	if pat.N > 0 {
		on, err = checkNMArgs(m, pat, on)
	} else {
		err = checkKeep(m, keep)
	}
	if err != nil {
		return model.Model{}, err
	}
	if m.Residual() != nil {
		return model.Model{}, fmt.Errorf("sparsegpt: the lean form does not run residual graphs; use a Pruner's SparseGPT")
	}
	// A Pruner with the input of layer 0 and the positions of the convolutions only.
	p := &Pruner{m: m, n: n, opt: opt}
	p.dense = [][]float64{m.Input(X, n)}
	for l, L := range m.Layers {
		p.pos = append(p.pos, p.positions(L, l))
	}
	return p.sparseGPT(ctx, keep, pat, on, true)
}

// sparseGPT runs the layers in turn. lean: p holds only dense[0] and pos (SparseGPTData).
func (p *Pruner) sparseGPT(ctx context.Context, keep []int, pat NM, on []bool, lean bool) (model.Model, error) {
	if p.sc != nil {
		return p.sparseGPTGraph(ctx, keep, pat, on)
	}
	out := p.m.Clone()
	in := p.dense[0]
	denseIn := in // lean Parallel: the dense network's input of layer l
	last := len(p.m.Layers) - 1
	for l, L := range p.m.Layers {
		if err := ctx.Err(); err != nil {
			return model.Model{}, err
		}
		if p.opt.Parallel {
			if lean {
				in = denseIn
			} else {
				in = p.dense[l]
			}
		}
		var spec sgptSpec
		todo := false
		if pat.N > 0 {
			todo = on[l]
			spec = sgptSpec{keep: -1, groups: nmGroups(L, pat.M), n: pat.N}
		} else {
			todo = keep[l] < L.In*L.Out
			spec = sgptSpec{keep: keep[l]}
		}
		if todo {
			if err := p.sparseGPTOne(&out, l, in, spec); err != nil {
				return model.Model{}, err
			}
		}
		switch {
		case l == last:
		case !p.opt.Parallel:
			post, _ := out.Apply(l, in, p.n)
			in = out.Next(l, post, p.n)
		case lean:
			post, _ := p.m.Apply(l, denseIn, p.n)
			denseIn = p.m.Next(l, post, p.n)
		}
	}
	return out, nil
}

// sgptSpecFor is layer l's SparseGPT target and whether it is pruned at all.
func sgptSpecFor(L model.Layer, l int, keep []int, pat NM, on []bool) (sgptSpec, bool) {
	if pat.N > 0 {
		return sgptSpec{keep: -1, groups: nmGroups(L, pat.M), n: pat.N}, on[l]
	}
	return sgptSpec{keep: keep[l]}, keep[l] < L.In*L.Out
}

// sparseGPTOne prunes layer l of out by SparseGPT on its input in.
func (p *Pruner) sparseGPTOne(out *model.Model, l int, in []float64, spec sgptSpec) error {
	L := p.m.Layers[l]
	xs, rows := p.fitRows(l, in)
	H := gram(xs, rows, L.In, p.opt.Threads)
	W, err := sparseGPTLayer(L.W, L.Out, L.In, H, spec, sgptBlock)
	if err != nil {
		return fmt.Errorf("sparsegpt: layer %s: %w", L.Key, err)
	}
	out.Layers[l].W = W
	return nil
}

// sparseGPTGraph is sparseGPT for a residual graph: each layer on its input from the
// pruned graph (cascade) or the dense one (parallel), in graph order.
func (p *Pruner) sparseGPTGraph(ctx context.Context, keep []int, pat NM, on []bool) (model.Model, error) {
	out := p.m.Clone()
	e := p.graphExec(out)
	for l, L := range p.m.Layers {
		if err := ctx.Err(); err != nil {
			return model.Model{}, err
		}
		in, err := e.Input(l)
		if err != nil {
			return model.Model{}, fmt.Errorf("sparsegpt: layer %s: %v", L.Key, err)
		}
		if spec, todo := sgptSpecFor(L, l, keep, pat, on); todo {
			if err := p.sparseGPTOne(&out, l, in, spec); err != nil {
				return model.Model{}, err
			}
		}
		p.setLayer(e, out, l, in)
	}
	return out, nil
}

// gram returns H = X^T X / rows (d x d, row-major) for the row-major rows x d matrix X:
// the costliest step of SparseGPT on tall data. Only the upper triangle is computed, as a
// sum of rank-one updates x_r x_r^T that skip the zeros of x_r (calibration inputs are
// images, mostly zero, or ReLU outputs): row j of the triangle gets x_rj x_r[j:] (kern.Axpy)
// for every non-zero x_rj. Blocked for the cache: per gramSub rows, the triangle is swept
// in panels of rows that fit in about 256 KiB. Rows are split into fixed chunks of
// gramChunk, each summed by one worker into its own triangle, and the chunks' triangles
// are added into H in chunk order, so the result is the same for every thread count.
func gram(X []float64, rows, d, threads int) []float64 {
	H := make([]float64, d*d)
	if rows == 0 || d == 0 {
		return H
	}
	nch := (rows + gramChunk - 1) / gramChunk
	nw := threads
	if nw <= 0 {
		nw = runtime.GOMAXPROCS(0)
	}
	nw = max(1, min(nw, nch))
	parts := make([][]float64, nw)
	for w := range parts {
		parts[w] = make([]float64, d*d)
	}
	panel := max(8, (256<<10)/(8*d))
	var wg sync.WaitGroup
	for c0 := 0; c0 < nch; c0 += nw {
		k := min(nw, nch-c0)
		for w := range k {
			wg.Add(1)
			go func(P []float64, c int) {
				defer wg.Done()
				clear(P)
				lo, hi := c*gramChunk, min(rows, (c+1)*gramChunk)
				for s0 := lo; s0 < hi; s0 += gramSub {
					s1 := min(hi, s0+gramSub)
					for j0 := 0; j0 < d; j0 += panel {
						j1 := min(d, j0+panel)
						for r := s0; r < s1; r++ {
							x := X[r*d : (r+1)*d]
							for j := j0; j < j1; j++ {
								if v := x[j]; v != 0 {
									kern.Axpy(P[j*d+j:(j+1)*d], v, x[j:])
								}
							}
						}
					}
				}
			}(parts[w], c0+w)
		}
		wg.Wait()
		for w := range k {
			P := parts[w]
			for i := range d {
				floats.Add(H[i*d+i:(i+1)*d], P[i*d+i:(i+1)*d])
			}
		}
	}
	s := 1 / float64(rows)
	for i := range d {
		for j := i; j < d; j++ {
			v := H[i*d+j] * s
			H[i*d+j], H[j*d+i] = v, v
		}
	}
	return H
}

// gramChunk and gramSub are gram's rows per chunk (the unit of work and of the ordered
// sum) and per cache block.
const (
	gramChunk = 1024
	gramSub   = 128
)

// sgptSpec says what one layer's SparseGPT keeps: exactly keep weights (unstructured;
// keep >= 0), or n in every group of groups (N:M; keep < 0).
type sgptSpec struct {
	keep   int
	groups [][]int
	n      int
}

// sparseGPTLayer runs SparseGPT on one layer: W (rows x cols, row-major, not changed) with
// the Hessian H = X^T X / n (cols x cols, row-major; it is damped in place), sweeping in
// blocks of block columns. It returns the pruned weights.
func sparseGPTLayer(W []float64, rows, cols int, H []float64, spec sgptSpec, block int) ([]float64, error) {
	if len(W) != rows*cols || len(H) != cols*cols {
		return nil, fmt.Errorf("sizes: W has %d values for %dx%d, H %d", len(W), rows, cols, len(H))
	}
	nm := spec.keep < 0
	// The sweep order: order[s] is the column visited s-th; glen[s] > 0 where a group of
	// that many columns starts (N:M).
	order := make([]int, 0, cols)
	glen := make([]int, cols)
	if nm {
		for _, g := range spec.groups {
			glen[len(order)] = len(g)
			order = append(order, g...)
		}
		if len(order) != cols {
			return nil, errors.New("the N:M groups do not cover the inputs")
		}
	} else {
		for j := range cols {
			order = append(order, j)
		}
	}
	// Wt: the weights transposed into sweep order, column s of W as row s (contiguous over
	// W's rows). Hp: H in sweep order.
	Wt := make([]float64, cols*rows)
	Hp := make([]float64, cols*cols)
	for s, j := range order {
		for o := range rows {
			Wt[s*rows+o] = W[o*cols+j]
		}
		for t, k := range order {
			Hp[s*cols+t] = H[j*cols+k]
		}
	}
	// Dead inputs, then damping.
	tr := 0.0
	for s := range cols {
		if Hp[s*cols+s] == 0 {
			Hp[s*cols+s] = 1
			clear(Wt[s*rows : (s+1)*rows])
		}
		tr += Hp[s*cols+s]
	}
	damp := sgptDamp * tr / float64(cols)
	for s := range cols {
		Hp[s*cols+s] += damp
	}
	U, err := upperCholInv(Hp, cols)
	if err != nil {
		return nil, err
	}

	total := rows * cols
	prune := total - spec.keep // unstructured: entries to prune
	if !nm && (prune < 0 || spec.keep < 0) {
		prune = 0
	}
	mask := make([]bool, block*rows) // pruned entries of the block, [(s-i1)*rows + o]
	errs := make([]float64, block*rows)
	var idx []int
	var score []float64
	seen := 0 // entries in the blocks before
	for i1 := 0; i1 < cols; {
		i2 := blockEnd(i1, cols, block, glen, nm)
		bs := i2 - i1
		if bs > len(mask)/max(rows, 1) { // an N:M group longer than a block
			mask = make([]bool, bs*rows)
			errs = make([]float64, bs*rows)
		}
		mk := mask[:bs*rows]
		clear(mk)
		if !nm {
			cnt := prune*(seen+bs*rows)/total - prune*seen/total
			seen += bs * rows
			// The cnt entries of smallest w^2 / U_jj^2 over the whole block; ties by
			// position, row-major (o*bs + c).
			idx, score = idx[:0], score[:0]
			for o := range rows {
				for c := range bs {
					s := i1 + c
					d := U[s*cols+s]
					w := Wt[s*rows+o]
					score = append(score, w*w/(d*d))
					idx = append(idx, o*bs+c)
				}
			}
			slices.SortFunc(idx, func(a, b int) int {
				if c := cmp.Compare(score[a], score[b]); c != 0 {
					return c
				}
				return cmp.Compare(a, b)
			})
			for _, e := range idx[:cnt] {
				o, c := e/bs, e%bs
				mk[c*rows+o] = true
			}
		}
		E := errs[:bs*rows]
		for s := i1; s < i2; s++ {
			if nm && glen[s] > 0 {
				nmMask(mk[(s-i1)*rows:], Wt[s*rows:], U, s, cols, rows, glen[s], spec.n)
			}
			d := U[s*cols+s]
			w := Wt[s*rows : (s+1)*rows]
			e := E[(s-i1)*rows : (s-i1+1)*rows]
			m := mk[(s-i1)*rows : (s-i1+1)*rows]
			for o := range rows {
				if m[o] {
					e[o] = w[o] / d
					w[o] = 0
				} else {
					e[o] = 0
				}
			}
			for t := s + 1; t < i2; t++ {
				if h := U[s*cols+t]; h != 0 {
					kern.Axpy(Wt[t*rows:(t+1)*rows], -h, e)
				}
			}
		}
		if i2 < cols && rows > 0 {
			// Wt[i2:] -= U[i1:i2, i2:]^T E
			a := blas64.General{Rows: bs, Cols: cols - i2, Stride: cols, Data: U[i1*cols+i2:]}
			b := blas64.General{Rows: bs, Cols: rows, Stride: rows, Data: E}
			c := blas64.General{Rows: cols - i2, Cols: rows, Stride: rows, Data: Wt[i2*rows:]}
			blas64.Gemm(blas.Trans, blas.NoTrans, -1, a, b, 1, c)
		}
		i1 = i2
	}
	out := make([]float64, rows*cols)
	for s, j := range order {
		for o := range rows {
			out[o*cols+j] = Wt[s*rows+o]
		}
	}
	return out, nil
}

// blockEnd returns the end of the block starting at column i1: i1+block (at most cols);
// for N:M, the last group start (or cols) within i1+block, or the end of the group at i1
// if that group alone is longer than a block.
func blockEnd(i1, cols, block int, glen []int, nm bool) int {
	end := min(i1+block, cols)
	if !nm || end == cols {
		return end
	}
	for e := end; e > i1; e-- {
		if glen[e] > 0 {
			return e
		}
	}
	return i1 + glen[i1]
}

// nmMask marks, in every row o, the glen-min(n, glen) entries of smallest w^2 / U_jj^2 of
// the group of columns s..s+glen-1 (sweep order) for pruning, ties to the earlier column:
// mk and w start at column s, rows values per column.
func nmMask(mk []bool, w, U []float64, s, cols, rows, glen, n int) {
	drop := glen - min(n, glen)
	if drop == 0 {
		return
	}
	idx := make([]int, glen)
	sc := make([]float64, glen)
	for o := range rows {
		for c := range glen {
			d := U[(s+c)*cols+s+c]
			v := w[c*rows+o]
			sc[c] = v * v / (d * d)
			idx[c] = c
		}
		slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(sc[a], sc[b]) })
		for _, c := range idx[:drop] {
			mk[c*rows+o] = true
		}
	}
}

// upperCholInv returns the upper triangular U (n x n, row-major) with U^T U = H^{-1}, for
// the symmetric positive definite H (n x n, row-major), without forming H^{-1}: with J the
// reversal of the indices and J H J = L L^T (Cholesky), H = R R^T with R = J L J upper
// triangular, so U = R^{-1} = J L^{-1} J (the factor with a positive diagonal is unique,
// so this is chol(H^{-1}), upper).
func upperCholInv(H []float64, n int) ([]float64, error) {
	rev := make([]float64, n*n)
	for i := range n {
		for j := range n {
			rev[i*n+j] = H[(n-1-i)*n+(n-1-j)]
		}
	}
	var c mat.Cholesky
	if !c.Factorize(mat.NewSymDense(n, rev)) {
		return nil, errors.New("the damped Hessian is not positive definite")
	}
	var L mat.TriDense
	c.LTo(&L)
	if err := L.InverseTri(&L); err != nil {
		return nil, fmt.Errorf("inverting the Hessian's Cholesky factor: %w", err)
	}
	raw := L.RawTriangular()
	U := make([]float64, n*n)
	for i := range n {
		for j := i; j < n; j++ {
			U[i*n+j] = raw.Data[(n-1-i)*raw.Stride+(n-1-j)]
		}
	}
	if !allFiniteF(U) {
		return nil, errors.New("the inverse Hessian's Cholesky factor is not finite")
	}
	return U, nil
}

func allFiniteF(v []float64) bool {
	for _, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}
