package prune

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"sort"

	"gonum.org/v1/gonum/mat"

	"relutrim/prune/model"
)

// CurvePoint is one measured point of a layer's error curve: the layer pruned alone to
// NonZeros weights (the others dense) by a cheap stand-in for relutrim's fit.
type CurvePoint struct {
	NonZeros int     `json:"nonzeros"`
	Sparsity float64 `json:"sparsity"`
	// LayerErr is the layer's relative pre-activation error ||Z - Z_dense||_F / ||Z_dense||_F
	// on the calibration data; OutErr is the squared relative error of the network's output
	// (logits), ||F - F_dense||_F^2 / ||F_dense||_F^2, the loss proxy the curves budget
	// minimises (summed over layers).
	LayerErr float64 `json:"rel_err_pre_activation"`
	OutErr   float64 `json:"output_sq_rel_err"`
}

// Curve is one layer's error curve, by increasing NonZeros; the last point is the dense
// layer (OutErr 0).
type Curve struct {
	Key     string       `json:"key"`
	Weights int          `json:"weights"`
	Points  []CurvePoint `json:"points"`
}

// curveDensities are the densities at which each layer's curve is measured (then the dense
// layer, at zero error), after a first point with one weight; Allocate interpolates
// linearly in between. Densities whose support
// is too large (curveMaxSupport) are skipped: the demo's 784-300 layer is measured up to
// 30% density, its 300-100 and 100-10 layers up to 75%.
var curveDensities = []float64{0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.055, 0.075, 0.1, 0.13, 0.17, 0.22, 0.3, 0.4, 0.55, 0.75}

// Bounds on the curves' cost: densities whose supports average more than curveMaxSupport
// inputs per output are skipped (the least-squares refit solves one system of that size per
// output; the demo's 784-300 layer stops at 30%), and the output error is measured on at
// most curveRows calibration samples, fewer for a network whose forward pass costs more
// than curveMACs/curveRows multiply-adds per sample (curveSamples).
const (
	curveMaxSupport = 256
	curveRows       = 1000
	curveMACs       = 3e8
	curveMinRows    = 100
	// curveNoise: output errors below it are rounding and count as 0, so that a flat curve
	// ties and Allocate does not make its layer dense for nothing.
	curveNoise = 1e-12
)

// Curves measures every layer's error curve on the calibration data, once per Pruner (the
// curves do not depend on the sparsity level): layer l is pruned alone, on the dense
// network's inputs (parallel mode, whatever Options.Parallel says), to each count of
// curveDensities by a cheap stand-in for the fit: the count's largest |W_ij| * ||x_j|| of
// the dense weights (Wanda's score, over the whole layer), refitted by least squares to the
// dense pre-activations (with the bias), per output on its support. The network's output
// with that one layer replaced gives OutErr.
//
// For a residual graph (prune/residual.go) the stand-in fits a block's last layer to its own
// dense pre-activation, without the shortcut's offset (an approximation of the real fit);
// the output error runs the whole graph with the layer replaced.
//
// In cascade mode the real fit of layer l sees the pruned earlier layers and partly
// corrects their error; the curves ignore this (each layer is measured on dense inputs) and
// the split they give is used as is.
func (p *Pruner) Curves(ctx context.Context) ([]Curve, error) {
	if p.curves != nil {
		return p.curves, nil
	}
	out := make([]Curve, len(p.m.Layers))
	for l := range p.m.Layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c, err := p.curve(ctx, l)
		if err != nil {
			return nil, err
		}
		out[l] = c
	}
	p.curves = out
	return out, nil
}

// curveRows returns the rows of layer l's dense fit (inputs and pre-activations) that
// its curve is measured on: the rows supports are selected on (selectRows).
func (p *Pruner) curveRows(l int) (xs, ys []float64, rows int) {
	L := p.m.Layers[l]
	ys = p.yPre[l]
	idx := p.selectRows(l, len(ys)/L.Out)
	if idx != nil {
		ys = pickRows(ys, idx, L.Out)
	}
	if p.curveX != nil { // a residual graph: kept by denseGraph
		xs = p.curveX[l]
	} else if xs, _ = p.fitRows(l, p.dense[l]); idx != nil {
		xs = pickRows(xs, idx, L.In)
	}
	return xs, ys, len(ys) / L.Out
}

func (p *Pruner) curve(ctx context.Context, l int) (Curve, error) {
	L := p.m.Layers[l]
	size := L.In * L.Out
	c := Curve{Key: L.Key, Weights: size}
	xs, ys, rows := p.curveRows(l)
	ne := newNormalEq(xs, rows, L.In, ys, L.Out, L.NoBias)
	d := ne.d
	// Wanda's score ranks the layer's weights once; a count's support is a prefix.
	order := make([]int, size) // index o*In + i
	score := make([]float64, size)
	for o := 0; o < L.Out; o++ {
		for i := 0; i < L.In; i++ {
			score[o*L.In+i] = math.Abs(L.W[o*L.In+i]) * math.Sqrt(ne.G[i*d+i])
		}
	}
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(score[b], score[a]) })
	// A first point with one weight, so that any budget of at least one weight per layer
	// can be split (the curve is linear from there to the first density).
	var ks []int
	if size > 1 {
		ks = append(ks, 1)
	}
	for _, dens := range curveDensities {
		k := int(math.Round(dens * float64(size)))
		if k >= 1 && k < size && (len(ks) == 0 || k > ks[len(ks)-1]) && k <= curveMaxSupport*L.Out {
			ks = append(ks, k)
		}
	}
	// Per output: its inputs in the order they enter the supports (the bias first), and
	// for each count the length of its prefix; then all counts' fits at once (prefixFits).
	seq := make([][]int, L.Out)
	if !L.NoBias {
		for o := range seq {
			seq[o] = []int{L.In}
		}
	}
	lens := make([][]int, L.Out) // lens[o][c]: output o's support length at count ks[c]
	at := 0
	for _, k := range ks {
		for ; at < k; at++ {
			o, i := order[at]/L.In, order[at]%L.In
			seq[o] = append(seq[o], i)
		}
		for o := range lens {
			lens[o] = append(lens[o], len(seq[o]))
		}
	}
	wts := make([][][]float64, L.Out) // wts[o][c]: weights on seq[o][:lens[o][c]]
	fits := make([][]float64, L.Out)
	forOutputs(L.Out, p.opt.Threads, func(o int) {
		wts[o], fits[o] = ne.prefixFits(o, seq[o], lens[o])
	})
	last := len(p.m.Layers) - 1
	nr := min(p.n, curveSamples(p.m))
	ref := p.dense[last+1][:nr*len(p.dense[last+1])/p.n]
	var in0 []float64
	if p.x0 == nil {
		in0 = p.dense[l][:nr*len(p.dense[l])/p.n]
	}
	for ci, k := range ks {
		if err := ctx.Err(); err != nil {
			return c, err
		}
		W := make([]float64, size)
		B := make([]float64, L.Out)
		rss := 0.0
		for o := 0; o < L.Out; o++ {
			for a, i := range seq[o][:lens[o][ci]] {
				if i == L.In {
					B[o] = wts[o][ci][a]
				} else {
					W[o*L.In+i] = wts[o][ci][a]
				}
			}
			rss += math.Max(ne.yy[o]-fits[o][ci], 0)
		}
		pt := CurvePoint{NonZeros: k, Sparsity: 1 - float64(k)/float64(size), LayerErr: math.Sqrt(rss / math.Max(ne.yyAll, 1e-300))}
		// The network's output with layer l replaced.
		m := p.m.Clone()
		m.Layers[l].W, m.Layers[l].B = W, B
		var in []float64
		if p.x0 != nil { // a residual graph: the whole network on the first nr samples
			in = m.OutputFrom(p.x0[:nr*len(p.x0)/p.n], nr)
		} else {
			in = in0
			for j := l; j <= last; j++ {
				post := m.ApplyPost(j, in, nr)
				in = m.Next(j, post, nr)
			}
		}
		e := relErr(in, ref)
		if pt.OutErr = e * e; pt.OutErr < curveNoise {
			pt.OutErr = 0 // rounding (a layer whose inputs are dead on the calibration data)
		}
		c.Points = append(c.Points, pt)
	}
	c.Points = append(c.Points, CurvePoint{NonZeros: size})
	return c, nil
}

// curveSamples is the number of calibration samples the curves' output errors are
// measured on: curveRows, or as many as curveMACs multiply-adds of m's forward pass allow
// (at least curveMinRows). Every point of a curve runs the network from the pruned layer
// on. The demo's MLP (266,200 multiply-adds per sample) keeps 1000 samples, its CNN (2.5
// million) 119: its 90% level with the curves took 18.3 s with 1000 samples, 6.3 s with
// 119 (3.4 s with the Erdos-Renyi budget), with the same split within 0.4 points per layer.
func curveSamples(m model.Model) int {
	macs := 0.0
	for _, L := range m.Layers {
		macs += float64(L.In) * float64(L.Out) * float64(L.Positions())
	}
	return max(curveMinRows, min(curveRows, int(curveMACs/math.Max(macs, 1))))
}

// lsOnSupport solves (G_SS + ridge I) w = C_S,o, G d x d, C d x out (row-major).
func lsOnSupport(G, C []float64, d, out, o int, s []int, ridge float64) []float64 {
	n := len(s)
	if n == 0 {
		return nil
	}
	a := make([]float64, n*n)
	b := make([]float64, n)
	for r, i := range s {
		for q, j := range s {
			a[r*n+q] = G[i*d+j]
		}
		a[r*n+r] += ridge
		b[r] = C[i*out+o]
	}
	var ch mat.Cholesky
	if !ch.Factorize(mat.NewSymDense(n, a)) {
		// Numerically singular even with the ridge: a stronger one.
		for r := range s {
			a[r*n+r] += 1e-6 * (a[r*n+r] + 1)
		}
		if !ch.Factorize(mat.NewSymDense(n, a)) {
			return make([]float64, n)
		}
	}
	var x mat.VecDense
	if err := ch.SolveVecTo(&x, mat.NewVecDense(n, b)); err != nil {
		return make([]float64, n)
	}
	return x.RawVector().Data
}

// Knot is one point of a piecewise-linear loss curve: Loss at K kept weights.
type Knot struct {
	K    int
	Loss float64
}

// maxUnits bounds the dynamic program of Allocate: counts move in units of
// ceil(total/maxUnits) weights (1 up to maxUnits weights), then the remainder is placed
// one weight at a time.
const maxUnits = 2000

// Allocate returns per-layer counts k_l that add up to total exactly, with each k_l
// between its curve's first and last K, minimising sum_l f_l(k_l), where f_l interpolates
// curves[l] (knots by increasing K) linearly. A dynamic program over the layers, on counts
// in units of u = ceil(total/maxUnits) weights, is exact when u = 1; otherwise the
// leftover (fewer than u weights per layer) goes one weight at a time to the layer whose
// loss it lowers most (or, when over, is taken from the layer where it costs least).
func Allocate(curves [][]Knot, total int) ([]int, error) {
	n := len(curves)
	lo, hi := make([]int, n), make([]int, n)
	sumLo, sumHi := 0, 0
	for l, c := range curves {
		if len(c) == 0 {
			return nil, fmt.Errorf("layer %d has an empty curve", l+1)
		}
		for i := 1; i < len(c); i++ {
			if c[i].K <= c[i-1].K {
				return nil, fmt.Errorf("layer %d: curve counts not increasing", l+1)
			}
		}
		lo[l], hi[l] = c[0].K, c[len(c)-1].K
		sumLo += lo[l]
		sumHi += hi[l]
	}
	if total < sumLo || total > sumHi {
		return nil, fmt.Errorf("budget %d outside the curves' range [%d, %d]", total, sumLo, sumHi)
	}
	u := max(1, (total+maxUnits-1)/maxUnits)
	T := (total - sumLo) / u
	count := func(l, j int) int { return min(hi[l], lo[l]+j*u) }
	// best[t]: least loss of the layers so far using t units; choice[l][t]: layer l's units.
	inf := math.Inf(1)
	best := make([]float64, T+1)
	for t := range best {
		best[t] = inf
	}
	best[0] = 0
	choice := make([][]int32, n)
	for l := 0; l < n; l++ {
		J := (hi[l] - lo[l] + u - 1) / u
		f := make([]float64, J+1)
		for j := range f {
			f[j] = Interp(curves[l], count(l, j))
		}
		nb := make([]float64, T+1)
		ch := make([]int32, T+1)
		for t := 0; t <= T; t++ {
			nb[t] = inf
			for j := 0; j <= min(J, t); j++ {
				// On a tie, a layer is not made dense (a layer kept dense keeps the weights
				// of inputs that are dead on the calibration data, where its curve is flat).
				v := best[t-j] + f[j]
				if v < nb[t] || v == nb[t] && count(l, int(ch[t])) == hi[l] && count(l, j) < hi[l] {
					nb[t], ch[t] = v, int32(j)
				}
			}
		}
		best, choice[l] = nb, ch
	}
	if math.IsInf(best[T], 1) {
		return nil, fmt.Errorf("no allocation of %d units", T)
	}
	k := make([]int, n)
	sum := 0
	for l, t := n-1, T; l >= 0; l-- {
		j := int(choice[l][t])
		k[l] = count(l, j)
		sum += k[l]
		t -= j
	}
	for ; sum < total; sum++ {
		b, bd := -1, inf
		for l := range k {
			if k[l] < hi[l] {
				if d := Interp(curves[l], k[l]+1) - Interp(curves[l], k[l]); d < bd {
					b, bd = l, d
				}
			}
		}
		k[b]++
	}
	for ; sum > total; sum-- {
		b, bd := -1, inf
		for l := range k {
			if k[l] > lo[l] {
				if d := Interp(curves[l], k[l]-1) - Interp(curves[l], k[l]); d < bd {
					b, bd = l, d
				}
			}
		}
		k[b]--
	}
	return k, nil
}

// Interp is the piecewise-linear interpolation of c (by increasing K) at k, clamped to its
// ends (the loss Allocate minimises).
func Interp(c []Knot, k int) float64 {
	i := sort.Search(len(c), func(i int) bool { return c[i].K >= k })
	switch {
	case i == 0:
		return c[0].Loss
	case i == len(c):
		return c[len(c)-1].Loss
	}
	a, b := c[i-1], c[i]
	t := float64(k-a.K) / float64(b.K-a.K)
	return a.Loss + t*(b.Loss-a.Loss)
}

// CurveBudget spreads an overall sparsity s over the layers by their error curves
// ([Pruner.Curves]): the per-layer counts, adding up to round((1-s) * total), that
// minimise the sum over layers of the curves' OutErr (Allocate). A budget below the
// curves' sparsest points is refused.
func (p *Pruner) CurveBudget(ctx context.Context, s float64) ([]int, error) {
	if !(s >= 0 && s < 1) {
		return nil, fmt.Errorf("sparsity %v is outside [0, 1)", s)
	}
	cs, err := p.Curves(ctx)
	if err != nil {
		return nil, err
	}
	return allocateCurves(p.m, cs, s)
}

func allocateCurves(m model.Model, cs []Curve, s float64) ([]int, error) {
	knots := make([][]Knot, len(cs))
	for l, c := range cs {
		for _, pt := range c.Points {
			knots[l] = append(knots[l], Knot{K: pt.NonZeros, Loss: pt.OutErr})
		}
	}
	total := int(math.Round((1 - s) * float64(m.Weights())))
	k, err := Allocate(knots, total)
	if err != nil {
		return nil, fmt.Errorf("sparsity %v: %v (the error curves start at one weight per layer)", s, err)
	}
	return k, nil
}
