package model

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"
)

// Residual graphs (issue 21): ONNX graphs that are directed acyclic graphs of the chain's
// ops plus Add of two computed tensors of the same shape, a residual join, as
// torch.onnx.export writes torchvision-style ResNets (identity shortcuts, and projection
// shortcuts: a 1x1 Conv, possibly strided, with or without a BatchNormalization). Such a
// Model keeps its Conv and Gemm layers in graph order in Layers (each with its folded
// BatchNormalization and, where a Relu reads its output alone, its ReLU) and the graph's
// wiring in graph; Forward, Accuracy and Outputs run it, and Exec runs it step by step
// with the caller's layers (the pruner, prune/residual.go). What walks the layers as a chain
// (Next, Shrink, channel pruning) does not apply: Load and FromONNX refuse residual graphs
// ("residual Add: pruning residual networks is not supported yet"); LoadONNXGraph and
// FromONNXGraph read them (relutrim prune falls back to LoadONNXGraph for weight pruning).

// graph is a residual Model's wiring. Values are numbered: 0 is the model's input (channel-
// last), each step writes one new value.
type graph struct {
	steps  []gstep
	shapes []Shape // per value
	out    int     // the value that is the network's output
	adds   []string
}

type gkind int

const (
	gLayer gkind = iota + 1 // Layers[layer] (with its activation) on in[0]
	gOp                     // op on in[0]
	gRelu                   // max(0, in[0])
	gAdd                    // in[0] + in[1]
)

type gstep struct {
	kind  gkind
	layer int
	op    Op
	in    [2]int
	out   int
}

// Residual returns the names of the residual Add nodes of a model read by FromONNXGraph
// (nil for a chain).
func (m Model) Residual() []string {
	if m.graph == nil {
		return nil
	}
	return m.graph.adds
}

// Join is one residual Add of a graph read by FromONNXGraph, in graph order: what the
// residual fit (issue 21) needs to know of a block. Node is the Add's name. Layers are the
// layers whose output (their BatchNormalization folded, no activation) is an operand, in
// graph order: a block's last conv, and a projection shortcut's conv when there is one
// (both write into the same pre-activation). Identity reports an operand that is not a
// layer's output (an identity shortcut: the block's input, unchanged). Relu reports that
// the sum goes through a Relu.
type Join struct {
	Node     string
	Layers   []int
	Identity bool
	Relu     bool
}

// Joins returns the residual Adds of a model read by FromONNXGraph (nil for a chain).
func (m Model) Joins() []Join {
	if m.graph == nil {
		return nil
	}
	gr := m.graph
	producer := map[int]int{} // value -> the layer whose step wrote it
	for _, st := range gr.steps {
		if st.kind == gLayer {
			producer[st.out] = st.layer
		}
	}
	var joins []Join
	for _, st := range gr.steps {
		if st.kind != gAdd {
			continue
		}
		j := Join{Node: gr.adds[len(joins)]}
		for _, v := range st.in {
			if l, ok := producer[v]; ok && m.Layers[l].Act != ActReLU {
				j.Layers = append(j.Layers, l)
			} else {
				j.Identity = true
			}
		}
		slices.Sort(j.Layers)
		for _, r := range gr.steps {
			if r.kind == gRelu && r.in[0] == st.out {
				j.Relu = true
			}
		}
		joins = append(joins, j)
	}
	return joins
}

// LoadONNXGraph reads an ONNX model that is a chain or a residual graph (see graph.go).
func LoadONNXGraph(path string) (Model, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Model{}, err
	}
	return FromONNXGraph(data, path)
}

// FromONNXGraph decodes an ONNX model that is a chain (as FromONNX) or a residual graph.
func FromONNXGraph(data []byte, name string) (Model, error) {
	m, err := FromONNX(data, name)
	if err == nil {
		return m, nil
	}
	g, gerr := residualGraph(data, name)
	if gerr != nil {
		if _, ok := gerr.(*notResidual); ok {
			return Model{}, err // not a graph form either: the chain's error
		}
		return Model{}, gerr
	}
	return g, nil
}

// notResidual: the data is not an ONNX graph, or a graph without a residual Add (the chain
// parser's error stands).
type notResidual struct{}

func (*notResidual) Error() string { return "no residual Add" }

// residualGraph parses data as a residual graph.
func residualGraph(data []byte, name string) (Model, error) {
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(data, mp); err != nil || len(mp.GetGraph().GetNode()) == 0 {
		return Model{}, &notResidual{} // FromONNX's error says what is wrong
	}
	p := &onnxParser{name: name, g: mp.GetGraph(), inits: map[string]*onnx.TensorProto{}, uses: map[string]int{}}
	if err := p.checkOpset(mp); err != nil {
		return Model{}, err
	}
	if err := p.checkNames(); err != nil {
		return Model{}, err
	}
	m, err := p.parseGraph()
	if err != nil {
		return Model{}, err
	}
	if len(m.graph.adds) == 0 {
		return Model{}, &notResidual{}
	}
	m.src = &onnxSource{proto: mp, name: name}
	return m, nil
}

// residualRefusal is FromONNX's error for a graph that fails as a chain but reads as a
// residual graph: it names the first residual Add, and keeps the chain's reason.
func residualRefusal(data []byte, name string, chainErr error) error {
	m, err := residualGraph(data, name)
	if err != nil {
		return chainErr
	}
	return fmt.Errorf("%s: node %s (Add): residual Add: pruning residual networks is not supported yet (the graph is not a single chain: %s)",
		name, m.graph.adds[0], strings.TrimPrefix(chainErr.Error(), name+": "))
}

// gval is what the parser knows of a value: its shape and rank, and, while it is the raw
// output of a layer that only one node reads, that layer and its stage (0: just built,
// 1: bias or BatchNormalization added) for folding.
type gval struct {
	id    int
	rank  int
	layer int // -1: not a layer's raw output
	stage int
}

func (p *onnxParser) parseGraph() (Model, error) {
	m, rank, inName, err := p.header()
	if err != nil {
		return Model{}, err
	}
	gr := &graph{shapes: []Shape{m.In}}
	vals := map[string]gval{inName: {id: 0, rank: rank, layer: -1}}
	newVal := func(s Shape) int {
		gr.shapes = append(gr.shapes, s)
		return len(gr.shapes) - 1
	}
	for i, n := range p.g.GetNode() {
		op := n.GetOpType()
		if op == "Constant" {
			continue
		}
		if len(n.GetInput()) == 0 || len(n.GetOutput()) < 1 {
			return Model{}, p.errf(n, i, "has no input or no output")
		}
		x, ok := vals[n.GetInput()[0]]
		if !ok {
			return Model{}, p.errf(n, i, "reads %q, which no earlier node computes", n.GetInput()[0])
		}
		shape := gr.shapes[x.id]
		// Inputs after the first are constants, except the second operand of a residual Add.
		for k, in := range n.GetInput()[1:] {
			if _, c := p.inits[in]; !c && in != "" && !(op == "Add" && k == 0) {
				return Model{}, p.errf(n, i, "input %q is computed by the graph, not a constant", in)
			}
		}
		// The layer whose raw output x is, if only this node reads it (a fold target).
		var last *Layer
		if x.layer >= 0 && p.uses[n.GetInput()[0]] == 1 {
			last = &m.Layers[x.layer]
		}
		y := gval{id: -1, rank: x.rank, layer: -1}
		addStep := func(s gstep, out Shape) {
			s.out = newVal(out)
			gr.steps = append(gr.steps, s)
			y.id = s.out
		}
		switch op {
		case "Conv", "Gemm", "MatMul":
			var L Layer
			if op == "Conv" {
				if x.rank != 4 {
					return Model{}, p.errf(n, i, "needs a (batch, channels, height, width) input")
				}
				L, err = p.conv(n, i, shape)
			} else {
				if x.rank != 2 {
					return Model{}, p.errf(n, i, "needs a (batch, features) input: add a Flatten")
				}
				L, err = p.dense(n, i, shape.C)
			}
			if err != nil {
				return Model{}, err
			}
			m.Layers = append(m.Layers, L)
			addStep(gstep{kind: gLayer, layer: len(m.Layers) - 1, in: [2]int{x.id}}, L.OutShape())
			y.layer = len(m.Layers) - 1
			if L.onnx.b != "" {
				y.stage = 1
			}
		case "Add":
			in2 := n.GetInput()[1]
			if _, c := p.inits[in2]; c { // a MatMul's bias
				if last == nil || x.stage != 0 || last.Conv != nil {
					return Model{}, p.errf(n, i, "an Add of a constant is supported only as the bias of a MatMul")
				}
				b, err := p.typed(n, i, in2)
				if err != nil {
					return Model{}, err
				}
				if len(b) != last.Out {
					return Model{}, p.errf(n, i, "bias %q has %d values for %d outputs", in2, len(b), last.Out)
				}
				last.B, last.BType, last.onnx.b = b, p.dtype(in2), in2
				y = x
				y.stage = 1
				break
			}
			z, ok := vals[in2]
			if !ok {
				return Model{}, p.errf(n, i, "reads %q, which no earlier node computes", in2)
			}
			if z.rank != x.rank || gr.shapes[z.id] != shape {
				return Model{}, p.errf(n, i, "adds tensors of shapes %v and %v; a residual Add needs equal shapes", shape, gr.shapes[z.id])
			}
			addStep(gstep{kind: gAdd, in: [2]int{x.id, z.id}}, shape)
			gr.adds = append(gr.adds, p.nodeName(n, i))
		case "BatchNormalization":
			if last == nil || x.stage > 1 {
				return Model{}, p.errf(n, i, "a BatchNormalization is supported only right after a Conv, Gemm or MatMul whose output it alone reads (it is folded into it)")
			}
			if err := p.foldBN(n, i, last); err != nil {
				return Model{}, err
			}
			y = x
			y.stage = 1
		case "Relu":
			if last != nil && x.stage <= 1 {
				last.Act = ActReLU
				y = x // the layer's step now applies the ReLU
				y.layer = -1
				break
			}
			addStep(gstep{kind: gRelu, in: [2]int{x.id}}, shape)
		case "MaxPool", "AveragePool", "GlobalAveragePool", "Pad":
			if x.rank != 4 {
				return Model{}, p.errf(n, i, "needs a (batch, channels, height, width) input")
			}
			var o Op
			switch op {
			case "GlobalAveragePool":
				o = Op{Kind: GlobalAvgPool, In: shape, Node: p.nodeName(n, i)}
			case "Pad":
				o, err = p.pad(n, i, shape)
			default:
				o, err = p.pool(n, i, shape)
			}
			if err != nil {
				return Model{}, err
			}
			addStep(gstep{kind: gOp, op: o, in: [2]int{x.id}}, o.Out())
		case "Flatten", "Reshape":
			if op == "Flatten" {
				if a := attr(n, "axis"); a != nil && a.GetI() != 1 {
					return Model{}, p.errf(n, i, "axis %d; only axis 1 (keep the batch dimension) is supported", a.GetI())
				}
			} else if err := p.reshape(n, i, shape); err != nil {
				return Model{}, err
			}
			o := Op{Kind: Flatten, In: shape, Node: p.nodeName(n, i)}
			addStep(gstep{kind: gOp, op: o, in: [2]int{x.id}}, o.Out())
			y.rank = 2
		case "Identity", "Dropout":
			for _, o := range n.GetOutput()[1:] {
				if p.uses[o] > 0 {
					return Model{}, p.errf(n, i, "its mask output %q is used; only inference (one output) is supported", o)
				}
			}
			y = x
			if p.uses[n.GetOutput()[0]] != 1 {
				y.layer = -1 // folding needs the one reader of the layer's output
			}
		default:
			return Model{}, p.errf(n, i, "op %s is not supported (supported: %s, and Add of two tensors of the same shape: a residual join)", op, supportedOps)
		}
		if _, ok := gr.shapes[y.id].CheckedSize(); !ok {
			return Model{}, p.errf(n, i, "its output has more than %d values per sample", MaxSampleValues)
		}
		vals[n.GetOutput()[0]] = y
	}
	out, ok := vals[p.g.GetOutput()[0].GetName()]
	if !ok {
		return Model{}, fmt.Errorf("%s: the graph's output %q is not computed by its nodes", p.name, p.g.GetOutput()[0].GetName())
	}
	gr.out = out.id
	if len(m.Layers) == 0 {
		return Model{}, fmt.Errorf("%s: no Conv, Gemm or MatMul layer found", p.name)
	}
	if err := p.finish(&m); err != nil {
		return Model{}, err
	}
	m.graph = gr
	return m, nil
}

// forwardGraph is Forward for a residual graph: acts[l] = the input of layer l
// (channel-last), acts[len(Layers)] = the network's output. Values are dropped after
// their last reader.
func (m Model) forwardGraph(X []float64, n int) [][]float64 {
	gr := m.graph
	last := make([]int, len(gr.shapes)) // the last step reading each value
	for s, st := range gr.steps {
		last[st.in[0]] = s
		if st.kind == gAdd {
			last[st.in[1]] = s
		}
	}
	vals := make([][]float64, len(gr.shapes))
	vals[0] = ToChannelLast(X, n, m.InShape())
	acts := make([][]float64, len(m.Layers)+1)
	for s, st := range gr.steps {
		x := vals[st.in[0]]
		var y []float64
		switch st.kind {
		case gLayer:
			acts[st.layer] = x
			y = m.ApplyPost(st.layer, x, n)
		case gOp:
			y = st.op.Apply(x, n)
		case gRelu:
			y = make([]float64, len(x))
			for i, v := range x {
				y[i] = max(v, 0)
			}
		case gAdd:
			z := vals[st.in[1]]
			y = make([]float64, len(x))
			for i, v := range x {
				y[i] = v + z[i]
			}
		}
		vals[st.out] = y
		for _, v := range st.in[:1+btoi(st.kind == gAdd)] {
			if last[v] == s && v != gr.out {
				vals[v] = nil
			}
		}
	}
	acts[len(m.Layers)] = vals[gr.out]
	return acts
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Shortcut is what the residual fit (issue 21) needs of a layer that writes into a
// residual Add: Layer is the block's last layer (the operand on the longer path from the
// input, counted in layers), Proj the layer on the shortcut (a projection conv; -1 for an
// identity shortcut), Relu whether a Relu follows the Add, Node the Add's name.
type Shortcut struct {
	Node        string
	Layer, Proj int
	Relu        bool
}

// Shortcuts returns, for a model read by FromONNXGraph, each residual Add with a layer's
// raw output (no activation) as an operand, in graph order (nil for a chain). A join of two
// layers (a block's last conv and a projection conv) is one Shortcut: the deeper one is the
// block's Layer, the other its Proj.
func (m Model) Shortcuts() []Shortcut {
	if m.graph == nil {
		return nil
	}
	gr := m.graph
	depth := make([]int, len(gr.shapes)) // the most layers on a path from the input
	producer := map[int]int{}
	for _, st := range gr.steps {
		d := depth[st.in[0]]
		if st.kind == gAdd {
			d = max(d, depth[st.in[1]])
		}
		if st.kind == gLayer {
			d++
			producer[st.out] = st.layer
		}
		depth[st.out] = d
	}
	var out []Shortcut
	for a, j := range m.Joins() {
		s := Shortcut{Node: j.Node, Layer: -1, Proj: -1, Relu: j.Relu}
		switch len(j.Layers) {
		case 0:
			continue
		case 1:
			s.Layer = j.Layers[0]
		default:
			s.Layer, s.Proj = j.Layers[0], j.Layers[1]
			st := gr.steps[m.addStep(a)]
			da, db := depth[st.in[0]], depth[st.in[1]]
			if producer[st.in[0]] != s.Layer {
				da, db = db, da
			}
			if db > da {
				s.Layer, s.Proj = s.Proj, s.Layer
			}
		}
		out = append(out, s)
	}
	return out
}

// addStep returns the step of the a-th residual Add.
func (m Model) addStep(a int) int {
	for s, st := range m.graph.steps {
		if st.kind == gAdd {
			if a == 0 {
				return s
			}
			a--
		}
	}
	return -1
}

// Exec evaluates a residual graph step by step for a caller that computes the layers
// itself (the pruner, with its own weights): the ops, Relus and Adds are run on demand,
// each layer's output is what the caller sets (SetLayer), and a value is dropped once
// every step reading it has run.
type Exec struct {
	m    Model
	n    int
	vals [][]float64
	prod []int // the step writing each value (-1: the input)
	left []int // readers of each value not yet run
	// owned marks the values only the Exec holds (the Adds' sums), which a Relu that is
	// their last reader overwrites in place.
	owned []bool
	at    []int // the step of each layer
}

// NewExec starts evaluating m (read by FromONNXGraph) on n samples x0, the graph's input
// value: channel-last (ToChannelLast of the model's input layout).
func (m Model) NewExec(x0 []float64, n int) *Exec {
	gr := m.graph
	e := &Exec{m: m, n: n, vals: make([][]float64, len(gr.shapes)), prod: make([]int, len(gr.shapes)),
		left: make([]int, len(gr.shapes)), owned: make([]bool, len(gr.shapes)), at: make([]int, len(m.Layers))}
	e.prod[0] = -1
	for s, st := range gr.steps {
		e.prod[st.out] = s
		e.left[st.in[0]]++
		if st.kind == gAdd {
			e.left[st.in[1]]++
		}
		if st.kind == gLayer {
			e.at[st.layer] = s
		}
	}
	e.vals[0] = x0
	return e
}

// value computes value v (and what it needs), running every non-layer step on the way.
func (e *Exec) value(v int) ([]float64, error) {
	if e.vals[v] != nil {
		return e.vals[v], nil
	}
	s := e.prod[v]
	if s < 0 {
		return nil, fmt.Errorf("the graph's input was already consumed")
	}
	st := e.m.graph.steps[s]
	if st.kind == gLayer {
		return nil, fmt.Errorf("value %d needs layer %s, which is not computed yet", v, e.m.Layers[st.layer].Key)
	}
	x, err := e.value(st.in[0])
	if err != nil {
		return nil, err
	}
	var y []float64
	switch st.kind {
	case gOp:
		y = st.op.Apply(x, e.n)
	case gRelu:
		y = x // in place when the Relu is x's last reader and x is not the input
		if e.left[st.in[0]] > 1 || !e.owned[st.in[0]] || st.in[0] == e.m.graph.out {
			y = make([]float64, len(x))
		}
		for i, t := range x {
			y[i] = max(t, 0)
		}
	case gAdd:
		z, err := e.value(st.in[1])
		if err != nil {
			return nil, err
		}
		y = make([]float64, len(x))
		for i, t := range x {
			y[i] = t + z[i]
		}
		e.owned[v] = true
		e.consume(st.in[1])
	}
	e.consume(st.in[0])
	e.vals[v] = y
	return y, nil
}

func (e *Exec) consume(v int) {
	if e.left[v]--; e.left[v] <= 0 && v != e.m.graph.out {
		e.vals[v] = nil
	}
}

// Input returns layer l's input (channel-last), computing it from the values known.
func (e *Exec) Input(l int) ([]float64, error) {
	return e.value(e.m.graph.steps[e.at[l]].in[0])
}

// SetLayer sets layer l's output (after its activation): the step of layer l has run.
func (e *Exec) SetLayer(l int, post []float64) {
	st := e.m.graph.steps[e.at[l]]
	e.vals[st.out] = post
	e.consume(st.in[0])
}

// ShortcutValue returns the other operand of the residual Add that layer l's output feeds
// (Shortcuts: the shortcut's value, the block's input or its projection's output; channel-
// last, l's output rows).
func (e *Exec) ShortcutValue(l int) ([]float64, error) {
	out := e.m.graph.steps[e.at[l]].out
	for _, st := range e.m.graph.steps {
		if st.kind == gAdd && (st.in[0] == out || st.in[1] == out) {
			other := st.in[1]
			if other == out {
				other = st.in[0]
			}
			return e.value(other)
		}
	}
	return nil, fmt.Errorf("layer %s does not feed a residual Add", e.m.Layers[l].Key)
}

// Output returns the network's output once every layer is set.
func (e *Exec) Output() ([]float64, error) {
	return e.value(e.m.graph.out)
}

// OutputFrom returns the output of a residual graph for n samples x0 given as the graph's
// input value (channel-last, as ToChannelLast gives): Forward's last entry.
func (m Model) OutputFrom(x0 []float64, n int) []float64 {
	e := m.NewExec(x0, n)
	for l := range m.Layers { // graph order: every layer's input is computed before it
		in, err := e.Input(l)
		if err != nil {
			panic(err) // parseGraph builds steps in topological order
		}
		e.SetLayer(l, m.ApplyPost(l, in, n))
	}
	out, err := e.Output()
	if err != nil {
		panic(err)
	}
	return out
}
