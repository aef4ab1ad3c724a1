package dataio

import (
	"bytes"
	"strings"
	"testing"
)

// The fuzz targets check that readers never panic and that whatever they
// accept survives write-then-read unchanged. Seed inputs live in
// testdata/fuzz/<FuzzName>/ (written by scripts/make_io_fixtures.py).

func FuzzReadNPY(f *testing.F) {
	f.Add([]byte(npyMagic + "\x01\x00\x10\x00{'shape': (0,)}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ReadNPY(bytes.NewReader(data), "fuzz.npy")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.npy") {
				t.Fatalf("error does not name the input: %v", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("reader returned an invalid matrix: %v", err)
		}
		var buf bytes.Buffer
		if err := EncodeNPY(&buf, m); err != nil {
			t.Fatal(err)
		}
		back, err := ReadNPY(&buf, "again.npy")
		if err != nil {
			t.Fatalf("re-reading our own output: %v", err)
		}
		if d := diffMatrix(m, back); d != "" {
			t.Fatal(d)
		}
	})
}

func FuzzReadCSV(f *testing.F) {
	f.Add([]byte("a,b\n1,2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ReadCSV(bytes.NewReader(data), "fuzz.csv")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.csv") {
				t.Fatalf("error does not name the input: %v", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("reader returned an invalid matrix: %v", err)
		}
		var buf bytes.Buffer
		if err := EncodeCSV(&buf, m, m.Header); err != nil {
			t.Fatal(err)
		}
		back, err := ReadCSV(&buf, "again.csv")
		if err != nil {
			t.Fatalf("re-reading our own output %q: %v", buf.String(), err)
		}
		if d := diffMatrix(m, back); d != "" {
			t.Fatal(d)
		}
		if strings.Join(m.Header, "\x00") != strings.Join(back.Header, "\x00") || (m.Header == nil) != (back.Header == nil) {
			t.Fatalf("header %q became %q", m.Header, back.Header)
		}
	})
}

func FuzzSafetensors(f *testing.F) {
	f.Add([]byte("\x08\x00\x00\x00\x00\x00\x00\x00{}      "))
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, meta, err := DecodeSafetensors(data, "fuzz.safetensors")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.safetensors") {
				t.Fatalf("error does not name the input: %v", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := EncodeSafetensors(&buf, ts, meta); err != nil {
			t.Fatal(err)
		}
		back, meta2, err := DecodeSafetensors(buf.Bytes(), "again.safetensors")
		if err != nil {
			t.Fatalf("re-reading our own output: %v", err)
		}
		if d := diffTensors(ts, back); d != "" {
			t.Fatal(d)
		}
		if !mapsEqual(meta, meta2) || (meta == nil) != (meta2 == nil) {
			t.Fatalf("metadata %v became %v", meta, meta2)
		}
	})
}
