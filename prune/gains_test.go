package prune

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"relutrim/prune/model"
)

// randomMLP builds a dense in-h1-h2-out ReLU network with Gaussian weights and biases.
func randomMLP(r *rand.Rand, sizes ...int) model.Model {
	var m model.Model
	for l := 0; l+1 < len(sizes); l++ {
		L := model.Layer{Key: string(rune('a' + l)), In: sizes[l], Out: sizes[l+1]}
		L.W = make([]float64, L.In*L.Out)
		L.B = make([]float64, L.Out)
		for i := range L.W {
			L.W[i] = r.NormFloat64() / math.Sqrt(float64(L.In))
		}
		for i := range L.B {
			L.B[i] = 0.1 * r.NormFloat64()
		}
		m.Layers = append(m.Layers, L)
	}
	return m
}

// outputAfter runs the network from layer l+1 on the activations a of layer l (n rows).
func outputAfter(m model.Model, l int, a []float64, n int) []float64 {
	for j := l + 1; j < len(m.Layers); j++ {
		post, _ := m.Apply(j, a, n)
		a = m.Next(j, post, n)
	}
	return a
}

// finiteDiffGains is the reference for unitGains: for every sample and unit j of layer l,
// the output's change when a_j moves by eps (central difference; the network is piecewise
// linear, so this is the Jacobian column unless a ReLU flips), as root mean square over
// samples of its norm, scaled to root mean square 1 over the units.
func finiteDiffGains(m model.Model, X []float64, n, l int) []float64 {
	in := X
	for j := 0; j <= l; j++ {
		post, _ := m.Apply(j, in, n)
		in = m.Next(j, post, n)
	}
	out := m.Layers[l].Out
	g := make([]float64, out)
	const eps = 1e-6
	for j := 0; j < out; j++ {
		up, down := append([]float64(nil), in...), append([]float64(nil), in...)
		for s := 0; s < n; s++ {
			up[s*out+j] += eps
			down[s*out+j] -= eps
		}
		a, b := outputAfter(m, l, up, n), outputAfter(m, l, down, n)
		for i := range a {
			d := (a[i] - b[i]) / (2 * eps)
			g[j] += d * d
		}
	}
	ss := 0.0
	for j := range g {
		g[j] = math.Sqrt(g[j] / float64(n))
		ss += g[j] * g[j]
	}
	rms := math.Sqrt(ss / float64(out))
	for j := range g {
		g[j] = math.Max(g[j]/rms, gainFloor)
	}
	return g
}

// TestUnitGainsFiniteDifferences: the unit weights of every hidden layer equal those from
// finite differences of the network's output (exact Jacobians, 3 outputs), and with 40
// outputs the random-sign estimate stays within a factor 1.6 of them.
func TestUnitGainsFiniteDifferences(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, K := range []int{3, 40} {
		m := randomMLP(r, 6, 9, 7, 5, K)
		n := 50
		X := make([]float64, n*6)
		for i := range X {
			X[i] = r.NormFloat64()
		}
		p, err := NewPruner(m, X, n, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if p.gain[len(m.Layers)-1] != nil {
			t.Errorf("K=%d: the last layer has unit weights", K)
		}
		for l := 0; l < len(m.Layers)-1; l++ {
			want := finiteDiffGains(m, X, n, l)
			got := p.gain[l]
			if len(got) != len(want) {
				t.Fatalf("K=%d layer %d: %d gains, want %d", K, l, len(got), len(want))
			}
			for j := range want {
				if K <= gainProbes && math.Abs(got[j]-want[j]) > 1e-6*want[j] {
					t.Errorf("K=%d layer %d unit %d: gain %.9g, finite differences %.9g", K, l, j, got[j], want[j])
				}
				if K > gainProbes && (got[j] > 1.6*want[j] || want[j] > 1.6*got[j]) {
					t.Errorf("K=%d layer %d unit %d: estimated gain %.4g, finite differences %.4g", K, l, j, got[j], want[j])
				}
			}
		}
		q, err := NewPruner(m, X, n, Options{Unweighted: true})
		if err != nil {
			t.Fatal(err)
		}
		for l, g := range q.gain {
			if g != nil {
				t.Errorf("Unweighted: layer %d has unit weights", l)
			}
		}
	}
}

// TestUnitWeightsFavourReadUnits: a 10-8-2 network whose last layer reads hidden unit 0
// with weight 10 and the others with weight 0.01. Pruning the hidden layer to 10 of its 80
// weights, the weighted fit gives unit 0 all of its 10 inputs (its error is 1000 times
// costlier than the others'), and its output error is lower than the unweighted fit's.
func TestUnitWeightsFavourReadUnits(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	m := randomMLP(r, 10, 8, 2)
	for o := 0; o < 2; o++ {
		for j := 0; j < 8; j++ {
			m.Layers[1].W[o*8+j] = 0.01
		}
		m.Layers[1].W[o*8] = 10
	}
	for j := 0; j < 8; j++ {
		m.Layers[0].B[j] = 1 // every hidden unit active on most samples
	}
	n := 400
	X := make([]float64, n*10)
	for i := range X {
		X[i] = r.NormFloat64()
	}
	outErr := func(opt Options) (float64, int) {
		p, err := NewPruner(m, X, n, opt)
		if err != nil {
			t.Fatal(err)
		}
		pm, _, err := p.Prune(context.Background(), []int{10, 16})
		if err != nil {
			t.Fatal(err)
		}
		kept := 0
		for i := 0; i < 10; i++ {
			if pm.Layers[0].W[i] != 0 { // unit 0's row of the 8 x 10 weights
				kept++
			}
		}
		return relErr(outputAfter(pm, -1, X, n), outputAfter(m, -1, X, n)), kept
	}
	wErr, wKept := outErr(Options{})
	uErr, uKept := outErr(Options{Unweighted: true})
	if wKept != 10 {
		t.Errorf("weighted fit kept %d of hidden unit 0's 10 inputs, want all (unweighted: %d)", wKept, uKept)
	}
	if !(wErr < uErr) {
		t.Errorf("output error %.4g with unit weights, %.4g without", wErr, uErr)
	}
	t.Logf("output error %.4g weighted (unit 0 keeps %d inputs), %.4g unweighted (%d)", wErr, wKept, uErr, uKept)
}
