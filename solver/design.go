package solver

import (
	"math"

	"relutrim/internal/kern"
)

// design is the standardised data operator K used inside the solver:
//
//	K = [ (X - 1 mu^T) D^{-1} , 1 ]        (with a bias)
//	K = X D^{-1}                           (without)
//
// mu holds the column means and D the column standard deviations (root mean squares without
// a bias), so K^T K / N has a unit diagonal. K is never formed: products with K are products
// with X plus rank-one corrections. In these coordinates u~ = D u and b~ = b + mu^T u, and
// the L1 penalty lambda ||u||_1 becomes per-coordinate weights lambda / d_k, and the solver is invariant to the
// scale of X's columns (a fixed-rho ADMM on unscaled columns stalled when they were x30).
// See docs/method.md, section 2.
type design struct {
	X       kern.Matrix
	n, nx   int // n: this process's rows of X (all of them in one process)
	N       int // the fit's rows (sp.N; n in one process)
	sp      *span
	p       int  // number of coordinates: nx (+1 for the bias)
	bias    bool // last coordinate is the bias
	mu, d   []float64
	rowNorm []float64 // ||K_p||^2 per row (rowNorms; the ADMM only)
	// passFrac is the cost of a product relative to a dense one: X's density with the
	// sparse kernel, else 1.
	passFrac float64
	threads  int
	scratch  []float64 // nx x ny
}

// newDesign scans X once (xstats) and builds K on the kernel newKern picks for it (the
// dense one, on X in place, when the CSR copy would exceed copyLimit bytes; 0: no limit).
// Non-finite entries, or entries so large that a column's sum of squares overflows, are an
// *InputError naming the first offending entry.
func newDesign(X Matrix, bias bool, threads int, copyLimit int64, comm Comm) (*design, error) {
	sp := newSpan(comm, X.Rows)
	var st xstats
	if X.F32 != nil {
		st = scanX(X.F32, X.Rows, X.Cols, bias, threads, sp)
	} else {
		st = scanX(X.F64, X.Rows, X.Cols, bias, threads, sp)
	}
	if !st.finite {
		err := checkMatrix("X", X)
		if err == nil && !sp.distributed() {
			err = inputErr("X", "entries too large: a column's sum of squares overflows float64 (rescale X)")
		}
		if ie, ok := err.(*InputError); ok && ie.Row >= 0 {
			ie.Row += sp.rowLo[sp.rank] // the fit's row
		}
		if err = sp.agree(err); err == nil {
			err = inputErr("X", "entries too large: a column's sum of squares overflows float64 (rescale X)")
		}
		return nil, err
	}
	if e := math.Log10(st.sumSq); e > maxLog10SumSquares {
		return nil, scaleError("X", e) // the same on every process (st is reduced)
	}
	n, nx := X.Rows, X.Cols
	density := st.density // what decides the kernel
	if copyLimit > 0 && csrBytes(X, st.density) > copyLimit || sp.distributed() {
		// The dense kernel: no copy of X. Across processes always: its chunk partials are
		// those of the tree (kern.TreeMulT).
		density = 1
	}
	g := &design{X: newKern(X, threads, density), n: n, N: sp.N, sp: sp, nx: nx, bias: bias, threads: threads,
		mu: st.mu, d: st.d, p: nx, passFrac: passFrac(density)}
	if bias {
		g.p++
	}
	return g, nil
}

// csrBytes is the size of X's CSR copy (kern.NewCSR32/64) at the given density: row
// pointers (8 bytes per row), column indices (4 bytes) and values per non-zero.
func csrBytes(X Matrix, density float64) int64 {
	elem := 8.0
	if X.F32 != nil {
		elem = 4
	}
	nnz := density * float64(X.Rows) * float64(X.Cols)
	return int64(8*float64(X.Rows+1) + nnz*(4+elem))
}

// passFrac is the cost of a product with X relative to a dense one, given X's density:
// the density when newKern chooses the sparse kernel, else 1.
func passFrac(density float64) float64 {
	if kern.Backend == "purego" && density < csrMaxDensity {
		return max(density, 1e-3)
	}
	return 1
}

// xstats is what one pass over X yields: the column means mu (0 without a bias: centring
// cannot be absorbed then) and scales d (standard deviations; root mean squares without a
// bias; 1 for constant columns), the fraction of non-zeros, whether every entry and
// every column's sum of squares is finite, and the sum of all squared entries.
type xstats struct {
	mu, d   []float64
	density float64
	finite  bool
	sumSq   float64
}

// scanX computes xstats in one pass: per chunk the column means and centred sums of
// squares, combined by the chunk tree (sp.reduceMerge) with Chan, Golub & LeVeque's
// pairwise update (stable, and deterministic for any thread count and any split of the
// rows between processes).
func scanX[T float32 | float64](x []T, n, nx int, bias bool, threads int, sp *span) xstats {
	nc := numChunks(n)
	// Per chunk: [rows, mean (nx), m2 (nx), non-zeros, bad].
	w := 2*nx + 3
	part := make([]float64, nc*w)
	forChunks(n, threads, func(c, lo, hi int) {
		acc := part[c*w : (c+1)*w]
		mean, m2 := acc[1:1+nx], acc[1+nx:1+2*nx]
		nz, bad := 0, 0.0
		if bias {
			for i := lo; i < hi; i++ {
				for k, v := range x[i*nx : (i+1)*nx] {
					mean[k] += float64(v)
				}
			}
			for k := range mean {
				mean[k] /= float64(hi - lo)
			}
		}
		for i := lo; i < hi; i++ {
			for k, v := range x[i*nx : (i+1)*nx] {
				e := float64(v) - mean[k]
				m2[k] += e * e
				bad += float64(v) * 0 // NaN iff some entry is NaN or Inf
				if v != 0 {
					nz++
				}
			}
		}
		acc[0], acc[w-2], acc[w-1] = float64(hi-lo), float64(nz), bad
	})
	tot := make([]float64, w)
	sp.reduceMerge(tot, part, w, func(l, r []float64) {
		na, nb := l[0], r[0]
		nt := na + nb
		for k := 0; k < nx; k++ {
			delta := r[1+k] - l[1+k]
			l[1+k] += delta * nb / nt
			l[1+nx+k] += r[1+nx+k] + delta*delta*na*nb/nt
		}
		l[0] = nt
		l[w-2] += r[w-2]
		l[w-1] += r[w-1]
	})
	N := sp.N
	st := xstats{mu: append([]float64(nil), tot[1:1+nx]...), d: append([]float64(nil), tot[1+nx:1+2*nx]...), finite: tot[w-1] == 0}
	for k := range st.d {
		if math.IsInf(st.d[k], 0) || math.IsNaN(st.d[k]) || math.IsInf(st.mu[k], 0) || math.IsNaN(st.mu[k]) {
			st.finite = false
		}
		st.sumSq += st.d[k] + float64(N)*st.mu[k]*st.mu[k] // the column's sum of squares
		st.d[k] = math.Sqrt(st.d[k] / float64(N))
		if !(st.d[k] > 1e-12*math.Abs(st.mu[k])) {
			// A constant column (its spread is rounding noise of its mean; relative, so that
			// scaling X by 1e-12 changes nothing): with a bias it carries no information, K's
			// column is 0.
			st.d[k] = 1
		}
	}
	st.density = tot[w-2] / (float64(N) * float64(nx))
	return st
}

// rowNorms computes the squared row norms of K (one pass over X; the ADMM's metric).
func (g *design) rowNorms() {
	g.rowNorm = make([]float64, g.n)
	forChunks(g.n, g.threads, func(c, lo, hi int) {
		buf := make([]float64, g.nx)
		for i := lo; i < hi; i++ {
			s := 0.0
			for k, v := range g.X.Row(buf, i) {
				e := (v - g.mu[k]) / g.d[k]
				s += e * e
			}
			if g.bias {
				s++
			}
			if s == 0 {
				s = 1 // an all-zero row without a bias: its term is constant; any scale works
			}
			g.rowNorm[i] = s
		}
	})
}

// mul sets dst (n x ny) = K z, z is p x ny.
func (g *design) mul(dst, z []float64, ny int) {
	B := g.scaled(z, ny)
	g.X.Mul(dst, B, ny)
	if !g.bias {
		return
	}
	corr := make([]float64, ny)
	for j := range corr {
		corr[j] = z[g.nx*ny+j]
	}
	for k := 0; k < g.nx; k++ {
		for j := 0; j < ny; j++ {
			corr[j] -= g.mu[k] * B[k*ny+j]
		}
	}
	forChunks(g.n, g.threads, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			row := dst[i*ny : (i+1)*ny]
			for j := range row {
				row[j] += corr[j]
			}
		}
	})
}

// scaled returns D^{-1} z_feat in g.scratch.
func (g *design) scaled(z []float64, ny int) []float64 {
	if len(g.scratch) < g.nx*ny {
		g.scratch = make([]float64, g.nx*ny)
	}
	B := g.scratch[:g.nx*ny]
	for k := 0; k < g.nx; k++ {
		for j := 0; j < ny; j++ {
			B[k*ny+j] = z[k*ny+j] / g.d[k]
		}
	}
	return B
}

// mulT sets dst (p x ny) = K^T a, a is n x ny (this process's rows).
func (g *design) mulT(dst, a []float64, ny int) {
	var s []float64
	if g.bias {
		s = make([]float64, ny)
	}
	g.xta(dst[:g.nx*ny], s, a, ny)
	g.finishT(dst, s, ny)
}

// finishT maps dst (p x ny) from X^T a (first nx rows) to K^T a, given the column sums s of a
// (nil without a bias): (X^T a - mu s^T) / d, and s as the bias's row.
func (g *design) finishT(dst, s []float64, ny int) {
	for k := 0; k < g.nx; k++ {
		for j := 0; j < ny; j++ {
			v := dst[k*ny+j]
			if g.bias {
				v -= g.mu[k] * s[j]
			}
			dst[k*ny+j] = v / g.d[k]
		}
	}
	if g.bias {
		copy(dst[g.nx*ny:], s)
	}
}

// xta sets dst (nx x ny) = X^T a and, when s is not nil, s (ny) = 1^T a over the fit's
// rows (a: this process's rows), with one collective when distributed.
func (g *design) xta(dst, s, a []float64, ny int) {
	sp := g.sp
	if !sp.distributed() {
		g.X.MulT(dst, a, ny)
		if s != nil {
			g.colSumsInto(s, a, ny)
		}
		return
	}
	tx := &sp.trees[0]
	c0, c1 := sp.chunkLo[sp.rank], sp.chunkLo[sp.rank+1]
	tx.Reset(g.nx*ny, c0, c1, sp.nc, nil)
	g.X.(kern.TreeMulT).MulTTree(tx, a, ny)
	trees, dsts, merges := []*kern.Tree{tx}, [][]float64{dst}, []kern.Merge{nil}
	if s != nil {
		ts := &sp.trees[1]
		ts.Reset(ny, c0, c1, sp.nc, nil)
		part := g.colSumParts(a, ny)
		for c := 0; c < c1-c0; c++ {
			ts.Push(part[c*ny : (c+1)*ny])
		}
		trees, dsts, merges = append(trees, ts), append(dsts, s), append(merges, nil)
	}
	sp.combine(trees, dsts, merges)
}

// pass is mul and mulT fused into one read of X (kern.Matrix.Pass): for every row chunk
// [lo, hi) it computes kb = K_c B (rows x k; B is p x k, skipped when k = 0), calls
// f(c, lo, hi, kb, a), which writes the chunk's rows of A into a (rows x kt), and sets
// dst (p x kt) = K^T A (skipped when kt = 0). kb and a are the calling worker's scratch;
// f runs concurrently for different chunks. kb equals mul's rows and dst equals mulT's
// result bitwise: the same kernels, chunks and reduction order.
func (g *design) pass(dst, B []float64, k, kt int, f func(c, lo, hi int, kb, a []float64)) {
	var Bs, corr []float64
	if k > 0 {
		Bs = g.scaled(B, k)
		if g.bias {
			corr = make([]float64, k)
			for j := range corr {
				corr[j] = B[g.nx*k+j]
			}
			for c := 0; c < g.nx; c++ {
				for j := 0; j < k; j++ {
					corr[j] -= g.mu[c] * Bs[c*k+j]
				}
			}
		}
	}
	var part []float64 // per-chunk column sums of A (the bias's row of K^T)
	if kt > 0 && g.bias {
		part = make([]float64, numChunks(g.n)*kt)
	}
	body := func(c, lo, hi int, xb, a []float64) {
		if corr != nil {
			for i := 0; i < hi-lo; i++ {
				row := xb[i*k : (i+1)*k]
				for j := range row {
					row[j] += corr[j]
				}
			}
		}
		f(c, lo, hi, xb, a)
		if part != nil {
			acc := part[c*kt : (c+1)*kt]
			for i := 0; i < hi-lo; i++ {
				for j, v := range a[i*kt : (i+1)*kt] {
					acc[j] += v
				}
			}
		}
	}
	sp := g.sp
	if !sp.distributed() || kt == 0 {
		g.X.Pass(dst[:g.nx*kt], Bs, k, kt, body)
		if kt == 0 {
			return
		}
		var s []float64
		if g.bias {
			s = make([]float64, kt)
			g.reduce(s, part, kt)
		}
		g.finishT(dst, s, kt)
		return
	}
	// Across processes: this process's chunk partials into the chunk trees, combined with
	// the other processes' in one collective (dist.go).
	tx := &sp.trees[0]
	c0, c1 := sp.chunkLo[sp.rank], sp.chunkLo[sp.rank+1]
	tx.Reset(g.nx*kt, c0, c1, sp.nc, nil)
	g.X.(kern.TreeMulT).PassTree(tx, Bs, k, kt, body)
	trees, dsts, merges := []*kern.Tree{tx}, [][]float64{dst[:g.nx*kt]}, []kern.Merge{nil}
	var s []float64
	if g.bias {
		s = make([]float64, kt)
		ts := &sp.trees[1]
		ts.Reset(kt, c0, c1, sp.nc, nil)
		for c := 0; c < c1-c0; c++ {
			ts.Push(part[c*kt : (c+1)*kt])
		}
		trees, dsts, merges = append(trees, ts), append(dsts, s), append(merges, nil)
	}
	sp.combine(trees, dsts, merges)
	g.finishT(dst, s, kt)
}

// colSums returns 1^T a (ny values) over the fit's rows (a: this process's rows).
func (g *design) colSums(a []float64, ny int) []float64 {
	s := make([]float64, ny)
	g.colSumsInto(s, a, ny)
	return s
}

func (g *design) colSumsInto(s, a []float64, ny int) {
	g.sp.reduce(s, g.colSumParts(a, ny), ny)
}

// colSumParts returns the per-chunk column sums of a (n x ny).
func (g *design) colSumParts(a []float64, ny int) []float64 {
	part := make([]float64, numChunks(g.n)*ny)
	forChunks(g.n, g.threads, func(c, lo, hi int) {
		acc := part[c*ny : (c+1)*ny]
		for i := lo; i < hi; i++ {
			for j, v := range a[i*ny : (i+1)*ny] {
				acc[j] += v
			}
		}
	})
	return part
}

// reduce sets dst (width values) to the sum over the fit's chunks of the per-chunk
// partials part (this process's chunks), by the chunk tree (dist.go).
func (g *design) reduce(dst, part []float64, width int) { g.sp.reduce(dst, part, width) }

// yScales returns the RMS over the fit's rows of each output's targets (1 where that is 0).
func (g *design) yScales(y []float64, ny int) []float64 {
	part := make([]float64, numChunks(g.n)*ny)
	forChunks(g.n, g.threads, func(c, lo, hi int) {
		acc := part[c*ny : (c+1)*ny]
		for i := lo; i < hi; i++ {
			for j, v := range y[i*ny : (i+1)*ny] {
				acc[j] += v * v
			}
		}
	})
	sc := make([]float64, ny)
	g.reduce(sc, part, ny)
	for j := range sc {
		sc[j] = math.Sqrt(sc[j] / float64(g.N))
		if sc[j] == 0 {
			sc[j] = 1
		}
	}
	return sc
}

// toStd maps (U, b) in data coordinates to z = (D u, b + mu^T u) (p x ny).
func (g *design) toStd(z, U, b []float64, ny int) {
	for j := 0; j < ny; j++ {
		bt := 0.0
		if b != nil {
			bt = b[j]
		}
		for k := 0; k < g.nx; k++ {
			u := 0.0
			if U != nil {
				u = U[k*ny+j]
			}
			z[k*ny+j] = g.d[k] * u
			bt += g.mu[k] * u
		}
		if g.bias {
			z[g.nx*ny+j] = bt
		}
	}
}

// fromStd maps z back to (U, b): u = D^{-1} u~, b = b~ - mu^T u.
func (g *design) fromStd(z []float64, ny int) (U, b []float64) {
	U = make([]float64, g.nx*ny)
	b = make([]float64, ny)
	for j := 0; j < ny; j++ {
		bt := 0.0
		if g.bias {
			bt = z[g.nx*ny+j]
		}
		for k := 0; k < g.nx; k++ {
			u := z[k*ny+j] / g.d[k]
			U[k*ny+j] = u
			bt -= g.mu[k] * u
		}
		if g.bias {
			b[j] = bt
		}
	}
	return U, b
}

// spectralScale estimates lambda_max(K^T diag(1/rowNorm) K) / N by power iteration (each step
// one pass of K and one of K^T with a single column), stopping once the Rayleigh quotient
// changes by less than 1e-3 relative (after at least 5 steps) or after maxIters steps. The
// estimate is at most the true value, which is at most 1 (each term K_p K_p^T / ||K_p||^2
// has norm 1); the caller adds a safety margin.
func (g *design) spectralScale(maxIters int) float64 {
	v := make([]float64, g.p)
	for k := range v {
		v[k] = 1 + 0.1*float64(k%7) // a fixed, generic start
	}
	w := make([]float64, g.n)
	u := make([]float64, g.p)
	est := 0.0
	for it := 0; it < maxIters; it++ {
		nv := math.Sqrt(dot(v, v))
		if nv == 0 {
			return 1
		}
		for k := range v {
			v[k] /= nv
		}
		g.mul(w, v, 1)
		for i := range w {
			w[i] /= g.rowNorm[i]
		}
		g.mulT(u, w, 1)
		prev := est
		est = dot(u, v) / float64(g.n)
		copy(v, u)
		if it >= 4 && math.Abs(est-prev) <= 1e-3*est {
			break
		}
	}
	return est
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i, v := range a {
		s += v * b[i]
	}
	return s
}
