package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"

	"relutrim/dataio"
	"relutrim/prune/model"
)

// onnxDir holds the ONNX fixtures of scripts/make_onnx_fixtures.py.
var onnxDir = filepath.Join("..", "..", "prune", "model", "testdata", "onnx")

// randomImages writes n seeded standard-normal samples of shape (c, h, w) as a .npy of
// shape (n, c, h, w) (the fixtures hold only 16 samples, too few to fit a Gemm of 48
// inputs to a given sparsity: a Lasso keeps at most as many weights per output as rows).
func randomImages(t *testing.T, n, c, h, w int) string {
	t.Helper()
	r := rand.New(rand.NewPCG(7, 8))
	m := dataio.NewMatrix32("calib", n, c*h*w)
	m.Shape = []int{n, c, h, w}
	for i := range m.F32 {
		m.F32[i] = float32(r.NormFloat64())
	}
	path := filepath.Join(t.TempDir(), "calib.npy")
	if err := dataio.WriteNPY(path, m); err != nil {
		t.Fatal(err)
	}
	return path
}

func readProto(t *testing.T, path string) *onnx.ModelProto {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := &onnx.ModelProto{}
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPruneONNX: pruning the fixture CNN (Conv + BatchNormalization, dilated and strided
// convs, pools, Gemm + BatchNormalization) writes an ONNX file with the same nodes, inputs
// and outputs, the same initializers except the layers' weights, biases and BN shifts, and
// non-zero counts equal to the report's.
func TestPruneONNX(t *testing.T) {
	out := t.TempDir()
	src := filepath.Join(onnxDir, "cnn.onnx")
	pruned, rep := filepath.Join(out, "p.onnx"), filepath.Join(out, "r.json")
	r := run(t, ".", "prune", "--model", src, "--calib", randomImages(t, 300, 3, 12, 16), "--sparsity", "0.6", "--budget", "erdos-renyi", "--out", pruned, "--report", rep, "--compare")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var report pruneReport
	readJSON(t, rep, &report)
	m, err := model.Load(pruned)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for l, nz := range m.NonZeros() {
		total += nz
		if nz != report.Layers[l].NonZeros {
			t.Errorf("layer %s: file has %d non-zeros, report %d", m.Layers[l].Key, nz, report.Layers[l].NonZeros)
		}
		if report.Layers[l].Rows == 0 || report.Layers[l].XBytes != int64(report.Layers[l].Rows*m.Layers[l].In*8) {
			t.Errorf("layer %s: report rows %d, x_bytes %d", m.Layers[l].Key, report.Layers[l].Rows, report.Layers[l].XBytes)
		}
	}
	// Later layers can keep fewer weights than their budget (inputs that the pruned network
	// leaves always zero on the calibration data: their weights have no effect and stay
	// zero), never more; the first layer reads the random calibration data and keeps
	// exactly its budget.
	if sp := 1 - float64(total)/float64(m.Weights()); sp < 0.595 {
		t.Errorf("sparsity %.4f, want at least 0.60 - 0.005", sp)
	}
	if first := report.Layers[0]; first.Sparsity < 0.59 || first.Sparsity > 0.61 {
		t.Errorf("first layer sparsity %.4f, want the Erdos-Renyi share (0.60 here, as all layers get the same density until capped)", first.Sparsity)
	}
	a, b := readProto(t, src), readProto(t, pruned)
	if len(a.Graph.Node) != len(b.Graph.Node) {
		t.Fatalf("%d nodes, want %d", len(b.Graph.Node), len(a.Graph.Node))
	}
	for i := range a.Graph.Node {
		if !proto.Equal(a.Graph.Node[i], b.Graph.Node[i]) {
			t.Errorf("node %d changed: %v -> %v", i, a.Graph.Node[i], b.Graph.Node[i])
		}
	}
	if !proto.Equal(a.Graph.Input[0], b.Graph.Input[0]) || !proto.Equal(a.Graph.Output[0], b.Graph.Output[0]) {
		t.Errorf("graph input or output changed")
	}
	// The parameters relutrim may change: each layer's weight and bias, and a folded
	// BatchNormalization's shift (its input B); everything else byte for byte the same.
	changeable := map[string]bool{"0.weight": true, "0.bias": true, "1.bias": true, "4.weight": true, "7.weight": true, "7.bias": true,
		"11.weight": true, "11.bias": true, "12.bias": true, "14.weight": true, "14.bias": true}
	bi := map[string]*onnx.TensorProto{}
	for _, x := range b.Graph.Initializer {
		bi[x.Name] = x
	}
	for _, x := range a.Graph.Initializer {
		y := bi[x.Name]
		if y == nil {
			t.Errorf("initializer %s missing", x.Name)
			continue
		}
		if !changeable[x.Name] && !proto.Equal(x, y) {
			t.Errorf("initializer %s changed", x.Name)
		}
		if changeable[x.Name] && (y.DataType != x.DataType || len(y.RawData) != len(x.RawData) || !slices.Equal(x.Dims, y.Dims)) {
			t.Errorf("initializer %s: type, size or shape changed", x.Name)
		}
	}
}

// TestPruneONNXNM: --nm 2:4 on a CNN keeps at most 2 non-zeros in every 4 consecutive input
// channels at each kernel position of every convolution (the layout of NVIDIA's 2:4
// kernels), checked on the written file, and leaves the last layer (the Gemm) dense.
func TestPruneONNXNM(t *testing.T) {
	out := t.TempDir()
	pruned := filepath.Join(out, "p.onnx")
	r := run(t, ".", "prune", "--model", filepath.Join(onnxDir, "cnn_gap.onnx"), "--calib", randomImages(t, 300, 3, 12, 12), "--nm", "2:4", "--out", pruned, "--compare")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	m, err := model.Load(pruned)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := model.Load(filepath.Join(onnxDir, "cnn_gap.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	last := len(m.Layers) - 1
	if got, want := m.NonZeros()[last], orig.NonZeros()[last]; got != want {
		t.Errorf("the last layer %s has %d non-zeros, the dense one %d; --nm leaves it dense (refitted)", m.Layers[last].Key, got, want)
	}
	for _, L := range m.Layers[:last] {
		kk, cin := 1, L.In
		if L.Conv != nil {
			kk, cin = L.Conv.KH*L.Conv.KW, L.Conv.In.C
		}
		kept := 0
		for o := 0; o < L.Out; o++ {
			for k := 0; k < kk; k++ {
				for c0 := 0; c0 < cin; c0 += 4 {
					nz := 0
					for c := c0; c < min(c0+4, cin); c++ {
						if L.W[o*L.In+c*kk+k] != 0 {
							nz++
						}
					}
					if nz > 2 {
						t.Fatalf("layer %s output %d kernel position %d channels %d..: %d non-zeros", L.Key, o, k, c0, nz)
					}
					kept += nz
				}
			}
		}
		// The first layer reads the random calibration data: its L1 path fills nearly every
		// slot of the pattern (2 of each 3 input channels); a group keeps fewer only where the
		// L1 solution has fewer non-zeros.
		if L.Key == m.Layers[0].Key && float64(kept) < 0.9*float64(L.Out*kk*2) {
			t.Errorf("first layer keeps %d of %d weights, want nearly %d", kept, L.In*L.Out, L.Out*kk*2)
		}
	}
}

// TestPruneONNXBadInput: bad ONNX models and mismatched calibration data exit 2 with a
// message naming the file (and node) and write nothing.
func TestPruneONNXBadInput(t *testing.T) {
	bad := filepath.Join(onnxDir, "bad")
	cnn, calib := filepath.Join(onnxDir, "cnn.onnx"), filepath.Join(onnxDir, "cnn_x.npy")
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"truncated", []string{"--model", filepath.Join(bad, "truncated.onnx"), "--calib", calib}, []string{"--model", "truncated.onnx", "not an ONNX model"}},
		{"unsupported op", []string{"--model", filepath.Join(bad, "sigmoid.onnx"), "--calib", calib}, []string{"sigmoid.onnx", "/1/Sigmoid", "Sigmoid is not supported"}},
		// Weight pruning takes residual graphs (TestPruneResidual); channel pruning does not.
		{"residual, channels", []string{"--model", filepath.Join(bad, "residual.onnx"), "--calib", calib, "--structure", "neurons"}, []string{"residual.onnx", "node /Add (Add)", "--structure neurons does not prune residual networks"}},
		{"grouped conv", []string{"--model", filepath.Join(bad, "group_conv.onnx"), "--calib", calib}, []string{"group_conv.onnx", "/0/Conv", "group 2"}},
		{"dynamic reshape", []string{"--model", filepath.Join(bad, "dynamic_reshape.onnx"), "--calib", calib}, []string{"dynamic_reshape.onnx", "Shape"}},
		{"NaN weight", []string{"--model", filepath.Join(bad, "nan_weight.onnx"), "--calib", calib}, []string{"nan_weight.onnx", "/0/Conv", "non-finite"}},
		{"calibration shape", []string{"--model", cnn, "--calib", filepath.Join(onnxDir, "cnn_gap_x.npy")}, []string{"--calib", "(16, 3, 12, 12)", "(N, 3, 12, 16)"}},
		{"flat calibration", []string{"--model", cnn, "--calib", filepath.Join(onnxDir, "mlp_x.npy")}, []string{"--calib", "(16, 20)", "(N, 3, 12, 16)"}},
		{"channels: calibration shape", []string{"--model", cnn, "--calib", filepath.Join(onnxDir, "cnn_gap_x.npy"), "--structure", "neurons"}, []string{"--calib", "(16, 3, 12, 12)", "(N, 3, 12, 16)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := t.TempDir()
			args := append([]string{"prune"}, c.args...)
			args = append(args, "--sparsity", "0.5", "--out", filepath.Join(out, "p.onnx"), "--report", filepath.Join(out, "r.json"))
			expectUsageError(t, run(t, ".", args...), c.want, out)
		})
	}
	for _, c := range []struct {
		name, out string
		extra     []string
		want      []string
	}{
		{"safetensors out for ONNX", "p.safetensors", nil, []string{"--out", ".onnx"}},
		{"masks with ONNX", "p.onnx", []string{"--masks"}, []string{"--masks", "safetensors"}},
		{"channels: negative --max-patch-mib", "p.onnx", []string{"--structure", "neurons", "--max-patch-mib", "-1"}, []string{"--max-patch-mib must be >= 0"}},
		{"channels: --nm", "p.onnx", []string{"--structure", "neurons", "--nm", "2:4"}, []string{"--nm does not go with --structure neurons"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := t.TempDir()
			args := append([]string{"prune", "--model", cnn, "--calib", calib, "--sparsity", "0.5", "--out", filepath.Join(out, c.out)}, c.extra...)
			expectUsageError(t, run(t, ".", args...), c.want, out)
		})
	}
}

// TestPruneONNXNeurons: --structure neurons on an ONNX MLP writes an ONNX file with the
// hidden layers' shapes cut to the kept units (the report's), whose network equals the
// written safetensors of the same run on the same weights (small.safetensors holds
// mlp.onnx's tensors).
func TestPruneONNXNeurons(t *testing.T) {
	out := t.TempDir()
	calib := filepath.Join(smallDir, "calib_x.npy")
	po, ps := filepath.Join(out, "n.onnx"), filepath.Join(out, "n.safetensors")
	for _, c := range [][]string{{filepath.Join(onnxDir, "mlp.onnx"), po}, {filepath.Join(smallDir, "small.safetensors"), ps}} {
		r := run(t, ".", "prune", "--model", c[0], "--calib", calib, "--structure", "neurons", "--sparsity", "0.5", "--out", c[1], "-q")
		if r.code != 0 {
			t.Fatalf("%s: exit %d: %s", c[0], r.code, r.stderr)
		}
	}
	a, err := model.Load(po)
	if err != nil {
		t.Fatal(err)
	}
	b, err := model.Load(ps)
	if err != nil {
		t.Fatal(err)
	}
	if !a.IsONNX() || len(a.Layers) != 3 || a.Layers[0].Out != 8 || a.Layers[1].In != 8 || a.Layers[1].Out != 4 || a.Layers[2].In != 4 {
		t.Fatalf("ONNX output: %d layers, shapes %v", len(a.Layers), a.Units())
	}
	for l := range a.Layers {
		for i, w := range a.Layers[l].W {
			if d := w - b.Layers[l].W[i]; d > 1e-6 || d < -1e-6 {
				t.Fatalf("layer %d weight %d: ONNX %v, safetensors %v", l, i, w, b.Layers[l].W[i])
			}
		}
	}
}

// TestPruneONNXChannels: --structure neurons on the fixture CNN (Conv+BN 3-8, Conv 8-8
// without bias, Conv 8-12, MaxPool, Flatten of 12x2x2, Gemm+BN 48-16, Gemm 16-4) removes
// half of every hidden layer's channels (units): the written ONNX file has the report's
// shapes (conv weights (4,3,3,5), (4,4,3,3), (6,4,3,3); Gemm 16 -> 8 reading 6*2*2 = 24
// columns; the BN tensors cut), the printed summary names them, and the file's logits, read
// back by relutrim, are the report's relutrim model; with --max-patch-mib 1 the summary
// names the layers fitted on a sample of positions. When /usr/bin/python3 has onnx and
// torch, onnx.checker (with shape inference) accepts the file and scripts/eval_onnx.py,
// which rebuilds the torch module from the graph, gives relutrim's logits on the
// fixture's inputs to 1e-4.
func TestPruneONNXChannels(t *testing.T) {
	out := t.TempDir()
	src := filepath.Join(onnxDir, "cnn.onnx")
	pruned, rep := filepath.Join(out, "c.onnx"), filepath.Join(out, "c.json")
	r := run(t, ".", "prune", "--model", src, "--calib", randomImages(t, 300, 3, 12, 16), "--structure", "neurons", "--sparsity", "0.5",
		"--compare", "--max-patch-mib", "1", "--out", pruned, "--report", rep)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var report neuronReport
	readJSON(t, rep, &report)
	if !slices.Equal(report.Kept, []int{4, 4, 6, 8}) || !slices.Equal(report.Units, []int{8, 8, 12, 16}) {
		t.Errorf("report: kept %v of %v", report.Kept, report.Units)
	}
	wantShapes := [][]int{{4, 3, 3, 5}, {4, 4, 3, 3}, {6, 4, 3, 3}, {8, 24}, {4, 8}}
	for l, s := range wantShapes {
		if !slices.Equal(report.WeightShapes[l], s) {
			t.Errorf("report: layer %d weight shape %v, want %v", l, report.WeightShapes[l], s)
		}
	}
	if !strings.Contains(r.stdout, "4x3x3x5, 4x4x3x3, 6x4x3x3, 8x24, 4x8") || !strings.Contains(r.stdout, "4 / 8") {
		t.Errorf("summary lacks the shapes or units kept:\n%s", r.stdout)
	}
	sampled := 0
	for _, l := range report.Layers {
		if l.Rows < l.Positions {
			sampled++
		}
	}
	if sampled == 0 || strings.Count(r.stdout, "was fitted on") != sampled {
		t.Errorf("%d layers fitted on a sample of positions (--max-patch-mib 1); the summary says:\n%s", sampled, r.stdout)
	}
	mp := readProto(t, pruned)
	dims := map[string][]int64{}
	for _, tp := range mp.Graph.Initializer {
		dims[tp.Name] = tp.Dims
	}
	for name, want := range map[string][]int64{"0.weight": {4, 3, 3, 5}, "0.bias": {4}, "1.weight": {4}, "1.running_var": {4},
		"4.weight": {4, 4, 3, 3}, "7.weight": {6, 4, 3, 3}, "7.bias": {6}, "11.weight": {8, 24}, "12.running_mean": {8}, "14.weight": {4, 8}} {
		if !slices.Equal(dims[name], want) {
			t.Errorf("initializer %s: dims %v, want %v", name, dims[name], want)
		}
	}
	m, err := model.Load(pruned)
	if err != nil {
		t.Fatal(err)
	}
	x, err := dataio.ReadNPYFileND(filepath.Join(onnxDir, "cnn_x.npy"))
	if err != nil {
		t.Fatal(err)
	}
	acts := m.Forward(x.Float64(), x.Rows)
	logits := acts[len(acts)-1]
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import onnx, torch, numpy").Run(); err != nil {
		// A SKIPPED line on stderr too (go test shows a skip's message only with -v); a
		// failure when RELUTRIM_REQUIRE_PYTHON=1 (scripts/test.sh sets it under CI=true).
		msg := fmt.Sprintf("SKIPPED: %s: no %s with onnx, torch and numpy (apt-get install python3-onnx python3-torch python3-numpy): the onnx.checker and torch cross-checks did not run (%v)", t.Name(), py, err)
		if os.Getenv("RELUTRIM_REQUIRE_PYTHON") == "1" {
			t.Fatal(msg)
		}
		fmt.Fprintln(os.Stderr, msg)
		t.Skip(msg)
	}
	check := "import onnx, sys; m = onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True); onnx.shape_inference.infer_shapes(m, strict_mode=True)"
	if b, err := exec.Command(py, "-c", check, pruned).CombinedOutput(); err != nil {
		t.Fatalf("onnx.checker: %v\n%s", err, b)
	}
	lp := filepath.Join(out, "logits.npy")
	lm := dataio.NewMatrix64("logits", x.Rows, len(logits)/x.Rows)
	copy(lm.F64, logits)
	if err := dataio.WriteNPY(lp, lm); err != nil {
		t.Fatal(err)
	}
	b, err := exec.Command(py, filepath.Join("..", "..", "scripts", "eval_onnx.py"), pruned, filepath.Join(onnxDir, "cnn_x.npy"), "--check-logits", lp, "--tol", "1e-4").CombinedOutput()
	if err != nil {
		t.Fatalf("eval_onnx.py: %v\n%s", err, b)
	}
	t.Logf("eval_onnx.py: %s", b)
}
