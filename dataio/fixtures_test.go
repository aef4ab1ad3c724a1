package dataio

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

type expMatrix struct {
	Rows, Cols int
	Type       string
	Vector     bool
	Values     []string
	Header     []string
}

type expTensor struct {
	DType  string
	Shape  []int
	Values []string
}

func loadExpected(t *testing.T) (map[string]expMatrix, map[string]expTensor, map[string]string) {
	t.Helper()
	raw, err := os.ReadFile("testdata/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(raw, &all); err != nil {
		t.Fatal(err)
	}
	mats := map[string]expMatrix{}
	var st struct {
		Tensors  map[string]expTensor
		Metadata map[string]string
	}
	for k, v := range all {
		if k == "model.safetensors" {
			if err := json.Unmarshal(v, &st); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var m expMatrix
		if err := json.Unmarshal(v, &m); err != nil {
			t.Fatal(err)
		}
		mats[k] = m
	}
	if len(mats) < 20 || len(st.Tensors) < 6 {
		t.Fatalf("expected.json looks incomplete: %d matrices, %d tensors", len(mats), len(st.Tensors))
	}
	return mats, st.Tensors, st.Metadata
}

func parseHex(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("bad expected value %q: %v", s, err)
	}
	return v
}

// sameFloat compares bit patterns, treating all NaNs as equal.
func sameFloat(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Float64bits(a) == math.Float64bits(b)
}

func TestFixtures(t *testing.T) {
	mats, _, _ := loadExpected(t)
	for name, want := range mats {
		t.Run(name, func(t *testing.T) {
			m, err := Load(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Validate(); err != nil {
				t.Fatal(err)
			}
			if m.Rows != want.Rows || m.Cols != want.Cols || m.Vector != want.Vector {
				t.Fatalf("got %dx%d vector=%v, want %dx%d vector=%v", m.Rows, m.Cols, m.Vector, want.Rows, want.Cols, want.Vector)
			}
			if got := map[bool]string{true: "float32", false: "float64"}[m.IsFloat32()]; got != want.Type {
				t.Fatalf("element type %s, want %s", got, want.Type)
			}
			if !slices.Equal(m.Header, want.Header) {
				t.Errorf("header %q, want %q", m.Header, want.Header)
			}
			if !strings.HasPrefix(m.Name, filepath.Join("testdata", strings.Split(name, ":")[0])) {
				t.Errorf("name %q does not name the file", m.Name)
			}
			if len(want.Values) != m.Len() {
				t.Fatalf("%d values, want %d", m.Len(), len(want.Values))
			}
			for k, s := range want.Values {
				i, j := k/m.Cols, k%m.Cols
				if w, g := parseHex(t, s), m.At(i, j); !sameFloat(g, w) {
					t.Errorf("(%d,%d) = %v, want %v", i, j, g, w)
				}
			}
		})
	}
}

func TestSafetensorsFixture(t *testing.T) {
	_, want, wantMeta := loadExpected(t)
	path := filepath.Join("testdata", "model.safetensors")
	got, meta, err := ReadSafetensorsMetadata(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(meta) == 0 || !mapsEqual(meta, wantMeta) {
		t.Errorf("metadata %v, want %v", meta, wantMeta)
	}
	if len(got) != len(want) {
		t.Fatalf("%d tensors, want %d", len(got), len(want))
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("missing tensor %q", name)
			continue
		}
		if g.DType != w.DType || !slices.Equal(g.Shape, w.Shape) {
			t.Errorf("%s: %s %v, want %s %v", name, g.DType, g.Shape, w.DType, w.Shape)
			continue
		}
		for k, s := range w.Values {
			switch g.DType {
			case "U8":
				if strconv.Itoa(int(g.U8[k])) != s {
					t.Errorf("%s[%d] = %d, want %s", name, k, g.U8[k], s)
				}
			case "I64":
				if strconv.FormatInt(g.I64[k], 10) != s {
					t.Errorf("%s[%d] = %d, want %s", name, k, g.I64[k], s)
				}
			case "F64":
				if !sameFloat(g.F64[k], parseHex(t, s)) {
					t.Errorf("%s[%d] = %v, want %s", name, k, g.F64[k], s)
				}
			default:
				if !sameFloat(float64(g.F32[k]), parseHex(t, s)) {
					t.Errorf("%s[%d] = %v, want %s", name, k, g.F32[k], s)
				}
			}
		}
	}
	// Writing what we read and reading it back must give the same tensors,
	// including F16/BF16, which are narrowed again on write.
	out := filepath.Join(t.TempDir(), "copy.safetensors")
	if err := WriteSafetensorsMetadata(out, got, meta); err != nil {
		t.Fatal(err)
	}
	again, meta2, err := ReadSafetensorsMetadata(out)
	if err != nil {
		t.Fatal(err)
	}
	if !mapsEqual(meta, meta2) {
		t.Errorf("metadata changed: %v -> %v", meta, meta2)
	}
	if d := diffTensors(got, again); d != "" {
		t.Error(d)
	}
	// The fixture was written with the same layout rules (sorted names,
	// header padded to 8), so the data section must be byte-identical.
	a, _ := os.ReadFile(path)
	b, _ := os.ReadFile(out)
	if da, db := dataSection(a), dataSection(b); string(da) != string(db) {
		t.Errorf("data section differs from the fixture's (%d vs %d bytes)", len(da), len(db))
	}
}

func dataSection(b []byte) []byte {
	if len(b) < 8 {
		return nil
	}
	n := int(b[0]) | int(b[1])<<8 | int(b[2])<<16 | int(b[3])<<24
	return b[8+n:]
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
