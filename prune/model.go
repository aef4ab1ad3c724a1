// Package prune refits the layers of a trained ReLU multi-layer perceptron, one at a time,
// to reproduce the dense network's activations with as few weights as possible (Net-Trim's
// layer-wise scheme, Aghasi et al. 2017, solved with relutrim's CCP-ADMM solver), and
// provides the magnitude and Wanda-style baselines it is compared with.
package prune

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"relutrim/dataio"
	"relutrim/internal/kern"
)

// Layer is one nn.Linear: W is Out x In row-major (PyTorch layout), B has Out entries.
type Layer struct {
	Key     string // state_dict prefix, e.g. "0"
	In, Out int
	W, B    []float64
}

// Model is an nn.Sequential of Linear layers with ReLU between them and a linear last layer.
type Model struct {
	Layers []Layer
	// DType is the float type of the file ("F32" or "F64"); a saved model keeps it.
	DType string
}

// Clone returns a deep copy.
func (m Model) Clone() Model {
	c := Model{DType: m.DType, Layers: make([]Layer, len(m.Layers))}
	for i, l := range m.Layers {
		l.W = append([]float64(nil), l.W...)
		l.B = append([]float64(nil), l.B...)
		c.Layers[i] = l
	}
	return c
}

// Weights returns the number of weights (biases excluded).
func (m Model) Weights() int {
	s := 0
	for _, l := range m.Layers {
		s += l.In * l.Out
	}
	return s
}

// NonZeros returns the number of non-zero weights per layer.
func (m Model) NonZeros() []int {
	out := make([]int, len(m.Layers))
	for i, l := range m.Layers {
		for _, w := range l.W {
			if w != 0 {
				out[i]++
			}
		}
	}
	return out
}

// LoadModel reads a PyTorch nn.Sequential state_dict saved as safetensors: keys
// "<i>.weight" (Out x In) and "<i>.bias" for Linear modules at indices 0, 2, 4, ... (ReLU
// modules in between have no parameters), float32 or float64. Anything else is an error
// that says what was found.
func LoadModel(path string) (Model, error) {
	ts, err := dataio.ReadSafetensors(path)
	if err != nil {
		return Model{}, err
	}
	return ModelFromTensors(ts, path)
}

// ModelFromTensors builds a Model from a state_dict; name is used in error messages.
func ModelFromTensors(ts map[string]dataio.Tensor, name string) (Model, error) {
	idx := map[int]bool{}
	var found []string
	for k := range ts {
		found = append(found, k)
		pre, suf, ok := strings.Cut(k, ".")
		i, err := strconv.Atoi(pre)
		if !ok || err != nil || (suf != "weight" && suf != "bias") {
			return Model{}, fmt.Errorf("%s: key %q is not \"<index>.weight\" or \"<index>.bias\" of an nn.Sequential of Linear layers", name, k)
		}
		idx[i] = true
	}
	sort.Strings(found)
	var order []int
	for i := range idx {
		order = append(order, i)
	}
	sort.Ints(order)
	if len(order) < 1 {
		return Model{}, fmt.Errorf("%s: no Linear layers found", name)
	}
	var m Model
	for n, i := range order {
		if i != 2*n {
			return Model{}, fmt.Errorf("%s: Linear layers at module indices %v; want 0, 2, 4, ... (Linear, ReLU, Linear, ...) (keys: %s)", name, order, strings.Join(found, ", "))
		}
		key := strconv.Itoa(i)
		w, okw := ts[key+".weight"]
		b, okb := ts[key+".bias"]
		if !okw || !okb {
			return Model{}, fmt.Errorf("%s: layer %s: missing %s.weight or %s.bias (keys: %s)", name, key, key, key, strings.Join(found, ", "))
		}
		if len(w.Shape) != 2 || len(b.Shape) != 1 || b.Shape[0] != w.Shape[0] {
			return Model{}, fmt.Errorf("%s: layer %s: weight shape %v and bias shape %v; want [out, in] and [out]", name, key, w.Shape, b.Shape)
		}
		dt := w.DType
		if dt != "F32" && dt != "F64" {
			return Model{}, fmt.Errorf("%s: layer %s: dtype %s; want F32 or F64", name, key, dt)
		}
		if m.DType == "" {
			m.DType = dt
		}
		l := Layer{Key: key, Out: w.Shape[0], In: w.Shape[1], W: toF64(w), B: toF64(b)}
		if n > 0 && l.In != m.Layers[n-1].Out {
			prev := m.Layers[n-1]
			return Model{}, fmt.Errorf("%s: layer %s takes %d inputs but layer %s gives %d outputs", name, key, l.In, prev.Key, prev.Out)
		}
		for _, v := range append(append([]float64(nil), l.W...), l.B...) {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return Model{}, fmt.Errorf("%s: layer %s holds a non-finite value", name, key)
			}
		}
		m.Layers = append(m.Layers, l)
	}
	return m, nil
}

func toF64(t dataio.Tensor) []float64 {
	if t.F64 != nil {
		return append([]float64(nil), t.F64...)
	}
	out := make([]float64, len(t.F32))
	for i, v := range t.F32 {
		out[i] = float64(v)
	}
	return out
}

// Tensors returns the state_dict of m in its dtype; with masks, also "<key>.weight.mask"
// (uint8, 1 where the weight is kept).
func (m Model) Tensors(masks bool) map[string]dataio.Tensor {
	ts := map[string]dataio.Tensor{}
	for _, l := range m.Layers {
		ts[l.Key+".weight"] = tensor(m.DType, []int{l.Out, l.In}, l.W)
		ts[l.Key+".bias"] = tensor(m.DType, []int{l.Out}, l.B)
		if masks {
			mk := make([]uint8, len(l.W))
			for i, w := range l.W {
				if w != 0 {
					mk[i] = 1
				}
			}
			ts[l.Key+".weight.mask"] = dataio.Tensor{DType: "U8", Shape: []int{l.Out, l.In}, U8: mk}
		}
	}
	return ts
}

func tensor(dt string, shape []int, v []float64) dataio.Tensor {
	if dt == "F64" {
		return dataio.Tensor{DType: "F64", Shape: shape, F64: append([]float64(nil), v...)}
	}
	f := make([]float32, len(v))
	for i, x := range v {
		f[i] = float32(x)
	}
	return dataio.Tensor{DType: "F32", Shape: shape, F32: f}
}

// Save writes m atomically as safetensors.
func (m Model) Save(path string, masks bool) error {
	return dataio.WriteSafetensors(path, m.Tensors(masks))
}

// Apply returns act(X W^T + b) for layer l of m (ReLU unless it is the last layer) and the
// pre-activation; X is N x In row-major.
func (m Model) Apply(l int, X []float64, n int) (post, pre []float64) {
	L := m.Layers[l]
	pre = make([]float64, n*L.Out)
	wt := make([]float64, L.In*L.Out) // W^T, In x Out
	for o := 0; o < L.Out; o++ {
		for i := 0; i < L.In; i++ {
			wt[i*L.Out+o] = L.W[o*L.In+i]
		}
	}
	kern.NewDense64(X, n, L.In).Mul(pre, wt, L.Out)
	post = make([]float64, len(pre))
	last := l == len(m.Layers)-1
	for p := 0; p < n; p++ {
		for o := 0; o < L.Out; o++ {
			v := pre[p*L.Out+o] + L.B[o]
			pre[p*L.Out+o] = v
			if !last && v < 0 {
				v = 0
			}
			post[p*L.Out+o] = v
		}
	}
	return post, pre
}

// Forward returns the inputs to every layer and the network's output: acts[0] = X,
// acts[l] = input of layer l, acts[len(Layers)] = logits.
func (m Model) Forward(X []float64, n int) [][]float64 {
	acts := [][]float64{X}
	for l := range m.Layers {
		post, _ := m.Apply(l, acts[l], n)
		acts = append(acts, post)
	}
	return acts
}

// Accuracy is the fraction of rows whose arg-max output equals the label.
func (m Model) Accuracy(X []float64, n int, labels []int) float64 {
	acts := m.Forward(X, n)
	out := acts[len(acts)-1]
	k := m.Layers[len(m.Layers)-1].Out
	right := 0
	for p := 0; p < n; p++ {
		best := 0
		for j := 1; j < k; j++ {
			if out[p*k+j] > out[p*k+best] {
				best = j
			}
		}
		if best == labels[p] {
			right++
		}
	}
	return float64(right) / float64(n)
}
