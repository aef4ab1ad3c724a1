package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"relutrim/dataio"
	"relutrim/solver"
)

func TestTimeTo(t *testing.T) {
	tr := [][]float64{{0.1, 10}, {0.2, 5}, {0.3, 2}, {0.4, 1.5, 7}, {0.5, 1.0000001}}
	cases := []struct {
		target float64
		want   float64
		idx    int
	}{
		{100, 0.1, 0},
		{5, 0.2, 1}, // reaching the target exactly counts
		{4.9, 0.3, 2},
		{1.5, 0.4, 3},
		{1.000001, 0.5, 4},
		{1, 0, -1},
	}
	for _, c := range cases {
		got, i := timeTo(tr, c.target)
		if i != c.idx || (i >= 0 && got != c.want) {
			t.Errorf("timeTo(target %g) = %g, %d; want %g, %d", c.target, got, i, c.want, c.idx)
		}
	}
	// Independent runs (Lasso at several tolerances): the fastest run reaching the target.
	runs := [][]float64{{3, 1.0}, {1, 1.2}, {2, 1.0000001}}
	if got, i := timeTo(runs, 1.001); i != 2 || got != 2 {
		t.Errorf("unsorted trace: got %g, %d; want 2, 2", got, i)
	}
	if _, i := timeTo(nil, 1); i != -1 {
		t.Error("empty trace reached a target")
	}
	if _, i := timeTo([][]float64{{1}}, 1e9); i != -1 {
		t.Error("a point without F reached a target")
	}
}

func TestFStar(t *testing.T) {
	ms := []methodResult{
		{Method: "relutrim", VerifiedF: 2.0},
		{Method: "lbfgsb", VerifiedF: 1.5},
		{Method: "adam", VerifiedF: 0.1, Error: "crashed"}, // failed runs never count
		{Method: "lasso", VerifiedF: math.NaN()},
	}
	f, i := fStar(ms)
	if f != 1.5 || i != 1 {
		t.Errorf("fStar = %g, %d; want 1.5, 1", f, i)
	}
	if _, i := fStar([]methodResult{{Error: "x"}}); i != -1 {
		t.Errorf("fStar of failed methods: index %d, want -1", i)
	}
}

func TestFillTargets(t *testing.T) {
	fstar := 1.0
	ms := []methodResult{
		{Method: "relutrim", Backend: "purego", VerifiedF: 1.0000000001, Passes: 30,
			Trace: [][]float64{{1, 2}, {2, 1.0005}, {4, 1.0000000001, 30}}},
		// reaches 1e-6 at an intermediate point without a pass count
		{Method: "relutrim", Backend: "openblas", VerifiedF: 1.0000000001, Passes: 40,
			Trace: [][]float64{{0.5, 1.0005}, {3, 1.0000000001}, {3.5, 1.0000000001, 40}}},
		{Method: "lbfgsb", VerifiedF: 1, Passes: 90, Trace: [][]float64{{1, 1.01, 4}, {6, 1, 36}}},
		// Claims F = 1 in its trace, but its returned point is worse: no credit.
		{Method: "adam", VerifiedF: 1.01, Trace: [][]float64{{1, 1, 2}}},
	}
	fillTargets(ms, fstar)
	check := func(name string, got *float64, want float64) {
		t.Helper()
		if math.IsNaN(want) {
			if got != nil {
				t.Errorf("%s = %g, want none", name, *got)
			}
			return
		}
		if got == nil || math.Abs(*got-want) > 1e-12 {
			t.Errorf("%s = %v, want %g", name, got, want)
		}
	}
	nan := math.NaN()
	check("purego t3", ms[0].T3, 2)
	check("purego t6", ms[0].T6, 4)
	check("openblas t3", ms[1].T3, 0.5)
	check("openblas t6", ms[1].T6, 3)
	check("lbfgsb t3", ms[2].T3, 6)
	check("lbfgsb t6", ms[2].T6, 6)
	check("lbfgsb ratio", ms[2].Ratio, 0.5) // fastest relutrim (3 s) / 6 s
	check("adam t3", ms[3].T3, nan)
	check("adam t6", ms[3].T6, nan)
	check("adam ratio", ms[3].Ratio, nan)
	check("relutrim ratio", ms[0].Ratio, nan)
	check("purego passes6", ms[0].Passes6, 30)
	check("openblas passes6", ms[1].Passes6, nan)
	check("lbfgsb passes6", ms[2].Passes6, 36)
	check("adam passes6", ms[3].Passes6, nan)
	for i, want := range []string{"30.0", "<=40.0", "36.0", "-"} {
		if got := fmtPasses6(&ms[i]); got != want {
			t.Errorf("fmtPasses6(%s) = %q, want %q", ms[i].label(), got, want)
		}
	}
	// a second fill (f* changed) clears the old values
	fillTargets(ms, 0.5)
	check("lbfgsb passes6 after refill", ms[2].Passes6, nan)
	check("lbfgsb t6 after refill", ms[2].T6, nan)
}

func TestLabelsAndFormats(t *testing.T) {
	for _, c := range []struct {
		m    methodResult
		want string
	}{
		{methodResult{Method: "relutrim", Backend: "purego", Solver: "newton"}, "relutrim [purego, newton]"},
		{methodResult{Method: "relutrim", Backend: "openblas"}, "relutrim [openblas]"},
		{methodResult{Method: "lbfgsb-warm"}, "lbfgsb-warm"},
	} {
		if got := c.m.label(); got != c.want {
			t.Errorf("label = %q, want %q", got, c.want)
		}
	}
	for v, want := range map[float64]string{0: "0.0", 13.44: "13.4", 99.96: "100.0", 100: "100", 1234.5: "1234"} {
		if got := fmtPasses(v); got != want {
			t.Errorf("fmtPasses(%g) = %q, want %q", v, got, want)
		}
	}
	// 1e6 x 100 float64 X is 800 MB: a 1000 MB peak is 1.31 X (the bar is 1.25)
	p := problem{N: 1000000, Nx: 100}
	if got := fmtPeakX(1000*1024, p.XBytes()); got != "1.31" {
		t.Errorf("peak/X = %q, want 1.31", got)
	}
	p.F32 = true
	if got := fmtPeakX(1000*1024, p.XBytes()); got != "2.62" {
		t.Errorf("peak/X float32 = %q, want 2.62", got)
	}
	if got := fmtPeakX(0, p.XBytes()); got != "?" {
		t.Errorf("peak/X without RSS = %q", got)
	}
	for name, want := range map[string]solver.Method{"auto": solver.Auto, "newton": solver.Newton, "admm": solver.ADMM} {
		if got, err := parseMethod(name); err != nil || got != want {
			t.Errorf("parseMethod(%q) = %v, %v", name, got, err)
		}
	}
	if _, err := parseMethod("lbfgs"); err == nil {
		t.Error("parseMethod accepted an unknown method")
	}
	for peer, want := range map[string]string{"lbfgsb": "lbfgsb", "lbfgsb-warm": "lbfgsb", "adam": "adam", "lasso": "lasso", "sgd": ""} {
		if got := peerScript(peer); got != want {
			t.Errorf("peerScript(%q) = %q, want %q", peer, got, want)
		}
	}
}

func TestFormatTable(t *testing.T) {
	three, six, p6 := 0.25, 12.5, 80.5
	r := &runResult{
		Date: "2026-01-02T03:04:05Z", CPU: "Test CPU", Cores: 2, GoVersion: "go1.26",
		Backends: map[string]string{"purego": "pure-go", "openblas": "skipped: go build failed"},
		PeerBLAS: "openblas 0.3.21, kernel SkylakeX", TimeLimit: 60, Command: "go run ./bench",
		Problems: []problemResult{
			{Problem: problem{Name: "S", N: 20000, Nx: 50, Ny: 1, Link: "relu", Bias: true,
				Lambda: 0.01, LambdaFrac: 0.05}, FStar: 2, FStarBy: "lbfgsb",
				Methods: []methodResult{
					{Method: "relutrim", Backend: "purego", Solver: "admm", VerifiedF: 2, NNZ: 7, SizeU: 50,
						T3: &three, T6: &six, PeakRSSKB: 20480, LoadRSSKB: 10240, Iters: 40, Status: "converged",
						Passes: 80.5, Passes6: &p6},
					{Method: "adam", VerifiedF: 2.2, NNZ: 50, SizeU: 50, Iters: 5000, Status: "4 runs", Passes: 10000},
					{Method: "lasso", Error: "exit status 1: boom | bang"},
				}},
			{Problem: problem{Name: "W", Skip: "model models/lenet300100.safetensors not found"}},
		},
	}
	s := formatTable(r)
	for _, want := range []string{
		"date: 2026-01-02T03:04:05Z",
		"CPU: Test CPU (2 logical cores)",
		"Go: go1.26",
		"backend purego: pure-go",
		"backend openblas: skipped: go build failed",
		"| S | 20000 | 50 | 1 | relu | 0.01 (0.05) | 2 (lbfgsb) |",
		"| W | | | | | skipped: model models/lenet300100.safetensors not found | |",
		"| problem | method | t(1e-3) | t(1e-6) | passes to 1e-6 | passes | F/f*-1 | nnz/size | RSS MB | peak/X | iters | ratio | status |",
		// X is 20000 x 50 float64 = 8e6 bytes; 20 MB peak = 2.62 X
		"| S | relutrim [purego, admm] | 0.250 | 12.50 | 80.5 | 80.5 | 0 | 7/50 | 10->20 | 2.62 | 40 |  | converged |",
		"| S | adam | - | - | - | 10000 | 1.0e-01 | 50/50 | ?->? | ? | 5000 | peer never | 4 runs |",
		"| S | lasso | | | | | | | | | | | failed: exit status 1: boom / bang |",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("table lacks %q:\n%s", want, s)
		}
	}
	// every table row of a table has the same number of cells as its header
	for _, block := range strings.Split(s, "\n\n") {
		lines := strings.Split(strings.TrimSpace(block), "\n")
		if !strings.HasPrefix(lines[0], "|") {
			continue
		}
		n := strings.Count(lines[0], "|")
		for _, l := range lines[1:] {
			if strings.Count(l, "|") != n {
				t.Errorf("row %q has %d separators, header has %d", l, strings.Count(l, "|"), n)
			}
		}
	}
}

func TestObjectiveAndLambdaMax(t *testing.T) {
	// X (3 x 2), Y (3 x 2); U = [[1, 0], [0, -1]], b = [0.5, 0].
	X := dataio.Matrix{Rows: 3, Cols: 2, F64: []float64{1, 2, -1, 0.5, 0, -3}}
	Y := dataio.Matrix{Rows: 3, Cols: 2, F64: []float64{1, 0, 0, 1, 0.5, 2}}
	X32 := dataio.Matrix{Rows: 3, Cols: 2, F32: []float32{1, 2, -1, 0.5, 0, -3}}
	U := []float64{1, 0, 0, -1}
	B := []float64{0.5, 0}
	// pre-activations W = X U + b: [1.5, -2], [-0.5, -0.5], [0.5, 3]
	// relu:     residuals [0.5, 0], [0, -1], [0, 1]      -> sum 2.25
	// identity: residuals [0.5, -2], [-0.5, -1.5], [0, 1] -> sum 7.75
	for _, x := range []dataio.Matrix{X, X32} {
		for _, c := range []struct {
			link string
			want float64
		}{{"relu", 2.25/6 + 0.1*2}, {"identity", 7.75/6 + 0.1*2}} {
			f, err := objective(x, Y, U, B, 0.1, c.link, true)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(f-c.want) > 1e-12 {
				t.Errorf("%s (f32 %v): F = %.15g, want %.15g", c.link, x.F32 != nil, f, c.want)
			}
		}
	}
	// no bias: W = X U: [1, -2], [-1, -0.5], [0, 3]; identity residuals [0, -2], [-1, -1.5], [-0.5, 1]
	if f, err := objective(X, Y, U, nil, 0, "identity", false); err != nil || math.Abs(f-8.5/6) > 1e-12 {
		t.Errorf("no bias: F = %.15g, %v; want %.15g", f, err, 8.5/6)
	}
	if _, err := objective(X, Y, U[:3], B, 0.1, "relu", true); err == nil {
		t.Error("objective accepted a U of the wrong size")
	}
	// finishProblem writes both files and sets lambda from fit.LambdaMax:
	// max |X^T (Y - mean Y)| / N: mean Y = [0.5, 1], Y - mean = [0.5, -1], [-0.5, 0], [0, 1];
	// X^T(.) = [[1, -1], [0.75, -5]] / 3, so lambda_max = 5/3 (times 1 + 1e-9).
	dir := t.TempDir()
	p := problem{Link: "identity", Bias: true, LambdaFrac: 0.5,
		XPath: filepath.Join(dir, "X.npy"), YPath: filepath.Join(dir, "Y.npy")}
	if err := finishProblem(&p, X32, Y); err != nil {
		t.Fatal(err)
	}
	if math.Abs(p.LambdaMax-5.0/3) > 1e-8 || math.Abs(p.Lambda-0.5*p.LambdaMax) > 1e-15 {
		t.Errorf("lambda_max = %.12g, lambda %.12g; want 5/3 and half of it", p.LambdaMax, p.Lambda)
	}
	xr, err := dataio.ReadNPYFile(p.XPath)
	if err != nil {
		t.Fatal(err)
	}
	if xr.Rows != 3 || xr.Cols != 2 || xr.F32 == nil || xr.F32[5] != -3 {
		t.Errorf("X read back as %dx%d f32=%v %v", xr.Rows, xr.Cols, xr.F32 != nil, xr.F32)
	}
}

func TestGenPlanted(t *testing.T) {
	dir := t.TempDir()
	gen := func(f32 bool) (problem, dataio.Matrix, dataio.Matrix) {
		t.Helper()
		sub := filepath.Join(dir, fmt.Sprint(f32))
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		// N spans two generator chunks
		p := problem{Name: "M", N: genChunk + 10, Nx: 6, Ny: 3, Link: "relu", Bias: true, F32: f32,
			LambdaFrac: 0.05, XPath: filepath.Join(sub, "X.npy"), YPath: filepath.Join(sub, "Y.npy")}
		if err := genPlanted(&p, 7); err != nil {
			t.Fatal(err)
		}
		X, err := dataio.ReadNPYFile(p.XPath)
		if err != nil {
			t.Fatal(err)
		}
		Y, err := dataio.ReadNPYFile(p.YPath)
		if err != nil {
			t.Fatal(err)
		}
		if X.Rows != p.N || X.Cols != p.Nx || Y.Rows != p.N || Y.Cols != p.Ny || (X.F32 != nil) != f32 {
			t.Fatalf("f32 %v: X %dx%d (f32 %v), Y %dx%d", f32, X.Rows, X.Cols, X.F32 != nil, Y.Rows, Y.Cols)
		}
		if !(p.Lambda > 0) || p.TrueNNZ < p.Ny {
			t.Errorf("lambda %g, true nnz %d", p.Lambda, p.TrueNNZ)
		}
		return p, X, Y
	}
	p64, X64, Y64 := gen(false)
	p32, X32, Y32 := gen(true)
	// the same random stream: float32 X is float64 X rounded
	for i, v := range X64.F64 {
		if float32(v) != X32.F32[i] {
			t.Fatalf("X[%d]: float64 %g, float32 %g", i, v, X32.F32[i])
		}
	}
	dy := 0.0
	for i := range Y64.F64 {
		dy = math.Max(dy, math.Abs(Y64.F64[i]-Y32.F64[i]))
	}
	if dy == 0 || dy > 1e-5 || p64.TrueNNZ != p32.TrueNNZ {
		t.Errorf("Y from float32 X differs by %g (want rounding only), nnz %d %d", dy, p64.TrueNNZ, p32.TrueNNZ)
	}
	// the seed matters
	p := problem{Name: "M", N: 50, Nx: 6, Ny: 3, Link: "relu", Bias: true, LambdaFrac: 0.05,
		XPath: filepath.Join(dir, "X2.npy"), YPath: filepath.Join(dir, "Y2.npy")}
	if err := genPlanted(&p, 8); err != nil {
		t.Fatal(err)
	}
	X2, _ := dataio.ReadNPYFile(p.XPath)
	if X2.F64[0] == X64.F64[0] {
		t.Error("seeds 7 and 8 gave the same X")
	}
}

func TestGenMNIST(t *testing.T) {
	root := t.TempDir()
	p := problem{Name: "W", N: 20, LambdaFrac: 0.1, Bias: true, Link: "relu",
		XPath: filepath.Join(root, "X.npy"), YPath: filepath.Join(root, "Y.npy")}
	if err := genMNIST(&p, root); err != nil || p.Skip == "" {
		t.Fatalf("without a model: err %v, skip %q; want a skip", err, p.Skip)
	}
	if err := os.Mkdir(filepath.Join(root, "models"), 0o755); err != nil {
		t.Fatal(err)
	}
	const d, h = 784, 3
	W0 := make([]float32, h*d)
	for i := range W0 {
		W0[i] = float32(math.Sin(float64(i))) * 0.1
	}
	b0 := []float32{0.5, -0.2, 0}
	err := dataio.WriteSafetensors(filepath.Join(root, "models", "lenet300100.safetensors"), map[string]dataio.Tensor{
		"0.weight": {DType: "F32", Shape: []int{h, d}, F32: W0}, "0.bias": {DType: "F32", Shape: []int{h}, F32: b0}})
	if err != nil {
		t.Fatal(err)
	}
	p.Skip = ""
	if err := genMNIST(&p, root); err != nil {
		t.Fatal(err)
	}
	if p.Skip != "" {
		t.Skipf("MNIST not available: %s", p.Skip)
	}
	if p.Nx != d || p.Ny != h || !(p.Lambda > 0) {
		t.Fatalf("W: Nx %d Ny %d lambda %g", p.Nx, p.Ny, p.Lambda)
	}
	xr, err := dataio.ReadNPYFile(p.XPath)
	if err != nil {
		t.Fatal(err)
	}
	yr, err := dataio.ReadNPYFile(p.YPath)
	if err != nil {
		t.Fatal(err)
	}
	if xr.Rows != p.N || xr.Cols != d || yr.Rows != p.N || yr.Cols != h {
		t.Fatalf("X %dx%d, Y %dx%d", xr.Rows, xr.Cols, yr.Rows, yr.Cols)
	}
	nonzero := 0
	for i := 0; i < p.N; i++ {
		x, y := xr.F64[i*d:(i+1)*d], yr.F64[i*h:(i+1)*h]
		for k, v := range x {
			if v < 0 || v > 1 {
				t.Fatalf("pixel %d of image %d = %g, not in [0, 1]", k, i, v)
			}
			if v != 0 {
				nonzero++
			}
		}
		for j := 0; j < h; j++ {
			w := float64(b0[j])
			for k, v := range x {
				w += v * float64(W0[j*d+k])
			}
			if want := math.Max(w, 0); math.Abs(y[j]-want) > 1e-12 {
				t.Fatalf("Y[%d][%d] = %g, want %g", i, j, y[j], want)
			}
		}
	}
	if nonzero < p.N*50 {
		t.Errorf("only %d nonzero pixels in %d images", nonzero, p.N)
	}
}

func TestParseVmHWM(t *testing.T) {
	status := "Name:\tbench\nVmPeak:\t  900000 kB\nVmHWM:\t  123456 kB\nVmRSS:\t   1000 kB\n"
	if kb, ok := parseVmHWM(status); !ok || kb != 123456 {
		t.Errorf("parseVmHWM = %d, %v; want 123456, true", kb, ok)
	}
	for _, bad := range []string{"", "VmRSS:\t1000 kB\n", "VmHWM:\t12 MB\n", "VmHWM:\tx kB\n"} {
		if kb, ok := parseVmHWM(bad); ok {
			t.Errorf("parseVmHWM(%q) = %d, true", bad, kb)
		}
	}
	// this process's own figure is positive and at most its ru_maxrss-style peak
	if kb := peakRSSKB(); kb <= 0 {
		t.Errorf("peakRSSKB = %d", kb)
	}
}
