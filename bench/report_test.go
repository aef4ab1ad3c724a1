package main

import (
	"math"
	"os"
	"path/filepath"
	"relutrim/dataio"
	"strings"
	"testing"
)

func TestTimeTo(t *testing.T) {
	tr := [][2]float64{{0.1, 10}, {0.2, 5}, {0.3, 2}, {0.4, 1.5}, {0.5, 1.0000001}}
	cases := []struct {
		target float64
		want   float64
		ok     bool
	}{
		{100, 0.1, true},
		{5, 0.2, true}, // reaching the target exactly counts
		{4.9, 0.3, true},
		{1.5, 0.4, true},
		{1.000001, 0.5, true},
		{1, 0, false},
	}
	for _, c := range cases {
		got, ok := timeTo(tr, c.target)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("timeTo(target %g) = %g, %v; want %g, %v", c.target, got, ok, c.want, c.ok)
		}
	}
	// Independent runs (Lasso at several tolerances): the fastest run reaching the target.
	runs := [][2]float64{{3, 1.0}, {1, 1.2}, {2, 1.0000001}}
	if got, ok := timeTo(runs, 1.001); !ok || got != 2 {
		t.Errorf("unsorted trace: got %g, %v; want 2, true", got, ok)
	}
	if _, ok := timeTo(nil, 1); ok {
		t.Error("empty trace reached a target")
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
		{Method: "relutrim", Backend: "purego", VerifiedF: 1.0000000001,
			Trace: [][2]float64{{1, 2}, {2, 1.0005}, {4, 1.0000000001}}},
		{Method: "relutrim", Backend: "openblas", VerifiedF: 1.0000000001,
			Trace: [][2]float64{{0.5, 1.0005}, {3, 1.0000000001}}},
		{Method: "lbfgsb", VerifiedF: 1, Trace: [][2]float64{{1, 1.01}, {6, 1}}},
		// Claims F = 1 in its trace, but its returned point is worse: no credit.
		{Method: "adam", VerifiedF: 1.01, Trace: [][2]float64{{1, 1}}},
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
}

func TestFormatTable(t *testing.T) {
	three, six := 0.25, 12.5
	r := &runResult{
		Date: "2026-01-02T03:04:05Z", CPU: "Test CPU", Cores: 2, GoVersion: "go1.26",
		Backends: map[string]string{"purego": "pure-go", "openblas": "skipped: go build failed"},
		PeerBLAS: "openblas 0.3.21, kernel SkylakeX", TimeLimit: 60, Command: "go run ./bench",
		Problems: []problemResult{
			{Problem: problem{Name: "S", N: 20000, Nx: 50, Ny: 1, Link: "relu", Bias: true,
				Lambda: 0.01, LambdaFrac: 0.05}, FStar: 2, FStarBy: "lbfgsb",
				Methods: []methodResult{
					{Method: "relutrim", Backend: "purego", VerifiedF: 2, NNZ: 7, SizeU: 50,
						T3: &three, T6: &six, PeakRSSKB: 20480, LoadRSSKB: 10240, Iters: 40, Status: "converged"},
					{Method: "adam", VerifiedF: 2.2, NNZ: 50, SizeU: 50, Iters: 5000, Status: "4 runs"},
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
		"| S | relutrim [purego] | 0.250 | 12.50 | 0 | 7/50 | 10->20 | 40 |  | converged |",
		"| S | adam | - | - | 1.0e-01 | 50/50 | ?->? | 5000 | peer never | 4 runs |",
		"| S | lasso | | | | | | | | failed: exit status 1: boom / bang |",
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

func TestNPYRoundTripAndObjective(t *testing.T) {
	dir := t.TempDir()
	// X (3 x 2), Y (3 x 2); U = [[1, 0], [0, -1]], b = [0.5, 0].
	X := []float64{1, 2, -1, 0.5, 0, -3}
	Y := []float64{1, 0, 0, 1, 0.5, 2}
	for _, f32 := range []bool{false, true} {
		xp := filepath.Join(dir, "X.npy")
		if err := writeNPY(xp, X, 3, 2, f32); err != nil {
			t.Fatal(err)
		}
		raw, _ := os.ReadFile(xp)
		hl := int(raw[8]) | int(raw[9])<<8
		if (10+hl)%64 != 0 || raw[10+hl-1] != '\n' {
			t.Errorf("f32=%v: header length %d not padded to 64 bytes", f32, hl)
		}
		r, err := openNPY(xp)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]float64, 6)
		if err := r.read(got); err != nil {
			t.Fatal(err)
		}
		r.close()
		if r.rows != 3 || r.cols != 2 || r.f32 != f32 {
			t.Errorf("shape %dx%d f32=%v", r.rows, r.cols, r.f32)
		}
		for i := range X {
			if got[i] != X[i] {
				t.Errorf("f32=%v: X[%d] = %g, want %g", f32, i, got[i], X[i])
			}
		}
	}
	yp := filepath.Join(dir, "Y.npy")
	if err := writeNPY(yp, Y, 3, 2, false); err != nil {
		t.Fatal(err)
	}
	U := []float64{1, 0, 0, -1}
	B := []float64{0.5, 0}
	// pre-activations W = X U + b: [1.5, -2], [-0.5, -0.5], [0.5, 3]
	// relu:     residuals [0.5, 0], [0, -1], [0, 1]      -> sum 2.25
	// identity: residuals [0.5, -2], [-0.5, -1.5], [0, 1] -> sum 7.75
	for _, c := range []struct {
		link string
		want float64
	}{{"relu", 2.25/6 + 0.1*2}, {"identity", 7.75/6 + 0.1*2}} {
		f, err := objective(filepath.Join(dir, "X.npy"), yp, U, B, 0.1, c.link, true)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(f-c.want) > 1e-12 {
			t.Errorf("%s: F = %.15g, want %.15g", c.link, f, c.want)
		}
	}
	// lambda_max = max |X^T (Y - mean Y)| / N: mean Y = [0.5, 1],
	// Y - mean = [0.5, -1], [-0.5, 0], [0, 1]; X^T(.) = [[1, -1], [0.75, -5]] / 3.
	lm, err := lambdaMax(filepath.Join(dir, "X.npy"), Y, 2, true)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(lm-5.0/3) > 1e-12 {
		t.Errorf("lambdaMax = %g, want %g", lm, 5.0/3)
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
	xr, err := openNPY(p.XPath)
	if err != nil {
		t.Fatal(err)
	}
	defer xr.close()
	yr, err := openNPY(p.YPath)
	if err != nil {
		t.Fatal(err)
	}
	defer yr.close()
	x, y := make([]float64, d), make([]float64, h)
	nonzero := 0
	for i := 0; i < p.N; i++ {
		if err := xr.read(x); err != nil {
			t.Fatal(err)
		}
		if err := yr.read(y); err != nil {
			t.Fatal(err)
		}
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
