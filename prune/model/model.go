// Package model is the network the pruner works on: a PyTorch nn.Sequential of Linear
// layers with ReLU between them and a linear last layer, loaded from and saved to its
// state_dict in safetensors, with a forward pass and an accuracy.
//
// Each tensor keeps the float dtype it was loaded with (F16, BF16, F32 or F64, chosen per
// tensor): values are held as float64 in memory and converted back on Save, so a pruned
// file has the same keys, shapes and dtypes as the dense one. Integer tensors are rejected
// at load with a message naming the key.
//
// The forward pass is the only place outside the solver that needs a matrix product; it
// goes through [Layer.Apply], which uses relutrim's kernels (internal/kern) so that the
// pruner does not call them itself.
package model

import (
	"context"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"relutrim/dataio"
	"relutrim/internal/kern"
)

// Layer is one nn.Linear (ONNX Gemm, or MatMul + Add) or one convolution (ONNX Conv):
// W is Out x In row-major (PyTorch's layout; for a convolution (C_out, C_in, KH, KW) with
// In = C_in*KH*KW), B has Out entries.
type Layer struct {
	Key     string // state_dict prefix ("0") or the ONNX node's name
	In, Out int
	W, B    []float64
	// WType and BType are the safetensors dtypes of "<Key>.weight" and "<Key>.bias" ("F16",
	// "BF16", "F32" or "F64"); Save writes each tensor back in its own dtype. Empty means
	// F64 (a layer built in memory).
	WType, BType string
	// Act is the activation after the layer.
	Act Activation
	// Conv is the convolution's geometry; nil for a dense layer.
	Conv *Conv
	// Post are the operations between this layer's activation and the next layer's input
	// (pooling, flattening).
	Post []Op
	// NoBias: the layer has no bias (an ONNX Conv or Gemm without one and without a
	// BatchNormalization after it); B stays zero and the refit must keep it so.
	NoBias bool
	// onnx says where W and B live in the ONNX graph they were read from (nil otherwise).
	onnx *onnxParams
}

// Activation is what follows a layer. The zero value is the nn.Sequential MLP's rule:
// ReLU, except after the last layer.
type Activation int

// Activations.
const (
	ActDefault Activation = iota
	ActReLU
	ActIdentity
)

// Positions is the number of rows the layer produces per sample: OutH*OutW output
// positions for a convolution, 1 for a dense layer.
func (l Layer) Positions() int {
	if l.Conv == nil {
		return 1
	}
	return l.Conv.OutH * l.Conv.OutW
}

// OutShape is the shape of one sample's output (before Post).
func (l Layer) OutShape() Shape {
	if l.Conv == nil {
		return Shape{l.Out, 1, 1}
	}
	return Shape{l.Out, l.Conv.OutH, l.Conv.OutW}
}

// Model is a chain of layers: an nn.Sequential of Linear layers with ReLU between them and
// a linear last layer (safetensors), or a chain of Conv / Gemm layers with ReLU, pooling
// and flattening read from ONNX.
type Model struct {
	Layers []Layer
	// In is the shape of one input sample (an MLP's: {In, 1, 1}); Pre are operations
	// before the first layer (an ONNX MLP's Flatten of image inputs). Zero In means the
	// first layer's input width.
	In  Shape
	Pre []Op
	// src is the ONNX model the layers were read from (nil for safetensors).
	src *onnxSource
	// graph is the wiring of a residual graph (graph.go; FromONNXGraph), nil for a chain.
	graph *graph
}

// Clone returns a deep copy.
func (m Model) Clone() Model {
	c := m
	c.Layers = make([]Layer, len(m.Layers))
	for i, l := range m.Layers {
		l.W = slices.Clone(l.W)
		l.B = slices.Clone(l.B)
		c.Layers[i] = l
	}
	return c
}

// InShape is the shape of one input sample.
func (m Model) InShape() Shape {
	if m.In.C == 0 {
		return Shape{m.Layers[0].In, 1, 1}
	}
	return m.In
}

// IsONNX reports whether m was read from an ONNX file (and is saved as one).
func (m Model) IsONNX() bool { return m.src != nil }

// Relu reports whether layer l is followed by a ReLU.
func (m Model) Relu(l int) bool {
	switch m.Layers[l].Act {
	case ActReLU:
		return true
	case ActIdentity:
		return false
	}
	return l < len(m.Layers)-1
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

// Load reads a PyTorch nn.Sequential state_dict saved as safetensors: keys "<i>.weight"
// (Out x In) and "<i>.bias" for Linear modules at indices 0, 2, 4, ... (ReLU modules in
// between have no parameters), each tensor F16, BF16, F32 or F64. Anything else is an error
// that names the file and says what was found.
//
// A file ending in .onnx (or, without a .safetensors extension, one that does not start
// like safetensors) is read as ONNX instead: see [LoadONNX].
func Load(path string) (Model, error) {
	if isONNXFile(path) {
		return LoadONNX(path)
	}
	ts, err := dataio.ReadSafetensors(path)
	if err != nil {
		return Model{}, err
	}
	return FromTensors(ts, path)
}

// floatTypes are the safetensors dtypes a model tensor may have (dataio reads F16 and BF16
// into float32 and writes them back from it).
var floatTypes = []string{"F16", "BF16", "F32", "F64"}

// FromTensors builds a Model from a state_dict; name is used in error messages.
func FromTensors(ts map[string]dataio.Tensor, name string) (Model, error) {
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
		for _, c := range []struct {
			k string
			t dataio.Tensor
		}{{key + ".weight", w}, {key + ".bias", b}} {
			if !slices.Contains(floatTypes, c.t.DType) {
				return Model{}, fmt.Errorf("%s: %s has dtype %s; want a float dtype (%s)", name, c.k, c.t.DType, strings.Join(floatTypes, ", "))
			}
		}
		if len(w.Shape) != 2 || len(b.Shape) != 1 || b.Shape[0] != w.Shape[0] {
			return Model{}, fmt.Errorf("%s: layer %s: weight shape %v and bias shape %v; want [out, in] and [out]", name, key, w.Shape, b.Shape)
		}
		if w.Shape[0] < 1 || w.Shape[1] < 1 {
			return Model{}, fmt.Errorf("%s: layer %s: weight shape %v: a layer needs at least one output and one input", name, key, w.Shape)
		}
		l := Layer{Key: key, Out: w.Shape[0], In: w.Shape[1], W: toF64(w), B: toF64(b), WType: w.DType, BType: b.DType}
		if n > 0 && l.In != m.Layers[n-1].Out {
			prev := m.Layers[n-1]
			return Model{}, fmt.Errorf("%s: layer %s takes %d inputs but layer %s gives %d outputs", name, key, l.In, prev.Key, prev.Out)
		}
		for _, v := range [][]float64{l.W, l.B} {
			if !allFinite(v) {
				return Model{}, fmt.Errorf("%s: layer %s holds a non-finite value", name, key)
			}
		}
		m.Layers = append(m.Layers, l)
	}
	return m, nil
}

func allFinite(v []float64) bool {
	for _, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

func toF64(t dataio.Tensor) []float64 {
	if t.F64 != nil {
		return slices.Clone(t.F64)
	}
	out := make([]float64, len(t.F32))
	for i, v := range t.F32 {
		out[i] = float64(v)
	}
	return out
}

// Tensors returns the state_dict of m, each tensor in its own dtype; with masks, also
// "<key>.weight.mask" (uint8, 1 where the weight is kept).
func (m Model) Tensors(masks bool) map[string]dataio.Tensor {
	ts := map[string]dataio.Tensor{}
	for _, l := range m.Layers {
		ts[l.Key+".weight"] = tensor(l.WType, []int{l.Out, l.In}, l.W)
		ts[l.Key+".bias"] = tensor(l.BType, []int{l.Out}, l.B)
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

// tensor converts v to a tensor of dtype dt (empty: F64). F16 and BF16 go through float32,
// which dataio rounds to the half type on write.
func tensor(dt string, shape []int, v []float64) dataio.Tensor {
	if dt == "" || dt == "F64" {
		return dataio.Tensor{DType: "F64", Shape: shape, F64: slices.Clone(v)}
	}
	f := make([]float32, len(v))
	for i, x := range v {
		f[i] = float32(x)
	}
	return dataio.Tensor{DType: dt, Shape: shape, F32: f}
}

// Save writes m atomically: as ONNX if it was read from ONNX, else as safetensors.
func (m Model) Save(path string, masks bool) error {
	return dataio.WriteFileAtomic(path, func(w io.Writer) error { return m.Encode(w, masks) })
}

// Encode writes m as ONNX if it was read from ONNX (masks are not supported there), else
// as a safetensors state_dict (with masks: see Tensors).
func (m Model) Encode(w io.Writer, masks bool) error {
	if m.src != nil {
		if masks {
			return fmt.Errorf("weight masks are written only to safetensors, not ONNX")
		}
		return m.EncodeONNX(w)
	}
	return dataio.EncodeSafetensors(w, m.Tensors(masks), nil)
}

// Apply returns the layer's output act(X W^T + b) (act = ReLU if relu, else the identity)
// and its pre-activation X W^T + b; X is N x In row-major. The product runs on relutrim's
// kernels (internal/kern, GOMAXPROCS goroutines).
// sparseInput: inputs with a smaller fraction of non-zeros are multiplied in CSR form (the
// solver's rule, solver.csrMaxDensity: pure-Go CSR wins below 0.4, internal/kern/BENCH.md).
// On the demo the test images' forward passes took 3.0 of its 45 CPU-seconds dense.
const sparseInput = 0.4

// density estimates the fraction of non-zeros of x from at most 65,536 evenly spaced
// entries (an exact count cost 1.2 of the demo's 44 CPU-seconds); it only picks a kernel.
func density(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	step := max(1, len(x)/65536)
	nz, cnt := 0, 0
	for i := 0; i < len(x); i += step {
		cnt++
		if x[i] != 0 {
			nz++
		}
	}
	return float64(nz) / float64(cnt)
}

func (l Layer) Apply(X []float64, n int, relu bool) (post, pre []float64) {
	pre = make([]float64, n*l.Out)
	var xm kern.Matrix
	if kern.Backend == "purego" && density(X[:n*l.In]) < sparseInput {
		xm = kern.NewCSR64(X[:n*l.In], n, l.In) // MNIST pixels: 19% non-zero
	} else {
		xm = kern.NewDense64(X[:n*l.In], n, l.In)
	}
	xm.Mul(pre, Transpose(l.W, l.Out, l.In), l.Out)
	post = make([]float64, len(pre))
	for p := 0; p < n; p++ {
		for o := 0; o < l.Out; o++ {
			v := pre[p*l.Out+o] + l.B[o]
			pre[p*l.Out+o] = v
			if relu && v < 0 {
				v = 0
			}
			post[p*l.Out+o] = v
		}
	}
	return post, pre
}

// Apply runs layer l with its activation on in, n samples of the layer's input (channel-
// last): it returns the activation's output and the pre-activation, n*Positions() rows of
// Out values each, before the layer's Post operations ([Model.Next]). A convolution is
// unfolded a chunk of kern.ChunkRows output positions at a time per goroutine.
func (m Model) Apply(l int, in []float64, n int) (post, pre []float64) {
	return m.apply(l, in, n, nil, true)
}

// ApplyAt is Apply with the pre-activation only at the rows pos (distinct, ascending; its
// rows in that order): a convolution with many output positions then holds one full-size array,
// not two. pos nil means every row (Apply).
func (m Model) ApplyAt(l int, in []float64, n int, pos []int) (post, pre []float64) {
	return m.apply(l, in, n, pos, true)
}

// ApplyPost is Apply without the pre-activation.
func (m Model) ApplyPost(l int, in []float64, n int) []float64 {
	post, _ := m.apply(l, in, n, nil, false)
	return post
}

// apply runs layer l; the pre-activation is returned at the rows pos (all rows when pos is
// nil) when wantPre is set.
func (m Model) apply(l int, in []float64, n int, pos []int, wantPre bool) (post, pre []float64) {
	L := m.Layers[l]
	relu := m.Relu(l)
	if L.Conv == nil {
		post, pre = L.Apply(in, n, relu)
		if pos != nil {
			pre = pickRowsOf(pre, pos, L.Out)
		}
		return post, pre
	}
	c := L.Conv
	per := L.Positions()
	rows := n * per
	// post holds the pre-activations first; the rows pos of them are copied out before
	// the bias and the activation are applied in place.
	post = make([]float64, rows*L.Out)
	var at []int // at[p]: p's place in pos (-1: not wanted), when pos is given
	switch {
	case !wantPre:
	case pos == nil:
		pre = make([]float64, rows*L.Out)
	default:
		pre = make([]float64, len(pos)*L.Out)
		at = make([]int, rows)
		for i := range at {
			at[i] = -1
		}
		for i, p := range pos {
			at[p] = i
		}
	}
	// The forward pass unfolds patches channel-last ((i*KW + j)*C_in + c: each kernel
	// offset copies C_in contiguous values), a chunk of kern.ChunkRows output positions at
	// a time per goroutine, and multiplies them by the weight with its columns permuted to
	// match: the chunk's patches at once by the dense product kernel (kern's Mul on one
	// chunk), or, for a sparse weight, sums over each output's non-zeros only (a pruned
	// network's forward pass costs its non-zeros). Every output value is computed by one
	// goroutine in a fixed order: the result does not depend on the number of threads.
	kk, C := c.KH*c.KW, c.In.C
	wp := make([]float64, len(L.W))
	nnz := 0
	for o := 0; o < L.Out; o++ {
		for ch := 0; ch < C; ch++ {
			for k := 0; k < kk; k++ {
				v := L.W[o*L.In+ch*kk+k]
				wp[o*L.In+k*C+ch] = v
				if v != 0 {
					nnz++
				}
			}
		}
	}
	var sp *sparseRows
	var wt []float64 // wp^T (In x Out), for the dense product
	if float64(nnz) < sparseWeights*float64(len(wp)) {
		sp = newSparseRows(wp, L.Out, L.In)
	} else {
		wt = Transpose(wp, L.Out, L.In)
	}
	kern.ForChunks(rows, runtime.GOMAXPROCS(0), func(_, lo, hi int) {
		if sp == nil {
			buf := getPatches((hi - lo) * L.In)
			x := *buf
			for p := lo; p < hi; p++ {
				c.patchLast(x[(p-lo)*L.In:(p-lo+1)*L.In], in, p)
			}
			xm := kern.NewDense64(x, hi-lo, L.In)
			xm.(kern.Threaded).SetThreads(1) // one chunk, on this goroutine
			xm.Mul(post[lo*L.Out:hi*L.Out], wt, L.Out)
			patchPool.Put(buf)
		} else {
			x := make([]float64, 4*L.In)
			for p := lo; p < hi; p += 4 {
				q := min(4, hi-p) // rows p..p+q-1
				for r := 0; r < q; r++ {
					c.patchLast(x[r*L.In:(r+1)*L.In], in, p+r)
				}
				dst := post[p*L.Out : (p+q)*L.Out]
				if q == 4 {
					sp.mul4(dst, x, L.Out, L.In)
				} else {
					for r := 0; r < q; r++ {
						for o := 0; o < L.Out; o++ {
							dst[r*L.Out+o] = sp.dot(o, x[r*L.In:(r+1)*L.In])
						}
					}
				}
			}
		}
		for p := lo; p < hi; p++ {
			po := post[p*L.Out : (p+1)*L.Out]
			var d []float64
			switch {
			case pre == nil:
			case at == nil:
				d = pre[p*L.Out : (p+1)*L.Out]
			case at[p] >= 0:
				d = pre[at[p]*L.Out : (at[p]+1)*L.Out]
			}
			for o, bo := range L.B {
				v := po[o] + bo
				if d != nil {
					d[o] = v
				}
				if relu && v < 0 {
					v = 0
				}
				po[o] = v
			}
		}
	})
	return post, pre
}

// patchPool holds the chunks' patch buffers of the dense convolution path between uses: a
// forward pass of the demo ResNet on 10,000 images unfolds about 29 GB of patches, and
// allocating each chunk's buffer anew spent about a sixth of its time zeroing memory that
// patchLast then overwrites.
var patchPool sync.Pool

// getPatches returns a buffer of n values from patchPool (contents undefined).
func getPatches(n int) *[]float64 {
	if b, ok := patchPool.Get().(*[]float64); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]float64, n)
	return &b
}

// sparseWeights: a convolution whose weight has fewer non-zeros than this fraction runs
// its forward pass on the non-zeros only. With the dense path on kern's product kernel
// (several times faster per multiply-add than the dot products it replaced) the list
// pays only at lower densities: the CNN demo at 80% (layers 70-83% sparse) ran in 15.0 s
// with 0.3 and 14.3 s with 0.1 (one run each, machine loaded: equal within noise).
const sparseWeights = 0.1

// sparseRows is a row-major matrix as lists of each row's non-zeros.
type sparseRows struct {
	ptr []int
	idx []int32
	val []float64
}

func newSparseRows(a []float64, r, c int) *sparseRows {
	s := &sparseRows{ptr: make([]int, r+1)}
	for i := 0; i < r; i++ {
		for j, v := range a[i*c : (i+1)*c] {
			if v != 0 {
				s.idx = append(s.idx, int32(j))
				s.val = append(s.val, v)
			}
		}
		s.ptr[i+1] = len(s.idx)
	}
	return s
}

// dot returns row i . x.
func (s *sparseRows) dot(i int, x []float64) float64 {
	v := 0.0
	for k := s.ptr[i]; k < s.ptr[i+1]; k++ {
		v += s.val[k] * x[s.idx[k]]
	}
	return v
}

// mul4 sets dst[r*rows + i] = row i . x_r for the four vectors x_r = x[r*n : (r+1)*n]
// (each non-zero loaded once for four products; each sum in the order of dot).
func (s *sparseRows) mul4(dst, x []float64, rows, n int) {
	x0, x1, x2, x3 := x[:n], x[n:2*n], x[2*n:3*n], x[3*n:4*n]
	for i := 0; i < rows; i++ {
		var v0, v1, v2, v3 float64
		for k := s.ptr[i]; k < s.ptr[i+1]; k++ {
			a, j := s.val[k], s.idx[k]
			v0 += a * x0[j]
			v1 += a * x1[j]
			v2 += a * x2[j]
			v3 += a * x3[j]
		}
		dst[i], dst[rows+i], dst[2*rows+i], dst[3*rows+i] = v0, v1, v2, v3
	}
}

// Next applies layer l's Post operations to its output: the input of layer l+1 (or, after
// the last layer, the network's output).
func (m Model) Next(l int, post []float64, n int) []float64 {
	for _, o := range m.Layers[l].Post {
		post = o.Apply(post, n)
	}
	return post
}

// Input converts n input samples from the model's input layout (channel-first images,
// NCHW, as in a .npy file for PyTorch; or rows of features) to the first layer's input:
// channel-last, after the model's Pre operations.
func (m Model) Input(X []float64, n int) []float64 {
	x := ToChannelLast(X, n, m.InShape())
	for _, o := range m.Pre {
		x = o.Apply(x, n)
	}
	return x
}

// Forward returns the inputs to every layer and the network's output for n samples X in
// the model's input layout: acts[l] = input of layer l (channel-last),
// acts[len(Layers)] = the output (logits).
func (m Model) Forward(X []float64, n int) [][]float64 {
	if m.graph != nil {
		return m.forwardGraph(X, n)
	}
	acts := [][]float64{m.Input(X, n)}
	for l := range m.Layers {
		post := m.ApplyPost(l, acts[l], n)
		acts = append(acts, m.Next(l, post, n))
	}
	return acts
}

// Outputs is the width of the network's output.
func (m Model) Outputs() int {
	if m.graph != nil {
		return m.graph.shapes[m.graph.out].Size()
	}
	last := len(m.Layers) - 1
	s := m.Layers[last].OutShape()
	for _, o := range m.Layers[last].Post {
		s = o.Out()
	}
	return s.Size()
}

// Accuracy is the fraction of rows whose arg-max output equals the label. Samples are
// run in blocks, so that only one block's activations exist at a time.
func (m Model) Accuracy(X []float64, n int, labels []int) float64 {
	a, _ := m.AccuracyContext(context.Background(), X, n, labels)
	return a
}

// AccuracyContext is Accuracy that checks ctx before every block of samples and returns
// its error once it is canceled (issue 22: the CNN demo's evaluation of 10,000 test images
// took seconds to notice SIGINT).
func (m Model) AccuracyContext(ctx context.Context, X []float64, n int, labels []int) (float64, error) {
	k := m.Outputs()
	in := m.InShape().Size()
	right := 0
	block := m.accuracyBlock()
	for s := 0; s < n; s += block {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		b := min(block, n-s)
		acts := m.Forward(X[s*in:(s+b)*in], b)
		right += countRight(acts[len(acts)-1], b, k, labels[s:s+b])
	}
	return float64(right) / float64(n), nil
}

// accuracyBlock returns the number of samples Accuracy runs at once: as many as keep the
// widest activation of a block within accuracyFloats values, at least 1 (a model whose
// sample alone is wider runs one sample at a time, not 256 of them). For a CNN
// (tens of thousands of values per sample) that is a few hundred samples; for the demo's
// MLP 5,350, so that the products' chunks of 1024 rows run on all threads (with blocks of
// 256 every product was one chunk on one goroutine: the demo's 16 evaluations of the 10,000
// test images took about 4 of its 27 s). Each sample's outputs do not depend on the block.
func (m Model) accuracyBlock() int {
	w := m.InShape().Size()
	for _, L := range m.Layers {
		w = max(w, L.OutShape().Size())
	}
	return max(1, accuracyFloats/max(w, 1))
}

// accuracyFloats bounds the values of one activation of an Accuracy block (32 MB).
const accuracyFloats = 1 << 22

func countRight(out []float64, n, k int, labels []int) int {
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
	return right
}

// Transpose returns the c x r transpose of the r x c row-major a (W, Out x In, and the
// solver's U, In x Out, are each other's transposes).
func Transpose(a []float64, r, c int) []float64 {
	t := make([]float64, len(a))
	for i := 0; i < r; i++ {
		for j := 0; j < c; j++ {
			t[j*r+i] = a[i*c+j]
		}
	}
	return t
}

// pickRowsOf returns the rows pos of the k-column row-major a.
func pickRowsOf(a []float64, pos []int, k int) []float64 {
	out := make([]float64, len(pos)*k)
	for r, i := range pos {
		copy(out[r*k:(r+1)*k], a[i*k:(i+1)*k])
	}
	return out
}
