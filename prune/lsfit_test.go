package prune

import (
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// lsReference solves min ||y - A w|| for the columns cols of X (and a column of ones for
// the bias when bias) by gonum's QR factorisation: an independent least-squares solver
// (no normal equations, no Cholesky).
func lsReference(X []float64, rows, in int, y []float64, cols []int, bias bool) ([]float64, float64) {
	m := len(cols)
	if bias {
		m++
	}
	A := mat.NewDense(rows, m, nil)
	for r := 0; r < rows; r++ {
		for a, i := range cols {
			A.Set(r, a, X[r*in+i])
		}
		if bias {
			A.Set(r, m-1, 1)
		}
	}
	var w mat.VecDense
	if err := w.SolveVec(A, mat.NewVecDense(rows, y)); err != nil {
		panic(err)
	}
	var fit mat.VecDense
	fit.MulVec(A, &w)
	ess := 0.0 // explained sum of squares: ||A w||^2 (= w . A^T y at the optimum)
	for r := 0; r < rows; r++ {
		ess += fit.AtVec(r) * fit.AtVec(r)
	}
	return w.RawVector().Data, ess
}

func randomLS(seed uint64, rows, in, out int) (X, Y []float64) {
	r := rand.New(rand.NewPCG(seed, 7))
	X, Y = make([]float64, rows*in), make([]float64, rows*out)
	for i := range X {
		X[i] = r.NormFloat64()
	}
	for i := range Y {
		Y[i] = r.NormFloat64() + 0.5
	}
	return X, Y
}

// TestFitMaskAgainstQR: the exact refit of a linear layer on a fixed support (normalEq.fitMask)
// equals the least-squares solution computed by QR on the support's columns and the bias,
// output by output, to 1e-8; masked-out weights are exactly zero.
func TestFitMaskAgainstQR(t *testing.T) {
	const rows, in, out = 60, 8, 3
	X, Y := randomLS(1, rows, in, out)
	mask := make([]bool, in*out)
	r := rand.New(rand.NewPCG(2, 3))
	for i := range mask {
		mask[i] = r.Float64() < 0.5
	}
	ne := newNormalEq(X, rows, in, Y, out, false)
	U, B := ne.fitMask(mask, 2)
	for o := 0; o < out; o++ {
		var cols []int
		for i := 0; i < in; i++ {
			if mask[i*out+o] {
				cols = append(cols, i)
			} else if U[i*out+o] != 0 {
				t.Fatalf("output %d: masked weight %d = %v", o, i, U[i*out+o])
			}
		}
		y := make([]float64, rows)
		for p := range y {
			y[p] = Y[p*out+o]
		}
		w, _ := lsReference(X, rows, in, y, cols, true)
		for a, i := range cols {
			if d := math.Abs(U[i*out+o] - w[a]); d > 1e-8 {
				t.Errorf("output %d input %d: %v, QR %v", o, i, U[i*out+o], w[a])
			}
		}
		if d := math.Abs(B[o] - w[len(cols)]); d > 1e-8 {
			t.Errorf("output %d bias: %v, QR %v", o, B[o], w[len(cols)])
		}
	}
}

// TestPrefixFitsAgainstQR: the nested fits of the error curves (one Cholesky factor for
// all prefixes of a support) equal separate QR solves of each prefix, weights and
// explained sum of squares, with the bias first in the order as curve uses it.
func TestPrefixFitsAgainstQR(t *testing.T) {
	const rows, in, out = 50, 10, 2
	X, Y := randomLS(4, rows, in, out)
	ne := newNormalEq(X, rows, in, Y, out, false)
	seq := []int{in, 7, 2, 9, 0, 4, 5} // the bias, then inputs in the order they enter
	lens := []int{1, 2, 4, 7}
	for o := 0; o < out; o++ {
		ws, fits := ne.prefixFits(o, seq, lens)
		y := make([]float64, rows)
		for p := range y {
			y[p] = Y[p*out+o]
		}
		for c, n := range lens {
			cols := seq[1:n] // inputs of the prefix; the bias is seq[0]
			w, ess := lsReference(X, rows, in, y, cols, true)
			// ws[c] is ordered as seq (bias first); w has the bias last.
			if d := math.Abs(ws[c][0] - w[len(cols)]); d > 1e-8 {
				t.Errorf("output %d prefix %d bias: %v, QR %v", o, n, ws[c][0], w[len(cols)])
			}
			for a := range cols {
				if d := math.Abs(ws[c][a+1] - w[a]); d > 1e-8 {
					t.Errorf("output %d prefix %d weight %d: %v, QR %v", o, n, a, ws[c][a+1], w[a])
				}
			}
			if d := math.Abs(fits[c] - ess); d > 1e-7*math.Max(1, ess) {
				t.Errorf("output %d prefix %d: explained sum of squares %v, QR %v", o, n, fits[c], ess)
			}
		}
	}
}
