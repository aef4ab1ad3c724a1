package model

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/advancedclimatesystems/gonnx/onnx"
	"google.golang.org/protobuf/proto"
)

// TestShrinkMatchesZeroedUnits: the shrunk model computes the same outputs as the original
// model with the removed units switched off by zeroing their incoming weights and biases
// (relu(0) = 0: nothing downstream sees them) - an independent construction of the same
// function - and has the new shapes; it survives Save and Load with those shapes and
// dtypes.
func TestShrinkMatchesZeroedUnits(t *testing.T) {
	m, err := Load(filepath.Join(testdata, "small.safetensors")) // 20-16-8-3, float32
	if err != nil {
		t.Fatal(err)
	}
	keep := [][]int{{0, 2, 3, 7, 8, 15}, {1, 4, 5}}
	s, err := m.Shrink(keep)
	if err != nil {
		t.Fatal(err)
	}
	wantShapes := [][2]int{{20, 6}, {6, 3}, {3, 3}}
	for l, L := range s.Layers {
		if L.In != wantShapes[l][0] || L.Out != wantShapes[l][1] || len(L.W) != L.In*L.Out || len(L.B) != L.Out {
			t.Fatalf("layer %d: %d -> %d with %d weights, want %v", l, L.In, L.Out, len(L.W), wantShapes[l])
		}
	}
	if !slices.Equal(s.Units(), []int{6, 3}) {
		t.Errorf("units %v", s.Units())
	}
	z := m.Clone()
	for h, ks := range keep {
		L := z.Layers[h]
		for o := 0; o < L.Out; o++ {
			if slices.Contains(ks, o) {
				continue
			}
			for i := 0; i < L.In; i++ {
				L.W[o*L.In+i] = 0
			}
			L.B[o] = 0
		}
	}
	r := rand.New(rand.NewPCG(3, 3))
	n := 50
	X := make([]float64, n*20)
	for i := range X {
		X[i] = r.NormFloat64()
	}
	a, b := s.Forward(X, n), z.Forward(X, n)
	la, lb := a[len(a)-1], b[len(b)-1]
	for i := range la {
		if math.Abs(la[i]-lb[i]) > 1e-12*(1+math.Abs(lb[i])) {
			t.Fatalf("output %d: shrunk %v, zeroed %v", i, la[i], lb[i])
		}
	}
	// The zeroed model must differ from the original (the test would pass trivially otherwise).
	full := m.Forward(X, n)
	diff := 0.0
	for i, v := range full[len(full)-1] {
		diff = math.Max(diff, math.Abs(v-lb[i]))
	}
	if diff < 1e-3 {
		t.Fatalf("removing units changed the outputs by only %g", diff)
	}
	path := filepath.Join(t.TempDir(), "shrunk.safetensors")
	if err := s.Save(path, false); err != nil {
		t.Fatal(err)
	}
	back, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for l, L := range back.Layers {
		if L.In != s.Layers[l].In || L.Out != s.Layers[l].Out || L.WType != m.Layers[l].WType {
			t.Errorf("layer %d reloaded as %d -> %d %s", l, L.In, L.Out, L.WType)
		}
	}
	for _, bad := range [][][]int{{{0, 1}}, {{}, {1}}, {{0, 0}, {1}}, {{16}, {1}}, {{1, 0}, {1}}} {
		if _, err := m.Shrink(bad); err == nil {
			t.Errorf("Shrink(%v): no error", bad)
		}
	}
}

// reachedColumns returns, for each output channel c of layer h, the inputs of layer h+1
// that c reaches, found by running an indicator through layer h's Post operations (the
// forward pass's own pooling and flattening code, checked against their definitions in
// conv_test.go), not by InputColumns' formula: for a dense layer h+1, the non-zeros of the
// ops' output on an input that is 1 in channel c at every position and 0 elsewhere.
func reachedColumns(m Model, h int) [][]int {
	L, next := m.Layers[h], m.Layers[h+1]
	out := make([][]int, L.Out)
	for c := range out {
		if next.Conv != nil { // PyTorch's weight layout (C_out, C_in, KH, KW)
			kk := next.Conv.KH * next.Conv.KW
			for k := 0; k < kk; k++ {
				out[c] = append(out[c], c*kk+k)
			}
			continue
		}
		s := L.OutShape()
		x := make([]float64, s.Size())
		for p := 0; p < s.H*s.W; p++ {
			x[p*s.C+c] = 1
		}
		y := m.Next(h, x, 1)
		for i, v := range y {
			if v != 0 {
				out[c] = append(out[c], i)
			}
		}
	}
	return out
}

// TestShrinkCNN: removing output channels from the ONNX CNN fixtures (cnn.onnx: Conv+BN,
// MaxPool, a Conv without bias, AveragePool, Conv, MaxPool, Flatten of 12x2x2, Gemm+BN,
// Gemm; cnn_gap.onnx: Conv, Conv, GlobalAveragePool, Flatten, Gemm, Gemm; and cnn.onnx with
// its Flatten replaced by a Reshape to (0, 48), whose constant must become (0, 4*kept))
// gives a smaller network that computes the same logits as the original network
//
//	(a) with the removed channels' outgoing weights zeroed (the columns of layer h+1 they
//	    reach, found by reachedColumns), and
//	(b) with the removed channels' incoming weights and biases zeroed (relu(0) = 0 flows
//	    through pooling and padding as zero: the channels then contribute nothing, a
//	    construction that does not need the column map at all),
//
// on random inputs, to 1e-10; the zeroing must change the original's logits (else (a) and
// (b) test nothing). The model written to ONNX and read back has the cut shapes (conv
// weights (kept, kept_prev, KH, KW), the folded BatchNormalization's tensors, the Gemm's
// input width) and the same logits to float32 rounding.
func TestShrinkCNN(t *testing.T) {
	cases := []struct{ name, file string }{{"cnn", "cnn.onnx"}, {"cnn_gap", "cnn_gap.onnx"}, {"cnn_reshape", "cnn.onnx"}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(onnxDir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "cnn_reshape" {
				data = flattenToReshape(t, data, 48)
			}
			m, err := FromONNX(data, tc.name)
			if err != nil {
				t.Fatal(err)
			}
			x := readNPY(t, strings.TrimSuffix(tc.file, ".onnx")+"_x.npy")
			r := rand.New(rand.NewPCG(8, uint64(len(tc.name))))
			n := x.Rows
			X := make([]float64, len(x.Float64()))
			for i := range X {
				X[i] = r.NormFloat64()
			}
			keep := make([][]int, len(m.Layers)-1)
			for h := range keep {
				u := m.Layers[h].Out
				k := 1 + r.IntN(u-1) // 1 .. u-1 kept
				keep[h] = r.Perm(u)[:k]
				slices.Sort(keep[h])
			}
			sm, err := m.Shrink(keep)
			if err != nil {
				t.Fatal(err)
			}
			outZero, inZero := m.Clone(), m.Clone()
			for h, ks := range keep {
				reach := reachedColumns(m, h)
				next, L := &outZero.Layers[h+1], &inZero.Layers[h]
				for c := 0; c < m.Layers[h].Out; c++ {
					if slices.Contains(ks, c) {
						continue
					}
					for o := 0; o < next.Out; o++ {
						for _, i := range reach[c] {
							next.W[o*next.In+i] = 0
						}
					}
					clear(L.W[c*L.In : (c+1)*L.In])
					L.B[c] = 0
				}
			}
			got := sm.Forward(X, n)
			logits := got[len(got)-1]
			for _, ref := range []struct {
				what string
				m    Model
			}{{"outgoing weights zeroed", outZero}, {"incoming weights and biases zeroed", inZero}} {
				want := ref.m.Forward(X, n)
				w := want[len(want)-1]
				for i := range w {
					if math.Abs(logits[i]-w[i]) > 1e-10*(1+math.Abs(w[i])) {
						t.Fatalf("%s: logit %d: shrunk %v, %v", ref.what, i, logits[i], w[i])
					}
				}
				full := m.Forward(X, n)
				if d := maxDiff(full[len(full)-1], w); d < 1e-3 {
					t.Fatalf("%s: the removed channels changed the logits by only %g", ref.what, d)
				}
			}
			// Shapes in memory and through the file.
			var buf bytes.Buffer
			if err := sm.EncodeONNX(&buf); err != nil {
				t.Fatal(err)
			}
			mp := &onnx.ModelProto{}
			if err := proto.Unmarshal(buf.Bytes(), mp); err != nil {
				t.Fatal(err)
			}
			if len(mp.Graph.ValueInfo) != 0 {
				t.Errorf("%d stale value_info entries", len(mp.Graph.ValueInfo))
			}
			dims := map[string][]int64{}
			for _, tp := range mp.Graph.Initializer {
				dims[tp.Name] = tp.Dims
			}
			q, err := FromONNX(buf.Bytes(), "shrunk "+tc.name)
			if err != nil {
				t.Fatal(err)
			}
			for h, L := range q.Layers {
				wantOut := L.Out
				if h < len(keep) {
					wantOut = len(keep[h])
				}
				if L.Out != wantOut || L.Out != sm.Layers[h].Out || L.In != sm.Layers[h].In {
					t.Errorf("layer %s read back as %d -> %d, want %d -> %d", L.Key, L.In, L.Out, sm.Layers[h].In, wantOut)
				}
				if L.Conv != nil {
					wd := dims[L.onnx.w]
					want := []int64{int64(L.Out), int64(sm.Layers[h].Conv.In.C), int64(L.Conv.KH), int64(L.Conv.KW)}
					if !slices.Equal(wd, want) || (h > 0 && wd[1] != int64(len(keep[h-1]))) {
						t.Errorf("layer %s: weight dims %v, want %v", L.Key, wd, want)
					}
				}
				if f := L.onnx.bn; f != nil {
					for _, name := range append(f.others[:], f.beta) {
						if !slices.Equal(dims[name], []int64{int64(L.Out)}) {
							t.Errorf("layer %s: BatchNormalization tensor %s has dims %v, want [%d]", L.Key, name, dims[name], L.Out)
						}
					}
				}
			}
			back := q.Forward(X, n)
			closeTo(t, "shrunk CNN through the file", back[len(back)-1], logits)
			if tc.name == "cnn_reshape" {
				for _, nd := range mp.Graph.Node {
					if nd.OpType == "Reshape" {
						for _, tp := range mp.Graph.Initializer {
							if tp.Name == nd.Input[1] {
								sh, _ := int64s(tp)
								if want := int64(4 * len(keep[2])); sh[1] != want {
									t.Errorf("Reshape to %v, want (0, %d)", sh, want)
								}
							}
						}
					}
				}
			}
		})
	}
}

// flattenToReshape replaces the graph's Flatten node by a Reshape to (0, features) with a
// constant shape initializer (as some exporters write it).
func flattenToReshape(t *testing.T, data []byte, features int64) []byte {
	t.Helper()
	mp := &onnx.ModelProto{}
	if err := proto.Unmarshal(data, mp); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, nd := range mp.Graph.Node {
		if nd.OpType == "Flatten" {
			nd.OpType, nd.Attribute = "Reshape", nil
			nd.Input = append(nd.Input, "flat_shape")
			found = true
		}
	}
	if !found {
		t.Fatal("no Flatten node")
	}
	b := make([]byte, 16)
	binary.LittleEndian.PutUint64(b[8:], uint64(features))
	mp.Graph.Initializer = append(mp.Graph.Initializer, &onnx.TensorProto{Name: "flat_shape", DataType: int32(onnx.TensorProto_INT64), Dims: []int64{2}, RawData: b})
	out, err := proto.Marshal(mp)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
