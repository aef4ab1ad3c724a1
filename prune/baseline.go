package prune

import (
	"math"
	"sort"

	"relutrim/prune/model"
)

// Magnitude keeps, in every output row of every layer, the weights of largest |W_ij|, with
// keep[l] weights per layer spread uniformly over the rows (the classic baseline; on an
// earlier dense 784-300-100-10 MNIST model it gave 33% test accuracy at 90% sparsity). Biases are untouched.
func Magnitude(m model.Model, keep []int) model.Model {
	return pruneRows(m, keep, func(l, o, i int) float64 { return math.Abs(m.Layers[l].W[o*m.Layers[l].In+i]) })
}

// Wanda keeps per output row the weights of largest |W_ij| * ||X_j||_2, where X_j is input
// feature j of the layer on the calibration data as the dense network computes it (Sun et
// al. 2023, "A simple and effective pruning approach for LLMs"; for a convolution, per
// output channel, with X_j a column of the unfolded patches). norms[l] holds layer l's
// ||X_j|| ([Pruner.InputNorms]).
func Wanda(m model.Model, keep []int, norms [][]float64) model.Model {
	return pruneRows(m, keep, func(l, o, i int) float64 {
		return math.Abs(m.Layers[l].W[o*m.Layers[l].In+i]) * norms[l][i]
	})
}

func colNorms(X []float64, n, d int) []float64 {
	s := make([]float64, d)
	for p := 0; p < n; p++ {
		for j, v := range X[p*d : (p+1)*d] {
			s[j] += v * v
		}
	}
	for j := range s {
		s[j] = math.Sqrt(s[j])
	}
	return s
}

// pruneRows keeps the keep[l] highest-scoring weights of layer l, spread as evenly as
// possible over its rows (rows get floor(keep/Out), the first keep mod Out rows one more).
func pruneRows(m model.Model, keep []int, score func(l, o, i int) float64) model.Model {
	out := m.Clone()
	for l, L := range out.Layers {
		base, extra := keep[l]/L.Out, keep[l]%L.Out
		idx := make([]int, L.In)
		for o := 0; o < L.Out; o++ {
			k := base
			if o < extra {
				k++
			}
			for i := range idx {
				idx[i] = i
			}
			sort.SliceStable(idx, func(a, b int) bool { return score(l, o, idx[a]) > score(l, o, idx[b]) })
			for _, i := range idx[k:] {
				L.W[o*L.In+i] = 0
			}
		}
	}
	return out
}

// MagnitudeNM keeps, in every row and every group of pat.M consecutive inputs, the pat.N
// weights of largest |W_ij|: magnitude pruning to an N:M pattern, in the layers marked in
// on (nil: DefaultNMLayers).
func MagnitudeNM(m model.Model, pat NM, on []bool) model.Model {
	return pruneGroups(m, pat, on, func(l, o, i int) float64 { return math.Abs(m.Layers[l].W[o*m.Layers[l].In+i]) })
}

// WandaNM is Wanda's score (|W_ij| ||X_j||) applied per group of an N:M pattern, the
// semi-structured variant of Sun et al. 2023; norms as for Wanda; on as for MagnitudeNM.
func WandaNM(m model.Model, pat NM, norms [][]float64, on []bool) model.Model {
	return pruneGroups(m, pat, on, func(l, o, i int) float64 {
		return math.Abs(m.Layers[l].W[o*m.Layers[l].In+i]) * norms[l][i]
	})
}

// pruneGroups keeps, in every row o of every layer marked in on (nil: DefaultNMLayers)
// and every group of the pattern (nmGroups), the pat.N highest-scoring weights.
func pruneGroups(m model.Model, pat NM, on []bool, score func(l, o, i int) float64) model.Model {
	if on == nil {
		on = DefaultNMLayers(m)
	}
	out := m.Clone()
	idx := make([]int, 0, pat.M)
	for l, L := range out.Layers {
		if !on[l] {
			continue
		}
		groups := nmGroups(L, pat.M)
		for o := 0; o < L.Out; o++ {
			for _, g := range groups {
				idx = append(idx[:0], g...)
				sort.SliceStable(idx, func(a, b int) bool { return score(l, o, idx[a]) > score(l, o, idx[b]) })
				for _, i := range idx[min(pat.N, len(idx)):] {
					L.W[o*L.In+i] = 0
				}
			}
		}
	}
	return out
}
