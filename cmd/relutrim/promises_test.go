package main

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"relutrim/dataio"
)

// Tests of README promises of the command line that no other test could break: prune's
// --per-layer, --mode parallel and --no-refit reach the pruner, thread counts do not change
// a result (CSR and float32 X, 3 and 4 threads, whole-model prune), and prune and demo exit
// 130 on SIGINT.

// layerReports decodes the "layers" of a prune report generically (keys as in the JSON).
func layerReports(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Layers []map[string]any `json:"layers"`
		Mode   string           `json:"mode"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	return rep.Layers
}

// fileNonZeros counts the non-zero weights of each layer key ("0.weight", ...) in a
// safetensors file.
func fileNonZeros(t *testing.T, path string) map[string]int {
	t.Helper()
	ts, err := dataio.ReadSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	nz := map[string]int{}
	for k, v := range ts {
		if !strings.HasSuffix(k, ".weight") {
			continue
		}
		m, err := dataio.TensorMatrix(v, k)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range m.Float64() {
			if x != 0 {
				nz[k]++
			}
		}
	}
	return nz
}

// pruneSmall runs prune on the small model with extra arguments; it returns the output
// model and report paths.
func pruneSmall(t *testing.T, extra ...string) (model, report string) {
	t.Helper()
	out := t.TempDir()
	model, report = filepath.Join(out, "p.safetensors"), filepath.Join(out, "r.json")
	r := run(t, ".", append(append(smallArgs(), "--quiet", "--out", model, "--report", report), extra...)...)
	if r.code != 0 {
		t.Fatalf("prune %v: exit %d: %s", extra, r.code, r.stderr)
	}
	return model, report
}

// TestPruneFlagsThroughCLI: --per-layer gives each layer exactly its budget of non-zeros
// (small model 20-16-8-3: 320, 128 and 24 weights); --mode parallel changes the fit of the
// layers after the first (cascade fits them on the pruned network's outputs) but not of the
// first; --no-refit turns the refit off in every layer, which the default uses in some.
func TestPruneFlagsThroughCLI(t *testing.T) {
	// --per-layer 0.5,0.75,0: keep 160 of 320, 32 of 128, all 24.
	model, rep := pruneSmall(t, "--per-layer", "0.5,0.75,0")
	nz := fileNonZeros(t, model)
	for k, want := range map[string]int{"0.weight": 160, "2.weight": 32, "4.weight": 24} {
		if nz[k] != want {
			t.Errorf("--per-layer: %s has %d non-zeros, want %d", k, nz[k], want)
		}
	}
	for _, l := range layerReports(t, rep) {
		if int(l["nonzeros"].(float64)) != nz[l["key"].(string)+".weight"] {
			t.Errorf("--per-layer: report %v disagrees with the file %v", l["nonzeros"], nz)
		}
	}

	cascade, cascadeRep := pruneSmall(t, "--sparsity", "0.7")
	parallel, parallelRep := pruneSmall(t, "--sparsity", "0.7", "--mode", "parallel")
	cl, pl := layerReports(t, cascadeRep), layerReports(t, parallelRep)
	if cl[0]["rel_err_post_activation"] != pl[0]["rel_err_post_activation"] {
		t.Errorf("layer 0 differs between cascade and parallel (same inputs): %v vs %v", cl[0], pl[0])
	}
	if cl[1]["rel_err_post_activation"] == pl[1]["rel_err_post_activation"] && cl[2]["rel_err_post_activation"] == pl[2]["rel_err_post_activation"] {
		t.Errorf("--mode parallel changed nothing after layer 0")
	}
	if a, b := mustRead(t, cascade), mustRead(t, parallel); bytes.Equal(a, b) {
		t.Error("--mode parallel wrote the same model as cascade")
	}

	_, noRefitRep := pruneSmall(t, "--sparsity", "0.7", "--no-refit")
	refits := 0
	for i, l := range layerReports(t, noRefitRep) {
		if l["debiased"] != false {
			t.Errorf("--no-refit: layer %d debiased = %v", i, l["debiased"])
		}
		if cl[i]["debiased"] == true {
			refits++
		}
	}
	if refits == 0 {
		t.Error("the default refits no layer, so --no-refit is not tested")
	}

	// --unweighted: no layer is unit-weighted, and the hidden layers' fits change; by
	// default the two hidden layers (followed by dense layers only) are, the last is not.
	unweighted, unweightedRep := pruneSmall(t, "--sparsity", "0.7", "--unweighted")
	for i, l := range layerReports(t, unweightedRep) {
		if l["unit_weighted"] != false {
			t.Errorf("--unweighted: layer %d unit_weighted = %v", i, l["unit_weighted"])
		}
		if want := i < 2; cl[i]["unit_weighted"] != want {
			t.Errorf("default: layer %d unit_weighted = %v, want %v", i, cl[i]["unit_weighted"], want)
		}
	}
	if a, b := mustRead(t, cascade), mustRead(t, unweighted); bytes.Equal(a, b) {
		t.Error("--unweighted wrote the same model as the default")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestThreadsDeterministicCLI: fit with --threads 1, 3 and 4 writes byte-identical layers
// for a float32 X, a sparse float64 X (under 40% non-zeros: the CSR kernel) and a sparse
// float32 X; prune of the whole model writes byte-identical models. N = 5000 rows is 5 row
// chunks of kern.ChunkRows (1024), so 3 and 4 threads split the work differently.
func TestThreadsDeterministicCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("several fits of 5000 rows")
	}
	dir := t.TempDir()
	const n, nx, ny = 5000, 30, 3
	r := rand.New(rand.NewPCG(10, 1))
	write := func(name string, f32 bool, density float64) {
		X := dataio.NewMatrix64(name, n, nx)
		for i := range X.F64 {
			if r.Float64() < density {
				X.F64[i] = r.NormFloat64()
			}
		}
		Y := dataio.NewMatrix64("y", n, ny)
		for i := 0; i < n; i++ {
			for j := 0; j < ny; j++ {
				s := 0.1
				for k := j; k < nx; k += 4 {
					s += X.F64[i*nx+k]
				}
				Y.F64[i*ny+j] = math.Max(0, s+0.1*r.NormFloat64())
			}
		}
		if f32 {
			X32 := dataio.NewMatrix32(name, n, nx)
			for i, v := range X.F64 {
				X32.F32[i] = float32(v)
			}
			X = X32
		}
		if err := dataio.WriteNPY(filepath.Join(dir, name+"_x.npy"), X); err != nil {
			t.Fatal(err)
		}
		if err := dataio.WriteNPY(filepath.Join(dir, name+"_y.npy"), Y); err != nil {
			t.Fatal(err)
		}
	}
	write("dense32", true, 1)
	write("csr64", false, 0.2)
	write("csr32", true, 0.2)
	for _, name := range []string{"dense32", "csr64", "csr32"} {
		var first []byte
		for _, th := range []int{1, 3, 4} {
			out := filepath.Join(dir, name+strconv.Itoa(th)+".safetensors")
			res := run(t, dir, "fit", "--quiet", "--x", name+"_x.npy", "--y", name+"_y.npy", "--lambda", "0.01",
				"--threads", strconv.Itoa(th), "--out", out)
			if res.code != 0 {
				t.Fatalf("%s --threads %d: exit %d: %s", name, th, res.code, res.stderr)
			}
			b := mustRead(t, out)
			if first == nil {
				first = b
			} else if !bytes.Equal(b, first) {
				t.Errorf("%s: --threads %d wrote a different layer than --threads 1", name, th)
			}
		}
	}

	// Whole-model prune on 4000 calibration rows (4 chunks) for the 20-input small model.
	cal := dataio.NewMatrix64("cal", 4000, 20)
	for i := range cal.F64 {
		cal.F64[i] = r.NormFloat64()
	}
	calib := filepath.Join(dir, "cal.npy")
	if err := dataio.WriteNPY(calib, cal); err != nil {
		t.Fatal(err)
	}
	var first []byte
	for _, th := range []int{1, 3} {
		out := filepath.Join(dir, "pruned"+strconv.Itoa(th)+".safetensors")
		res := run(t, ".", "prune", "--quiet", "--model", filepath.Join(smallDir, "small.safetensors"), "--calib", calib,
			"--sparsity", "0.7", "--threads", strconv.Itoa(th), "--out", out)
		if res.code != 0 {
			t.Fatalf("prune --threads %d: exit %d: %s", th, res.code, res.stderr)
		}
		if b := mustRead(t, out); first == nil {
			first = b
		} else if !bytes.Equal(b, first) {
			t.Errorf("prune: --threads %d wrote a different model than --threads 1", th)
		}
	}
}

// interruptAfter starts the binary in dir with args, checks it still runs after wait,
// sends SIGINT and checks exit status 130 within 30 s and the message; when outDir is
// given, also that stdout and outDir are empty (not even a temporary file).
func interruptAfter(t *testing.T, dir string, wait time.Duration, outDir string, args ...string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("finished before the interrupt (%v): %s", err, stderr.String())
	case <-time.After(wait):
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("no exit within 30 s of SIGINT")
	}
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("exit status %d, want 130 (stderr %q)", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "interrupted; no output written") {
		t.Errorf("stderr %q", stderr.String())
	}
	if outDir != "" {
		if stdout.Len() != 0 { // fit and prune print their summary only at the end
			t.Errorf("stdout %q", stdout.String())
		}
		assertEmptyDir(t, outDir)
	}
}

// TestPruneInterrupt: SIGINT during a prune of a 200-300-100-10 random model on 6000
// calibration rows (tens of seconds of work) exits 130 and writes nothing.
func TestPruneInterrupt(t *testing.T) {
	if testing.Short() || runtime.GOOS == "windows" {
		t.Skip("long prune / no SIGINT")
	}
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	sizes := []int{200, 300, 100, 10}
	ts := map[string]dataio.Tensor{}
	for l := 0; l+1 < len(sizes); l++ {
		in, out := sizes[l], sizes[l+1]
		w := make([]float32, in*out)
		for i := range w {
			w[i] = float32(r.NormFloat64() / math.Sqrt(float64(in)))
		}
		b := make([]float32, out)
		for i := range b {
			b[i] = 0.05
		}
		ts[strconv.Itoa(2*l)+".weight"] = dataio.Tensor{DType: "F32", Shape: []int{out, in}, F32: w}
		ts[strconv.Itoa(2*l)+".bias"] = dataio.Tensor{DType: "F32", Shape: []int{out}, F32: b}
	}
	if err := dataio.WriteSafetensors(filepath.Join(dir, "m.safetensors"), ts); err != nil {
		t.Fatal(err)
	}
	cal := dataio.NewMatrix32("cal", 6000, 200)
	for i := range cal.F32 {
		cal.F32[i] = float32(r.NormFloat64())
	}
	if err := dataio.WriteNPY(filepath.Join(dir, "cal.npy"), cal); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	interruptAfter(t, dir, 2*time.Second, out, "prune", "--model", "m.safetensors", "--calib", "cal.npy",
		"--sparsity", "0.9", "--threads", "1", "--out", filepath.Join(out, "p.safetensors"), "--report", filepath.Join(out, "r.json"))
}

// TestDemoInterrupt: SIGINT during the demo (MNIST from the Go module cache; about 90 s of
// work) exits 130.
func TestDemoInterrupt(t *testing.T) {
	if testing.Short() || runtime.GOOS == "windows" {
		t.Skip("demo / no SIGINT")
	}
	interruptAfter(t, t.TempDir(), 4*time.Second, "", "demo", "--threads", "1")
}
