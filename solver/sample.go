package solver

import (
	"math/rand/v2"
	"sort"
	"sync"

	"relutrim/internal/kern"
)

// hessianRows is the number of rows from which the Newton solver estimates curvature. The
// gradient always uses every row; the Hessian only shapes the step, and the line search on
// the true surrogate keeps every step a descent step whatever the estimate. 20,000 rows was
// the choice of a numpy prototype of this solver: 2.1-2.9x faster
// than scipy's L-BFGS-B on the planted M and L problems, against 0.2x with the exact Gram
// rebuilt at every step.
const hessianRows = 20000

// sample is a fixed subset of X's rows, built once per Prepared and shared by all fits on
// it. The rows are kept as in X (not standardised), so that sparse inputs stay sparse:
// Grams are accumulated from the non-zeros and then mapped to the standardised
// coordinates of K (toK).
type sample struct {
	rows []int // sorted row indices into X (the fit's rows, across processes)
	// This process holds the sample rows [own0, own1) (positions in rows), its rows of X
	// starting at the fit's row off; sp gathers what the owners compute about them
	// (markCurved, gatherOwned). In one process own0 = 0, own1 = len(rows), off = 0.
	own0, own1, off int
	sp              *span
	ownLo           []int // per process: its first sample position (and len(rows))
	nx              int   // feature columns
	bias            bool  // K has a bias column (coordinate nx)
	// xs holds X's rows (len(rows) x nx, row-major; nil for sparse samples of small X),
	// rounded to float32: the sample only shapes the steps (the metric) and the coarse
	// start, both checked against the exact data by the line search and the full fit, and
	// its float64 copy was 2% of a float64 X's memory (the L problem's 1.25x budget).
	xs    []float32
	mu, d []float64 // the design's standardisation (K = (X - mu) / d)
	invD  []float64 // 1 / d
	// nnz counts the non-zeros; for sparse samples (!dense) nzIdx/nzVal/nzPtr list the
	// non-zero columns of each row (CSR pattern of xs).
	nnz   int
	nzIdx []int32
	nzVal []float64
	nzPtr []int
	// colDens is each column's fraction of non-zeros in the sample.
	colDens []float64

	gramOnce sync.Once
	gram     []float64 // p x p: K_S^T K_S / S, the shared metric (built on first use)
}

// newSample draws min(N, rows) of the fit's N rows by selection sampling (Knuth's
// algorithm S: sorted, O(N) time, O(S) memory, deterministic: a fixed seed). Across
// processes every process draws the same rows, reads those it holds and all-gathers them.
func newSample(g *design, threads, hrows int) *sample {
	n, nx := g.N, g.nx
	s := min(n, hrows)
	rows := make([]int, 0, s)
	if s == n {
		for i := 0; i < n; i++ {
			rows = append(rows, i)
		}
	} else {
		r := rand.New(rand.NewPCG(0x5a3b1e, 0x9e3779b9))
		for i := 0; i < n && len(rows) < s; i++ {
			if r.IntN(n-i) < s-len(rows) {
				rows = append(rows, i)
			}
		}
	}
	sp := g.sp
	ownLo := make([]int, sp.size+1)
	for r := 1; r <= sp.size; r++ {
		ownLo[r] = sort.SearchInts(rows, sp.rowLo[r])
	}
	off := sp.rowLo[sp.rank]
	xs := make([]float32, len(rows)*nx)
	own0, own1 := ownLo[sp.rank], ownLo[sp.rank+1]
	forChunks(own1-own0, threads, func(_, lo, hi int) {
		buf := make([]float64, nx)
		for r := own0 + lo; r < own0+hi; r++ {
			for k, v := range g.X.Row(buf, rows[r]-off) {
				xs[r*nx+k] = float32(v)
			}
		}
	})
	nxLo := make([]int, len(ownLo))
	for r, v := range ownLo {
		nxLo[r] = v * nx
	}
	sp.gatherOwned32(xs, nxLo)
	smp := &sample{rows: rows, nx: nx, bias: g.bias, xs: xs, mu: g.mu, d: g.d,
		own0: own0, own1: own1, off: off, sp: sp, ownLo: ownLo}
	smp.index()
	if !smp.dense() && n < coarseMinRatio*hrows {
		// Sparse rows live in the non-zero pattern; the dense copy is only needed as the
		// design of the coarse start, which fits with fewer rows do not make (on the W
		// problem the copy was as large as X).
		smp.xs = nil
	}
	return smp
}

// index computes what the Grams need from the sample's rows xs: the non-zero count, the
// non-zeros' pattern (sparse samples), each column's density and 1/d.
func (smp *sample) index() {
	rows, nx, xs := smp.rows, smp.nx, smp.xs
	smp.colDens = make([]float64, nx)
	nnz := 0
	for _, v := range xs {
		if v != 0 {
			nnz++
		}
	}
	smp.nnz = nnz
	if !smp.dense() { // the non-zeros' pattern, for rawGram
		smp.nzPtr = make([]int, len(rows)+1)
		smp.nzIdx, smp.nzVal = make([]int32, 0, nnz), make([]float64, 0, nnz)
		for r := range rows {
			for k, v := range xs[r*nx : (r+1)*nx] {
				if v != 0 {
					smp.nzIdx = append(smp.nzIdx, int32(k))
					smp.nzVal = append(smp.nzVal, float64(v))
				}
			}
			smp.nzPtr[r+1] = len(smp.nzIdx)
		}
	}
	for r := range rows {
		for k, v := range xs[r*nx : (r+1)*nx] {
			if v != 0 {
				smp.colDens[k]++
			}
		}
	}
	smp.invD = make([]float64, nx)
	for k := range smp.invD {
		smp.invD[k] = 1 / smp.d[k]
	}
	for k := range smp.colDens {
		smp.colDens[k] /= float64(len(rows))
	}
}

// gatherY returns y's rows at the sample (len(rows) x ny) on every process, from y, this
// process's rows (n x ny).
func (s *sample) gatherY(y []float64, ny int) []float64 {
	ys := make([]float64, len(s.rows)*ny)
	for r := s.own0; r < s.own1; r++ {
		i := s.rows[r] - s.off
		copy(ys[r*ny:(r+1)*ny], y[i*ny:(i+1)*ny])
	}
	lo := make([]int, len(s.ownLo))
	for r, v := range s.ownLo {
		lo[r] = v * ny
	}
	s.sp.gatherOwned(ys, lo)
	return ys
}

// dense reports whether the sample is dense enough (half its entries non-zero) for Grams
// by gathered dense blocks (gatherK) rather than from the non-zeros (rawGram).
func (s *sample) dense() bool {
	return 2*s.nnz >= len(s.rows)*s.nx
}

// gramBlockRows is the number of sample rows gathered at a time by kGram: the gathered
// copy stays one chunk (the whole S x m copy of K's columns was as large as the sample).
const gramBlockRows = kern.ChunkRows

// kGram sets H (m x m, m = len(ws)) = sum over the sample rows r in [lo, hi) with use(r)
// of K_{r,ws}^T K_{r,ws} (not normalised; a trailing nx in ws stands for the bias, 1). The
// rows are gathered gramBlockRows at a time into sc's buffer and multiplied by the blocked
// product kernel (kern.Gram, built for this tall-thin shape; single-threaded: callers run
// in parallel), whose block products are added in block order into H. sc's buffers are
// reused across calls. Unused rows of the last block are zero and add exact zeros.
func (s *sample) kGram(ws []int, lo, hi int, use func(r int) bool, H []float64, sc *gramScratch) {
	m := len(ws)
	B := growF(&sc.buf, gramBlockRows*m)
	T := growF(&sc.tmp, m*m)
	clear(H[:m*m])
	o := 0
	flush := func() {
		clear(B[o*m:])
		kern.Gram(T, B, gramBlockRows, m, &sc.k)
		for i, v := range T {
			H[i] += v
		}
		o = 0
	}
	for r := lo; r < hi; r++ {
		if use != nil && !use(r) {
			continue
		}
		row, out := s.xs[r*s.nx:(r+1)*s.nx], B[o*m:(o+1)*m]
		for a, k := range ws {
			if k == s.nx {
				out[a] = 1
			} else {
				out[a] = (float64(row[k]) - s.mu[k]) * s.invD[k]
			}
		}
		if o++; o == gramBlockRows {
			flush()
		}
	}
	if o > 0 {
		flush()
	}
}

// gramScratch is the reusable scratch of kGram (one per goroutine).
type gramScratch struct {
	buf, tmp []float64
	k        kern.GramScratch
}

// design returns the sample as a design of its own with the parent's standardisation: the
// operator of the subsampled problem that warm-starts a large fit (newton_coarse.go). Across
// processes every process holds all sample rows; the subproblem's rows are split between
// them on chunk boundaries (kern.SplitRows), so that it is the single-process subproblem
// bitwise. The second result is the subproblem's own Hessian sample: every step-th of its
// rows (all of them for step <= 1).
func (s *sample) design(threads, step int) (*design, *sample) {
	m := len(s.rows)
	density := float64(s.nnz) / float64(max(1, m*s.nx))
	sp := layoutSpan(nil, []int{0, m})
	if s.sp.distributed() {
		sp = layoutSpan(s.sp.comm, kern.SplitRows(m, s.sp.size))
		density = 1
	}
	lo, hi := sp.rowLo[sp.rank], sp.rowLo[sp.rank+1]
	X := newKern(Matrix{Rows: hi - lo, Cols: s.nx, F32: s.xs[lo*s.nx : hi*s.nx]}, threads, density)
	g := &design{X: X, n: hi - lo, N: m, sp: sp, nx: s.nx, p: s.nx, bias: s.bias, threads: threads,
		mu: s.mu, d: s.d, passFrac: passFrac(density)}
	if s.bias {
		g.p++
	}
	if step <= 1 {
		all := make([]int, m)
		for i := range all {
			all[i] = i
		}
		whole := &sample{rows: all, nx: s.nx, bias: s.bias, xs: s.xs, mu: s.mu, d: s.d, invD: s.invD,
			nnz: s.nnz, nzIdx: s.nzIdx, nzVal: s.nzVal, nzPtr: s.nzPtr, colDens: s.colDens,
			own0: lo, own1: hi, off: lo, sp: sp, ownLo: sp.rowLo}
		return g, whole
	}
	var sel []int
	for i := 0; i < m; i += step {
		sel = append(sel, i)
	}
	xs := make([]float32, len(sel)*s.nx)
	for r, i := range sel {
		copy(xs[r*s.nx:(r+1)*s.nx], s.xs[i*s.nx:(i+1)*s.nx])
	}
	ownLo := make([]int, len(sp.rowLo))
	for r, v := range sp.rowLo {
		ownLo[r] = sort.SearchInts(sel, v)
	}
	whole := &sample{rows: sel, nx: s.nx, bias: s.bias, xs: xs, mu: s.mu, d: s.d,
		own0: ownLo[sp.rank], own1: ownLo[sp.rank+1], off: lo, sp: sp, ownLo: ownLo}
	whole.index()
	return g, whole
}

// rawGram accumulates, over the sample rows r in [lo, hi) with use(r) true (use may be nil), the raw products of the
// feature columns in ws (ascending; a trailing nx stands for the bias and is skipped):
// A[a][b] += x_a x_b (upper triangle, m x m with m = len(ws)), s[a] += x_a, and returns
// the number of rows used. pos maps a column to its place in ws (or -1); it must be
// all -1 on entry and is restored. Only non-zeros are visited.
func (s *sample) rawGram(ws []int, pos []int, lo, hi int, use func(r int) bool, A, sum []float64, nzbuf []int, valbuf []float64) int {
	m := len(ws)
	for a, k := range ws {
		if k < s.nx {
			pos[k] = a
		}
	}
	dense := make([]float64, m)
	c := 0
	for r := lo; r < hi; r++ {
		if use != nil && !use(r) {
			continue
		}
		c++
		nz, val := nzbuf[:0], valbuf[:0]
		lo, hi := s.nzPtr[r], s.nzPtr[r+1]
		vals := s.nzVal[lo:hi]
		for t, k := range s.nzIdx[lo:hi] {
			if a := pos[k]; a >= 0 {
				nz = append(nz, a)
				val = append(val, vals[t])
			}
		}
		if len(nz)*4 < m {
			for t, a := range nz { // nz ascending: a <= b gives the upper triangle
				va := val[t]
				sum[a] += va
				h := A[a*m : (a+1)*m]
				for u := t; u < len(nz); u++ {
					h[nz[u]] += va * val[u]
				}
			}
		} else {
			// Denser rows: scatter the row into dense, then one vectorised axpy per non-zero
			// (gonum's assembly kernel): more flops than the pairs, but several times faster.
			for t, a := range nz {
				dense[a] = val[t]
			}
			for t, a := range nz {
				va := val[t]
				sum[a] += va
				kern.Axpy(A[a*m+a:(a+1)*m], va, dense[a:m])
			}
			for _, a := range nz {
				dense[a] = 0
			}
		}
	}
	for _, k := range ws {
		if k < s.nx {
			pos[k] = -1
		}
	}
	return c
}

// toK maps raw accumulations (A upper triangle over ws's features, sums, count c) to the
// Gram of K's columns ws over the same rows, divided by S, in H (full m x m):
//
//	K_a = (x_a - mu_a) / d_a,  K_bias = 1
//	sum K_a K_b = (A_ab - mu_a s_b - mu_b s_a + mu_a mu_b c) / (d_a d_b)
func (s *sample) toK(ws []int, A, sum []float64, c int, H []float64) {
	m := len(ws)
	inv := 1 / float64(len(s.rows))
	cf := float64(c)
	for a, ka := range ws {
		for b := a; b < m; b++ {
			kb := ws[b]
			var v float64
			switch {
			case ka == s.nx: // bias x bias (the bias is last, so kb is too)
				v = cf
			case kb == s.nx: // feature x bias
				v = (sum[a] - s.mu[ka]*cf) / s.d[ka]
			default:
				v = (A[a*m+b] - s.mu[ka]*sum[b] - s.mu[kb]*sum[a] + s.mu[ka]*s.mu[kb]*cf) / (s.d[ka] * s.d[kb])
			}
			v *= inv
			H[a*m+b], H[b*m+a] = v, v
		}
	}
}

// sharedGram returns K_S^T K_S / S (p x p), computing it on first use; built reports
// whether this call built it. Rows are split into fixed blocks whose partial Grams are
// added in block order (deterministic for any thread count).
func (s *sample) sharedGram(p, threads int) (gram []float64, built bool) {
	s.gramOnce.Do(func() {
		const blocks = 8
		S := len(s.rows)
		ws := make([]int, p)
		for k := range ws {
			ws[k] = k
		}
		if s.dense() {
			// Fixed row ranges (not per thread), each gathered by blocks (kGram), added in
			// range order: deterministic for any thread count.
			Hs := make([][]float64, blocks)
			var wg sync.WaitGroup
			pool := make(chan *gramScratch, kern.Workers(threads, blocks)) // one gather buffer per goroutine
			for range cap(pool) {
				pool <- &gramScratch{}
			}
			for b := 0; b < blocks; b++ {
				wg.Add(1)
				sc := <-pool
				go func(b int) {
					defer wg.Done()
					defer func() { pool <- sc }()
					Hs[b] = make([]float64, p*p)
					s.kGram(ws, b*S/blocks, (b+1)*S/blocks, nil, Hs[b], sc)
				}(b)
			}
			wg.Wait()
			gram := Hs[0]
			inv := 1 / float64(S)
			for i := range gram {
				for b := 1; b < blocks; b++ {
					gram[i] += Hs[b][i]
				}
				gram[i] *= inv
			}
			s.gram, built = gram, true
			return
		}
		nx := s.nx
		As := make([][]float64, blocks)
		sums := make([][]float64, blocks)
		var wg sync.WaitGroup
		sem := make(chan struct{}, kern.Workers(threads, blocks))
		for b := 0; b < blocks; b++ {
			wg.Add(1)
			sem <- struct{}{}
			go func(b int) {
				defer wg.Done()
				defer func() { <-sem }()
				lo, hi := b*S/blocks, (b+1)*S/blocks
				A, sum := make([]float64, p*p), make([]float64, p)
				pos := make([]int, nx)
				for k := range pos {
					pos[k] = -1
				}
				s.rawGram(ws, pos, lo, hi, nil, A, sum, make([]int, 0, p), make([]float64, 0, p))
				As[b], sums[b] = A, sum
			}(b)
		}
		wg.Wait()
		A, sum := As[0], sums[0]
		for b := 1; b < blocks; b++ {
			for i, v := range As[b] {
				A[i] += v
			}
			for i, v := range sums[b] {
				sum[i] += v
			}
		}
		gram := make([]float64, p*p)
		s.toK(ws, A, sum, S, gram)
		s.gram = gram
		built = true
	})
	return s.gram, built
}
