package solver

// The fused pass at a new point: complete the move of w, re-majorise, evaluate F and the
// majoriser, and form the gradient, in one read of X.

// settle is the pass at a new point, one read of X: per chunk of rows it completes the
// move of w (init: w = K z for every output; else w += (alpha_j - 1) K d_j for the outputs
// in fix, whose line search wrote w + K d_j but accepted alpha_j != 1), re-majorises the
// outputs of act past their cold round (every output if all), sums F and the majoriser's
// value per output, and forms the residual r = (w - y) [curved] of the chunk, from which
// the same pass accumulates the gradient grad = K^T r / N and the KKT residuals of act. No
// n x ny array besides w exists.
func (nt *newton) settle(act, fix []int, all, init bool) {
	ny, na, n, p := nt.ny, len(act), nt.n, nt.p
	const width = 3
	part := make([]float64, numChunks(n)*width*na)
	isId := nt.link == Identity
	remajs := make([]bool, na) // re-majorise this column: warm outputs, or all
	for jj, j := range act {
		remajs[jj] = all || !nt.cold[j]
	}
	var B []float64 // p x k: z (init) or the directions of fix
	k := 0
	step := make([]float64, len(fix)) // alpha_j - 1 per column of fix
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
	W, Yv, Up := nt.w, nt.y, nt.upper // locals: the compiler cannot keep fields
	gc := growF(&nt.pna, p*na)        // K^T r for the columns act
	nt.g.pass(gc, B, k, na, func(c, lo, hi int, kb, r []float64) {
		acc := part[c*width*na : (c+1)*width*na]
		for i := lo; i < hi; i++ { // the moves
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
		// Per output, the chunk's rows in order, with the sums in registers (the same
		// sequence of additions per output as a row-major loop).
		for jj, j := range act {
			remaj := remajs[jj]
			var tsum, ssum, nch float64
			rc := r[jj:]
			if isId { // every term is its own quadratic
				for i := lo; i < hi; i++ {
					idx := i*ny + j
					e := W[idx] - Yv[idx]
					tsum += e * e
					ssum += e * e
					rc[(i-lo)*na] = e
				}
			} else {
				for i := lo; i < hi; i++ {
					idx := i*ny + j
					w, y := W[idx], Yv[idx]
					up := Up.get(idx)
					if remaj && y > 0 && (w >= 0) != up {
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
			}
			acc[width*jj] += tsum
			acc[width*jj+1] += ssum
			acc[width*jj+2] += nch
		}
	})
	sums := make([]float64, width*na)
	nt.g.reduce(sums, part, width*na)
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
