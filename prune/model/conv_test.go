package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

// naiveConv is the textbook definition of ONNX Conv (groups 1) on channel-first (NCHW)
// data, written independently of Patches: out[s][o][y][x] = b[o] + sum over c, i, j of
// w[o][c][i][j] * in[s][c][y*SH - PT + i*DH][x*SW - PL + j*DW] (zero outside).
func naiveConv(in []float64, n int, c Conv, w, b []float64, cout int) []float64 {
	C, H, W := c.In.C, c.In.H, c.In.W
	out := make([]float64, n*cout*c.OutH*c.OutW)
	for s := 0; s < n; s++ {
		for o := 0; o < cout; o++ {
			for y := 0; y < c.OutH; y++ {
				for x := 0; x < c.OutW; x++ {
					v := b[o]
					for ch := 0; ch < C; ch++ {
						for i := 0; i < c.KH; i++ {
							for j := 0; j < c.KW; j++ {
								h, ww := y*c.SH-c.PT+i*c.DH, x*c.SW-c.PL+j*c.DW
								if h >= 0 && h < H && ww >= 0 && ww < W {
									v += w[((o*C+ch)*c.KH+i)*c.KW+j] * in[((s*C+ch)*H+h)*W+ww]
								}
							}
						}
					}
					out[((s*cout+o)*c.OutH+y)*c.OutW+x] = v
				}
			}
		}
	}
	return out
}

func randVec(r *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = r.NormFloat64()
	}
	return v
}

func maxDiff(a, b []float64) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

// TestConvMatchesDefinition: Model.Apply on a convolution (im2col on channel-last data)
// against the direct definition on channel-first data, for strides, dilations, asymmetric
// padding and non-square kernels.
func TestConvMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := []Conv{
		{In: Shape{3, 7, 6}, KH: 3, KW: 3, SH: 1, SW: 1, DH: 1, DW: 1, PT: 1, PL: 1, PB: 1, PR: 1},
		{In: Shape{2, 9, 8}, KH: 3, KW: 2, SH: 2, SW: 3, DH: 1, DW: 1, PT: 0, PL: 1, PB: 2, PR: 0},
		{In: Shape{4, 8, 8}, KH: 3, KW: 3, SH: 1, SW: 2, DH: 2, DW: 3, PT: 2, PL: 3, PB: 1, PR: 2},
		{In: Shape{1, 5, 5}, KH: 5, KW: 5, SH: 1, SW: 1, DH: 1, DW: 1},
	}
	for k, c := range cases {
		if err := c.setOut(); err != nil {
			t.Fatal(err)
		}
		n, cout := 3, 4
		in := c.In.C * c.KH * c.KW
		w, b := randVec(r, cout*in), randVec(r, cout)
		x := randVec(r, n*c.In.Size())
		cc := c
		// Dense weights, then 85% zeros (the forward pass's sparse-weight path).
		for _, zero := range []float64{0, 0.85} {
			for i := range w {
				if r.Float64() < zero {
					w[i] = 0
				}
			}
			want := naiveConv(x, n, c, w, b, cout)
			m := Model{In: c.In, Layers: []Layer{{In: in, Out: cout, W: w, B: b, Conv: &cc, Act: ActIdentity}}}
			_, pre := m.Apply(0, m.Input(x, n), n)
			got := toChannelFirst(pre, n, m.Layers[0].OutShape())
			if d := maxDiff(got, want); d > 1e-12 {
				t.Errorf("case %d (%+v), %.0f%% zeros: max difference %g from the definition", k, c, 100*zero, d)
			}
			// With a ReLU: ApplyPost is the clipped definition, ApplyAt the definition's
			// pre-activations at the rows asked for (bitwise Apply's rows).
			mr := Model{In: c.In, Layers: []Layer{{In: in, Out: cout, W: w, B: b, Conv: &cc, Act: ActReLU}}}
			post := toChannelFirst(mr.ApplyPost(0, mr.Input(x, n), n), n, mr.Layers[0].OutShape())
			for i, v := range want {
				if math.Abs(post[i]-math.Max(v, 0)) > 1e-12 {
					t.Fatalf("case %d: ApplyPost value %d = %v, relu of the definition %v", k, i, post[i], math.Max(v, 0))
				}
			}
			rows := n * c.OutH * c.OutW
			pos := []int{0, rows - 1} // distinct and ascending, as ApplyAt wants
			if rows > 2 {
				pos = []int{0, rows / 2, rows - 1}
			}
			_, fullPre := mr.Apply(0, mr.Input(x, n), n)
			_, at := mr.ApplyAt(0, mr.Input(x, n), n, pos)
			for r, p := range pos {
				if d := maxDiff(at[r*cout:(r+1)*cout], fullPre[p*cout:(p+1)*cout]); d != 0 {
					t.Errorf("case %d: ApplyAt row %d differs from Apply's row %d by %g", k, r, p, d)
				}
			}
		}
		m := Model{In: c.In, Layers: []Layer{{In: in, Out: cout, W: w, B: b, Conv: &cc, Act: ActIdentity}}}
		// Patches at sampled positions are the rows of the full unfolding.
		all := c.Patches(m.Input(x, n), n, nil)
		pos := []int{0, min(5, n*c.OutH*c.OutW-2), n*c.OutH*c.OutW - 1}
		some := c.Patches(m.Input(x, n), n, pos)
		for r, p := range pos {
			if d := maxDiff(some[r*in:(r+1)*in], all[p*in:(p+1)*in]); d != 0 {
				t.Errorf("case %d: sampled patch row %d differs from the full unfolding's row %d", k, r, p)
			}
		}
	}
}

// naivePool is ONNX MaxPool / AveragePool on NCHW data by definition (including ceil mode:
// windows starting inside the input or the left padding; count_include_pad divides by
// the window clipped to the padded input).
func naivePool(in []float64, n int, o Op) []float64 {
	out := o.Out()
	C, H, W := o.In.C, o.In.H, o.In.W
	y := make([]float64, n*C*out.H*out.W)
	for s := 0; s < n; s++ {
		for c := 0; c < C; c++ {
			for oh := 0; oh < out.H; oh++ {
				for ow := 0; ow < out.W; ow++ {
					h0, w0 := oh*o.SH-o.PT, ow*o.SW-o.PL
					best, sum, cnt := math.Inf(-1), 0.0, 0
					for h := h0; h < h0+o.KH; h++ {
						for w := w0; w < w0+o.KW; w++ {
							if h < 0 || h >= H || w < 0 || w >= W {
								continue
							}
							v := in[((s*C+c)*H+h)*W+w]
							best = math.Max(best, v)
							sum += v
							cnt++
						}
					}
					v := best
					if o.Kind == AvgPool {
						div := float64(cnt)
						if o.CountPad {
							div = float64((min(h0+o.KH, H+o.PB) - h0) * (min(w0+o.KW, W+o.PR) - w0))
						}
						v = sum / div
					}
					y[((s*C+c)*out.H+oh)*out.W+ow] = v
				}
			}
		}
	}
	return y
}

func TestPoolsMatchDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	in := Shape{3, 7, 9}
	cases := []Op{
		{Kind: MaxPool, In: in, KH: 2, KW: 2, SH: 2, SW: 2},
		{Kind: MaxPool, In: in, KH: 3, KW: 3, SH: 2, SW: 2, PT: 1, PL: 1, PB: 1, PR: 1},
		{Kind: MaxPool, In: in, KH: 2, KW: 3, SH: 2, SW: 2, Ceil: true},
		{Kind: AvgPool, In: in, KH: 2, KW: 2, SH: 2, SW: 2},
		{Kind: AvgPool, In: in, KH: 3, KW: 3, SH: 2, SW: 2, PT: 1, PL: 1, PB: 1, PR: 1},
		{Kind: AvgPool, In: in, KH: 3, KW: 3, SH: 2, SW: 2, PT: 1, PL: 1, PB: 1, PR: 1, CountPad: true},
		{Kind: AvgPool, In: in, KH: 2, KW: 2, SH: 2, SW: 2, Ceil: true, CountPad: true},
	}
	n := 2
	x := randVec(r, n*in.Size())
	for k, o := range cases {
		want := naivePool(x, n, o)
		got := toChannelFirst(o.Apply(ToChannelLast(x, n, in), n), n, o.Out())
		if d := maxDiff(got, want); d > 1e-14 || len(got) != len(want) {
			t.Errorf("case %d (%v %+v): max difference %g from the definition", k, o.Kind, o, d)
		}
	}
	// Ceil mode: 7 rows, window 2, stride 2 gives 4 rows (the last window half outside).
	if s := cases[2].Out(); s.H != 4 || s.W != 4 {
		t.Errorf("ceil-mode output %v, want 3x4x4", s)
	}
	// Global average pooling and Flatten (channel-first order) against direct sums.
	g := Op{Kind: GlobalAvgPool, In: in}.Apply(ToChannelLast(x, n, in), n)
	f := Op{Kind: Flatten, In: in}.Apply(ToChannelLast(x, n, in), n)
	for s := 0; s < n; s++ {
		for c := 0; c < in.C; c++ {
			sum := 0.0
			for p := 0; p < in.H*in.W; p++ {
				sum += x[(s*in.C+c)*in.H*in.W+p]
			}
			if math.Abs(g[s*in.C+c]-sum/float64(in.H*in.W)) > 1e-14 {
				t.Fatalf("global average pool: sample %d channel %d", s, c)
			}
		}
	}
	if d := maxDiff(f, x); d != 0 {
		t.Errorf("Flatten of channel-last data is not PyTorch's channel-first order")
	}
	// Pad then read back the interior.
	pd := Op{Kind: Pad, In: in, PT: 1, PL: 2, PB: 0, PR: 1}
	y := toChannelFirst(pd.Apply(ToChannelLast(x, n, in), n), n, pd.Out())
	ps := pd.Out()
	for s := 0; s < n; s++ {
		for c := 0; c < in.C; c++ {
			for h := 0; h < ps.H; h++ {
				for w := 0; w < ps.W; w++ {
					v := y[((s*in.C+c)*ps.H+h)*ps.W+w]
					want := 0.0
					if h >= 1 && w >= 2 && w < 2+in.W {
						want = x[((s*in.C+c)*in.H+h-1)*in.W+w-2]
					}
					if v != want {
						t.Fatalf("pad: sample %d channel %d (%d,%d) = %v, want %v", s, c, h, w, v, want)
					}
				}
			}
		}
	}
}
