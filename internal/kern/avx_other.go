//go:build !amd64 || openblas

package kern

// haveAVX is false off amd64 (the gonum Dgemv kernels run instead) and in the openblas
// build (OpenBLAS runs the products; cgo packages cannot hold Go assembly).
const haveAVX = false

//lint:ignore U1000 nothing reaches gokern.go's AVX path in the openblas build; the pure-Go build off amd64 compiles a call (never made: haveAVX is false)
func mulKern4x12(x *float64, ldx int, cols int, b *float64, dst *float64) {
	panic("kern: no AVX kernels on this architecture")
}

//lint:ignore U1000 as mulKern4x12
func mulTKern4x12(x *float64, ldx int, n int, a *float64, lda int, acc *float64) {
	panic("kern: no AVX kernels on this architecture")
}

func axpyKern(a float64, x *float64, y *float64, n int) {
	panic("kern: no AVX kernels on this architecture")
}
