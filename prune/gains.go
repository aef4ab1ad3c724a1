package prune

import (
	"math"
	"math/rand/v2"

	"relutrim/prune/model"
)

// Unit weights (output sensitivity). A layer's fit is a sum of squared errors over its
// output units, and by default every unit counts the same. But an error of the same size in
// two hidden units can move the network's output very differently: the next layer may read
// one of them with large weights and the other with small ones. The layer fit therefore
// weights unit j of layer l by g_j, the root mean square over calibration samples of the
// norm of d(logits)/d(a_j), the column of the network's Jacobian for that unit's activation
// (through the dense layers after it and their ReLU patterns on the dense network). The
// weighted layer problem, sum_j g_j^2 ||relu(X w_j + b_j) - y_j||^2 + lambda ||W||_1, is
// the plain one with target g_j y_j and weights g_j w_j (ReLU is positively homogeneous):
// Pruner.layer fits the scaled target and divides the result by g. With the support fixed
// the per-output refit does not depend on g; what changes is which weights are kept: one
// lambda and one top-k ranking for the whole layer give more weights to the outputs that
// matter more downstream.
//
// Measured with `go run ./bench/valcheck [--unweighted]` (the demo's settings: cascade,
// error-curve budget, the first 2000 training images as calibration; validation on training
// images 50000-59999), mean cross-entropy with / without unit weights at 95 / 90 / 80%
// sparsity: on the bundled LeNet-300-100, validation 0.0375 / 0.0145 / 0.0060 against
// 0.0475 / 0.0167 / 0.0078, test 0.0924 / 0.0728 / 0.0666 against 0.1001 / 0.0775 /
// 0.0669 (test accuracy 97.60 / 98.03 / 98.19% against 97.55 / 97.91 / 98.21%); on a
// second LeNet-300-100 trained with another seed and schedule (--model; dense test
// 98.07%), validation 0.0473 / 0.0264 / 0.0180 against 0.0560 / 0.0273 / 0.0193. At 50%
// it changes nothing. The layers' unweighted errors grow (0.19 against 0.13 for the
// 784-300 layer at 90%): the weights go where they matter to the output.

// gainSamples bounds the calibration samples the Jacobians are averaged over (fewer, down
// to gainMinSamples, when the backward pass through the layers would take more than
// gainMACs multiply-adds: a wide MLP's; the demo's takes 300,000 per sample), and
// gainProbes the output directions: with more outputs than that, the squared column norms
// are estimated with gainProbes random sign combinations of the outputs (E ||R^T J e_j||^2
// / r = ||J e_j||^2 for R with independent +-1 entries).
const (
	gainSamples    = 256
	gainMinSamples = 16
	gainMACs       = 2e9
	gainProbes     = 16
	// gainFloor keeps a unit the Jacobian never reaches (dead downstream on the calibration
	// data) in the fit with a small weight instead of none.
	gainFloor = 1e-3
)

// unitGains returns g[l] for every layer whose output reaches the network's output through
// dense layers only (no convolution after it, no pooling or flattening in between), and
// nil for the others (their fit is unweighted) and for the last layer. yPre[l] are the
// dense pre-activations of layer l on the n calibration samples (all rows: dense layers are
// fitted on every sample). Each g[l] is scaled to root mean square 1.
func unitGains(m model.Model, yPre [][]float64, n int) [][]float64 {
	last := len(m.Layers) - 1
	g := make([][]float64, len(m.Layers))
	first := last // the first layer whose output is reached through dense layers only
	for l := last - 1; l >= 0; l-- {
		if m.Layers[l+1].Conv != nil || len(m.Layers[l].Post) > 0 || m.Layers[l+1].In != m.Layers[l].Out {
			break
		}
		first = l
	}
	if first == last {
		return g
	}
	// J holds the rows R^T d(logits)/d(a_l) of one sample (r x Out_l), layer by layer.
	K := m.Layers[last].Out
	r := min(K, gainProbes)
	var R []float64 // r x K; nil: the identity
	if r < K {
		rng := rand.New(rand.NewPCG(1, 2))
		R = make([]float64, r*K)
		for i := range R {
			R[i] = 1
			if rng.IntN(2) == 0 {
				R[i] = -1
			}
		}
	}
	top := m.Layers[last].W // K x In_last
	if R != nil {
		in := m.Layers[last].In
		top = make([]float64, r*in)
		for a := 0; a < r; a++ {
			for k := 0; k < K; k++ {
				if s := R[a*K+k]; s != 0 {
					row := m.Layers[last].W[k*in : (k+1)*in]
					dst := top[a*in : (a+1)*in]
					for i, w := range row {
						dst[i] += s * w
					}
				}
			}
		}
	}
	for l := first; l < last; l++ {
		g[l] = make([]float64, m.Layers[l].Out)
	}
	macs := 0.0 // per sample: the products through layers first+1 .. last-1
	for l := first + 1; l < last; l++ {
		macs += float64(r) * float64(m.Layers[l].In) * float64(m.Layers[l].Out)
	}
	ns := min(n, gainSamples, max(gainMinSamples, int(gainMACs/math.Max(macs, 1))))
	J := make([]float64, 0, r*m.Layers[first].Out)
	next := make([]float64, 0, cap(J))
	for s := 0; s < ns; s++ {
		J = append(J[:0], top...)
		for l := last - 1; l >= first; l-- {
			out := m.Layers[l].Out
			for a := 0; a < r; a++ {
				for j, v := range J[a*out : (a+1)*out] {
					g[l][j] += v * v
				}
			}
			if l == first {
				break
			}
			// Through layer l's activation (its ReLU pattern on this sample) and weights.
			L := m.Layers[l]
			pre := yPre[l][s*out : (s+1)*out]
			relu := m.Relu(l)
			next = next[:r*L.In]
			clear(next)
			for a := 0; a < r; a++ {
				dst := next[a*L.In : (a+1)*L.In]
				for o, v := range J[a*out : (a+1)*out] {
					if v == 0 || relu && pre[o] <= 0 {
						continue
					}
					for i, w := range L.W[o*L.In : (o+1)*L.In] {
						dst[i] += v * w
					}
				}
			}
			J, next = next, J
		}
	}
	for l := first; l < last; l++ {
		ss := 0.0
		for j, v := range g[l] {
			g[l][j] = math.Sqrt(v / float64(ns*r))
			ss += g[l][j] * g[l][j]
		}
		rms := math.Sqrt(ss / float64(len(g[l])))
		if rms == 0 {
			g[l] = nil // nothing reaches the output: no weighting
			continue
		}
		for j := range g[l] {
			g[l][j] = math.Max(g[l][j]/rms, gainFloor)
		}
	}
	return g
}
