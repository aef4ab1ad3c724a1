// Package kern holds the dense kernels the solver spends its time in: the two products
// X*B and X^T*A with a tall data matrix X (N x Nx, row-major) and thin factors
// (Nx x k and N x k). Everything else in relutrim is O((N + Nx) k) per iteration.
//
// Two precisions of X are supported (float32 halves memory for large data); factors and
// results are always float64. The default build is pure Go; the build tag `openblas`
// switches the products to Debian's OpenBLAS through cgo (see blas_openblas.go).
package kern

// Matrix is a read-only N x Nx data matrix stored row-major.
type Matrix interface {
	// Dims returns the number of rows (samples) and columns (features).
	Dims() (rows, cols int)
	// Mul sets dst = X * B, where B is cols x k row-major and dst is rows x k row-major.
	Mul(dst, B []float64, k int)
	// MulT sets dst = X^T * A, where A is rows x k row-major and dst is cols x k row-major.
	MulT(dst, A []float64, k int)
	// Row returns row i converted to float64 in buf (len >= cols) and returns buf[:cols].
	Row(buf []float64, i int) []float64
}
