// Package kern holds the dense kernels the solver spends its time in: the two products
// X*B and X^T*A with a tall data matrix X (N x Nx, row-major) and thin factors
// (Nx x k and N x k). Everything else in relutrim is O((N + Nx) k) per iteration.
//
// Two precisions of X are supported (float32 halves memory for large data); factors and
// results are always float64. The default build is pure Go; the build tag `openblas`
// switches the products to Debian's OpenBLAS through cgo (see blas_openblas.go).
//
// # Parallelism and determinism
//
// Mul and MulT split X into fixed chunks of ChunkRows rows. The chunk boundaries do not
// depend on the number of worker goroutines, each chunk is computed by exactly one
// goroutine with a fixed sequence of floating-point operations, and MulT adds the
// per-chunk partial sums into the result strictly in chunk order. Results are therefore
// bitwise identical for every thread count (in both backends, see blas_openblas.go for
// the conditions under OpenBLAS).
//
// # Concurrency
//
// A Matrix owns reusable scratch buffers, so Mul and MulT on the same Matrix must not be
// called concurrently (one goroutine at a time; they parallelise internally). Dims and
// Row are safe to call concurrently.
package kern

import (
	"fmt"
	"runtime"
)

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
	// Pass is Mul and MulT fused into one pass over X: for every chunk c of rows
	// [lo, hi) it computes xb = X_c B (skipped when k = 0), calls f(c, lo, hi, xb, a), which
	// writes the chunk's rows of A into a, and adds X_c^T a into dst (cols x kt) in chunk
	// order (skipped when kt = 0). Each chunk of X is read from memory once for both
	// products and no rows x k or rows x kt array exists. xb equals the chunk's rows of
	// Mul(., B, k) and dst equals MulT(dst, A, kt), bitwise, for the A that f writes.
	Pass(dst, B []float64, k, kt int, f PassFunc)
}

// Threaded is implemented by the matrices returned by NewDense64, NewDense32, NewCSR64
// and NewCSR32.
type Threaded interface {
	// SetThreads sets the number of worker goroutines used by Mul and MulT of this
	// matrix; n <= 0 means runtime.GOMAXPROCS(0) at call time. There is no package-wide
	// default: the thread count belongs to the matrix (the solver sets it from
	// Settings.Threads).
	SetThreads(n int)
}

// ChunkRows is the fixed number of rows of X per work item. It is a constant so that
// the chunking (and hence the floating-point result) is independent of the thread count.
const ChunkRows = 1024

// threadsFor returns a matrix's own thread count, or runtime.GOMAXPROCS(0) if it has none.
// The one-time CSR construction passes (csr.go) run before the matrix has a count and use
// GOMAXPROCS; the CLI's --threads bounds them by setting GOMAXPROCS.
func threadsFor(own int) int {
	if own > 0 {
		return own
	}
	return runtime.GOMAXPROCS(0)
}

// NewDense64 wraps data (row-major, rows x cols, not copied) as a Matrix.
func NewDense64(data []float64, rows, cols int) Matrix {
	return newDense(data, rows, cols)
}

// NewDense32 wraps data (row-major, rows x cols, not copied) as a Matrix. Products are
// returned in float64; see the backend files for the arithmetic precision used.
func NewDense32(data []float32, rows, cols int) Matrix {
	return newDense(data, rows, cols)
}

func newDense[T float32 | float64](data []T, rows, cols int) *dense[T] {
	return &dense[T]{shape: newShape(len(data), rows, cols), data: data}
}

// PassFunc is the per-chunk body of Matrix.Pass: xb holds X_c B for the chunk's rows
// [lo, hi) ((hi-lo) x k, row-major; empty when k = 0), and the function writes the
// chunk's rows of A into a ((hi-lo) x kt). Both slices are the calling worker's scratch,
// valid only during the call; calls for different chunks run concurrently.
type PassFunc func(c, lo, hi int, xb, a []float64)

// fusedArgs checks the sizes of Pass.
func (m *shape) fusedArgs(dst, B []float64, k, kt int) {
	if k < 0 || kt < 0 || len(B) < m.cols*k || len(dst) < m.cols*kt {
		panic(fmt.Sprintf("kern: Pass sizes: X %dx%d, len(B)=%d, k=%d, len(dst)=%d, kt=%d",
			m.rows, m.cols, len(B), k, len(dst), kt))
	}
}
