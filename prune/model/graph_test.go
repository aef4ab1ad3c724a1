package model

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"relutrim/dataio"
)

const resnetDir = "testdata/resnet"

func readResnetNPY(t *testing.T, name string) dataio.Matrix {
	t.Helper()
	m, err := dataio.ReadNPYFileND(filepath.Join(resnetDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestResidualForwardMatchesTorch: the small ResNet of scripts/make_resnet_fixture.py (a
// stem, three BasicBlocks, one with a strided 1x1 projection shortcut, BatchNorm, global
// average pooling, Linear), exported with its BatchNormalization nodes and with torch's own
// Conv-BN folding, read by LoadONNXGraph: the forward pass equals torch's logits (computed
// in float64 by the script, resnet_logits.npy) to 1e-5, and Accuracy agrees with the
// arg-max of those logits.
func TestResidualForwardMatchesTorch(t *testing.T) {
	x := readResnetNPY(t, "resnet_x.npy")
	want := readResnetNPY(t, "resnet_logits.npy")
	for _, file := range []string{"resnet.onnx", "resnet_fused.onnx"} {
		m, err := LoadONNXGraph(filepath.Join(resnetDir, file))
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Layers) != 9 || len(m.Residual()) != 3 || m.Outputs() != 5 {
			t.Fatalf("%s: %d layers, residual Adds %v, %d outputs; want 9 (stem, 2 per block, projection, fc), 3, 5",
				file, len(m.Layers), m.Residual(), m.Outputs())
		}
		acts := m.Forward(x.Float64(), x.Rows)
		closeTo(t, file+" logits", acts[len(acts)-1], want.Float64())
		for l, a := range acts[:len(m.Layers)] {
			if len(a) != x.Rows*layerInSize(m.Layers[l]) {
				t.Errorf("%s: acts[%d] has %d values, want the input of layer %d", file, l, len(a), l)
			}
		}
		labels := make([]int, want.Rows)
		w := want.Float64()
		for i := range labels {
			for j := 1; j < want.Cols; j++ {
				if w[i*want.Cols+j] > w[i*want.Cols+labels[i]] {
					labels[i] = j
				}
			}
		}
		if a := m.Accuracy(x.Float64(), x.Rows, labels); a != 1 {
			t.Errorf("%s: accuracy against torch's arg-max %v, want 1", file, a)
		}
	}
}

// TestResidualRefusedForPruning: Load and FromONNX (what relutrim prune reads models with)
// refuse a residual graph naming its first residual Add; the old fixture bad/residual.onnx
// (relu(conv2(h)) + h) too, keeping its chain reason.
func TestResidualRefusedForPruning(t *testing.T) {
	for _, c := range []struct{ path, node string }{
		{filepath.Join(resnetDir, "resnet.onnx"), "/layer1/Add"},
		{filepath.Join(resnetDir, "resnet_fused.onnx"), "/layer1/Add"},
		{filepath.Join(onnxDir, "bad", "residual.onnx"), "/Add"},
	} {
		_, err := Load(c.path)
		if err == nil {
			t.Errorf("%s: loaded for pruning", c.path)
			continue
		}
		want := "node " + c.node + " (Add): residual Add: pruning residual networks is not supported yet"
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), c.path) {
			t.Errorf("%s: error %q, want it to contain %q", c.path, err, want)
		}
		if _, err := LoadONNXGraph(c.path); err != nil {
			t.Errorf("%s: LoadONNXGraph: %v", c.path, err)
		}
	}
}

// TestResidualGraphReadsChains: LoadONNXGraph reads the chain fixtures as FromONNX does
// (no graph; same forward pass), and refuses the other bad fixtures naming the file and
// the offending node.
func TestResidualGraphReadsChains(t *testing.T) {
	for _, name := range []string{"cnn", "cnn_gap", "mlp"} {
		path := filepath.Join(onnxDir, name+".onnx")
		a, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		b, err := LoadONNXGraph(path)
		if err != nil {
			t.Fatal(err)
		}
		if b.Residual() != nil || b.graph != nil {
			t.Errorf("%s: read as a residual graph", name)
		}
		x := readNPY(t, name+"_x.npy")
		fa, fb := a.Forward(x.Float64(), x.Rows), b.Forward(x.Float64(), x.Rows)
		if maxDiff(fa[len(fa)-1], fb[len(fb)-1]) != 0 {
			t.Errorf("%s: forward passes differ", name)
		}
	}
	for _, c := range []struct{ file, want string }{
		{"sigmoid.onnx", "node /1/Sigmoid (Sigmoid): op Sigmoid is not supported"},
		{"group_conv.onnx", "node /0/Conv (Conv): group 2"},
		{"dynamic_reshape.onnx", "node /Shape (Shape): op Shape is not supported"},
		{"nan_weight.onnx", "node /0/Conv (Conv): tensor \"0.weight\" holds a non-finite value"},
		{"truncated.onnx", "not an ONNX model"},
	} {
		path := filepath.Join(onnxDir, "bad", c.file)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = FromONNXGraph(data, path)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: FromONNXGraph: %v, want the file and %q", c.file, err, c.want)
		}
	}
}

// layerInSize is the number of input values per sample of layer L.
func layerInSize(L Layer) int {
	if L.Conv != nil {
		return L.Conv.In.Size()
	}
	return L.In
}

// TestResidualEncodeRoundTrip: a residual model with weights zeroed (every other weight,
// as a pruned model has) is written by EncodeONNX as the same graph with new initializers
// (BatchNorm unfolded again) and reads back with the same forward pass.
func TestResidualEncodeRoundTrip(t *testing.T) {
	x := readResnetNPY(t, "resnet_x.npy")
	for _, file := range []string{"resnet.onnx", "resnet_fused.onnx"} {
		m, err := LoadONNXGraph(filepath.Join(resnetDir, file))
		if err != nil {
			t.Fatal(err)
		}
		p := m.Clone()
		for l := range p.Layers {
			for i := range p.Layers[l].W {
				if i%2 == 1 {
					p.Layers[l].W[i] = 0
				}
			}
		}
		var buf bytes.Buffer
		if err := p.EncodeONNX(&buf); err != nil {
			t.Fatal(err)
		}
		q, err := FromONNXGraph(buf.Bytes(), file+" (written)")
		if err != nil {
			t.Fatal(err)
		}
		a, b := p.Forward(x.Float64(), x.Rows), q.Forward(x.Float64(), x.Rows)
		closeTo(t, file+" after a round trip", b[len(b)-1], a[len(a)-1])
		if d := maxDiff(b[len(b)-1], m.Forward(x.Float64(), x.Rows)[len(m.Layers)]); d == 0 {
			t.Errorf("%s: zeroing weights did not change the logits", file)
		}
	}
}

// TestResidualJoins: the blocks of the fixture ResNet as Joins: layers 0 stem, 1-2 block 1,
// 3-5 block 2 (conv1, conv2, the 1x1 projection), 6-7 block 3, 8 the Linear head (the
// order of torch's export, make_resnet_fixture.py's forward).
func TestResidualJoins(t *testing.T) {
	want := []Join{
		{Node: "/layer1/Add", Layers: []int{2}, Identity: true, Relu: true},
		{Node: "/layer2/Add", Layers: []int{4, 5}, Relu: true},
		{Node: "/layer3/Add", Layers: []int{7}, Identity: true, Relu: true},
	}
	for _, file := range []string{"resnet.onnx", "resnet_fused.onnx"} {
		m, err := LoadONNXGraph(filepath.Join(resnetDir, file))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Joins(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: joins %+v, want %+v", file, got, want)
		}
		if k := m.Layers[5].Conv; k == nil || k.KH != 1 || k.SH != 2 {
			t.Errorf("%s: layer 5 is not the strided 1x1 projection: %+v", file, k)
		}
	}
	chain, err := Load(filepath.Join(onnxDir, "cnn.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if chain.Joins() != nil {
		t.Errorf("a chain has joins %v", chain.Joins())
	}
}

// TestResidualShortcutsExec: the fixture's blocks as Shortcuts (block 2's last conv is
// layer 4, its projection layer 5: the deeper operand is the block's), and the graph run
// step by step (Exec, OutputFrom) gives Forward's logits exactly.
func TestResidualShortcutsExec(t *testing.T) {
	m, err := LoadONNXGraph(filepath.Join(resnetDir, "resnet.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	want := "[{/layer1/Add 2 -1 true} {/layer2/Add 4 5 true} {/layer3/Add 7 -1 true}]"
	if got := fmt.Sprint(m.Shortcuts()); got != want {
		t.Errorf("shortcuts %s, want %s", got, want)
	}
	x := readResnetNPY(t, "resnet_x.npy")
	n := x.Shape[0]
	acts := m.Forward(x.Float64(), n)
	got := m.OutputFrom(ToChannelLast(x.Float64(), n, m.InShape()), n)
	if !slices.Equal(got, acts[len(acts)-1]) {
		t.Errorf("OutputFrom %v, Forward %v", got[:5], acts[len(acts)-1][:5])
	}
}
