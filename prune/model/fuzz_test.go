package model

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"relutrim/dataio"
)

// The fuzz targets check that the model readers never panic on any input, that their
// errors name the input, and that what they accept is a consistent model: positive
// widths, layers that chain, shapes within MaxSampleValues, a forward pass that runs, and
// a file written back that reads again to the same layers. `go test` runs their seeds
// (every ONNX fixture, and state_dicts with odd shapes); scripts/test.sh also fuzzes each
// briefly.

// seedFiles adds every file matching the patterns as a seed.
func seedFiles(f *testing.F, patterns ...string) {
	n := 0
	for _, p := range patterns {
		files, err := filepath.Glob(p)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
			n++
		}
	}
	if n == 0 {
		f.Fatalf("no seed files match %v", patterns)
	}
}

// checkAccepted checks a model a reader accepted (see above).
func checkAccepted(t *testing.T, m Model, name string) {
	t.Helper()
	if len(m.Layers) == 0 {
		t.Fatalf("%s: accepted with no layers", name)
	}
	if _, ok := m.InShape().CheckedSize(); !ok {
		t.Fatalf("%s: accepted with input shape %v", name, m.InShape())
	}
	for l, L := range m.Layers {
		if L.In < 1 || L.Out < 1 || len(L.W) != L.In*L.Out || len(L.B) != L.Out {
			t.Fatalf("%s: layer %d: In %d, Out %d, %d weights, %d biases", name, l, L.In, L.Out, len(L.W), len(L.B))
		}
		if _, ok := L.OutShape().CheckedSize(); !ok {
			t.Fatalf("%s: layer %d: output shape %v", name, l, L.OutShape())
		}
	}
	// One zero sample through the network, when its activations are small.
	if m.PruneBytes(1, 0) < 64<<20 {
		x := make([]float64, m.InShape().Size())
		acts := m.Forward(x, 1)
		if got := len(acts[len(acts)-1]); got != m.Outputs() {
			t.Fatalf("%s: forward pass gave %d outputs, want %d", name, got, m.Outputs())
		}
		if _, err := m.AccuracyContext(context.Background(), x, 1, []int{0}); err != nil {
			t.Fatal(err)
		}
	}
}

func FuzzONNX(f *testing.F) {
	seedFiles(f, filepath.Join("testdata", "onnx", "*.onnx"), filepath.Join("testdata", "onnx", "bad", "*.onnx"),
		filepath.Join("testdata", "onnx", "hostile", "*.onnx"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := FromONNX(data, "fuzz.onnx")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.onnx") {
				t.Fatalf("error does not name the input: %v", err)
			}
			return
		}
		checkAccepted(t, m, "fuzz.onnx")
		var buf bytes.Buffer
		if err := m.EncodeONNX(&buf); err != nil {
			t.Fatalf("writing an accepted model: %v", err)
		}
		back, err := FromONNX(buf.Bytes(), "again.onnx")
		if err != nil {
			t.Fatalf("re-reading our own output: %v", err)
		}
		if len(back.Layers) != len(m.Layers) {
			t.Fatalf("%d layers became %d", len(m.Layers), len(back.Layers))
		}
	})
}

// FuzzMLPShapes fuzzes the safetensors MLP reader (dataio's decoder, then FromTensors) on
// whole files, seeded with the bundled MLP and state_dicts whose shapes are odd: widths of
// 0, layers that do not chain, a 1-D weight, a missing bias.
func FuzzMLPShapes(f *testing.F) {
	seedFiles(f, filepath.Join("..", "testdata", "small.safetensors"))
	for _, shapes := range []map[string][]int{
		{"0.weight": {4, 3}, "0.bias": {4}, "2.weight": {2, 4}, "2.bias": {2}},
		{"0.weight": {0, 3}, "0.bias": {0}, "2.weight": {2, 0}, "2.bias": {2}},
		{"0.weight": {4, 3}, "0.bias": {4}, "2.weight": {0, 4}, "2.bias": {0}},
		{"0.weight": {4, 3}, "0.bias": {4}, "2.weight": {2, 5}, "2.bias": {2}},
		{"0.weight": {12}, "0.bias": {4}},
		{"0.weight": {4, 3}},
	} {
		ts := map[string]dataio.Tensor{}
		for k, sh := range shapes {
			n := 1
			for _, d := range sh {
				n *= d
			}
			ts[k] = dataio.Tensor{DType: "F32", Shape: sh, F32: make([]float32, n)}
		}
		var buf bytes.Buffer
		if err := dataio.EncodeSafetensors(&buf, ts, nil); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, _, err := dataio.DecodeSafetensors(data, "fuzz.safetensors")
		if err != nil {
			return // dataio's own fuzzer covers the decoder's errors
		}
		m, err := FromTensors(ts, "fuzz.safetensors")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.safetensors") {
				t.Fatalf("error does not name the input: %v", err)
			}
			return
		}
		checkAccepted(t, m, "fuzz.safetensors")
		for l := 1; l < len(m.Layers); l++ {
			if m.Layers[l].In != m.Layers[l-1].Out {
				t.Fatalf("layer %d takes %d inputs, layer %d gives %d", l, m.Layers[l].In, l-1, m.Layers[l-1].Out)
			}
		}
		var buf bytes.Buffer
		if err := m.Encode(&buf, false); err != nil {
			t.Fatal(err)
		}
		ts2, _, err := dataio.DecodeSafetensors(buf.Bytes(), "again.safetensors")
		if err != nil {
			t.Fatal(err)
		}
		back, err := FromTensors(ts2, "again.safetensors")
		if err != nil || len(back.Layers) != len(m.Layers) {
			t.Fatalf("re-reading our own output: %v", err)
		}
	})
}

// FuzzONNXGraph fuzzes the residual-graph reader (FromONNXGraph): it never panics, its
// errors name the input, and an accepted model's forward pass runs and yields Outputs()
// values per sample.
func FuzzONNXGraph(f *testing.F) {
	seedFiles(f, filepath.Join("testdata", "resnet", "*.onnx"), filepath.Join("testdata", "onnx", "*.onnx"),
		filepath.Join("testdata", "onnx", "bad", "*.onnx"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := FromONNXGraph(data, "fuzz.onnx")
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.onnx") {
				t.Fatalf("error does not name the input: %v", err)
			}
			return
		}
		in := m.InShape().Size()
		if in > 1<<16 {
			return // a valid but large sample: the forward pass is not what is fuzzed
		}
		acts := m.Forward(make([]float64, 2*in), 2)
		if got := len(acts[len(acts)-1]); got != 2*m.Outputs() {
			t.Fatalf("output of %d values for 2 samples of %d", got, m.Outputs())
		}
	})
}
