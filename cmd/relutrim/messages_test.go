package main

import (
	"path/filepath"
	"testing"

	"relutrim/dataio"
)

// TestInputMessages: inputs that used to give misleading messages (an internal name, a
// NaN lambda the user never typed, a safetensors parse error for a directory) exit 2 with a
// message naming the real problem, and write nothing.
func TestInputMessages(t *testing.T) {
	dir := t.TempDir()
	X, Y, _ := fixtureData()
	scaled := func(name string, m dataio.Matrix, f float64) string {
		c := dataio.NewMatrix64(name, m.Rows, m.Cols)
		for i := range c.F64 {
			c.F64[i] = m.F64[i] * f
		}
		p := filepath.Join(dir, name)
		if err := dataio.WriteNPY(p, c); err != nil {
			t.Fatal(err)
		}
		return p
	}
	zeroX, zeroY := scaled("zx.npy", X, 0), scaled("zy.npy", Y, 0)
	hugeX := scaled("hx.npy", X, 1e300) // squares overflow float64
	hugeY := scaled("hy.npy", Y, 1e160) // sum of squares about 1e322
	edgeX := scaled("ex.npy", X, 1e150) // sum of squares about 1e303: over the 1e300 limit
	okX := scaled("okx.npy", X, 1e140)  // about 1e283: accepted (control)
	x, y := filepath.Join("testdata", "X.npy"), filepath.Join("testdata", "Y.npy")
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"all-zero X with a path", []string{"fit", "--x", zeroX, "--y", y, "--lambda", "0.1", "--lambda-path", "5"}, []string{"--lambda-path", "lambda_max is 0", "X or Y is all zero"}},
		{"all-zero Y with a path", []string{"fit", "--x", x, "--y", zeroY, "--lambda", "0.1", "--lambda-path", "5"}, []string{"lambda_max is 0"}},
		{"huge X with sparsity", []string{"fit", "--x", hugeX, "--y", y, "--sparsity", "0.5"}, []string{"--x " + hugeX, "values too large", "rescale"}},
		{"huge Y", []string{"fit", "--x", x, "--y", hugeY, "--lambda", "0.1"}, []string{"--y " + hugeY, "values too large"}},
		{"X at the limit", []string{"fit", "--x", edgeX, "--y", y, "--lambda", "0.1"}, []string{"--x " + edgeX, "values too large"}},
		{"huge calibration data", []string{"prune", "--model", filepath.Join(smallDir, "small.safetensors"), "--calib", scaled("hc.npy", mustLoad(t, filepath.Join(smallDir, "calib_x.npy")), 1e200), "--sparsity", "0.5"}, []string{"--calib", "values too large"}},
		{"model is a directory", []string{"prune", "--model", dir, "--calib", filepath.Join(smallDir, "calib_x.npy"), "--sparsity", "0.5"}, []string{"--model " + dir, "is a directory"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := t.TempDir()
			expectUsageError(t, run(t, ".", append(c.args, "--out", filepath.Join(out, "o.safetensors"))...), c.want, out)
		})
	}
	t.Run("large but representable X is accepted", func(t *testing.T) {
		out := t.TempDir()
		r := run(t, ".", "fit", "--quiet", "--x", okX, "--y", y, "--lambda", "0.02", "--out", filepath.Join(out, "o.safetensors"))
		if r.code != 0 {
			t.Errorf("exit %d: %s", r.code, r.stderr)
		}
	})
}

func mustLoad(t *testing.T, path string) dataio.Matrix {
	t.Helper()
	m, err := dataio.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	m64 := dataio.NewMatrix64(path, m.Rows, m.Cols)
	copy(m64.F64, m.Float64())
	return m64
}
