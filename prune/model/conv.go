package model

import (
	"fmt"
	"math"
)

// Shape is the shape of one sample's activations: C channels on an H x W grid. A flat
// vector of F features is Shape{F, 1, 1}.
//
// Activations are held channel-last ("NHWC"): sample s, grid position (h, w) and channel c
// is at ((s*H + h)*W + w)*C + c. A flat vector is the same layout with H = W = 1, so a
// dense layer reads one row per sample and a convolution one row per output position:
// both are a layer fit with one row per position, which is what the solver fits. ONNX and
// PyTorch hold images channel-first (NCHW); [Model.Input] converts.
type Shape struct{ C, H, W int }

// Size is C*H*W.
func (s Shape) Size() int { return s.C * s.H * s.W }

// MaxSampleValues bounds the values of one sample's activations at any point of a model
// (2^31 float64 values, 16 GiB): a model whose shapes ask for more per sample, or whose
// C*H*W would overflow, is refused when it is loaded instead of panicking in an
// allocation later (issue 22: pads of 1e6, an input of 1 x 192 x 192153584101141163).
const MaxSampleValues = 1 << 31

// maxAttr bounds the integer attributes of a convolution, pooling or padding (kernel,
// strides, dilations, pads), so that the output-size arithmetic cannot overflow.
const maxAttr = 1 << 30

// CheckedSize returns C*H*W computed without overflow; ok is false when a dimension is
// not positive or the product exceeds MaxSampleValues.
func (s Shape) CheckedSize() (size int, ok bool) {
	v := 1
	for _, d := range []int{s.C, s.H, s.W} {
		if d < 1 || d > MaxSampleValues/v {
			return 0, false
		}
		v *= d
	}
	return v, true
}

// Flat reports whether s is a vector (H = W = 1).
func (s Shape) Flat() bool { return s.H == 1 && s.W == 1 }

func (s Shape) String() string {
	if s.Flat() {
		return fmt.Sprint(s.C)
	}
	return fmt.Sprintf("%dx%dx%d", s.C, s.H, s.W)
}

// Conv is the geometry of a 2-D convolution (groups = 1) in ONNX's terms: kernel KH x KW,
// strides, dilations and the zero padding at the top, left, bottom and right. Its weight,
// (C_out, C_in, KH, KW) in PyTorch's layout, is the layer's Out x In matrix with
// In = C_in*KH*KW, input column (c*KH + i)*KW + j.
type Conv struct {
	In             Shape // input: C_in channels on an H x W grid
	KH, KW         int
	SH, SW, DH, DW int
	PT, PL, PB, PR int
	OutH, OutW     int
}

// convOut is ONNX's output size of a convolution or pooling window along one axis
// (floor mode; ceil mode for pools that ask for it).
func convOut(in, k, s, d, p0, p1 int, ceil bool) int {
	span := in + p0 + p1 - d*(k-1) - 1
	if span < 0 {
		return 0
	}
	if ceil {
		o := (span+s-1)/s + 1
		// The last window must start inside the input or the left padding (ONNX, PyTorch).
		if (o-1)*s >= in+p0 {
			o--
		}
		return o
	}
	return span/s + 1
}

// setOut computes OutH and OutW and checks that the output is not empty.
func (c *Conv) setOut() error {
	c.OutH = convOut(c.In.H, c.KH, c.SH, c.DH, c.PT, c.PB, false)
	c.OutW = convOut(c.In.W, c.KW, c.SW, c.DW, c.PL, c.PR, false)
	if c.OutH < 1 || c.OutW < 1 {
		return fmt.Errorf("a %dx%d kernel (dilation %d,%d, padding %d,%d,%d,%d) does not fit the %dx%d input", c.KH, c.KW, c.DH, c.DW, c.PT, c.PL, c.PB, c.PR, c.In.H, c.In.W)
	}
	return nil
}

// Patches returns the rows of the convolution's unfolded input ("im2col"): one row of
// In = C_in*KH*KW values per output position, in the column order of the weight. in holds
// n samples of shape c.In (channel-last). pos lists output positions, each
// (s*OutH + oh)*OutW + ow; nil means all n*OutH*OutW in order.
func (c *Conv) Patches(in []float64, n int, pos []int) []float64 {
	cols := c.In.C * c.KH * c.KW
	rows := len(pos)
	if pos == nil {
		rows = n * c.OutH * c.OutW
	}
	out := make([]float64, rows*cols)
	for r := 0; r < rows; r++ {
		p := r
		if pos != nil {
			p = pos[r]
		}
		c.patch(out[r*cols:(r+1)*cols], in, p)
	}
	return out
}

// patch writes the unfolded input of output position p into dst.
func (c *Conv) patch(dst, in []float64, p int) {
	ow := p % c.OutW
	oh := (p / c.OutW) % c.OutH
	s := p / (c.OutW * c.OutH)
	C, H, W := c.In.C, c.In.H, c.In.W
	kk := c.KH * c.KW
	base := s * H * W * C
	for i := 0; i < c.KH; i++ {
		h := oh*c.SH - c.PT + i*c.DH
		for j := 0; j < c.KW; j++ {
			w := ow*c.SW - c.PL + j*c.DW
			k := i*c.KW + j
			if h < 0 || h >= H || w < 0 || w >= W {
				for ch := 0; ch < C; ch++ {
					dst[ch*kk+k] = 0
				}
				continue
			}
			src := in[base+(h*W+w)*C : base+(h*W+w)*C+C]
			for ch, v := range src {
				dst[ch*kk+k] = v
			}
		}
	}
}

// patchLast writes the unfolded input of output position p into dst in channel-last
// order: column (i*KW + j)*C_in + c (the forward pass's layout; Patches uses PyTorch's).
func (c *Conv) patchLast(dst, in []float64, p int) {
	ow := p % c.OutW
	oh := (p / c.OutW) % c.OutH
	s := p / (c.OutW * c.OutH)
	C, H, W := c.In.C, c.In.H, c.In.W
	base := s * H * W * C
	for i := 0; i < c.KH; i++ {
		h := oh*c.SH - c.PT + i*c.DH
		for j := 0; j < c.KW; j++ {
			w := ow*c.SW - c.PL + j*c.DW
			d := dst[(i*c.KW+j)*C : (i*c.KW+j+1)*C]
			if h < 0 || h >= H || w < 0 || w >= W {
				clear(d)
				continue
			}
			copy(d, in[base+(h*W+w)*C:])
		}
	}
}

// Op is a parameter-free operation between layers: pooling, global average pooling or
// flattening. It maps n samples of shape In (channel-last) to n samples of shape Out().
type Op struct {
	Kind OpKind
	In   Shape
	// Window of MaxPool and AveragePool (ONNX attributes; dilations are 1).
	KH, KW, SH, SW, PT, PL, PB, PR int
	Ceil                           bool
	// CountPad: AveragePool divides by the full window, padding included
	// (count_include_pad = 1); otherwise by the number of input cells it covers.
	CountPad bool
	// Node is the ONNX node's name (or op type), for messages.
	Node string
}

// OpKind names an Op.
type OpKind int

// The operations relutrim runs between layers.
const (
	MaxPool OpKind = iota + 1
	AvgPool
	GlobalAvgPool
	// Flatten turns C x H x W into a vector of C*H*W in PyTorch's (channel-first) order.
	Flatten
	// Pad adds PT, PL, PB, PR rows and columns of zeros around the grid (ONNX Pad,
	// constant mode, value 0, as torch exports before an AveragePool).
	Pad
)

func (k OpKind) String() string {
	switch k {
	case MaxPool:
		return "MaxPool"
	case AvgPool:
		return "AveragePool"
	case GlobalAvgPool:
		return "GlobalAveragePool"
	case Flatten:
		return "Flatten"
	case Pad:
		return "Pad"
	}
	return "?"
}

// Out is the shape the op produces.
func (o Op) Out() Shape {
	switch o.Kind {
	case MaxPool, AvgPool:
		return Shape{o.In.C, convOut(o.In.H, o.KH, o.SH, 1, o.PT, o.PB, o.Ceil), convOut(o.In.W, o.KW, o.SW, 1, o.PL, o.PR, o.Ceil)}
	case GlobalAvgPool:
		return Shape{o.In.C, 1, 1}
	case Pad:
		return Shape{o.In.C, o.In.H + o.PT + o.PB, o.In.W + o.PL + o.PR}
	default:
		return Shape{o.In.Size(), 1, 1}
	}
}

// Apply runs the op on n samples.
func (o Op) Apply(x []float64, n int) []float64 {
	in, out := o.In, o.Out()
	y := make([]float64, n*out.Size())
	C := in.C
	switch o.Kind {
	case Pad:
		for s := 0; s < n; s++ {
			xs, ys := x[s*in.Size():(s+1)*in.Size()], y[s*out.Size():(s+1)*out.Size()]
			for h := 0; h < in.H; h++ {
				copy(ys[((h+o.PT)*out.W+o.PL)*C:], xs[h*in.W*C:(h+1)*in.W*C])
			}
		}
	case Flatten:
		if in.Flat() {
			copy(y, x)
			return y
		}
		hw := in.H * in.W
		for s := 0; s < n; s++ {
			xs, ys := x[s*in.Size():(s+1)*in.Size()], y[s*in.Size():(s+1)*in.Size()]
			for p := 0; p < hw; p++ {
				for c := 0; c < C; c++ {
					ys[c*hw+p] = xs[p*C+c]
				}
			}
		}
	case GlobalAvgPool:
		hw := in.H * in.W
		for s := 0; s < n; s++ {
			xs, ys := x[s*in.Size():(s+1)*in.Size()], y[s*C:(s+1)*C]
			for p := 0; p < hw; p++ {
				for c, v := range xs[p*C : (p+1)*C] {
					ys[c] += v
				}
			}
			for c := range ys {
				ys[c] /= float64(hw)
			}
		}
	default:
		for s := 0; s < n; s++ {
			xs := x[s*in.Size() : (s+1)*in.Size()]
			ys := y[s*out.Size() : (s+1)*out.Size()]
			for oh := 0; oh < out.H; oh++ {
				for ow := 0; ow < out.W; ow++ {
					o.window(ys[(oh*out.W+ow)*C:(oh*out.W+ow+1)*C], xs, oh, ow)
				}
			}
		}
	}
	return y
}

// window pools the window of output cell (oh, ow) into dst (C channels).
func (o Op) window(dst, xs []float64, oh, ow int) {
	in := o.In
	C := in.C
	if o.Kind == MaxPool {
		for c := range dst {
			dst[c] = math.Inf(-1)
		}
	}
	cells := 0
	for i := 0; i < o.KH; i++ {
		h := oh*o.SH - o.PT + i
		for j := 0; j < o.KW; j++ {
			w := ow*o.SW - o.PL + j
			if h < 0 || h >= in.H || w < 0 || w >= in.W {
				continue
			}
			cells++
			src := xs[(h*in.W+w)*C : (h*in.W+w+1)*C]
			for c, v := range src {
				if o.Kind == MaxPool {
					if v > dst[c] || math.IsNaN(v) {
						dst[c] = v
					}
				} else {
					dst[c] += v
				}
			}
		}
	}
	if o.Kind == AvgPool {
		div := float64(cells)
		if o.CountPad {
			// The window clipped to the padded input (ceil mode can run past it).
			hEnd := min(oh*o.SH-o.PT+o.KH, in.H+o.PB)
			wEnd := min(ow*o.SW-o.PL+o.KW, in.W+o.PR)
			div = float64((hEnd - (oh*o.SH - o.PT)) * (wEnd - (ow*o.SW - o.PL)))
		}
		for c := range dst {
			dst[c] /= div
		}
	}
}

// ToChannelLast converts n samples of shape s from channel-first (NCHW, as ONNX and
// PyTorch hold images) to relutrim's channel-last layout; toChannelFirst converts back.
func ToChannelLast(x []float64, n int, s Shape) []float64 {
	if s.Flat() {
		return x
	}
	y := make([]float64, len(x))
	hw := s.H * s.W
	for i := 0; i < n; i++ {
		xs, ys := x[i*s.Size():(i+1)*s.Size()], y[i*s.Size():(i+1)*s.Size()]
		for c := 0; c < s.C; c++ {
			for p := 0; p < hw; p++ {
				ys[p*s.C+c] = xs[c*hw+p]
			}
		}
	}
	return y
}

// toChannelFirst is the inverse of ToChannelLast.
func toChannelFirst(x []float64, n int, s Shape) []float64 {
	if s.Flat() {
		return x
	}
	return Op{Kind: Flatten, In: s}.Apply(x, n)
}
