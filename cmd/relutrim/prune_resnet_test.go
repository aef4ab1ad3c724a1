package main

import (
	"math"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"relutrim/dataio"
	"relutrim/prune/model"
)

// TestPruneResidual: prune on the fixture ResNets exported by torch
// (prune/model/testdata/resnet, scripts/make_resnet_fixture.py) with random calibration
// images exits 0 and writes an ONNX file with the same nodes (only initializers change),
// exactly the report's non-zeros and the asked sparsity, that relutrim reloads as a
// residual graph.
// --structure neurons refuses residual graphs: exit 2 naming the file and the Add.
func TestPruneResidual(t *testing.T) {
	dir := filepath.Join("..", "..", "prune", "model", "testdata", "resnet")
	calib := randomImages(t, 200, 1, 12, 12)
	for _, file := range []string{"resnet.onnx", "resnet_fused.onnx"} {
		src := filepath.Join(dir, file)
		out := t.TempDir()
		pruned, rep := filepath.Join(out, "p.onnx"), filepath.Join(out, "r.json")
		r := run(t, ".", "prune", "--model", src, "--calib", calib, "--sparsity", "0.7", "--out", pruned, "--report", rep, "--compare")
		if r.code != 0 {
			t.Fatalf("%s: exit %d: %s", file, r.code, r.stderr)
		}
		var report pruneReport
		readJSON(t, rep, &report)
		m, err := model.LoadONNXGraph(pruned)
		if err != nil {
			t.Fatalf("%s: the pruned file does not reload: %v", file, err)
		}
		if len(m.Residual()) != 3 {
			t.Errorf("%s: reloaded with residual Adds %v, want 3", file, m.Residual())
		}
		total := 0
		for l, nz := range m.NonZeros() {
			total += nz
			if nz != report.Layers[l].NonZeros {
				t.Errorf("%s: layer %s: file has %d non-zeros, report %d", file, m.Layers[l].Key, nz, report.Layers[l].NonZeros)
			}
		}
		if want := int(math.Round(0.3 * float64(m.Weights()))); total != want {
			t.Errorf("%s: %d non-zeros, want %d (70%% of %d)", file, total, want, m.Weights())
		}
		a, b := readProto(t, src), readProto(t, pruned)
		if len(a.Graph.Node) != len(b.Graph.Node) {
			t.Fatalf("%s: %d nodes, want %d", file, len(b.Graph.Node), len(a.Graph.Node))
		}
		for i := range a.Graph.Node {
			if !proto.Equal(a.Graph.Node[i], b.Graph.Node[i]) {
				t.Errorf("%s: node %d changed: %v -> %v", file, i, a.Graph.Node[i], b.Graph.Node[i])
			}
		}
		if len(a.Graph.Initializer) != len(b.Graph.Initializer) {
			t.Errorf("%s: %d initializers, want %d", file, len(b.Graph.Initializer), len(a.Graph.Initializer))
		}
		// The file's logits differ from the dense model's (its forward pass equals the
		// in-memory pruned model's: prune's TestResidualPrune).
		xm, err := dataio.ReadNPYFileND(calib)
		if err != nil {
			t.Fatal(err)
		}
		x := xm.Float64()
		got := m.Forward(x, 200)
		d, err := model.LoadONNXGraph(src)
		if err != nil {
			t.Fatal(err)
		}
		dense := d.Forward(x, 200)
		var diff float64
		for i, v := range got[len(got)-1] {
			diff = max(diff, math.Abs(v-dense[len(dense)-1][i]))
		}
		if diff == 0 {
			t.Errorf("%s: the pruned file computes the dense logits", file)
		}
	}
	for _, file := range []string{"resnet.onnx", "resnet_mnist.onnx"} {
		out := t.TempDir()
		c := calib
		if file == "resnet_mnist.onnx" {
			c = randomImages(t, 20, 1, 28, 28)
		}
		args := []string{"prune", "--model", filepath.Join(dir, file), "--calib", c, "--sparsity", "0.5",
			"--out", filepath.Join(out, "p.onnx"), "--report", filepath.Join(out, "r.json"), "--structure", "neurons"}
		expectUsageError(t, run(t, ".", args...),
			[]string{file, "node /layer1/Add (Add): residual Add: --structure neurons does not prune residual networks"}, out)
	}
}
