package solver

import (
	"context"
	"math"
	"unsafe"

	"relutrim/internal/collective"
	"relutrim/internal/kern"
)

// One fit across several processes (docs/scale.md, "Many processes (MPI)").
//
// Every process holds a contiguous block of the fit's rows of X and Y (rank order = row
// order) and runs the same solver on it; the solver keeps everything row-local (w = K z,
// the majorisation pattern, residuals) on its process and combines what reduces over rows
// through the Comm at a handful of points:
//
//   - Prepare: the column statistics of X (means, scales, density, finiteness; scanX) and
//     the Hessian's row sample (the same rows as one process would draw, gathered to all);
//   - every pass: X^T r with its column sums (design.mulT), F, the majoriser, the pattern
//     changes (update), the line search's trial values (trialValues), the curved sample
//     rows (markCurved), and cancellation (canceled);
//   - once per solve: y's scales, the coarse start's targets, the lower bound's sums.
//
// Every reduction over rows is a sum of per-chunk partials (chunks of kern.ChunkRows rows)
// combined by the fixed chunk tree of internal/kern/tree.go. A process reduces its chunks
// to their frontier in the tree, the frontiers of all processes are all-gathered, and every
// process evaluates the root from them in the same order. When the processes' rows start
// on chunk boundaries (every block but the last a multiple of kern.ChunkRows rows), the
// chunks, their partials and the tree are those of the single-process fit, so the result
// is bitwise the single-process one for any number of processes. All other state (the
// coefficients, gradients, Newton steps) is computed redundantly and identically on every
// process. Bytes per reduction: each process sends at most about 2 log2(chunks) node values.

// Comm connects the processes of one fit. Every process calls every method in the same
// order (they are collective).
type Comm interface {
	// Rank is this process's index in [0, Size()).
	Rank() int
	// Size is the number of processes.
	Size() int
	// AllGather sends send (counts[Rank()] bytes) to every process; recv (sum of counts)
	// receives the contributions of all processes in rank order. counts are the same on
	// every process.
	AllGather(send []byte, counts []int, recv []byte)
}

// span places this process's rows among the fit's rows and combines reductions.
type span struct {
	comm       Comm // nil: one process
	rank, size int
	n, N       int   // this process's rows; the fit's rows
	rowLo      []int // size+1: the first row of each process (and N)
	chunkLo    []int // size+1: the first chunk of each process (and the chunk count)
	nc         int
	front      [][]kern.Node // per process: its frontier in the chunk tree (positions only)
	trees      [2]kern.Tree
}

// newSpan gathers the row counts of all processes (one collective when comm is set).
func newSpan(comm Comm, n int) *span {
	if comm == nil {
		return layoutSpan(nil, []int{0, n})
	}
	k := comm.Size()
	counts := make([]float64, k)
	allGatherF(comm, []float64{float64(n)}, counts)
	lo := make([]int, k+1)
	for r, c := range counts {
		lo[r+1] = lo[r] + int(c)
	}
	return layoutSpan(comm, lo)
}

// layoutSpan is the span of a known row layout (rowLo: the first row of each process and
// the total). Each process's rows form numChunks(its rows) chunks of the tree.
func layoutSpan(comm Comm, rowLo []int) *span {
	k := len(rowLo) - 1
	sp := &span{comm: comm, size: k, rowLo: rowLo, N: rowLo[k], chunkLo: make([]int, k+1)}
	if comm != nil {
		sp.rank = comm.Rank()
	}
	sp.n = rowLo[sp.rank+1] - rowLo[sp.rank]
	for r := 0; r < k; r++ {
		sp.chunkLo[r+1] = sp.chunkLo[r] + numChunks(rowLo[r+1]-rowLo[r])
	}
	sp.nc = sp.chunkLo[k]
	sp.front = make([][]kern.Node, k)
	for r := range sp.front {
		sp.front[r] = kern.Frontier(sp.chunkLo[r], sp.chunkLo[r+1], sp.nc)
	}
	return sp
}

func (sp *span) distributed() bool { return sp.comm != nil }

// reduce sets dst (width values) to the sum over the fit's chunks of their partials; part
// holds this process's chunk partials (width values per chunk, in chunk order).
func (sp *span) reduce(dst, part []float64, width int) { sp.reduceMerge(dst, part, width, nil) }

// reduceMerge is reduce with the node combination merge (nil: addition).
func (sp *span) reduceMerge(dst, part []float64, width int, merge kern.Merge) {
	t := &sp.trees[0]
	t.Reset(width, sp.chunkLo[sp.rank], sp.chunkLo[sp.rank+1], sp.nc, merge)
	for c := 0; c < sp.chunkLo[sp.rank+1]-sp.chunkLo[sp.rank]; c++ {
		t.Push(part[c*width : (c+1)*width])
	}
	sp.combine([]*kern.Tree{t}, [][]float64{dst}, []kern.Merge{merge})
}

// combine evaluates the roots of trees (each holding this process's chunks) into dsts,
// with one collective for all of them.
func (sp *span) combine(trees []*kern.Tree, dsts [][]float64, merges []kern.Merge) {
	if sp.comm == nil {
		for i, t := range trees {
			copy(dsts[i], t.Root())
		}
		return
	}
	counts := make([]int, sp.size)
	total := 0
	for r := range counts {
		for _, t := range trees {
			counts[r] += len(sp.front[r]) * t.Width()
		}
		total += counts[r]
	}
	send := make([]float64, 0, counts[sp.rank])
	for _, t := range trees {
		for _, nd := range t.Nodes() {
			send = append(send, nd.V...)
		}
	}
	recv := make([]float64, total)
	allGatherFCounts(sp.comm, send, counts, recv)
	for i, t := range trees {
		var nodes []kern.Node
		off := 0
		for r := range counts {
			o := off
			for _, u := range trees[:i] {
				o += len(sp.front[r]) * u.Width()
			}
			for _, f := range sp.front[r] {
				nodes = append(nodes, kern.Node{Lo: f.Lo, Size: f.Size, V: recv[o : o+t.Width()]})
				o += t.Width()
			}
			off += counts[r]
		}
		kern.Combine(dsts[i], nodes, sp.nc, merges[i])
	}
}

// canceled reports whether ctx is canceled on any process (a collective when distributed,
// so that all processes stop at the same iteration).
func (sp *span) canceled(ctx context.Context) bool {
	if sp.comm == nil {
		return ctx.Err() != nil
	}
	flags := sp.gatherFlag(ctx.Err() != nil)
	for _, f := range flags {
		if f {
			return true
		}
	}
	return false
}

// gatherFlag returns every process's flag.
func (sp *span) gatherFlag(f bool) []bool {
	send := []byte{0}
	if f {
		send[0] = 1
	}
	counts := make([]int, sp.size)
	for r := range counts {
		counts[r] = 1
	}
	recv := make([]byte, sp.size)
	sp.comm.AllGather(send, counts, recv)
	out := make([]bool, sp.size)
	for r, b := range recv {
		out[r] = b != 0
	}
	return out
}

// agree returns, on every process, err if this process has one, else an error naming the
// first process that failed (nil when none did): a check that can fail on one process
// only must not leave the others waiting in a collective.
func (sp *span) agree(err error) error {
	if sp.comm == nil {
		return err
	}
	st := 0
	if err != nil {
		st = 1
	}
	r, _ := collective.FirstFailure(sp.comm, st)
	if err != nil {
		return err
	}
	if r >= 0 {
		return &collective.RemoteError{Rank: r}
	}
	return nil
}

// gatherOwned all-gathers per-process blocks of a replicated array: process r owns the
// elements [lo[r], lo[r+1]) of all (float64 values), and its own block is already in place.
func (sp *span) gatherOwned(all []float64, lo []int) {
	if sp.comm == nil {
		return
	}
	counts := make([]int, sp.size)
	for r := range counts {
		counts[r] = lo[r+1] - lo[r]
	}
	send := append([]float64(nil), all[lo[sp.rank]:lo[sp.rank+1]]...)
	allGatherFCounts(sp.comm, send, counts, all[lo[0]:lo[sp.size]])
}

// gatherOwned32 is gatherOwned for float32 values.
func (sp *span) gatherOwned32(all []float32, lo []int) {
	if sp.comm == nil {
		return
	}
	counts := make([]int, sp.size)
	for r := range counts {
		counts[r] = 4 * (lo[r+1] - lo[r])
	}
	own := all[lo[sp.rank]:lo[sp.rank+1]]
	send := make([]byte, 4*len(own))
	if len(own) > 0 {
		copy(send, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(own))), 4*len(own)))
	}
	dst := all[lo[0]:lo[sp.size]]
	var recv []byte
	if len(dst) > 0 {
		recv = unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), 4*len(dst))
	}
	sp.comm.AllGather(send, counts, recv)
}

// gatherBits all-gathers per-process blocks of a replicated []bool, packed 8 to a byte:
// process r owns the elements [lo[r], lo[r+1]) of all.
func (sp *span) gatherBits(all []bool, lo []int) {
	if sp.comm == nil {
		return
	}
	counts := make([]int, sp.size)
	total := 0
	for r := range counts {
		counts[r] = (lo[r+1] - lo[r] + 7) / 8
		total += counts[r]
	}
	own := all[lo[sp.rank]:lo[sp.rank+1]]
	send := make([]byte, counts[sp.rank])
	for i, b := range own {
		if b {
			send[i/8] |= 1 << (i % 8)
		}
	}
	recv := make([]byte, total)
	sp.comm.AllGather(send, counts, recv)
	off := 0
	for r := range counts {
		blk := all[lo[r]:lo[r+1]]
		for i := range blk {
			blk[i] = recv[off+i/8]&(1<<(i%8)) != 0
		}
		off += counts[r]
	}
}

// bytesOf views a []float64 as its bytes (processes of one fit share the byte order).
func bytesOf(f []float64) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(f))), len(f)*8)
}

// allGatherF all-gathers one block of len(send) float64s per process (equal sizes).
func allGatherF(c Comm, send, recv []float64) {
	counts := make([]int, c.Size())
	for r := range counts {
		counts[r] = len(send)
	}
	allGatherFCounts(c, send, counts, recv)
}

// allGatherFCounts all-gathers counts[r] float64s from process r.
func allGatherFCounts(c Comm, send []float64, counts []int, recv []float64) {
	bc := make([]int, len(counts))
	for r, n := range counts {
		bc[r] = 8 * n
	}
	c.AllGather(bytesOf(send), bc, bytesOf(recv))
}

// Agree returns, on every process of the fit, err if this process has one, else a
// *collective.RemoteError naming the first process that had one (nil when none did): callers of
// Prepared's methods use it after a check that can fail on some processes only. Without
// a Comm it returns err.
func (pr *Prepared) Agree(err error) error { return pr.g.sp.agree(err) }

// YStats returns, over the fit's rows, each output's mean and whether it has an entry > 0
// (Y: this process's rows).
func (pr *Prepared) YStats(Y Matrix) (mean []float64, anyPositive []bool) {
	g, ny := pr.g, Y.Cols
	y := yF64(Y)
	sums := make([]float64, 2*ny)
	g.reduce(sums, g.rowSums(2*ny, func(i int, acc []float64) {
		for j, v := range y[i*ny : (i+1)*ny] {
			acc[j] += v
			if v > 0 {
				acc[ny+j]++
			}
		}
	}), 2*ny)
	mean, anyPositive = sums[:ny], make([]bool, ny)
	for j := range mean {
		mean[j] /= float64(g.N)
		anyPositive[j] = sums[ny+j] > 0
	}
	return mean, anyPositive
}

// Correlations returns the marginal correlations |(1/N) x_k^T (y_j - mean_j)| (Nx x Ny,
// over the fit's rows; X column-centred with a bias) given the outputs' means (YStats; nil
// without a bias: then |(1/N) x_k^T y_j|). Y: this process's rows. One product with X^T.
func (pr *Prepared) Correlations(Y Matrix, mean []float64) []float64 {
	g, ny := pr.g, Y.Cols
	y := yF64(Y)
	a := make([]float64, g.n*ny)
	for i := range a {
		a[i] = y[i]
		if mean != nil {
			a[i] -= mean[i%ny]
		}
	}
	G := make([]float64, g.nx*ny)
	var s []float64
	if g.bias {
		s = make([]float64, ny)
	}
	g.xta(G, s, a, ny)
	for k := 0; k < g.nx; k++ {
		for j := 0; j < ny; j++ {
			v := G[k*ny+j]
			if g.bias {
				v -= g.mu[k] * s[j] // X_c^T a = X^T a - mu 1^T a (1^T a ~ 0 with the means)
			}
			G[k*ny+j] = math.Abs(v) / float64(g.N)
		}
	}
	return G
}
