package dataio

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadErrors(t *testing.T) {
	td := "testdata"
	cases := []struct {
		name string
		spec string
		is   error    // sentinel the error must wrap (nil: don't check)
		want []string // substrings of the message besides the file name
	}{
		{"missing file", "testdata/nope.npy", os.ErrNotExist, []string{"no such file"}},
		{"missing csv", "testdata/nope.csv", os.ErrNotExist, nil},
		{"missing npz", "testdata/nope.npz:x", os.ErrNotExist, nil},
		{"unknown extension", "testdata/expected.json", ErrExtension, []string{".json"}},
		{"bad magic", td + "/bad_magic.npy", ErrFormat, []string{"bad magic"}},
		{"truncated header", td + "/bad_truncated_header.npy", ErrFormat, []string{"truncated .npy header"}},
		{"truncated data", td + "/bad_truncated_data.npy", ErrFormat, []string{"truncated data", "(4, 3)", "<f8"}},
		{"complex dtype", td + "/bad_complex.npy", ErrDType, []string{"<c16", "complex"}},
		{"string dtype", td + "/bad_str.npy", ErrDType, []string{"<U2"}},
		{"object dtype", td + "/bad_object.npy", ErrDType, []string{"|O", "object"}},
		{"structured dtype", td + "/bad_struct.npy", ErrDType, []string{"structured"}},
		{"3-D array", td + "/bad_3d.npy", ErrShape, []string{"3-D", "(2, 2, 2)"}},
		{"0-D array", td + "/bad_0d.npy", ErrShape, []string{"0-d"}},
		{"not a zip", td + "/bad_not_zip.npz", ErrFormat, []string{"zip"}},
		{"npz ambiguous", td + "/two.npz", ErrNoArray, []string{`"X"`, `"y"`}},
		{"npz no such member", td + "/two.npz:z", ErrNoArray, []string{`"z"`, `"X"`, `"y"`}},
		{"csv ragged", td + "/bad_ragged.csv", ErrFieldCount, []string{"line 3", "2 fields, expected 3"}},
		{"csv non-numeric", td + "/bad_nonnumeric.csv", ErrNotNumber, []string{"line 2, column 2", `"five"`}},
		{"csv empty", td + "/bad_empty.csv", ErrEmpty, []string{"empty"}},
		{"csv header only", td + "/bad_header_only.csv", ErrEmpty, []string{"header"}},
		{"csv bad quote", td + "/bad_quote.csv", ErrFormat, []string{"line 2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(c.spec)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			file, _ := splitSpec(c.spec)
			if !strings.Contains(msg, file) {
				t.Errorf("message %q does not name %s", msg, file)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %q does not wrap %v", msg, c.is)
			}
		})
	}
}

func TestCSVParseErrorPosition(t *testing.T) {
	cases := []struct {
		name      string
		in        string
		line, col int
		is        error
	}{
		{"bad field after header", "a,b\n1,2\n3,x\n", 3, 2, ErrNotNumber},
		{"short row", "1,2,3\n4,5,6\n7,8\n", 3, 3, ErrFieldCount},
		{"long row", "1,2\n3,4,5\n", 2, 3, ErrFieldCount},
		{"empty field", "1,2\n,4\n", 2, 1, ErrNotNumber},
		{"blank lines skipped", "1,2\n\n\n3,y\n", 4, 2, ErrNotNumber},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadCSV(strings.NewReader(c.in), "in.csv")
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			if pe.Line != c.line || pe.Column != c.col || pe.File != "in.csv" || !errors.Is(err, c.is) {
				t.Errorf("got %+v (%v), want line %d column %d wrapping %v", pe, err, c.line, c.col, c.is)
			}
		})
	}
}

func TestNPYHeaderErrors(t *testing.T) {
	hdr := func(dict string) []byte {
		b := append([]byte(npyMagic), 1, 0, byte(len(dict)), 0)
		return append(b, dict...)
	}
	cases := []struct {
		name string
		in   []byte
		is   error
		want string
	}{
		{"empty", nil, ErrFormat, "empty"},
		{"short preamble", []byte("\x93NUM"), ErrFormat, "too short"},
		{"version 9", append([]byte(npyMagic), 9, 0, 0, 0), ErrFormat, "version 9.0"},
		{"not a dict", hdr("[1, 2]"), ErrFormat, "not a dict"},
		{"syntax", hdr("{'descr': '<f8', "), ErrFormat, "bad .npy header"},
		{"missing shape", hdr("{'descr': '<f8', 'fortran_order': False}"), ErrFormat, "lacks"},
		{"fortran not bool", hdr("{'descr': '<f8', 'fortran_order': 0, 'shape': (1,)}"), ErrFormat, "fortran_order"},
		{"negative dim", hdr("{'descr': '<f8', 'fortran_order': False, 'shape': (-1,)}"), ErrShape, "-1"},
		{"huge shape", hdr("{'descr': '<f8', 'fortran_order': False, 'shape': (4000000000, 4000000000)}"), ErrShape, "too large"},
		{"datetime", hdr("{'descr': '<M8[ns]', 'fortran_order': False, 'shape': (1,)}"), ErrDType, "M8"},
		{"f16 size", hdr("{'descr': '<f16', 'fortran_order': False, 'shape': (1,)}"), ErrDType, "<f16"},
		{"pipe on f8", hdr("{'descr': '|f8', 'fortran_order': False, 'shape': (1,)}"), ErrDType, "|f8"},
		{"no data", hdr("{'descr': '<f8', 'fortran_order': False, 'shape': (2,)}"), ErrFormat, "truncated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, hide := range []bool{false, true} {
				var r io.Reader = strings.NewReader(string(c.in))
				if hide {
					r = struct{ io.Reader }{r} // size unknown
				}
				_, err := ReadNPY(r, "x.npy")
				if err == nil {
					t.Fatal("no error")
				}
				if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "x.npy") {
					t.Errorf("hidden size %v: got %q, want %v mentioning %q and x.npy", hide, err, c.is, c.want)
				}
			}
		})
	}
}

func TestSafetensorsErrors(t *testing.T) {
	good, err := os.ReadFile("testdata/model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	mk := func(header string, data []byte) []byte {
		for len(header)%8 != 0 {
			header += " "
		}
		b := make([]byte, 8, 8+len(header)+len(data))
		b[0] = byte(len(header))
		b[1] = byte(len(header) >> 8)
		return append(append(b, header...), data...)
	}
	cases := []struct {
		name string
		in   []byte
		is   error
		want string
	}{
		{"empty", nil, ErrFormat, "too short"},
		{"header too long", good[:100], ErrFormat, "does not fit"},
		{"truncated data", good[:len(good)-3], ErrFormat, "data"},
		{"not json", mk("{nope", nil), ErrFormat, "JSON"},
		{"bad dtype", mk(`{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}`, make([]byte, 8)), ErrDType, `"C64"`},
		{"size mismatch", mk(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, make([]byte, 8)), ErrFormat, "needs 12 bytes"},
		{"gap", mk(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}`, make([]byte, 4)), ErrFormat, "gap"},
		{"trailing data", mk(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, make([]byte, 4)), ErrFormat, "cover 2"},
		{"negative dim", mk(`{"a":{"dtype":"U8","shape":[-2],"data_offsets":[0,2]}}`, make([]byte, 2)), ErrShape, "negative"},
		{"bad metadata", mk(`{"__metadata__":{"a":1}}`, nil), ErrFormat, "__metadata__"},
		{"unknown field", mk(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}}`, make([]byte, 1)), ErrFormat, "unknown field"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := DecodeSafetensors(c.in, "m.safetensors")
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "m.safetensors") {
				t.Errorf("got %q, want %v mentioning %q", err, c.is, c.want)
			}
		})
	}
	if _, err := ReadSafetensors(filepath.Join(t.TempDir(), "none.safetensors")); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "none.safetensors") {
		t.Errorf("missing file: %v", err)
	}
}

func TestCheckFinite(t *testing.T) {
	for _, c := range []struct {
		file     string
		row, col int
	}{{"nan_f8.npy", 1, 2}, {"inf_f4.npy", 1, 1}} {
		m, err := Load("testdata/" + c.file)
		if err != nil {
			t.Fatal(err)
		}
		err = CheckFinite(m)
		var nf *NonFiniteError
		if !errors.As(err, &nf) || !errors.Is(err, ErrNonFinite) {
			t.Fatalf("%s: got %v", c.file, err)
		}
		if nf.Row != c.row || nf.Col != c.col || !strings.Contains(err.Error(), c.file) {
			t.Errorf("%s: %v, want row %d column %d", c.file, err, c.row, c.col)
		}
	}
	m, err := Load("testdata/f8_c.npy")
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckFinite(m); err != nil {
		t.Errorf("finite matrix: %v", err)
	}
}
