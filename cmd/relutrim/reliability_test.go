package main

// Tests of issue 22 (reliability of the new surfaces): each case is a promise of the README
// ("The command line") that a careless-user pass found broken.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"relutrim/dataio"
	"relutrim/internal/kern"
	"relutrim/prune/model"
)

// TestShardOutputsRefused: with %d shard patterns, an output that is one of the shards of
// any process is refused on every process (the MPI run is collective: process 1 must not
// go on while process 0 refuses, and process 0 must see process 1's shard), before
// anything is read. The fake group stands for mpirun -np 2 (only rank and size are used
// by the check); TestMPIOutputIsShard runs the real thing.
func TestShardOutputsRefused(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"xs-0.npy", "xs-1.npy", "ys-0.npy", "ys-1.npy"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("shard"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := func(f string) string { return filepath.Join(dir, f) }
	inputs := []pathFlag{{"--x", p("xs-%d.npy")}, {"--y", p("ys-%d.npy")}}
	defer func(g *procGroup) { group = g }(group)
	for _, c := range []struct {
		outputs []pathFlag
		want    string // "" : accepted
	}{
		{[]pathFlag{{"--out", p("ys-1.npy")}}, "--out " + p("ys-1.npy") + " is the same file as the input --y " + p("ys-1.npy")},
		{[]pathFlag{{"--out", p("ys-0.npy")}}, "input --y " + p("ys-0.npy")},
		{[]pathFlag{{"--out", p("o.safetensors")}, {"--report", p("xs-1.npy")}}, "--report " + p("xs-1.npy") + " is the same file as the input --x " + p("xs-1.npy")},
		{[]pathFlag{{"--out", p("xs-2.npy")}}, ""}, // no process 2 in a run of 2
		{[]pathFlag{{"--out", p("o.safetensors")}, {"--report", p("r.json")}}, ""},
	} {
		for rank := 0; rank < 2; rank++ {
			group = &procGroup{rank: rank, size: 2}
			err := checkOutputs(fitCmd, c.outputs, inputs)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("process %d, outputs %v: refused: %v", rank, c.outputs, err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("process %d, outputs %v: error %v, want one containing %q", rank, c.outputs, err, c.want)
			case c.want != "" && exitStatus(t.Context(), err) != exitUsage:
				t.Errorf("process %d: exit status %d, want 2", rank, exitStatus(t.Context(), err))
			}
		}
	}
}

// TestBadNumberMessages: every numeric flag of every command, given "abc", exits 2 with
// `<command>: --<flag>: "abc" is not a number` (or "whole number" for integer flags) and
// nothing more: no Go internals such as strconv.ParseFloat (they used to end the message).
// The flags are enumerated from the command tree, so a new numeric flag is covered too.
func TestBadNumberMessages(t *testing.T) {
	n := 0
	for _, c := range root.Commands() {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			typ := f.Value.Type()
			what := ""
			switch {
			case strings.HasPrefix(typ, "float"):
				what = "is not a number"
			case strings.HasPrefix(typ, "int"), strings.HasPrefix(typ, "uint"):
				what = "is not a whole number"
			default:
				return
			}
			n++
			val := "abc"
			if strings.HasSuffix(typ, "Slice") {
				val = "0.5,abc" // a list: the message names the bad element
			}
			r := run(t, t.TempDir(), c.Name(), "--"+f.Name, val)
			want := fmt.Sprintf("relutrim: %s: --%s: \"abc\" %s\n", c.Name(), f.Name, what)
			if r.code != exitUsage || r.stderr != want {
				t.Errorf("%s --%s %s: exit %d, stderr %q; want 2 and %q", c.Name(), f.Name, val, r.code, r.stderr, want)
			}
		})
	}
	if n < 10 {
		t.Errorf("only %d numeric flags found; the enumeration is broken", n)
	}
	r := run(t, ".", "fit", "--threads", "99999999999999999999")
	if r.code != exitUsage || !strings.Contains(r.stderr, `--threads: "99999999999999999999" is out of range`) || strings.Contains(r.stderr, "strconv") {
		t.Errorf("--threads 1e20: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestMaxMemoryBelowOneByte: --max-memory 0.1 (or 0.9) used to truncate to a 0-byte cap,
// which inside means "no cap", and the fit ran; it is refused like 0, with exit 2 and
// nothing written.
func TestMaxMemoryBelowOneByte(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, filepath.Join("testdata", "X.npy"), filepath.Join(dir, "X.npy"))
	copyFile(t, filepath.Join("testdata", "Y.npy"), filepath.Join(dir, "Y.npy"))
	out := t.TempDir()
	for _, v := range []string{"0.1", "0.9", "0.0001K", "0"} {
		r := run(t, dir, "fit", "--x", "X.npy", "--y", "Y.npy", "--lambda", "0.02", "--max-memory", v, "--out", filepath.Join(out, "o.safetensors"))
		expectUsageError(t, r, []string{"fit: --max-memory: ", fmt.Sprintf("%q", v)}, out)
	}
	if v, err := parseSize("0.5"); err == nil {
		t.Errorf("parseSize(0.5) = %d, want an error", v)
	}
	if v, err := parseSize("0.5K"); err != nil || v != 512 {
		t.Errorf("parseSize(0.5K) = %d, %v; want 512", v, err)
	}
}

// TestHugeThreadsCostNothing: the README promises that --threads beyond the CPUs costs
// nothing (results do not depend on it). fit --threads 10000000 used to allocate a gather
// buffer per thread (1.6-1.9 GB, then out of memory) and prune --threads 10000000 on a
// 472-weight MLP started ten million goroutines per curve point (over 60 s). Both must
// finish (within a generous 60 s), with the same layer as --threads 1, a modest peak
// memory, and the report's threads capped at kern.MaxThreads.
func TestHugeThreadsCostNothing(t *testing.T) {
	dir := t.TempDir()
	oocData(t, dir, 5000, 8, 3, false, 1, true) // Newton with its row sample's Gram
	var layers [2]string
	for i, th := range []string{"1", "10000000"} {
		out := fmt.Sprintf("o%d.safetensors", i)
		r := runIn(t, dir, 60*time.Second, "fit", "--x", "X.npy", "--y", "Y.npy", "--lambda", "0.01", "--threads", th,
			"--out", out, "--report", fmt.Sprintf("r%d.json", i), "--quiet")
		if r.code != 0 {
			t.Fatalf("fit --threads %s: exit %d: %s", th, r.code, r.stderr)
		}
		layers[i] = fileBytes(filepath.Join(dir, out))
		var rep fitReport
		readJSON(t, filepath.Join(dir, fmt.Sprintf("r%d.json", i)), &rep)
		if rep.Threads > kern.MaxThreads() {
			t.Errorf("fit --threads %s: report says %d threads, above the cap %d", th, rep.Threads, kern.MaxThreads())
		}
		if rep.PeakRSS > 400<<20 {
			t.Errorf("fit --threads %s: peak RSS %d MB on a 5000 x 8 problem", th, rep.PeakRSS>>20)
		}
	}
	if layers[0] != layers[1] {
		t.Error("fit --threads 10000000 wrote a different layer from --threads 1")
	}
	out := t.TempDir()
	r := runIn(t, ".", 60*time.Second, "prune", "--model", filepath.Join(smallDir, "small.safetensors"), "--calib", filepath.Join(smallDir, "calib_x.npy"),
		"--sparsity", "0.5", "--threads", "10000000", "--out", filepath.Join(out, "p.safetensors"), "--quiet")
	if r.code != 0 {
		t.Fatalf("prune --threads 10000000: exit %d: %s", r.code, r.stderr)
	}
}

// hostileONNX is the directory of scripts/make_hostile_onnx.py's models (its meta.json
// holds onnx.checker's verdict on each).
var hostileONNX = filepath.Join("..", "..", "prune", "model", "testdata", "onnx", "hostile")

// writeMLP writes a safetensors state_dict of float32 zeros with the given shapes.
func writeMLP(t *testing.T, path string, shapes map[string][]int) {
	t.Helper()
	ts := map[string]dataio.Tensor{}
	for k, sh := range shapes {
		n := 1
		for _, d := range sh {
			n *= d
		}
		ts[k] = dataio.Tensor{DType: "F32", Shape: sh, F32: make([]float32, n)}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := dataio.EncodeSafetensors(f, ts, nil); err != nil {
		t.Fatal(err)
	}
}

// pruneHostileCase is a model relutrim prune must refuse: exit 2, stderr containing want,
// no stack trace, nothing written, the model unchanged.
type pruneHostileCase struct {
	name, model, calib string
	extra              []string
	want               []string
}

func runPruneHostile(t *testing.T, cases []pruneHostileCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := fileBytes(c.model)
			out := t.TempDir()
			args := append([]string{"prune", "--model", c.model, "--calib", c.calib, "--sparsity", "0.5", "--threads", "1",
				"--out", filepath.Join(out, "p"+filepath.Ext(c.model)), "--report", filepath.Join(out, "r.json")}, c.extra...)
			r := runIn(t, ".", 60*time.Second, args...)
			if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "fatal error") {
				t.Fatalf("crashed (exit %d):\n%.2000s", r.code, r.stderr)
			}
			expectUsageError(t, r, append([]string{"prune: --model " + c.model}, c.want...), out)
			if fileBytes(c.model) != before {
				t.Error("the model file changed")
			}
		})
	}
}

// TestPruneHostileShapes: models whose shapes used to crash prune with a stack trace (a
// hidden layer of width 0, a last layer with 0 outputs, Conv pads of 1e6, an input whose
// C*H*W wraps int64 to 64 given a (N, 64) calibration array) exit 2 with a message
// naming the model and the layer, node or input.
func TestPruneHostileShapes(t *testing.T) {
	dir := t.TempDir()
	w0, out0 := filepath.Join(dir, "w0.safetensors"), filepath.Join(dir, "out0.safetensors")
	writeMLP(t, w0, map[string][]int{"0.weight": {0, 20}, "0.bias": {0}, "2.weight": {3, 0}, "2.bias": {3}})
	writeMLP(t, out0, map[string][]int{"0.weight": {4, 20}, "0.bias": {4}, "2.weight": {0, 4}, "2.bias": {0}})
	calib20 := filepath.Join(smallDir, "calib_x.npy")
	calib64 := filepath.Join(dir, "calib64.npy")
	writeNPY(t, calib64, 10, 64, func(i, j int) float64 { return float64(i + j) })
	runPruneHostile(t, []pruneHostileCase{
		{"hidden width 0", w0, calib20, nil, []string{"layer 0: weight shape [0 20]: a layer needs at least one output and one input"}},
		{"no outputs", out0, calib20, nil, []string{"layer 2: weight shape [0 4]: a layer needs at least one output and one input"}},
		{"pads 1e6", filepath.Join(hostileONNX, "pads_1e6.onnx"), randomImages(t, 4, 3, 8, 8), nil,
			[]string{"node /conv/Conv (Conv): its output of 4 x 2000006 x 2000006 per sample has more than"}},
		{"input wraps int64", filepath.Join(hostileONNX, "input_overflow.onnx"), calib64, nil,
			[]string{`input "input" has shape [1 192 192153584101141163] per sample`}},
	})
}

// TestPruneInvalidONNX: ONNX files that onnx.checker refuses (scripts/make_hostile_onnx.py
// records its verdicts in meta.json), a float16 model and an opset-7 model were pruned
// (exit 0) or refused as "not a float tensor"; each now exits 2 saying what is wrong.
func TestPruneInvalidONNX(t *testing.T) {
	calib := randomImages(t, 4, 3, 8, 8)
	h := func(f string) string { return filepath.Join(hostileONNX, f) }
	runPruneHostile(t, []pruneHostileCase{
		{"duplicate initializer", h("dup_init.onnx"), calib, nil, []string{`two initializers are named "conv.weight"`}},
		{"not SSA", h("dup_output.onnx"), calib, nil, []string{"not in single static assignment form"}},
		{"float16 weights on float32", h("fp16_weights.onnx"), calib, nil, []string{`tensor "conv.weight" is float16 but the graph's input is float32`}},
		{"float16 model", h("fp16_model.onnx"), calib, nil, []string{"relutrim prunes float32 and float64 ONNX models only"}},
		{"opset 7", h("opset7.onnx"), calib, nil, []string{"opset 7: relutrim reads ONNX opset 13 or later"}},
	})
	// The base model of those files is pruned.
	out := t.TempDir()
	r := runIn(t, ".", 60*time.Second, "prune", "--model", h("good.onnx"), "--calib", calib, "--sparsity", "0.5", "--threads", "1",
		"--out", filepath.Join(out, "p.onnx"), "--quiet")
	if r.code != 0 {
		t.Errorf("good.onnx: exit %d: %s", r.code, r.stderr)
	}
}

// TestPruneMemoryRefused: a valid ONNX model whose padding turns an 8x8 input into 6006x6006
// activations (8 channels: 288e6 values per sample) asked for about 230 GB with 100
// calibration rows and died with Go's "fatal error: out of memory", with --structure
// neurons too. The size is computed from the graph before anything is allocated, and a run
// above the memory available (README: MemAvailable or the cgroup's limit, as fit's
// --max-memory default) exits 2 saying the size, the memory and what to reduce.
func TestPruneMemoryRefused(t *testing.T) {
	calib := randomImages(t, 100, 3, 8, 8)
	model := filepath.Join(hostileONNX, "pads_2999.onnx")
	want := []string{"--calib " + calib + " (100 rows): the calibration activations and patches need at least",
		"GB of memory available (MemAvailable or the cgroup's limit); "}
	runPruneHostile(t, []pruneHostileCase{
		{"weights", model, calib, nil, want},
		{"neurons", model, calib, []string{"--structure", "neurons"}, want},
	})
}

// TestCheckPruneMemory: the bound of good.onnx (input 3x8x8, Conv 3->4 k3 pad 1, Relu,
// GlobalAveragePool, Flatten, Gemm 4->2) counted by hand: kept per sample 192 (input) + 4
// (the Gemm's input) + 2 (output) values, transient 2 x 256 (the Conv's output and
// pre-activation) + 4 + 4 (its pool and flatten), so 8 x 718 = 5744 bytes per sample; the
// patches, 64 positions x 27 values, are 13,824 bytes per sample, or with a patch cap
// below that the cap plus the 8 x 64-byte permutation of the positions. Above the memory
// given it is refused with exit 2, below (or unknown memory, 0) accepted.
func TestCheckPruneMemory(t *testing.T) {
	m, err := model.Load(filepath.Join(hostileONNX, "good.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		n     int
		patch int64
		want  float64
	}{
		{1, 1 << 20, 5744 + 13824},
		{10, 1 << 20, 57440 + 138240},
		{10, 1000, 57440 + 1000 + 5120},
	} {
		if got := m.PruneBytes(c.n, c.patch); got != c.want {
			t.Errorf("PruneBytes(%d, %d) = %v, want %v", c.n, c.patch, got, c.want)
		}
	}
	cfg := &pruneConfig{pruneFlagValues: pruneFlagValues{maxPatchMiB: 1}}
	need := m.PruneBytes(1000, 1<<20)
	if err := checkPruneMemory(pruneCmd, cfg, m, 1000, int64(need)-1); err == nil || exitStatus(t.Context(), err) != exitUsage ||
		!strings.Contains(err.Error(), "reduce the --calib rows (at most about 999 fit)") {
		t.Errorf("1 byte short: %v", err)
	}
	for _, avail := range []int64{int64(need), 0} {
		if err := checkPruneMemory(pruneCmd, cfg, m, 1000, avail); err != nil {
			t.Errorf("memory %d: %v", avail, err)
		}
	}
}
