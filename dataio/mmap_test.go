//go:build unix

package dataio

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMapNPYFile: a mapped .npy holds exactly what ReadNPYFile reads (itself checked
// against numpy's values in expected.json), for float32 and float64, header versions 1-3
// and 1-D arrays; files that cannot be used in place are refused with the reason.
func TestMapNPYFile(t *testing.T) {
	for _, name := range []string{"f4_c.npy", "f8_c.npy", "v2_f8.npy", "v3_f4.npy", "vec_f8.npy"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", name)
			want, err := ReadNPYFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got, unmap, err := MapNPYFile(path)
			if err != nil {
				t.Fatal(err)
			}
			defer unmap()
			if got.Rows != want.Rows || got.Cols != want.Cols || got.Vector != want.Vector || (got.F32 == nil) != (want.F32 == nil) {
				t.Fatalf("mapped %dx%d (vector %v, f32 %v), read %dx%d (vector %v, f32 %v)", got.Rows, got.Cols, got.Vector, got.F32 != nil,
					want.Rows, want.Cols, want.Vector, want.F32 != nil)
			}
			for i := 0; i < want.Len(); i++ {
				a, b := got.At(i/want.Cols, i%want.Cols), want.At(i/want.Cols, i%want.Cols)
				if math.Float64bits(a) != math.Float64bits(b) {
					t.Fatalf("element %d: mapped %v, read %v", i, a, b)
				}
			}
			in, err := InspectNPYFile(path)
			if err != nil || !in.Mappable || in.MemBytes != int64(want.Len())*int64(in.ElemSize) {
				t.Errorf("InspectNPYFile: %+v, %v", in, err)
			}
			if err := unmap(); err != nil {
				t.Error(err)
			}
		})
	}
	refused := []struct{ name, why string }{
		{"f4_fortran.npy", "Fortran"},
		{"f8_fortran.npy", "Fortran"},
		{"f8_be.npy", "byte order"},
		{"i4.npy", "not float32 or float64"},
		{"f2.npy", "not float32 or float64"},
		{"bad_truncated_data.npy", "truncated"},
		{"bad_truncated_header.npy", "truncated"},
		{"bad_magic.npy", "bad magic"},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := MapNPYFile(filepath.Join("testdata", c.name))
			if err == nil || !strings.Contains(err.Error(), c.name) || !strings.Contains(err.Error(), c.why) {
				t.Errorf("err %v, want one naming %s and %q", err, c.name, c.why)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		_, _, err := MapNPYFile(filepath.Join(t.TempDir(), "nope.npy"))
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("err %v, want not-exist", err)
		}
	})
	t.Run("misaligned", func(t *testing.T) {
		// A version 1.0 header of 12 bytes' length after the preamble ends at byte 22: float64
		// data there cannot be a []float64 in place.
		hdr := "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }"
		pad := 4 - (10+len(hdr)+1)%8 // total header length = 4 mod 8
		if pad <= 0 {
			pad += 8
		}
		h := hdr + strings.Repeat(" ", pad) + "\n"
		b := append([]byte("\x93NUMPY\x01\x00"), byte(len(h)), byte(len(h)>>8))
		b = append(b, h...)
		b = append(b, make([]byte, 32)...)
		path := filepath.Join(t.TempDir(), "odd.npy")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadNPYFile(path); err != nil {
			t.Fatalf("the file itself is valid: %v", err)
		}
		_, _, err := MapNPYFile(path)
		if err == nil || !strings.Contains(err.Error(), "not a multiple of the element size") {
			t.Errorf("err %v", err)
		}
	})
}
