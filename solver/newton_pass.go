package solver

// The fused pass at a new point: complete the move of w, re-majorise, evaluate F and the
// majoriser, and form the gradient, in one read of X.

// majorize is the first pass of a run: w = K z for every output, every output of act
// majorised at w, and F, the majoriser and the gradient at z (settle).
func (nt *newton) majorize(act []int) { nt.settle(act, nil, true) }

// remajorize is the pass after a step, the next CCP round: it completes the move to
// z + alpha d (w of the outputs in fix, whose line search accepted alpha != 1),
// re-majorises the outputs of act past their cold round at the new w (remajorizeTerm), and
// forms F, the majoriser and the gradient there (settle).
func (nt *newton) remajorize(act, fix []int) { nt.settle(act, fix, false) }

// settle is the pass at a new point, one read of X: per chunk of rows it completes the
// move of w (init: w = K z for every output; else w += (alpha_j - 1) K d_j for the outputs
// in fix, whose line search wrote w + K d_j but accepted alpha_j != 1), re-majorises the
// outputs of act past their cold round (every output if init), sums F and the majoriser's
// value per output, and forms the residual r = (w - y) [curved] of the chunk, from which
// the same pass accumulates the gradient grad = K^T r / N (settleOutputs). No n x ny array
// besides w exists.
func (nt *newton) settle(act, fix []int, init bool) {
	ny, na, n, p := nt.ny, len(act), nt.n, nt.p
	const width = 3
	part := make([]float64, numChunks(n)*width*na)
	isId := nt.link == Identity
	remajs := make([]bool, na) // re-majorise this column: warm outputs, or all
	for jj, j := range act {
		remajs[jj] = init || !nt.cold[j]
	}
	B, k, step := nt.moves(fix, init)
	W, Yv, Up := nt.w, nt.y, nt.upper // locals: the compiler cannot keep fields
	gc := growF(&nt.pna, p*na)        // K^T r for the columns act
	nt.g.pass(gc, B, k, na, func(c, lo, hi int, kb, r []float64) {
		acc := part[c*width*na : (c+1)*width*na]
		moveRows(W, kb, lo, hi, ny, k, fix, step, init)
		// Per output, the chunk's rows in order, with the sums in registers (the same
		// sequence of additions per output as a row-major loop).
		for jj, j := range act {
			var tsum, ssum, nch float64
			rc := r[jj:]
			if isId { // every term is its own quadratic
				tsum, ssum = identityTerms(W, Yv, rc, lo, hi, ny, na, j)
			} else {
				tsum, ssum, nch = reluTerms(W, Yv, Up, rc, lo, hi, ny, na, j, remajs[jj])
			}
			acc[width*jj] += tsum
			acc[width*jj+1] += ssum
			acc[width*jj+2] += nch
		}
	})
	sums := make([]float64, width*na)
	nt.g.reduce(sums, part, width*na)
	nt.settleOutputs(act, sums, gc, width, init)
}

// moves returns the p x k matrix B whose product the pass computes (init: z, k = ny; else
// the directions of fix) and, per column of fix, alpha_j - 1.
func (nt *newton) moves(fix []int, init bool) (B []float64, k int, step []float64) {
	ny, p := nt.ny, nt.p
	step = make([]float64, len(fix)) // alpha_j - 1 per column of fix
	switch {
	case init:
		B, k = nt.z, ny
	case len(fix) > 0:
		k = len(fix)
		B = make([]float64, p*k)
		for f, j := range fix {
			for c := 0; c < p; c++ {
				B[c*k+f] = nt.d[c*ny+j]
			}
			step[f] = nt.alpha[j] - 1
		}
	}
	return B, k, step
}

// moveRows completes the move of w on rows lo..hi from kb = (K B) of the chunk: w = K z
// (init) or w += (alpha_j - 1) K d_j for the outputs in fix.
func moveRows(W, kb []float64, lo, hi, ny, k int, fix []int, step []float64, init bool) {
	for i := lo; i < hi; i++ {
		wr := W[i*ny : (i+1)*ny]
		kr := kb[(i-lo)*k : (i-lo+1)*k]
		if init {
			copy(wr, kr)
		} else {
			for f, j := range fix {
				wr[j] += step[f] * kr[f]
			}
		}
	}
}

// identityTerms sums, for output j on rows lo..hi of the identity link, F's terms and the
// majoriser's (the same: every term is its own quadratic) and writes the residuals
// w - y into rc (stride na).
func identityTerms(W, Yv, rc []float64, lo, hi, ny, na, j int) (tsum, ssum float64) {
	for i := lo; i < hi; i++ {
		idx := i*ny + j
		e := W[idx] - Yv[idx]
		tsum += e * e
		ssum += e * e
		rc[(i-lo)*na] = e
	}
	return tsum, ssum
}

// reluTerms sums, for output j on rows lo..hi of the ReLU link, F's terms and the
// majoriser's, and writes the majoriser's residuals into rc (stride na). With remaj it
// first re-majorises every term at w (remajorizeTerm) and counts the pattern changes.
func reluTerms(W, Yv []float64, Up bitset, rc []float64, lo, hi, ny, na, j int, remaj bool) (tsum, ssum, nch float64) {
	for i := lo; i < hi; i++ {
		idx := i*ny + j
		w, y := W[idx], Yv[idx]
		up := Up.get(idx)
		if remaj && remajorizeTerm(w, y, up) {
			up = !up
			Up.flip(idx)
			nch++
		}
		if w < 0 { // the term: (relu(w) - y)^2
			tsum += y * y
		} else {
			e := w - y
			tsum += e * e
		}
		sv, rv := majorizer(w, y, up, false)
		ssum += sv
		rc[(i-lo)*na] = rv
	}
	return tsum, ssum, nch
}

// remajorizeTerm reports whether re-majorising a ReLU term at w changes its majoriser: a
// term with y > 0 takes the full quadratic when w >= 0 and the one-sided majoriser when
// w < 0 (prox.go, surrogateZ); terms with y <= 0 keep theirs.
func remajorizeTerm(w, y float64, upper bool) bool {
	return y > 0 && (w >= 0) != upper
}

// settleOutputs sets, from the pass's sums, F, the majoriser and the pattern changes of
// every output of act at the new point, and its gradient there.
func (nt *newton) settleOutputs(act []int, sums, gc []float64, width int, init bool) {
	ny, na, p := nt.ny, len(act), nt.p
	inv := 1 / (2 * float64(nt.N))
	invN := 1 / float64(nt.N)
	for jj, j := range act {
		l1 := nt.l1(nt.z, j, 0, nil)
		if a := nt.alpha[j]; !init && a != 0 {
			l1 = nt.l1(nt.z, j, a, nt.d)
		}
		nt.fOut[j] = sums[width*jj]*inv + l1
		nt.phi[j] = sums[width*jj+1]*inv + l1
		nt.changes[j] = int(sums[width*jj+2])
		// The gradient at the new point (z + alpha d, which the caller forms after).
		for c := 0; c < p; c++ {
			nt.grad[c*ny+j] = gc[c*na+jj] * invN
		}
	}
}

// bitset is a packed []bool: the majorisation pattern takes one bit per entry of the
// n x ny array. Row chunks (kern.ChunkRows rows, a multiple of 64) own whole words, so
// the chunks of a pass may set their bits concurrently.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) get(i int) bool { return b[i>>6]>>(uint(i)&63)&1 != 0 }

func (b bitset) flip(i int) { b[i>>6] ^= 1 << (uint(i) & 63) }

// growF returns (*b)[:n], reallocating *b when it is too small.
func growF(b *[]float64, n int) []float64 {
	if cap(*b) < n {
		*b = make([]float64, n)
	}
	*b = (*b)[:n]
	return *b
}
