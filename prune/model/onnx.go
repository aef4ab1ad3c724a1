package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"
	"relutrim/dataio"
)

// ONNX support: a model exported by torch.onnx.export (opset 13 or later, eval mode) whose
// graph is one chain of
//
//	Conv (groups = 1), Gemm (alpha = beta = 1, transA = 0), MatMul [+ Add of a constant]
//	BatchNormalization (right after a Conv, Gemm or MatMul: folded into it)
//	Relu (right after a layer or its BatchNormalization)
//	MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape to (batch, features)
//	Identity, Dropout (inference: no-ops)
//
// Anything else (another op, a tensor read by two nodes, as in a residual connection, a
// second graph input, shapes other than the batch dimension left open) is an error naming
// the node; a residual graph (graph.go) is refused naming its first residual Add, and read
// by FromONNXGraph. Saving writes the same graph with only the layers' initializers replaced.

// onnxSource is the model a Model was read from.
type onnxSource struct {
	proto *onnx.ModelProto
	name  string
}

// onnxParams says where a layer's parameters live in the graph.
type onnxParams struct {
	node   string // node name (or op type and index) of the Conv / Gemm / MatMul
	w, b   string // initializer names; b is "" when the layer has no bias tensor
	transW bool   // the weight is stored In x Out (Gemm with transB = 0, MatMul)
	bn     *bnFold
}

// bnFold is a BatchNormalization folded into the layer before it: the layer computes
// s*(W x + b0 - mean) + beta with s = gamma / sqrt(var + eps), i.e. weights s*W and bias
// s*(b0 - mean) + beta. Saving divides the weights by s again and puts the new bias into
// beta (bias b0, if any, is left as it was), so zeros stay zeros and only the weight and
// beta tensors change.
type bnFold struct {
	s, mean, b0 []float64
	beta        string // initializer name of beta (the node's input B)
	// others are the initializer names of scale, mean and var; rows, if not nil, are the
	// channels the layer still has after Model.Shrink (those tensors are cut to them).
	others [3]string
	rows   []int
}

// LoadONNX reads an ONNX model (see the package comment on ONNX for what is supported).
func LoadONNX(path string) (Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Model{}, err
	}
	return FromONNX(data, path)
}

// isONNXFile reports whether the file looks like ONNX rather than safetensors: by its
// extension, or, without one of the two, by its first bytes (a safetensors file starts
// with an 8-byte header length and "{").
func isONNXFile(path string) bool {
	switch strings.ToLower(path[strings.LastIndex(path, ".")+1:]) {
	case "onnx":
		return true
	case "safetensors":
		return false
	}
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var head [9]byte
	n, _ := io.ReadFull(f, head[:])
	return n == 9 && head[8] != '{'
}

// FromONNX decodes an ONNX model; name is used in error messages.
func FromONNX(data []byte, name string) (Model, error) {
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(data, mp); err != nil {
		return Model{}, fmt.Errorf("%s: not an ONNX model (protobuf: %v)", name, err)
	}
	g := mp.GetGraph()
	if g == nil || len(g.GetNode()) == 0 {
		return Model{}, fmt.Errorf("%s: not an ONNX model (no graph or no nodes; truncated or another format?)", name)
	}
	p := &onnxParser{name: name, g: g, inits: map[string]*onnx.TensorProto{}, uses: map[string]int{}}
	if err := p.checkOpset(mp); err != nil {
		return Model{}, err
	}
	if err := p.checkNames(); err != nil {
		return Model{}, err
	}
	m, err := p.parse()
	if err != nil {
		return Model{}, residualRefusal(data, name, err)
	}
	m.src = &onnxSource{proto: mp, name: name}
	return m, nil
}

type onnxParser struct {
	name  string
	g     *onnx.GraphProto
	inits map[string]*onnx.TensorProto // initializers and Constant nodes' values
	uses  map[string]int               // how many node inputs (and graph outputs) read a tensor
	opset int64                        // the default domain's opset version
	elem  onnx.TensorProto_DataType    // the graph input's element type (FLOAT or DOUBLE)
}

// minOpset is the oldest ONNX opset relutrim reads (README: opset 13 or later, what
// torch.onnx.export writes by default since torch 1.13).
const minOpset = 13

// checkOpset requires an opset of the default ONNX domain, 13 or later: the attributes and
// inputs relutrim reads (Pad's pads as an input, Reshape's shape as an input, Dropout's
// inference form) are those of opset 13 on.
func (p *onnxParser) checkOpset(mp *onnx.ModelProto) error {
	found := false
	for _, o := range mp.GetOpsetImport() {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			p.opset, found = o.GetVersion(), true
		}
	}
	switch {
	case !found:
		return fmt.Errorf("%s: the model declares no opset of the default ONNX domain (opset_import); onnx.checker refuses such a model", p.name)
	case p.opset < minOpset:
		return fmt.Errorf("%s: opset %d: relutrim reads ONNX opset %d or later; re-export the model with torch.onnx.export(..., opset_version=%d)", p.name, p.opset, minOpset, minOpset)
	}
	return nil
}

// checkNames applies onnx.checker's naming rules to the names relutrim relies on to find
// tensors: initializer names are unique ("initializer name is not unique"), and the graph
// is in single static assignment form: no node output repeats a graph input, an
// initializer or another node's output.
func (p *onnxParser) checkNames() error {
	defined := map[string]string{}
	for _, v := range p.g.GetInput() {
		if _, ok := defined[v.GetName()]; ok {
			return fmt.Errorf("%s: graph input %q is declared twice", p.name, v.GetName())
		}
		defined[v.GetName()] = "a graph input"
	}
	inits := map[string]bool{}
	for _, t := range p.g.GetInitializer() {
		if inits[t.GetName()] {
			return fmt.Errorf("%s: two initializers are named %q; names must be unique (onnx.checker refuses this model)", p.name, t.GetName())
		}
		inits[t.GetName()] = true
		if _, ok := defined[t.GetName()]; !ok {
			defined[t.GetName()] = "an initializer"
		}
	}
	for i, n := range p.g.GetNode() {
		for _, o := range n.GetOutput() {
			if o == "" {
				continue
			}
			if what, ok := defined[o]; ok {
				return p.errf(n, i, "its output %q is already %s: the graph is not in single static assignment form (onnx.checker refuses this model)", o, what)
			}
			defined[o] = fmt.Sprintf("the output of node %s", p.nodeName(n, i))
		}
	}
	return nil
}

// typed is floats for a tensor that must have the graph input's element type, as ONNX's
// type constraints require of a Conv's, Gemm's, MatMul's and Add's inputs (onnx.checker's
// type inference refuses float16 weights on a float32 graph).
func (p *onnxParser) typed(n *onnx.NodeProto, i int, name string) ([]float64, error) {
	v, err := p.floats(n, i, name)
	if err != nil {
		return nil, err
	}
	if dt := onnx.TensorProto_DataType(p.inits[name].GetDataType()); dt != p.elem {
		return nil, p.errf(n, i, "tensor %q is %s but the graph's input is %s: the inputs of a %s must have one element type", name, typeName(dt), typeName(p.elem), n.GetOpType())
	}
	return v, nil
}

// typeName names an ONNX element type as numpy does.
func typeName(dt onnx.TensorProto_DataType) string {
	switch dt {
	case onnx.TensorProto_FLOAT:
		return "float32"
	case onnx.TensorProto_DOUBLE:
		return "float64"
	case onnx.TensorProto_FLOAT16:
		return "float16"
	case onnx.TensorProto_BFLOAT16:
		return "bfloat16"
	}
	return strings.ToLower(dt.String())
}

func (p *onnxParser) nodeName(n *onnx.NodeProto, i int) string {
	if n.GetName() != "" {
		return n.GetName()
	}
	return fmt.Sprintf("#%d", i)
}

func (p *onnxParser) errf(n *onnx.NodeProto, i int, format string, args ...any) error {
	return fmt.Errorf("%s: node %s (%s): %s", p.name, p.nodeName(n, i), n.GetOpType(), fmt.Sprintf(format, args...))
}

// supportedOps is listed in errors about other ops.
const supportedOps = "Conv, Gemm, MatMul, Add (a MatMul's bias), BatchNormalization, Relu, MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape, Pad (zeros), Identity, Dropout"

// header reads what every graph form shares: the initializers and Constant nodes, the
// number of readers of each tensor, the one data input and its shape (m.In), the one output.
// It returns the input's rank (2 or 4) and name.
func (p *onnxParser) header() (Model, int, string, error) {
	g := p.g
	for _, t := range g.GetInitializer() {
		if t.GetDataLocation() == onnx.TensorProto_EXTERNAL {
			return Model{}, 0, "", fmt.Errorf("%s: initializer %q is stored in an external file; save the model with its weights inside (onnx.save(..., save_as_external_data=False))", p.name, t.GetName())
		}
		p.inits[t.GetName()] = t
	}
	if len(g.GetSparseInitializer()) > 0 {
		return Model{}, 0, "", fmt.Errorf("%s: sparse initializers are not supported", p.name)
	}
	for i, n := range g.GetNode() {
		if n.GetDomain() != "" && n.GetDomain() != "ai.onnx" {
			return Model{}, 0, "", p.errf(n, i, "operator domain %q is not supported (only the default ONNX domain)", n.GetDomain())
		}
		if n.GetOpType() == "Constant" {
			t := attr(n, "value")
			if t == nil || t.GetT() == nil || len(n.GetOutput()) != 1 {
				return Model{}, 0, "", p.errf(n, i, "only tensor-valued Constant nodes are supported")
			}
			p.inits[n.GetOutput()[0]] = t.GetT()
			continue
		}
		for _, in := range n.GetInput() {
			p.uses[in]++
		}
	}
	for _, o := range g.GetOutput() {
		p.uses[o.GetName()]++
	}
	// The data input: the one graph input that is not an initializer.
	var inputs []*onnx.ValueInfoProto
	for _, v := range g.GetInput() {
		if _, ok := p.inits[v.GetName()]; !ok {
			inputs = append(inputs, v)
		}
	}
	if len(inputs) != 1 {
		var names []string
		for _, v := range inputs {
			names = append(names, v.GetName())
		}
		return Model{}, 0, "", fmt.Errorf("%s: the graph has %d data inputs %v; want exactly one", p.name, len(inputs), names)
	}
	if len(g.GetOutput()) != 1 {
		return Model{}, 0, "", fmt.Errorf("%s: the graph has %d outputs; want exactly one", p.name, len(g.GetOutput()))
	}
	in := inputs[0]
	tt := in.GetType().GetTensorType()
	if tt == nil {
		return Model{}, 0, "", fmt.Errorf("%s: input %q is not a tensor", p.name, in.GetName())
	}
	switch p.elem = onnx.TensorProto_DataType(tt.GetElemType()); p.elem {
	case onnx.TensorProto_FLOAT, onnx.TensorProto_DOUBLE:
	case onnx.TensorProto_FLOAT16, onnx.TensorProto_BFLOAT16:
		return Model{}, 0, "", fmt.Errorf("%s: input %q is %s: relutrim prunes float32 and float64 ONNX models only; export the model in float32 "+
			"(model.float() before torch.onnx.export), or save its state_dict as safetensors, where float16 is supported", p.name, in.GetName(), typeName(p.elem))
	default:
		return Model{}, 0, "", fmt.Errorf("%s: input %q is a tensor of %s, not of float32 or float64", p.name, in.GetName(), typeName(p.elem))
	}
	if ot := g.GetOutput()[0].GetType().GetTensorType(); ot != nil && ot.GetElemType() != 0 && onnx.TensorProto_DataType(ot.GetElemType()) != p.elem {
		return Model{}, 0, "", fmt.Errorf("%s: output %q is %s but input %q is %s: the graph's element types are inconsistent", p.name,
			g.GetOutput()[0].GetName(), typeName(onnx.TensorProto_DataType(ot.GetElemType())), in.GetName(), typeName(p.elem))
	}
	var dims []int
	for k, d := range tt.GetShape().GetDim() {
		if k == 0 {
			continue // the batch dimension: fixed or symbolic, either is fine
		}
		v := d.GetDimValue()
		if v <= 0 {
			return Model{}, 0, "", fmt.Errorf("%s: input %q has dimension %d %q not fixed; only the batch dimension may vary", p.name, in.GetName(), k, d.GetDimParam())
		}
		dims = append(dims, int(v))
	}
	var m Model
	rank := len(dims) + 1
	switch rank {
	case 2:
		m.In = Shape{dims[0], 1, 1}
	case 4:
		m.In = Shape{dims[0], dims[1], dims[2]}
	default:
		return Model{}, 0, "", fmt.Errorf("%s: input %q has rank %d; want (batch, features) or (batch, channels, height, width)", p.name, in.GetName(), rank)
	}
	if _, ok := m.In.CheckedSize(); !ok {
		return Model{}, 0, "", fmt.Errorf("%s: input %q has shape %v per sample: more than %d values (or their product overflows)", p.name, in.GetName(), dims, MaxSampleValues)
	}
	return m, rank, in.GetName(), nil
}

// finish sets the layers' default activation and bias flags and checks that no layer's
// parameter tensor is shared.
func (p *onnxParser) finish(m *Model) error {
	owner := map[string]string{}
	for k := range m.Layers {
		L := &m.Layers[k]
		if L.Act == ActDefault {
			L.Act = ActIdentity
		}
		L.NoBias = L.onnx.b == "" && L.onnx.bn == nil
		for _, t := range []string{L.onnx.w, L.onnx.b, bnBeta(L.onnx.bn)} {
			if t == "" {
				continue
			}
			if o, ok := owner[t]; ok || p.uses[t] > 1 {
				return fmt.Errorf("%s: tensor %q of layer %s is shared (also read by %s); relutrim changes it, so it must belong to one layer", p.name, t, L.Key, cmpOr(o, "another node"))
			}
			owner[t] = L.Key
		}
	}
	return nil
}

func (p *onnxParser) parse() (Model, error) {
	m, rank, inName, err := p.header()
	if err != nil {
		return Model{}, err
	}
	g := p.g
	shape := m.In
	cur := inName
	// stage of the last layer: 0 just built, 1 bias or BatchNormalization added, 2 Relu
	// seen, 3 closed by a parameter-free op.
	stage := 3
	addOp := func(o Op) {
		if len(m.Layers) == 0 {
			m.Pre = append(m.Pre, o)
		} else {
			L := &m.Layers[len(m.Layers)-1]
			L.Post = append(L.Post, o)
		}
		shape = o.Out()
		stage = 3
	}
	for i, n := range g.GetNode() {
		op := n.GetOpType()
		if op == "Constant" {
			continue
		}
		if len(n.GetInput()) == 0 || n.GetInput()[0] != cur {
			return Model{}, p.errf(n, i, "reads %q, not the previous node's output %q: only a single chain of operations is supported (no branches)", firstOr(n.GetInput()), cur)
		}
		if p.uses[cur] > 1 {
			return Model{}, p.errf(n, i, "tensor %q is read by %d nodes (a branch or residual connection); only a single chain of operations is supported", cur, p.uses[cur])
		}
		for _, x := range n.GetInput()[1:] {
			if _, ok := p.inits[x]; !ok && x != "" {
				return Model{}, p.errf(n, i, "input %q is computed by the graph, not a constant (a residual connection or a weight computed at run time); only a single chain is supported", x)
			}
		}
		if len(n.GetOutput()) < 1 {
			return Model{}, p.errf(n, i, "has no output")
		}
		var last *Layer
		if len(m.Layers) > 0 {
			last = &m.Layers[len(m.Layers)-1]
		}
		switch op {
		case "Conv":
			if rank != 4 {
				return Model{}, p.errf(n, i, "needs a (batch, channels, height, width) input; got a flat one of %d features", shape.C)
			}
			L, err := p.conv(n, i, shape)
			if err != nil {
				return Model{}, err
			}
			m.Layers = append(m.Layers, L)
			shape, stage = L.OutShape(), 0
		case "Gemm", "MatMul":
			if rank != 2 {
				return Model{}, p.errf(n, i, "needs a (batch, features) input; got (batch, %d, %d, %d): add a Flatten", shape.C, shape.H, shape.W)
			}
			L, err := p.dense(n, i, shape.C)
			if err != nil {
				return Model{}, err
			}
			m.Layers = append(m.Layers, L)
			shape, stage = L.OutShape(), 0
			if L.onnx.b != "" {
				stage = 1
			}
		case "Add":
			if last == nil || stage != 0 || last.Conv != nil {
				return Model{}, p.errf(n, i, "an Add is supported only as the bias of a MatMul (a residual Add is not)")
			}
			b, err := p.typed(n, i, n.GetInput()[1])
			if err != nil {
				return Model{}, err
			}
			if len(b) != last.Out {
				return Model{}, p.errf(n, i, "bias %q has %d values for %d outputs", n.GetInput()[1], len(b), last.Out)
			}
			last.B, last.BType, last.onnx.b, stage = b, p.dtype(n.GetInput()[1]), n.GetInput()[1], 1
		case "BatchNormalization":
			if last == nil || stage > 1 {
				return Model{}, p.errf(n, i, "a BatchNormalization is supported only right after a Conv, Gemm or MatMul (it is folded into it)")
			}
			if err := p.foldBN(n, i, last); err != nil {
				return Model{}, err
			}
			stage = 1
		case "Relu":
			if last == nil || stage > 1 {
				return Model{}, p.errf(n, i, "a Relu is supported only right after a Conv, Gemm or MatMul (or its BatchNormalization)")
			}
			last.Act, stage = ActReLU, 2
		case "MaxPool", "AveragePool":
			if rank != 4 {
				return Model{}, p.errf(n, i, "needs a (batch, channels, height, width) input")
			}
			o, err := p.pool(n, i, shape)
			if err != nil {
				return Model{}, err
			}
			addOp(o)
		case "GlobalAveragePool":
			if rank != 4 {
				return Model{}, p.errf(n, i, "needs a (batch, channels, height, width) input")
			}
			addOp(Op{Kind: GlobalAvgPool, In: shape, Node: p.nodeName(n, i)})
		case "Flatten":
			if a := attr(n, "axis"); a != nil && a.GetI() != 1 {
				return Model{}, p.errf(n, i, "axis %d; only axis 1 (keep the batch dimension) is supported", a.GetI())
			}
			addOp(Op{Kind: Flatten, In: shape, Node: p.nodeName(n, i)})
			rank = 2
		case "Reshape":
			if err := p.reshape(n, i, shape); err != nil {
				return Model{}, err
			}
			addOp(Op{Kind: Flatten, In: shape, Node: p.nodeName(n, i)})
			rank = 2
		case "Pad":
			if rank != 4 {
				return Model{}, p.errf(n, i, "needs a (batch, channels, height, width) input")
			}
			o, err := p.pad(n, i, shape)
			if err != nil {
				return Model{}, err
			}
			if o.PT+o.PL+o.PB+o.PR > 0 {
				addOp(o)
			} else {
				stage = 3
			}
		case "Identity", "Dropout":
			for _, o := range n.GetOutput()[1:] {
				if p.uses[o] > 0 {
					return Model{}, p.errf(n, i, "its mask output %q is used; only inference (one output) is supported", o)
				}
			}
		default:
			return Model{}, p.errf(n, i, "op %s is not supported (supported: %s)", op, supportedOps)
		}
		if _, ok := shape.CheckedSize(); !ok {
			return Model{}, p.errf(n, i, "its output of %d x %d x %d per sample has more than %d values", shape.C, shape.H, shape.W, MaxSampleValues)
		}
		cur = n.GetOutput()[0]
	}
	if out := g.GetOutput()[0].GetName(); out != cur {
		return Model{}, fmt.Errorf("%s: the graph's output %q is not the end of the chain %q", p.name, out, cur)
	}
	if len(m.Layers) == 0 {
		return Model{}, fmt.Errorf("%s: no Conv, Gemm or MatMul layer found", p.name)
	}
	if err := p.finish(&m); err != nil {
		return Model{}, err
	}
	return m, nil
}

func bnBeta(f *bnFold) string {
	if f == nil {
		return ""
	}
	return f.beta
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func firstOr(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func attr(n *onnx.NodeProto, name string) *onnx.AttributeProto {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a
		}
	}
	return nil
}

// ints returns an INTS attribute, or def if absent.
func ints(n *onnx.NodeProto, name string, def []int) []int {
	a := attr(n, name)
	if a == nil {
		return def
	}
	out := make([]int, len(a.GetInts()))
	for i, v := range a.GetInts() {
		out[i] = int(v)
	}
	return out
}

func intAttr(n *onnx.NodeProto, name string, def int) int {
	if a := attr(n, name); a != nil {
		return int(a.GetI())
	}
	return def
}

// checkAutoPad rejects auto_pad other than NOTSET (VALID means no padding: accepted).
func (p *onnxParser) checkAutoPad(n *onnx.NodeProto, i int) error {
	a := attr(n, "auto_pad")
	if a == nil {
		return nil
	}
	switch v := string(a.GetS()); v {
	case "", "NOTSET", "VALID":
		return nil
	default:
		return p.errf(n, i, "auto_pad %s is not supported (export with explicit pads)", v)
	}
}

func (p *onnxParser) conv(n *onnx.NodeProto, i int, in Shape) (Layer, error) {
	if g := intAttr(n, "group", 1); g != 1 {
		return Layer{}, p.errf(n, i, "group %d: only groups = 1 is supported (no grouped or depthwise convolutions)", g)
	}
	if err := p.checkAutoPad(n, i); err != nil {
		return Layer{}, err
	}
	if len(n.GetInput()) < 2 {
		return Layer{}, p.errf(n, i, "has no weight input")
	}
	wName := n.GetInput()[1]
	wt := p.inits[wName]
	if wt == nil || len(wt.GetDims()) != 4 {
		return Layer{}, p.errf(n, i, "weight %q is not a constant 4-D tensor (C_out, C_in, kh, kw)", wName)
	}
	d := wt.GetDims()
	if slices.Min(d) < 1 || slices.Max(d) > maxAttr {
		return Layer{}, p.errf(n, i, "weight %q has shape %v; want four positive dimensions", wName, d)
	}
	cout, cin, kh, kw := int(d[0]), int(d[1]), int(d[2]), int(d[3])
	if cin != in.C {
		return Layer{}, p.errf(n, i, "weight %q takes %d input channels but its input has %d", wName, cin, in.C)
	}
	if ks := ints(n, "kernel_shape", []int{kh, kw}); len(ks) != 2 || ks[0] != kh || ks[1] != kw {
		return Layer{}, p.errf(n, i, "kernel_shape %v does not match the weight's %dx%d (only 2-D convolutions are supported)", ks, kh, kw)
	}
	st, dl, pd := ints(n, "strides", []int{1, 1}), ints(n, "dilations", []int{1, 1}), ints(n, "pads", []int{0, 0, 0, 0})
	if len(st) != 2 || len(dl) != 2 || len(pd) != 4 || st[0] < 1 || st[1] < 1 || dl[0] < 1 || dl[1] < 1 || slices.Min(pd) < 0 ||
		slices.Max(slices.Concat(st, dl, pd)) > maxAttr {
		return Layer{}, p.errf(n, i, "strides %v, dilations %v, pads %v: want two positive strides and dilations and four non-negative pads", st, dl, pd)
	}
	c := &Conv{In: in, KH: kh, KW: kw, SH: st[0], SW: st[1], DH: dl[0], DW: dl[1], PT: pd[0], PL: pd[1], PB: pd[2], PR: pd[3]}
	if err := c.setOut(); err != nil {
		return Layer{}, p.errf(n, i, "%v", err)
	}
	w, err := p.typed(n, i, wName)
	if err != nil {
		return Layer{}, err
	}
	L := Layer{Key: p.nodeName(n, i), In: cin * kh * kw, Out: cout, W: w, WType: p.dtype(wName), Conv: c,
		onnx: &onnxParams{node: p.nodeName(n, i), w: wName}}
	L.B = make([]float64, cout)
	L.BType = L.WType
	if len(n.GetInput()) > 2 && n.GetInput()[2] != "" {
		bName := n.GetInput()[2]
		if L.B, err = p.typed(n, i, bName); err != nil {
			return Layer{}, err
		}
		if len(L.B) != cout {
			return Layer{}, p.errf(n, i, "bias %q has %d values for %d output channels", bName, len(L.B), cout)
		}
		L.onnx.b, L.BType = bName, p.dtype(bName)
	}
	return L, nil
}

func (p *onnxParser) dense(n *onnx.NodeProto, i int, in int) (Layer, error) {
	op := n.GetOpType()
	if len(n.GetInput()) < 2 {
		return Layer{}, p.errf(n, i, "has no weight input")
	}
	trans := true // weight stored In x Out
	if op == "Gemm" {
		if intAttr(n, "transA", 0) != 0 {
			return Layer{}, p.errf(n, i, "transA = 1 is not supported")
		}
		for _, k := range []string{"alpha", "beta"} {
			if a := attr(n, k); a != nil && a.GetF() != 1 {
				return Layer{}, p.errf(n, i, "%s = %v; only 1 is supported", k, a.GetF())
			}
		}
		trans = intAttr(n, "transB", 0) == 0
	}
	wName := n.GetInput()[1]
	wt := p.inits[wName]
	if wt == nil || len(wt.GetDims()) != 2 {
		return Layer{}, p.errf(n, i, "weight %q is not a constant 2-D tensor", wName)
	}
	if slices.Min(wt.GetDims()) < 1 {
		return Layer{}, p.errf(n, i, "weight %q has shape %v; want two positive dimensions", wName, wt.GetDims())
	}
	r, c := int(wt.GetDims()[0]), int(wt.GetDims()[1])
	out, win := r, c
	if trans {
		out, win = c, r
	}
	if win != in {
		return Layer{}, p.errf(n, i, "weight %q (%dx%d) takes %d inputs but its input has %d features", wName, r, c, win, in)
	}
	w, err := p.typed(n, i, wName)
	if err != nil {
		return Layer{}, err
	}
	if trans {
		w = Transpose(w, r, c)
	}
	L := Layer{Key: p.nodeName(n, i), In: in, Out: out, W: w, WType: p.dtype(wName), B: make([]float64, out),
		onnx: &onnxParams{node: p.nodeName(n, i), w: wName, transW: trans}}
	L.BType = L.WType
	if op == "Gemm" && len(n.GetInput()) > 2 && n.GetInput()[2] != "" {
		bName := n.GetInput()[2]
		if L.B, err = p.typed(n, i, bName); err != nil {
			return Layer{}, err
		}
		if len(L.B) != out {
			return Layer{}, p.errf(n, i, "bias %q has %d values for %d outputs (only a per-output bias is supported)", bName, len(L.B), out)
		}
		L.onnx.b, L.BType = bName, p.dtype(bName)
	}
	return L, nil
}

func (p *onnxParser) foldBN(n *onnx.NodeProto, i int, L *Layer) error {
	if len(n.GetInput()) != 5 {
		return p.errf(n, i, "want 5 inputs (X, scale, B, mean, var), got %d", len(n.GetInput()))
	}
	if intAttr(n, "training_mode", 0) != 0 || len(n.GetOutput()) > 1 && (p.uses[n.GetOutput()[1]] > 0 || len(n.GetOutput()) > 2 && p.uses[n.GetOutput()[2]] > 0) {
		return p.errf(n, i, "training mode is not supported; export the model in eval mode")
	}
	var v [4][]float64
	for k := range v {
		read := p.typed // before opset 15, scale, B, mean and var have the input's type T
		if p.opset >= 15 {
			read = p.floats // T1 (scale, B) and T2 (mean, var) may differ from T: checked below
		}
		x, err := read(n, i, n.GetInput()[k+1])
		if err != nil {
			return err
		}
		if len(x) != L.Out {
			return p.errf(n, i, "parameter %q has %d values for %d channels", n.GetInput()[k+1], len(x), L.Out)
		}
		v[k] = x
	}
	dt := func(k int) int32 { return p.inits[n.GetInput()[k]].GetDataType() }
	if dt(1) != dt(2) || dt(3) != dt(4) {
		return p.errf(n, i, "scale and B (or mean and var) have different element types")
	}
	eps := 1e-5
	if a := attr(n, "epsilon"); a != nil {
		eps = float64(a.GetF())
	}
	gamma, beta, mean, vr := v[0], v[1], v[2], v[3]
	f := &bnFold{s: make([]float64, L.Out), mean: mean, b0: slices.Clone(L.B), beta: n.GetInput()[2],
		others: [3]string{n.GetInput()[1], n.GetInput()[3], n.GetInput()[4]}}
	for o := 0; o < L.Out; o++ {
		if vr[o]+eps <= 0 {
			return p.errf(n, i, "variance %v + epsilon %v of channel %d is not positive", vr[o], eps, o)
		}
		s := gamma[o] / math.Sqrt(vr[o]+eps)
		f.s[o] = s
		for j := o * L.In; j < (o+1)*L.In; j++ {
			L.W[j] *= s
		}
		L.B[o] = s*(L.B[o]-mean[o]) + beta[o]
	}
	L.onnx.bn = f
	return nil
}

func (p *onnxParser) pool(n *onnx.NodeProto, i int, in Shape) (Op, error) {
	if err := p.checkAutoPad(n, i); err != nil {
		return Op{}, err
	}
	ks := ints(n, "kernel_shape", nil)
	st, pd := ints(n, "strides", []int{1, 1}), ints(n, "pads", []int{0, 0, 0, 0})
	if dl := ints(n, "dilations", []int{1, 1}); len(dl) != 2 || dl[0] != 1 || dl[1] != 1 {
		return Op{}, p.errf(n, i, "dilations %v: only 1 is supported", dl)
	}
	if intAttr(n, "storage_order", 0) != 0 {
		return Op{}, p.errf(n, i, "storage_order 1 is not supported")
	}
	if len(n.GetOutput()) > 1 && p.uses[n.GetOutput()[1]] > 0 {
		return Op{}, p.errf(n, i, "the Indices output is not supported")
	}
	if len(ks) != 2 || len(st) != 2 || len(pd) != 4 || ks[0] < 1 || ks[1] < 1 || st[0] < 1 || st[1] < 1 || slices.Min(pd) < 0 ||
		slices.Max(slices.Concat(ks, st, pd)) > maxAttr {
		return Op{}, p.errf(n, i, "kernel_shape %v, strides %v, pads %v: want a 2-D window", ks, st, pd)
	}
	o := Op{Kind: MaxPool, In: in, KH: ks[0], KW: ks[1], SH: st[0], SW: st[1], PT: pd[0], PL: pd[1], PB: pd[2], PR: pd[3],
		Ceil: intAttr(n, "ceil_mode", 0) != 0, Node: p.nodeName(n, i)}
	if n.GetOpType() == "AveragePool" {
		o.Kind = AvgPool
		o.CountPad = intAttr(n, "count_include_pad", 0) != 0
	}
	if out := o.Out(); out.H < 1 || out.W < 1 {
		return Op{}, p.errf(n, i, "a %dx%d window does not fit the %dx%d input", o.KH, o.KW, in.H, in.W)
	}
	return o, nil
}

// pad accepts a constant-mode Pad with value 0 of the spatial dimensions only.
func (p *onnxParser) pad(n *onnx.NodeProto, i int, in Shape) (Op, error) {
	if a := attr(n, "mode"); a != nil && string(a.GetS()) != "constant" {
		return Op{}, p.errf(n, i, "mode %s: only constant (zero) padding is supported", a.GetS())
	}
	if len(n.GetInput()) < 2 || p.inits[n.GetInput()[1]] == nil {
		return Op{}, p.errf(n, i, "pads must be a constant input")
	}
	pads, err := int64s(p.inits[n.GetInput()[1]])
	if err != nil {
		return Op{}, p.errf(n, i, "pads %q: %v", n.GetInput()[1], err)
	}
	if len(n.GetInput()) > 2 && n.GetInput()[2] != "" {
		v, err := p.typed(n, i, n.GetInput()[2])
		if err != nil {
			return Op{}, err
		}
		if len(v) != 1 || v[0] != 0 {
			return Op{}, p.errf(n, i, "constant_value %v: only 0 is supported", v)
		}
	}
	if len(n.GetInput()) > 3 {
		return Op{}, p.errf(n, i, "the axes input is not supported")
	}
	if len(pads) != 8 || pads[0] != 0 || pads[1] != 0 || pads[4] != 0 || pads[5] != 0 || slices.Min(pads) < 0 || slices.Max(pads) > maxAttr {
		return Op{}, p.errf(n, i, "pads %v: only non-negative padding of height and width is supported", pads)
	}
	return Op{Kind: Pad, In: in, PT: int(pads[2]), PL: int(pads[3]), PB: int(pads[6]), PR: int(pads[7]), Node: p.nodeName(n, i)}, nil
}

// reshape accepts a Reshape to (batch, features): a constant shape [b, f] with b in
// {0, -1, 1} (0 copies the batch dimension) and f the number of features (or -1).
func (p *onnxParser) reshape(n *onnx.NodeProto, i int, in Shape) error {
	if len(n.GetInput()) != 2 {
		return p.errf(n, i, "want a constant shape input")
	}
	t := p.inits[n.GetInput()[1]]
	if t == nil {
		return p.errf(n, i, "shape %q is computed at run time; only a constant shape is supported (export with a fixed input size, or use nn.Flatten)", n.GetInput()[1])
	}
	sh, err := int64s(t)
	if err != nil {
		return p.errf(n, i, "shape %q: %v", n.GetInput()[1], err)
	}
	f := int64(in.Size())
	ok := len(sh) == 2 && (sh[0] == 0 || sh[0] == -1 || sh[0] == 1) && (sh[1] == f || sh[1] == -1 && sh[0] != -1)
	if !ok {
		return p.errf(n, i, "reshape to %v: only a reshape to (batch, %d) is supported", sh, f)
	}
	return nil
}

// dtype maps an initializer's type to the names the package uses ("F32", "F64", "F16").
func (p *onnxParser) dtype(name string) string {
	switch onnx.TensorProto_DataType(p.inits[name].GetDataType()) {
	case onnx.TensorProto_DOUBLE:
		return "F64"
	case onnx.TensorProto_FLOAT16:
		return "F16"
	}
	return "F32"
}

// floats decodes a float initializer and checks that it is finite.
func (p *onnxParser) floats(n *onnx.NodeProto, i int, name string) ([]float64, error) {
	t := p.inits[name]
	if t == nil {
		return nil, p.errf(n, i, "input %q is not a constant", name)
	}
	v, err := tensorFloats(t)
	if err != nil {
		return nil, p.errf(n, i, "tensor %q: %v", name, err)
	}
	if !allFinite(v) {
		return nil, p.errf(n, i, "tensor %q holds a non-finite value (NaN or Inf)", name)
	}
	return v, nil
}

// numel returns the number of values of t's shape; an error for a negative dimension or
// a product that overflows.
func numel(t *onnx.TensorProto) (int, error) {
	n := 1
	for _, d := range t.GetDims() {
		if d < 0 || d > 0 && int64(n) > math.MaxInt64/d {
			return 0, fmt.Errorf("shape %v is negative or too large", t.GetDims())
		}
		n *= int(d)
	}
	return n, nil
}

var errNotFloat = errors.New("not a float tensor")

// tensorFloats decodes a FLOAT, DOUBLE or FLOAT16 tensor.
func tensorFloats(t *onnx.TensorProto) ([]float64, error) {
	n, err := numel(t)
	if err != nil {
		return nil, err
	}
	raw := t.GetRawData()
	var out []float64
	switch onnx.TensorProto_DataType(t.GetDataType()) {
	case onnx.TensorProto_FLOAT:
		if raw != nil {
			if len(raw) != 4*n {
				return nil, fmt.Errorf("%d bytes of data for %d float32 values", len(raw), n)
			}
			out = make([]float64, n)
			for k := range out {
				out[k] = float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*k:])))
			}
		} else {
			for _, v := range t.GetFloatData() {
				out = append(out, float64(v))
			}
		}
	case onnx.TensorProto_DOUBLE:
		if raw != nil {
			if len(raw) != 8*n {
				return nil, fmt.Errorf("%d bytes of data for %d float64 values", len(raw), n)
			}
			out = make([]float64, n)
			for k := range out {
				out[k] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*k:]))
			}
		} else {
			out = slices.Clone(t.GetDoubleData())
		}
	case onnx.TensorProto_FLOAT16:
		if raw != nil {
			if len(raw) != 2*n {
				return nil, fmt.Errorf("%d bytes of data for %d float16 values", len(raw), n)
			}
			out = make([]float64, n)
			for k := range out {
				out[k] = float64(dataio.HalfToFloat32(binary.LittleEndian.Uint16(raw[2*k:])))
			}
		} else {
			for _, v := range t.GetInt32Data() {
				out = append(out, float64(dataio.HalfToFloat32(uint16(v))))
			}
		}
	default:
		return nil, fmt.Errorf("%w (data type %d)", errNotFloat, t.GetDataType())
	}
	if len(out) != n {
		return nil, fmt.Errorf("%d values for shape %v", len(out), t.GetDims())
	}
	return out, nil
}

// int64s decodes an INT64 tensor (a Reshape's shape).
func int64s(t *onnx.TensorProto) ([]int64, error) {
	if onnx.TensorProto_DataType(t.GetDataType()) != onnx.TensorProto_INT64 {
		return nil, fmt.Errorf("not an int64 tensor")
	}
	if raw := t.GetRawData(); raw != nil {
		out := make([]int64, len(raw)/8)
		for k := range out {
			out[k] = int64(binary.LittleEndian.Uint64(raw[8*k:]))
		}
		return out, nil
	}
	return t.GetInt64Data(), nil
}

// setFloats replaces t's values by v in t's own data type and storage (raw or typed).
func setFloats(t *onnx.TensorProto, v []float64) {
	raw := t.GetRawData() != nil
	t.FloatData, t.DoubleData, t.Int32Data = nil, nil, nil
	switch onnx.TensorProto_DataType(t.GetDataType()) {
	case onnx.TensorProto_DOUBLE:
		if raw {
			b := make([]byte, 8*len(v))
			for k, x := range v {
				binary.LittleEndian.PutUint64(b[8*k:], math.Float64bits(x))
			}
			t.RawData = b
		} else {
			t.DoubleData = slices.Clone(v)
		}
	case onnx.TensorProto_FLOAT16:
		if raw {
			b := make([]byte, 2*len(v))
			for k, x := range v {
				binary.LittleEndian.PutUint16(b[2*k:], dataio.Float32ToHalf(float32(x)))
			}
			t.RawData = b
		} else {
			t.Int32Data = make([]int32, len(v))
			for k, x := range v {
				t.Int32Data[k] = int32(dataio.Float32ToHalf(float32(x)))
			}
		}
	default:
		if raw {
			b := make([]byte, 4*len(v))
			for k, x := range v {
				binary.LittleEndian.PutUint32(b[4*k:], math.Float32bits(float32(x)))
			}
			t.RawData = b
		} else {
			t.FloatData = make([]float32, len(v))
			for k, x := range v {
				t.FloatData[k] = float32(x)
			}
		}
	}
}

// EncodeONNX writes m as the ONNX model it was read from, with each layer's weight (and
// bias, or its BatchNormalization's shift) initializers replaced by the layer's values.
func (m Model) EncodeONNX(w io.Writer) error {
	if m.src == nil {
		return fmt.Errorf("model was not read from ONNX")
	}
	mp := proto.Clone(m.src.proto).(*onnx.ModelProto)
	inits := map[string]*onnx.TensorProto{}
	for _, t := range mp.GetGraph().GetInitializer() {
		inits[t.GetName()] = t
	}
	for _, n := range mp.GetGraph().GetNode() {
		if n.GetOpType() == "Constant" && len(n.GetOutput()) == 1 {
			if a := attr(n, "value"); a != nil && a.GetT() != nil {
				inits[n.GetOutput()[0]] = a.GetT()
			}
		}
	}
	shrunk := false
	for _, L := range m.Layers {
		src := L.onnx
		if src == nil {
			return fmt.Errorf("layer %s has no place in the ONNX graph", L.Key)
		}
		W, B := slices.Clone(L.W), L.B
		// Shapes as they are now (Model.Shrink removes units and channels).
		wd := []int64{int64(L.Out), int64(L.In)}
		if src.transW {
			wd = []int64{int64(L.In), int64(L.Out)}
		}
		if L.Conv != nil {
			wd = []int64{int64(L.Out), int64(L.Conv.In.C), int64(L.Conv.KH), int64(L.Conv.KW)}
		}
		if w := inits[src.w]; !slices.Equal(w.GetDims(), wd) {
			w.Dims, shrunk = wd, true
		}
		if src.b != "" {
			inits[src.b].Dims = []int64{int64(L.Out)}
		}
		if f := src.bn; f != nil {
			if f.rows != nil {
				// The BatchNormalization's other tensors keep the remaining channels.
				for _, name := range f.others {
					t := inits[name]
					v, err := tensorFloats(t)
					if err != nil {
						return fmt.Errorf("layer %s: %s: %v", L.Key, name, err)
					}
					cut := make([]float64, len(f.rows))
					for k, o := range f.rows {
						cut[k] = v[o]
					}
					setFloats(t, cut)
					t.Dims = []int64{int64(len(cut))}
				}
				inits[f.beta].Dims = []int64{int64(L.Out)}
			}
			if src.b != "" {
				setFloats(inits[src.b], f.b0) // the layer's own bias is left as it was (cut to the rows)
			}
			beta := make([]float64, L.Out)
			for o := 0; o < L.Out; o++ {
				for j := o * L.In; j < (o+1)*L.In; j++ {
					if f.s[o] != 0 {
						W[j] /= f.s[o]
					} else {
						W[j] = 0 // the channel is constant (beta): its weights do nothing
					}
				}
				beta[o] = B[o] - f.s[o]*(f.b0[o]-f.mean[o])
			}
			setFloats(inits[f.beta], beta)
		} else if src.b != "" {
			setFloats(inits[src.b], B)
		} else if slices.ContainsFunc(B, func(v float64) bool { return v != 0 }) {
			return fmt.Errorf("layer %s: the ONNX graph has no bias tensor for its non-zero bias", L.Key)
		}
		if src.transW {
			W = Transpose(W, L.Out, L.In)
		}
		setFloats(inits[src.w], W)
	}
	if shrunk {
		// Intermediate shape annotations (optional in ONNX) would be stale.
		mp.Graph.ValueInfo = nil
		if err := m.reshapeFeatures(mp.GetGraph(), inits); err != nil {
			return err
		}
		// Initializers also listed as graph inputs (older exporters) declare their shapes there.
		for _, v := range mp.GetGraph().GetInput() {
			t := inits[v.GetName()]
			tt := v.GetType().GetTensorType()
			if t == nil || tt == nil || tt.GetShape() == nil || len(tt.GetShape().GetDim()) != len(t.GetDims()) {
				continue
			}
			for k, d := range tt.GetShape().GetDim() {
				d.Value = &onnx.TensorShapeProto_Dimension_DimValue{DimValue: t.GetDims()[k]}
			}
		}
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(mp)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// reshapeFeatures sets the feature count of every Reshape to (batch, features) that
// flattens a layer's output to the size it has now (Model.Shrink removes channels); a
// count of -1 (inferred) is left alone. The shape is a constant read by that node only.
func (m Model) reshapeFeatures(g *onnx.GraphProto, inits map[string]*onnx.TensorProto) error {
	want := map[string]int64{} // node name -> features
	for _, L := range m.Layers {
		for _, o := range L.Post {
			if o.Kind == Flatten {
				want[o.Node] = int64(o.In.Size())
			}
		}
	}
	for _, o := range m.Pre {
		if o.Kind == Flatten {
			want[o.Node] = int64(o.In.Size())
		}
	}
	reads := map[string]int{}
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			reads[in]++
		}
	}
	for i, n := range g.GetNode() {
		name := n.GetName()
		if name == "" {
			name = fmt.Sprintf("#%d", i)
		}
		f, ok := want[name]
		if !ok || n.GetOpType() != "Reshape" || len(n.GetInput()) != 2 {
			continue
		}
		t := inits[n.GetInput()[1]]
		if t == nil {
			return fmt.Errorf("node %s (Reshape): shape %q is not a constant", name, n.GetInput()[1])
		}
		sh, err := int64s(t)
		if err != nil || len(sh) != 2 {
			return fmt.Errorf("node %s (Reshape): shape %q: want two int64 values", name, n.GetInput()[1])
		}
		if sh[1] == -1 || sh[1] == f {
			continue
		}
		if reads[n.GetInput()[1]] > 1 {
			return fmt.Errorf("node %s (Reshape): its shape %q is read by other nodes too; cannot change it to %d features", name, n.GetInput()[1], f)
		}
		sh[1] = f
		t.RawData, t.Int64Data = nil, nil
		b := make([]byte, 16)
		binary.LittleEndian.PutUint64(b, uint64(sh[0]))
		binary.LittleEndian.PutUint64(b[8:], uint64(sh[1]))
		t.RawData = b
	}
	return nil
}
