package dataio

import (
	"fmt"
	"math"
	"slices"
)

// diffMatrix describes the first difference between two matrices, or "".
func diffMatrix(a, b Matrix) string {
	if a.Rows != b.Rows || a.Cols != b.Cols || a.Vector != b.Vector || a.IsFloat32() != b.IsFloat32() {
		return fmt.Sprintf("shape/type %dx%d v=%v f32=%v vs %dx%d v=%v f32=%v",
			a.Rows, a.Cols, a.Vector, a.IsFloat32(), b.Rows, b.Cols, b.Vector, b.IsFloat32())
	}
	if len(a.F32)+len(a.F64) != len(b.F32)+len(b.F64) {
		return "length differs"
	}
	for i := range a.Len() {
		if x, y := a.At(i/a.Cols, i%a.Cols), b.At(i/b.Cols, i%b.Cols); !sameBits(a, b, i, x, y) {
			return fmt.Sprintf("element %d: %v vs %v", i, x, y)
		}
	}
	return ""
}

func sameBits(a, b Matrix, i int, x, y float64) bool {
	if a.F32 != nil {
		return math.Float32bits(a.F32[i]) == math.Float32bits(b.F32[i])
	}
	return math.Float64bits(a.F64[i]) == math.Float64bits(b.F64[i]) || math.IsNaN(x) && math.IsNaN(y)
}

func diffTensors(a, b map[string]Tensor) string {
	if len(a) != len(b) {
		return fmt.Sprintf("%d tensors vs %d", len(a), len(b))
	}
	for k, x := range a {
		y, ok := b[k]
		if !ok {
			return fmt.Sprintf("tensor %q missing", k)
		}
		if x.DType != y.DType || !slices.Equal(x.Shape, y.Shape) {
			return fmt.Sprintf("tensor %q: %s %v vs %s %v", k, x.DType, x.Shape, y.DType, y.Shape)
		}
		if !slices.Equal(x.U8, y.U8) || !slices.Equal(x.I64, y.I64) {
			return fmt.Sprintf("tensor %q: integer data differs", k)
		}
		if len(x.F32) != len(y.F32) || len(x.F64) != len(y.F64) {
			return fmt.Sprintf("tensor %q: lengths differ", k)
		}
		for i := range x.F32 {
			if !sameF32(x.F32[i], y.F32[i]) {
				return fmt.Sprintf("tensor %q[%d]: %v vs %v", k, i, x.F32[i], y.F32[i])
			}
		}
		for i := range x.F64 {
			if math.Float64bits(x.F64[i]) != math.Float64bits(y.F64[i]) && !(math.IsNaN(x.F64[i]) && math.IsNaN(y.F64[i])) {
				return fmt.Sprintf("tensor %q[%d]: %v vs %v", k, i, x.F64[i], y.F64[i])
			}
		}
	}
	return ""
}

func sameF32(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || a != a && b != b
}
