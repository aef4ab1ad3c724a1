//go:build amd64 && !openblas

package kern

import (
	"os"

	"golang.org/x/sys/cpu"
)

// haveAVX reports whether the pure-Go backend may use its AVX2/FMA micro-kernels
// (avx_amd64.s). RELUTRIM_NOAVX=1 turns them off (tests compare both paths).
var haveAVX = cpu.X86.HasAVX2 && cpu.X86.HasFMA && os.Getenv("RELUTRIM_NOAVX") == ""

// mulKern4x12 sets dst (4 x 12, row-major) = x (4 rows of cols values, row stride ldx)
// times b (cols x 12, row-major).
//
//go:noescape
func mulKern4x12(x *float64, ldx int, cols int, b *float64, dst *float64)

// mulTKern4x12 adds to acc (4 x 12, row-major) the product x^T a over n rows, where x
// is n x 4 (row stride ldx) and a is n x 12 (row stride lda).
//
//go:noescape
func mulTKern4x12(x *float64, ldx int, n int, a *float64, lda int, acc *float64)

// axpyKern adds a*x[i] to y[i] for i < n, n a multiple of 16.
//
//go:noescape
func axpyKern(a float64, x *float64, y *float64, n int)
