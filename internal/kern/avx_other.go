//go:build !amd64

package kern

// haveAVX is false off amd64: the gonum Dgemv kernels run instead.
const haveAVX = false

func mulKern4x12(x *float64, ldx int, cols int, b *float64, dst *float64) {
	panic("kern: no AVX kernels on this architecture")
}

func mulTKern4x12(x *float64, ldx int, n int, a *float64, lda int, acc *float64) {
	panic("kern: no AVX kernels on this architecture")
}
