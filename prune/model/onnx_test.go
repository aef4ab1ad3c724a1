package model

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"relutrim/dataio"
)

const onnxDir = "testdata/onnx"

func readNPY(t *testing.T, name string) dataio.Matrix {
	t.Helper()
	m, err := dataio.ReadNPYFileND(filepath.Join(onnxDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// closeTo fails unless got and want agree to 1e-5 relative to the largest |want| (at
// least 1): the fixtures are torch's float32 results, relutrim computes in float64.
func closeTo(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	scale := 1.0
	for _, v := range want {
		scale = math.Max(scale, math.Abs(v))
	}
	if d := maxDiff(got, want); d > 1e-5*scale {
		t.Errorf("%s: max difference %g from torch (scale %g)", what, d, scale)
	}
}

// TestONNXForwardMatchesTorch: the fixtures of scripts/make_onnx_fixtures.py (torch
// modules exported with torch.onnx.export, opset 13) run through relutrim's forward pass
// give torch's activations after every ReLU and torch's logits to 1e-5.
func TestONNXForwardMatchesTorch(t *testing.T) {
	for _, name := range []string{"cnn", "cnn_gap", "mlp"} {
		t.Run(name, func(t *testing.T) {
			m, err := Load(filepath.Join(onnxDir, name+".onnx"))
			if err != nil {
				t.Fatal(err)
			}
			x := readNPY(t, name+"_x.npy")
			n := x.Rows
			in := m.Input(x.Float64(), n)
			k := 0
			for l := range m.Layers {
				post, _ := m.Apply(l, in, n)
				if m.Relu(l) {
					act := readNPY(t, name+"_act"+string(rune('0'+k))+".npy")
					closeTo(t, "ReLU output "+string(rune('0'+k))+" ("+m.Layers[l].Key+")", toChannelFirst(post, n, m.Layers[l].OutShape()), act.Float64())
					k++
				}
				in = m.Next(l, post, n)
			}
			if _, err := os.Stat(filepath.Join(onnxDir, name+"_act"+string(rune('0'+k))+".npy")); err == nil {
				t.Errorf("torch has more ReLU outputs than the %d relutrim found", k)
			}
			closeTo(t, "logits", in, readNPY(t, name+"_logits.npy").Float64())
			acts := m.Forward(x.Float64(), n)
			closeTo(t, "Forward's logits", acts[len(acts)-1], readNPY(t, name+"_logits.npy").Float64())
		})
	}
}

// TestONNXMLPEqualsSafetensors: mlp.onnx holds the tensors of prune/testdata/small.
// safetensors (meta.json); Gemm's transB layout must give the same Out x In weights.
func TestONNXMLPEqualsSafetensors(t *testing.T) {
	a, err := Load(filepath.Join(onnxDir, "mlp.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load("../testdata/small.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Layers) != len(b.Layers) {
		t.Fatalf("%d layers, want %d", len(a.Layers), len(b.Layers))
	}
	for l := range a.Layers {
		if maxDiff(a.Layers[l].W, b.Layers[l].W) != 0 || maxDiff(a.Layers[l].B, b.Layers[l].B) != 0 || a.Relu(l) != b.Relu(l) {
			t.Errorf("layer %d differs between mlp.onnx and small.safetensors", l)
		}
	}
}

// TestONNXRoundTrip: writing an unchanged model gives the same initializer values (a
// folded BatchNormalization unfolded again to within float32 rounding), and a model with
// weights zeroed reads back with exactly those zeros and the same forward pass.
func TestONNXRoundTrip(t *testing.T) {
	for _, name := range []string{"cnn", "cnn_gap", "mlp"} {
		path := filepath.Join(onnxDir, name+".onnx")
		m, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		orig, _ := os.ReadFile(path)
		var buf bytes.Buffer
		if err := m.EncodeONNX(&buf); err != nil {
			t.Fatal(err)
		}
		src, _ := FromONNX(orig, path)
		back, err := FromONNX(buf.Bytes(), "round trip")
		if err != nil {
			t.Fatal(err)
		}
		for l := range m.Layers {
			if d := maxDiff(back.Layers[l].W, src.Layers[l].W); d > 1e-6 {
				t.Errorf("%s layer %s: weights moved by %g in a round trip", name, m.Layers[l].Key, d)
			}
			if d := maxDiff(back.Layers[l].B, src.Layers[l].B); d > 1e-6 {
				t.Errorf("%s layer %s: bias moved by %g in a round trip", name, m.Layers[l].Key, d)
			}
		}
		// Zero every other weight of every layer (and change the biases): the file holds
		// exact zeros there, and reading it back gives the same network.
		p := m.Clone()
		for l := range p.Layers {
			for i := range p.Layers[l].W {
				if i%2 == 0 {
					p.Layers[l].W[i] = 0
				}
			}
			if !p.Layers[l].NoBias {
				for o := range p.Layers[l].B {
					p.Layers[l].B[o] += 0.25
				}
			}
		}
		buf.Reset()
		if err := p.Encode(&buf, false); err != nil {
			t.Fatal(err)
		}
		q, err := FromONNX(buf.Bytes(), "pruned")
		if err != nil {
			t.Fatal(err)
		}
		for l := range q.Layers {
			for i, w := range q.Layers[l].W {
				if (i%2 == 0) != (w == 0) && !(w == 0 && p.Layers[l].W[i] == 0) {
					t.Fatalf("%s layer %d weight %d: %v after the round trip, zero before: %v", name, l, i, w, p.Layers[l].W[i] == 0)
				}
			}
		}
		x := readNPY(t, name+"_x.npy")
		a, b := p.Forward(x.Float64(), x.Rows), q.Forward(x.Float64(), x.Rows)
		closeTo(t, name+" pruned model after a round trip", b[len(b)-1], a[len(a)-1])
		if err := p.Encode(&buf, true); err == nil {
			t.Errorf("%s: masks accepted for ONNX output", name)
		}
	}
}

// TestONNXRejects: each bad fixture is refused with a message naming the file, and the
// node and op type that meta.json says are the reason.
func TestONNXRejects(t *testing.T) {
	cases := []struct{ file, want string }{
		{"sigmoid.onnx", "node /1/Sigmoid (Sigmoid): op Sigmoid is not supported"},
		{"residual.onnx", "branch or residual"},
		{"group_conv.onnx", "node /0/Conv (Conv): group 2"},
		{"dynamic_reshape.onnx", "node /Shape (Shape)"},
		{"nan_weight.onnx", "node /0/Conv (Conv): tensor \"0.weight\" holds a non-finite value"},
		{"truncated.onnx", "not an ONNX model"},
	}
	for _, c := range cases {
		path := filepath.Join(onnxDir, "bad", c.file)
		_, err := Load(path)
		if err == nil {
			t.Errorf("%s: loaded", c.file)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %q does not name the file and contain %q", c.file, err, c.want)
		}
	}
	if _, err := FromONNX([]byte("not a model at all"), "junk.onnx"); err == nil || !strings.Contains(err.Error(), "junk.onnx") {
		t.Errorf("junk bytes: %v", err)
	}
}

// TestONNXShapesMustChain: a Gemm whose weight does not take the previous layer's width is
// refused with the node's name (mlp.onnx with 2.weight cut from 8x16 to 8x15).
func TestONNXShapesMustChain(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(onnxDir, "mlp.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	m := &onnx.ModelProto{}
	if err := proto.Unmarshal(data, m); err != nil {
		t.Fatal(err)
	}
	for _, x := range m.Graph.Initializer {
		if x.Name == "2.weight" {
			x.Dims = []int64{8, 15}
			x.RawData = x.RawData[:4*8*15]
		}
	}
	bad, _ := proto.Marshal(m)
	_, err = FromONNX(bad, "cut.onnx")
	if err == nil || !strings.Contains(err.Error(), "cut.onnx: node /2/Gemm (Gemm)") || !strings.Contains(err.Error(), "takes 15 inputs but its input has 16 features") {
		t.Errorf("error %v", err)
	}
}

// TestONNXMatMulAndTransB: the same MLP written three ways gives the same network and
// writes back the same weights: torch's Gemm (transB = 1), a Gemm with transB = 0 and the
// weight stored In x Out, and MatMul + Add (mlp.onnx rewritten here).
func TestONNXMatMulAndTransB(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(onnxDir, "mlp.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := FromONNX(data, "mlp.onnx")
	if err != nil {
		t.Fatal(err)
	}
	x := readNPY(t, "mlp_x.npy")
	want := ref.Forward(x.Float64(), x.Rows)
	for _, variant := range []string{"transB0", "matmul"} {
		m := &onnx.ModelProto{}
		if err := proto.Unmarshal(data, m); err != nil {
			t.Fatal(err)
		}
		g := m.Graph
		inits := map[string]*onnx.TensorProto{}
		for _, x := range g.Initializer {
			inits[x.Name] = x
		}
		var nodes []*onnx.NodeProto
		for _, n := range g.Node {
			if n.OpType != "Gemm" {
				nodes = append(nodes, n)
				continue
			}
			// Store the weight In x Out.
			w := inits[n.Input[1]]
			vals, err := tensorFloats(w)
			if err != nil {
				t.Fatal(err)
			}
			r, c := int(w.Dims[0]), int(w.Dims[1])
			w.Dims = []int64{int64(c), int64(r)}
			setFloats(w, Transpose(vals, r, c))
			if variant == "transB0" {
				for _, a := range n.Attribute {
					if a.Name == "transB" {
						a.I = 0
					}
				}
				nodes = append(nodes, n)
				continue
			}
			mid := n.Output[0] + "_mm"
			nodes = append(nodes,
				&onnx.NodeProto{Name: n.Name + "_mm", OpType: "MatMul", Input: []string{n.Input[0], n.Input[1]}, Output: []string{mid}},
				&onnx.NodeProto{Name: n.Name + "_add", OpType: "Add", Input: []string{mid, n.Input[2]}, Output: n.Output})
		}
		g.Node = nodes
		b, _ := proto.Marshal(m)
		got, err := FromONNX(b, variant)
		if err != nil {
			t.Fatalf("%s: %v", variant, err)
		}
		out := got.Forward(x.Float64(), x.Rows)
		closeTo(t, variant+" logits", out[len(out)-1], want[len(want)-1])
		// Zero some weights, write, read back: the zeros and the network survive the
		// transposed storage.
		p := got.Clone()
		p.Layers[0].W[3], p.Layers[1].W[5] = 0, 0
		var buf bytes.Buffer
		if err := p.EncodeONNX(&buf); err != nil {
			t.Fatal(err)
		}
		q, err := FromONNX(buf.Bytes(), variant+" written")
		if err != nil {
			t.Fatal(err)
		}
		for l := range p.Layers {
			if d := maxDiff(q.Layers[l].W, p.Layers[l].W); d > 1e-7 {
				t.Errorf("%s layer %d: weights moved by %g through the file", variant, l, d)
			}
		}
		if q.Layers[0].W[3] != 0 || q.Layers[1].W[5] != 0 {
			t.Errorf("%s: zeros lost through the file", variant)
		}
	}
}

// TestONNXShrink: removing hidden units from an ONNX MLP (Model.Shrink, structured
// pruning) writes a graph with the cut shapes whose network equals the original with those
// units' outgoing weights zeroed (an independent construction), with and without a
// BatchNormalization after the first Gemm (inserted here with seeded parameters, so its
// four tensors must be cut too), and a second Shrink composes with the first.
func TestONNXShrink(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(onnxDir, "mlp.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	x := readNPY(t, "mlp_x.npy")
	for _, withBN := range []bool{false, true} {
		src := data
		if withBN {
			m := &onnx.ModelProto{}
			if err := proto.Unmarshal(data, m); err != nil {
				t.Fatal(err)
			}
			g := m.Graph
			gemm := g.Node[0]
			out := gemm.Output[0]
			gemm.Output[0] = out + "_pre_bn"
			names := []string{"bn.scale", "bn.B", "bn.mean", "bn.var"}
			r := rand.New(rand.NewPCG(5, 6))
			for k, name := range names {
				v := make([]float64, 16)
				for i := range v {
					v[i] = []float64{0.5 + r.Float64(), r.NormFloat64() * 0.2, r.NormFloat64() * 0.3, 0.5 + r.Float64()}[k]
				}
				tp := &onnx.TensorProto{Name: name, DataType: int32(onnx.TensorProto_FLOAT), Dims: []int64{16}, RawData: []byte{}}
				setFloats(tp, v)
				g.Initializer = append(g.Initializer, tp)
			}
			bn := &onnx.NodeProto{Name: "/bn", OpType: "BatchNormalization", Input: append([]string{gemm.Output[0]}, names...), Output: []string{out}}
			g.Node = append([]*onnx.NodeProto{gemm, bn}, g.Node[1:]...)
			src, _ = proto.Marshal(m)
		}
		m, err := FromONNX(src, "mlp")
		if err != nil {
			t.Fatal(err)
		}
		keep := [][]int{{0, 2, 3, 5, 7, 8, 11, 15}, {1, 2, 6}}
		sm, err := m.Shrink(keep)
		if err != nil {
			t.Fatal(err)
		}
		ref := m.Clone()
		for h, ks := range keep {
			next := &ref.Layers[h+1]
			for u := 0; u < ref.Layers[h].Out; u++ {
				if !slices.Contains(ks, u) {
					for o := 0; o < next.Out; o++ {
						next.W[o*next.In+u] = 0
					}
				}
			}
		}
		want := ref.Forward(x.Float64(), x.Rows)
		var buf bytes.Buffer
		if err := sm.EncodeONNX(&buf); err != nil {
			t.Fatal(err)
		}
		q, err := FromONNX(buf.Bytes(), "shrunk")
		if err != nil {
			t.Fatalf("bn %v: %v", withBN, err)
		}
		if q.Layers[0].Out != 8 || q.Layers[1].In != 8 || q.Layers[1].Out != 3 || q.Layers[2].In != 3 || q.Layers[2].Out != 3 {
			t.Fatalf("bn %v: shapes %d-%d, %d-%d, %d-%d after the file", withBN, q.Layers[0].In, q.Layers[0].Out, q.Layers[1].In, q.Layers[1].Out, q.Layers[2].In, q.Layers[2].Out)
		}
		got := q.Forward(x.Float64(), x.Rows)
		closeTo(t, "shrunk ONNX MLP", got[len(got)-1], want[len(want)-1])
		// Shrink the shrunk model again (units 1, 4, 6 of the 8, and 0, 2 of the 3).
		keep2 := [][]int{{1, 4, 6}, {0, 2}}
		sm2, err := sm.Shrink(keep2)
		if err != nil {
			t.Fatal(err)
		}
		buf.Reset()
		if err := sm2.EncodeONNX(&buf); err != nil {
			t.Fatal(err)
		}
		q2, err := FromONNX(buf.Bytes(), "shrunk twice")
		if err != nil {
			t.Fatal(err)
		}
		a, b := sm2.Forward(x.Float64(), x.Rows), q2.Forward(x.Float64(), x.Rows)
		closeTo(t, "twice-shrunk ONNX MLP through the file", b[len(b)-1], a[len(a)-1])
	}
}
