package dataio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestTransposeInPlace(t *testing.T) {
	for _, sh := range [][2]int{{1, 1}, {1, 7}, {7, 1}, {2, 3}, {3, 2}, {4, 4}, {5, 13}, {64, 3}, {17, 65}, {100, 37}} {
		r, c := sh[0], sh[1]
		a := make([]int, r*c)
		for i := range a {
			a[i] = i
		}
		transposeInPlace(a, r, c)
		for i := range r {
			for j := range c {
				if a[j*r+i] != i*c+j {
					t.Fatalf("%dx%d: transpose[%d][%d] = %d, want %d", r, c, j, i, a[j*r+i], i*c+j)
				}
			}
		}
	}
}

func TestHalfConversions(t *testing.T) {
	// Every binary16 value widens exactly and narrows back to itself.
	for h := range 1 << 16 {
		f := halfToFloat32(uint16(h))
		back := float32ToHalf(f)
		if f != f {
			if back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x", h, back)
			}
			continue
		}
		if back != uint16(h) {
			t.Fatalf("half %#04x -> %v -> %#04x", h, f, back)
		}
		if b := float32ToBF16(bf16ToFloat32(uint16(h))); b != uint16(h) && bf16ToFloat32(uint16(h)) == bf16ToFloat32(uint16(h)) {
			t.Fatalf("bf16 %#04x -> %#04x", h, b)
		}
	}
	// Rounding: values between two halves go to the nearest, ties to even.
	cases := []struct {
		in   float32
		want uint16
	}{
		{1 + 1.0/2048, 0x3c00},               // tie, round down to even
		{1 + 3.0/2048, 0x3c02},               // tie, round up to even
		{1 + 1.0/2048 + 1.0/8192, 0x3c01},    // above the tie
		{65520, 0x7c00},                      // rounds to infinity
		{65519, 0x7bff},                      // largest finite
		{float32(math.Ldexp(1, -25)), 0},     // tie between 0 and the smallest subnormal
		{float32(math.Ldexp(1.5, -25)), 1},   // above that tie
		{float32(math.Ldexp(3, -25)), 2},     // tie 1.5 ulp -> even (2)
		{float32(math.Ldexp(1, -14)), 0x400}, // smallest normal
		{-2, 0xc000},
	}
	for _, c := range cases {
		if got := float32ToHalf(c.in); got != c.want {
			t.Errorf("float32ToHalf(%g) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
	if got := float32ToBF16(1 + 1.0/256); got != 0x3f80 { // tie -> even
		t.Errorf("bf16 tie: %#04x", got)
	}
	if got := float32ToBF16(1 + 3.0/256); got != 0x3f82 {
		t.Errorf("bf16 tie up: %#04x", got)
	}
}

func randMatrix(rng *rand.Rand, r, c int, f32, vector bool) Matrix {
	m := Matrix{Rows: r, Cols: c, Vector: vector, Name: "rand"}
	if f32 {
		m.F32 = make([]float32, r*c)
		for i := range m.F32 {
			m.F32[i] = float32(rng.NormFloat64())
		}
	} else {
		m.F64 = make([]float64, r*c)
		for i := range m.F64 {
			m.F64[i] = rng.NormFloat64() * 1e10
		}
	}
	return m
}

func TestNPYRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dir := t.TempDir()
	for _, c := range []struct {
		r, c      int
		f32, vect bool
	}{{3, 4, true, false}, {5, 2, false, false}, {9, 1, false, true}, {0, 3, true, false}, {1000, 37, true, false}} {
		m := randMatrix(rng, c.r, c.c, c.f32, c.vect)
		path := filepath.Join(dir, "m.npy")
		if err := WriteNPY(path, m); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(path)
		if hl := int(b[8]) | int(b[9])<<8; (10+hl)%64 != 0 {
			t.Errorf("data starts at %d, not 64-aligned", 10+hl)
		}
		got, err := ReadNPYFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if d := diffMatrix(m, got); d != "" {
			t.Errorf("%dx%d: %s", c.r, c.c, d)
		}
		// Same bytes through a reader of unknown size, growing in small steps.
		old := growChunk
		growChunk = 64
		got2, err := ReadNPY(struct{ io.Reader }{bytes.NewReader(b)}, "stream")
		growChunk = old
		if err != nil {
			t.Fatal(err)
		}
		if d := diffMatrix(m, got2); d != "" {
			t.Errorf("%dx%d streamed: %s", c.r, c.c, d)
		}
	}
}

func TestCSVRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	m := randMatrix(rng, 6, 3, false, false)
	m.F64[4] = math.Inf(-1)
	path := filepath.Join(t.TempDir(), "m.csv")
	if err := WriteCSV(path, m, []string{"a", "b b", `c"`}); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffMatrix(m, got); d != "" {
		t.Error(d)
	}
	if strings.Join(got.Header, "|") != `a|b b|c"` {
		t.Errorf("header %q", got.Header)
	}
}

// python returns /usr/bin/python3 when it has NumPy (Debian's python3-numpy). Without it
// the test is skipped with a SKIPPED line on stderr (visible in go test's output), or fails
// when RELUTRIM_REQUIRE_PYTHON=1 (scripts/test.sh sets it under CI=true).
func python(t *testing.T) string {
	t.Helper()
	const py = "/usr/bin/python3"
	err := exec.Command(py, "-c", "import numpy").Run()
	if err == nil {
		return py
	}
	msg := fmt.Sprintf("SKIPPED: %s: no %s with numpy (apt-get install python3-numpy): the NumPy cross-check did not run (%v)", t.Name(), py, err)
	if os.Getenv("RELUTRIM_REQUIRE_PYTHON") == "1" {
		t.Fatal(msg)
	}
	fmt.Fprintln(os.Stderr, msg)
	t.Skip(msg)
	return ""
}

// TestWrittenFilesReadByNumPy checks our writers against NumPy's reader and
// a minimal independent safetensors reader (json + numpy.frombuffer).
func TestWrittenFilesReadByNumPy(t *testing.T) {
	py := python(t)
	dir := t.TempDir()
	m32 := Matrix{Rows: 2, Cols: 3, F32: []float32{1.5, -2, 3.25, 0, 1e-3, -7}}
	m64 := Matrix{Rows: 3, Cols: 1, Vector: true, F64: []float64{math.Pi, -1e300, 5e-324}}
	for name, m := range map[string]Matrix{"a.npy": m32, "b.npy": m64} {
		if err := WriteNPY(filepath.Join(dir, name), m); err != nil {
			t.Fatal(err)
		}
	}
	tensors := map[string]Tensor{
		"w":  {DType: "F32", Shape: []int{2, 3}, F32: m32.F32},
		"b":  {DType: "F64", Shape: []int{3}, F64: m64.F64},
		"u":  {DType: "U8", Shape: []int{4}, U8: []uint8{0, 1, 200, 255}},
		"i":  {DType: "I64", Shape: []int{1, 2}, I64: []int64{math.MinInt64, 42}},
		"h":  {DType: "F16", Shape: []int{2}, F32: []float32{0.5, -65504}},
		"e":  {DType: "F32", Shape: []int{0, 4}},
		"bf": {DType: "BF16", Shape: []int{2}, F32: []float32{1, -3.140625}},
	}
	if err := WriteSafetensorsMetadata(filepath.Join(dir, "m.safetensors"), tensors, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	script := `
import json, struct, sys
import numpy as np
d = sys.argv[1]
a = np.load(d + "/a.npy"); b = np.load(d + "/b.npy")
assert a.dtype == np.float32 and a.shape == (2, 3), (a.dtype, a.shape)
assert a.tolist() == [[1.5, -2.0, 3.25], [0.0, float(np.float32(1e-3)), -7.0]], a.tolist()
assert b.dtype == np.float64 and b.shape == (3,) and b.tolist() == [np.pi, -1e300, 5e-324], b
raw = open(d + "/m.safetensors", "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
assert n % 8 == 0
h = json.loads(raw[8:8 + n])
assert h.pop("__metadata__") == {"k": "v"}
data = raw[8 + n:]
assert list(h) == sorted(h), list(h)
dt = {"F32": "<f4", "F64": "<f8", "U8": "u1", "I64": "<i8", "F16": "<f2", "BF16": "<u2"}
end = 0
out = {}
for k, e in h.items():
    s, t = e["data_offsets"]
    assert s == end, (k, s, end)
    end = t
    out[k] = np.frombuffer(data[s:t], dtype=dt[e["dtype"]]).reshape(e["shape"])
assert end == len(data)
assert out["w"].tolist() == a.tolist()
assert out["b"].tolist() == b.tolist()
assert out["u"].tolist() == [0, 1, 200, 255]
assert out["i"].tolist() == [[-2**63, 42]]
assert out["h"].tolist() == [0.5, -65504.0]
assert out["e"].shape == (0, 4)
bf = (out["bf"].astype("<u4") << 16).view("<f4")
assert bf.tolist() == [1.0, -3.140625], bf
print("ok")
`
	out, err := exec.Command(py, "-c", script, dir).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("numpy check failed: %v\n%s", err, out)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.txt")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	// A failing callback, after writing a lot, leaves the old file alone.
	err := WriteFileAtomic(path, func(w io.Writer) error {
		w.Write(bytes.Repeat([]byte("x"), 3<<20))
		return boom
	})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), path) {
		t.Errorf("got %v", err)
	}
	checkDir(t, dir, "old")
	// A panic in the callback also cleans up.
	func() {
		defer func() { recover() }()
		WriteFileAtomic(path, func(w io.Writer) error { w.Write([]byte("new")); panic("oops") })
	}()
	checkDir(t, dir, "old")
	// A failing encoder (invalid matrix) leaves it alone too.
	if err := WriteNPY(path, Matrix{Rows: 2, Cols: 2, F64: []float64{1}}); err == nil {
		t.Error("invalid matrix written")
	}
	checkDir(t, dir, "old")
	// Success replaces the file and keeps its permissions.
	if err := WriteFileAtomic(path, func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }); err != nil {
		t.Fatal(err)
	}
	checkDir(t, dir, "new")
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	// A directory that does not exist fails cleanly.
	if err := WriteFileAtomic(filepath.Join(dir, "no", "x"), func(io.Writer) error { return nil }); err == nil {
		t.Error("no error for missing directory")
	}
}

// checkDir verifies dir holds only out.txt, with the given content.
func checkDir(t *testing.T, dir, content string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "out.txt" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v", names)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "out.txt")); string(b) != content {
		t.Errorf("content %q, want %q", b, content)
	}
}

func TestSplitSpec(t *testing.T) {
	for _, c := range [][3]string{
		{"a.npz:x", "a.npz", "x"},
		{"dir.npz:v/a.NPZ:y", "dir.npz:v/a.NPZ", "y"},
		{"a.npz", "a.npz", ""},
		{"a.npy", "a.npy", ""},
		{"c:/data/a.npz", "c:/data/a.npz", ""},
	} {
		if p, m := splitSpec(c[0]); p != c[1] || m != c[2] {
			t.Errorf("splitSpec(%q) = %q, %q", c[0], p, m)
		}
	}
}

func TestTensorMatrix(t *testing.T) {
	m, err := TensorMatrix(Tensor{DType: "F64", Shape: []int{3}, F64: []float64{1, 2, 3}}, "t")
	if err != nil || !m.Vector || m.Rows != 3 || m.Cols != 1 {
		t.Errorf("got %+v, %v", m, err)
	}
	if _, err := TensorMatrix(Tensor{DType: "U8", Shape: []int{1}, U8: []uint8{1}}, "t"); !errors.Is(err, ErrDType) {
		t.Errorf("U8: %v", err)
	}
}

// TestFortranPaths writes Fortran-order files of several shapes and reads
// them through both the streaming transpose (size known, with tiny staging
// blocks to exercise the whole-column and partial-column paths) and the
// in-place transpose (size unknown).
func TestFortranPaths(t *testing.T) {
	old := fortranBlock
	defer func() { fortranBlock = old }()
	for _, sh := range [][2]int{{2, 3}, {7, 5}, {64, 3}, {3, 64}, {100, 37}} {
		r, c := sh[0], sh[1]
		for _, f32 := range []bool{true, false} {
			descr, size := "<f8", 8
			if f32 {
				descr, size = "<f4", 4
			}
			hdr := strings.Replace(string(npyHeaderBytes(descr, []int{r, c})), "False", "True ", 1)
			var buf bytes.Buffer
			buf.WriteString(hdr)
			for k := range r * c { // file position k = j*r + i holds A[i][j] = i*1000 + j
				i, j := k%r, k/r
				v := float64(i*1000 + j)
				if f32 {
					buf.Write(bytesOf([]float32{float32(v)}))
				} else {
					buf.Write(bytesOf([]float64{v}))
				}
			}
			for _, block := range []int{size, 3 * size, 10 * size * r, 1 << 20} {
				fortranBlock = block
				for _, hide := range []bool{false, true} {
					var rd io.Reader = bytes.NewReader(buf.Bytes())
					if hide {
						rd = struct{ io.Reader }{rd}
					}
					m, err := ReadNPY(rd, "f.npy")
					if err != nil {
						t.Fatal(err)
					}
					for i := range r {
						for j := range c {
							if got := m.At(i, j); got != float64(i*1000+j) {
								t.Fatalf("%dx%d f32=%v block=%d hidden=%v: (%d,%d) = %v", r, c, f32, block, hide, i, j, got)
							}
						}
					}
				}
			}
		}
	}
}
