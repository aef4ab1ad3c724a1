package main

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"relutrim/dataio"
	"relutrim/solver"
)

// Out-of-core X (--max-memory below X's size, the X memory-mapped from its .npy file): the
// fit must be bitwise identical to the one on X read into memory, the reference here.

// oocData writes an n x nx X (float32 or float64; a fraction density of non-zeros) and an
// n x ny Y (ReLU activations of a planted sparse layer, or linear targets) to dir.
func oocData(t *testing.T, dir string, n, nx, ny int, f32 bool, density float64, relu bool) (xPath, yPath string) {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(n), uint64(nx)))
	X := dataio.NewMatrix64("X", n, nx)
	for i := range X.F64 {
		if r.Float64() < density {
			X.F64[i] = r.NormFloat64()*(1+float64(i%nx)) + 0.5
		}
	}
	U := make([]float64, nx*ny)
	for i := range U {
		if r.Float64() < 0.3 {
			U[i] = r.NormFloat64()
		}
	}
	Y := dataio.NewMatrix64("Y", n, ny)
	for i := 0; i < n; i++ {
		for j := 0; j < ny; j++ {
			w := 0.2
			for k := 0; k < nx; k++ {
				w += X.F64[i*nx+k] * U[k*ny+j]
			}
			if relu {
				w = math.Max(0, w)
			}
			Y.F64[i*ny+j] = w + 0.1*r.NormFloat64()
		}
	}
	xm := X
	if f32 {
		xm = dataio.NewMatrix32("X", n, nx)
		for i, v := range X.F64 {
			xm.F32[i] = float32(v)
		}
	}
	xPath, yPath = filepath.Join(dir, "X.npy"), filepath.Join(dir, "Y.npy")
	if err := dataio.WriteNPY(xPath, xm); err != nil {
		t.Fatal(err)
	}
	if err := dataio.WriteNPY(yPath, Y); err != nil {
		t.Fatal(err)
	}
	return xPath, yPath
}

// TestOutOfCoreBitwise: relutrim fit with --max-memory far below X (5 chunks of rows, every
// pass over X read from the mapped file) writes the same bytes (weights, bias, F in the
// metadata) and reports the same F, bound, iterations and passes as with X in memory, for
// float32 and float64 X, ReLU and identity links; also on sparse X, whose CSR copy is kept
// when it fits in half the cap. With a cap too small for that copy, the dense kernel runs
// on the map: same optimum, different rounding.
func TestOutOfCoreBitwise(t *testing.T) {
	const n, nx, ny = 5000, 16, 3
	type fitRun struct {
		rep fitReport
		out []byte
	}
	fitWith := func(t *testing.T, dir, x, y string, linear bool, maxMem string) fitRun {
		t.Helper()
		out, rp := filepath.Join(dir, "l-"+maxMem+".safetensors"), filepath.Join(dir, "r-"+maxMem+".json")
		args := []string{"fit", "--x", x, "--y", y, "--lambda", "0.01", "--max-memory", maxMem, "--out", out, "--report", rp, "--quiet"}
		if linear {
			args = append(args, "--linear")
		}
		r := run(t, dir, args...)
		if r.code != 0 {
			t.Fatalf("relutrim %v: exit %d, stderr %s", args, r.code, r.stderr)
		}
		var res fitRun
		readJSON(t, rp, &res.rep)
		res.out = mustRead(t, out)
		return res
	}
	same := func(t *testing.T, mem, ooc fitRun) {
		t.Helper()
		if mem.rep.OutOfCore || !ooc.rep.OutOfCore {
			t.Fatalf("out_of_core: in memory %v, capped %v", mem.rep.OutOfCore, ooc.rep.OutOfCore)
		}
		a, b := mem.rep, ooc.rep
		if math.Float64bits(a.F) != math.Float64bits(b.F) || math.Float64bits(a.LowerBound) != math.Float64bits(b.LowerBound) ||
			a.Iters != b.Iters || a.Passes != b.Passes || a.Nonzeros != b.Nonzeros {
			t.Errorf("in memory F %v bound %v iters %d passes %v nnz %d; out of core F %v bound %v iters %d passes %v nnz %d",
				a.F, a.LowerBound, a.Iters, a.Passes, a.Nonzeros, b.F, b.LowerBound, b.Iters, b.Passes, b.Nonzeros)
		}
		if !bytes.Equal(mem.out, ooc.out) {
			t.Errorf("the layer files differ")
		}
		if ooc.rep.XPasses != ooc.rep.Passes+4 {
			t.Errorf("x_passes %v, want the solve's %v + 4 (checks, standardisation, correlations)", ooc.rep.XPasses, ooc.rep.Passes)
		}
	}
	for _, f32 := range []bool{false, true} {
		for _, linear := range []bool{false, true} {
			name := map[bool]string{false: "f64", true: "f32"}[f32] + map[bool]string{false: "-relu", true: "-identity"}[linear]
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				x, y := oocData(t, dir, n, nx, ny, f32, 1, !linear)
				same(t, fitWith(t, dir, x, y, linear, "1G"), fitWith(t, dir, x, y, linear, "64K"))
			})
		}
	}
	t.Run("sparse", func(t *testing.T) {
		t.Parallel()
		const nx = 40
		dir := t.TempDir()
		x, y := oocData(t, dir, n, nx, ny, true, 0.2, false)
		mem := fitWith(t, dir, x, y, true, "1G")
		xBytes := int64(n * nx * 4)
		nnz := 0
		X, _ := dataio.ReadNPYFile(x)
		for _, v := range X.F32 {
			if v != 0 {
				nnz++
			}
		}
		csr := int64(8*(n+1) + 8*nnz)
		capCSR := 2*csr + 64 // CSR fits in half the cap, X does not fit in the cap
		if capCSR >= xBytes {
			t.Fatalf("fixture: CSR %d bytes, X %d: no room for the test", csr, xBytes)
		}
		same(t, mem, fitWith(t, dir, x, y, true, itoa(capCSR)))
		dense := fitWith(t, dir, x, y, true, "64K")
		if !dense.rep.OutOfCore || math.Abs(dense.rep.F-mem.rep.F) > 1e-7*mem.rep.F || dense.rep.Nonzeros != mem.rep.Nonzeros {
			t.Errorf("dense kernel on the map: F %v (in memory %v), nnz %d (%d)", dense.rep.F, mem.rep.F, dense.rep.Nonzeros, mem.rep.Nonzeros)
		}
		// The two kernels may or may not round alike (on this fixture they did: the dense
		// kernel's sums add the CSR's terms and zeros in the same order).
		t.Logf("F %v, %v passes (CSR); F %v, %v passes (dense kernel on the map)", mem.rep.F, mem.rep.Passes, dense.rep.F, dense.rep.Passes)
	})
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// TestOutOfCoreLibrary: solver.Fit on X mapped with dataio.MapNPYFile returns U, b and F
// bitwise equal to the fit on X read with dataio.ReadNPYFile (float32 and float64, both
// links), with MaxCopyBytes set as the CLI sets it.
func TestOutOfCoreLibrary(t *testing.T) {
	for _, f32 := range []bool{false, true} {
		for _, link := range []solver.Link{solver.ReLU, solver.Identity} {
			dir := t.TempDir()
			x, y := oocData(t, dir, 4100, 12, 2, f32, 1, link == solver.ReLU)
			Xm, err := dataio.ReadNPYFile(x)
			if err != nil {
				t.Fatal(err)
			}
			Ym, _ := dataio.ReadNPYFile(y)
			Xp, unmap, err := dataio.MapNPYFile(x)
			if err != nil {
				t.Fatal(err)
			}
			Y := solver.Matrix{Rows: Ym.Rows, Cols: Ym.Cols, F64: Ym.F64}
			s := &solver.Settings{Link: link, Method: solver.Newton}
			a, err := solver.Fit(context.Background(), solver.Matrix{Rows: Xm.Rows, Cols: Xm.Cols, F64: Xm.F64, F32: Xm.F32}, Y, 0.02, s)
			if err != nil {
				t.Fatal(err)
			}
			s.MaxCopyBytes = 1
			b, err := solver.Fit(context.Background(), solver.Matrix{Rows: Xp.Rows, Cols: Xp.Cols, F64: Xp.F64, F32: Xp.F32}, Y, 0.02, s)
			if err != nil {
				t.Fatal(err)
			}
			unmap()
			bits := func(v []float64) []uint64 {
				out := make([]uint64, len(v))
				for i, x := range v {
					out[i] = math.Float64bits(x)
				}
				return out
			}
			if math.Float64bits(a.F) != math.Float64bits(b.F) || !slices.Equal(bits(a.U), bits(b.U)) || !slices.Equal(bits(a.B), bits(b.B)) {
				t.Errorf("f32 %v link %v: in memory F %v, mapped F %v (U or b differ)", f32, link, a.F, b.F)
			}
		}
	}
}

// TestOutOfCoreBadInput: inputs above --max-memory that cannot be mapped, and bad
// --max-memory values, are usage errors (exit 2) naming the input; nothing is written.
func TestOutOfCoreBadInput(t *testing.T) {
	wd, _ := os.Getwd()
	td := func(name string) string { return filepath.Join(wd, "..", "..", "dataio", "testdata", name) }
	dir := t.TempDir()
	x, y := oocData(t, dir, 50, 4, 1, false, 1, true)
	trunc := filepath.Join(dir, "trunc.npy")
	b := mustRead(t, x)
	if err := os.WriteFile(trunc, b[:len(b)-8], 0o644); err != nil {
		t.Fatal(err)
	}
	fortranY := filepath.Join(dir, "Yf.npy") // f8_fortran.npy's row count
	ff, _ := dataio.ReadNPYFile(td("f8_fortran.npy"))
	if err := dataio.WriteNPY(fortranY, dataio.NewMatrix64("y", ff.Rows, 1)); err != nil {
		t.Fatal(err)
	}
	csvX := filepath.Join(dir, "X.csv")
	if err := os.WriteFile(csvX, []byte("1,2\n3,4\n5,6\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	csvY := filepath.Join(dir, "y.csv")
	if err := os.WriteFile(csvY, []byte("1\n2\n3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"fortran order above the cap", []string{"--x", td("f8_fortran.npy"), "--y", fortranY, "--max-memory", "8"}, []string{"--x", "f8_fortran.npy", "Fortran", "--max-memory"}},
		{"integer dtype above the cap", []string{"--x", td("i4.npy"), "--y", fortranY, "--max-memory", "8"}, []string{"--x", "i4.npy", "not float32 or float64"}},
		{"csv above the cap", []string{"--x", csvX, "--y", csvY, "--max-memory", "4"}, []string{"--x", "X.csv", "only a .npy file"}},
		{"truncated", []string{"--x", trunc, "--y", y, "--max-memory", "64"}, []string{"--x", "trunc.npy", "truncated"}},
		{"truncated, in memory", []string{"--x", trunc, "--y", y}, []string{"--x", "trunc.npy", "truncated"}},
		{"bad size", []string{"--x", x, "--y", y, "--max-memory", "lots"}, []string{"--max-memory", "lots"}},
		{"zero size", []string{"--x", x, "--y", y, "--max-memory", "0"}, []string{"--max-memory", `"0"`}},
		{"negative size", []string{"--x", x, "--y", y, "--max-memory", "-2G"}, []string{"--max-memory", "-2G"}},
		{"hex size", []string{"--x", x, "--y", y, "--max-memory", "0x10"}, []string{"--max-memory", "0x10"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := t.TempDir()
			args := append([]string{"fit", "--lambda", "0.01"}, c.args...)
			args = append(args, "--out", filepath.Join(out, "l.safetensors"), "--report", filepath.Join(out, "r.json"))
			r := run(t, dir, args...)
			expectUsageError(t, r, c.want, out)
		})
	}
}

func TestParseSize(t *testing.T) {
	good := map[string]int64{"2G": 2 << 30, "512M": 512 << 20, "512m": 512 << 20, "1.5G": 3 << 29, "64K": 64 << 10,
		"100": 100, "2GB": 2 << 30, "2GiB": 2 << 30, "1T": 1 << 40}
	for s, want := range good {
		if got, err := parseSize(s); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "G", "0", "-1", "abc", "1e400", "NaN", "Inf", "0x10", "2 G B", "1P"} {
		if v, err := parseSize(s); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", s, v)
		}
	}
}
