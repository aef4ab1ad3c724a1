package prune

import (
	"math"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"

	"relutrim/internal/kern"
)

// normalEq holds the normal equations of a linear least-squares fit of Y (rows x out) on
// [X 1] (rows x d, d = in + 1; without the 1 when noBias): G = [X 1]^T [X 1] (d x d, full)
// and C = [X 1]^T Y (d x out), and ridge, the small multiple of G's largest diagonal entry
// added to the diagonal of every solve (lsOnSupport).
type normalEq struct {
	G, C   []float64
	d, in  int
	out    int
	noBias bool
	ridge  float64
	yy     []float64 // per output: sum of Y's squares
	yyAll  float64
}

// newNormalEq forms the normal equations of Y on [X 1] (G by a symmetric rank-k update).
func newNormalEq(X []float64, rows, in int, Y []float64, out int, noBias bool) *normalEq {
	d := in + 1
	if noBias {
		d = in
	}
	xa := X
	if !noBias {
		xa = make([]float64, rows*d)
		for r := 0; r < rows; r++ {
			copy(xa[r*d:r*d+in], X[r*in:(r+1)*in])
			xa[r*d+in] = 1
		}
	}
	A := blas64.General{Rows: rows, Cols: d, Stride: d, Data: xa}
	G := blas64.Symmetric{N: d, Stride: d, Uplo: blas.Upper, Data: make([]float64, d*d)}
	blas64.Syrk(blas.Trans, 1, A, 0, G)
	for i := 0; i < d; i++ { // mirror the upper triangle
		for j := i + 1; j < d; j++ {
			G.Data[j*d+i] = G.Data[i*d+j]
		}
	}
	Yg := blas64.General{Rows: rows, Cols: out, Stride: out, Data: Y}
	C := blas64.General{Rows: d, Cols: out, Stride: out, Data: make([]float64, d*out)}
	blas64.Gemm(blas.Trans, blas.NoTrans, 1, A, Yg, 0, C)
	ne := &normalEq{G: G.Data, C: C.Data, d: d, out: out, in: in, noBias: noBias, yy: make([]float64, out)}
	for r := 0; r < rows; r++ {
		for o, v := range Y[r*out : (r+1)*out] {
			ne.yy[o] += v * v
		}
	}
	for _, v := range ne.yy {
		ne.yyAll += v
	}
	for i := 0; i < d; i++ {
		ne.ridge = math.Max(ne.ridge, ne.G[i*d+i])
	}
	// A relative ridge far below the data's scale: it only keeps a support with a
	// column that is zero on these rows (or collinear columns) solvable.
	ne.ridge = 1e-9*ne.ridge + 1e-300
	return ne
}

// fitMask solves, for every output o, the least-squares fit of Y's column o on the inputs
// i with mask[i*out+o] (In x Out, as the solver's U) and the bias: the exact refit of a
// linear (identity-link) layer on a fixed support. It returns U (In x Out) and B.
func (ne *normalEq) fitMask(mask []bool, threads int) (U, B []float64) {
	in, out := ne.in, ne.out
	U, B = make([]float64, in*out), make([]float64, out)
	forOutputs(out, threads, func(o int) {
		var s []int
		for i := 0; i < in; i++ {
			if mask[i*out+o] {
				s = append(s, i)
			}
		}
		if !ne.noBias {
			s = append(s, in)
		}
		w := lsOnSupport(ne.G, ne.C, ne.d, out, o, s, ne.ridge)
		for a, i := range s {
			if i == in {
				B[o] = w[a]
			} else {
				U[i*out+o] = w[a]
			}
		}
	})
	return U, B
}

// forOutputs calls f(o) for o in [0, n) on up to threads goroutines (kern.Workers: 0
// means all CPUs; never more than n).
func forOutputs(n, threads int, f func(o int)) {
	threads = kern.Workers(threads, n)
	var wg sync.WaitGroup
	next := make(chan int, n)
	for o := 0; o < n; o++ {
		next <- o
	}
	close(next)
	for t := 0; t < threads; t++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range next {
				f(o)
			}
		}()
	}
	wg.Wait()
}

// prefixFits solves output o's least-squares fits on nested supports: s lists the
// support's coordinates (inputs, and in for the bias) in the order they enter, and lens
// (ascending) the prefix lengths to fit. For each it returns the weights on s[:len] and
// the explained sum of squares w . C_S,o. The Cholesky factor of the longest prefix's
// (ridged) Gram serves them all: a leading block of the factor is the factor of the
// leading block, and so is the forward solve, so each prefix costs one back substitution.
// Prefixes past a pivot that is not positive fall back to lsOnSupport.
func (ne *normalEq) prefixFits(o int, s []int, lens []int) (ws [][]float64, fits []float64) {
	n := 0
	if len(lens) > 0 {
		n = lens[len(lens)-1]
	}
	d, out := ne.d, ne.out
	// L: the lower Cholesky factor of (G_SS + ridge I), row-major n x n; good: its first
	// good rows are valid.
	L := make([]float64, n*n)
	for r, i := range s[:n] {
		for q, j := range s[:r+1] {
			L[r*n+q] = ne.G[i*d+j]
		}
		L[r*n+r] += ne.ridge
	}
	good := n
	for j := 0; j < n; j++ {
		row := L[j*n : j*n+j+1]
		v := row[j]
		for k := 0; k < j; k++ {
			v -= row[k] * row[k]
		}
		if !(v > 0) {
			good = j
			break
		}
		row[j] = math.Sqrt(v)
		for i := j + 1; i < n; i++ {
			ri := L[i*n : i*n+j+1]
			t := ri[j]
			for k := 0; k < j; k++ {
				t -= ri[k] * row[k]
			}
			ri[j] = t / row[j]
		}
	}
	// Forward solve L y = b over the good rows.
	y := make([]float64, good)
	for r := 0; r < good; r++ {
		t := ne.C[s[r]*out+o]
		for q := 0; q < r; q++ {
			t -= L[r*n+q] * y[q]
		}
		y[r] = t / L[r*n+r]
	}
	for _, m := range lens {
		if m > good {
			w := lsOnSupport(ne.G, ne.C, d, out, o, s[:m], ne.ridge)
			f := 0.0
			for a, i := range s[:m] {
				f += w[a] * ne.C[i*out+o]
			}
			ws, fits = append(ws, w), append(fits, f)
			continue
		}
		// Back solve L_m^T w = y_m; the explained sum of squares is ||y_m||^2.
		w := make([]float64, m)
		f := 0.0
		for r := m - 1; r >= 0; r-- {
			t := y[r]
			for q := r + 1; q < m; q++ {
				t -= L[q*n+r] * w[q]
			}
			w[r] = t / L[r*n+r]
			f += y[r] * y[r]
		}
		ws, fits = append(ws, w), append(fits, f)
	}
	return ws, fits
}
