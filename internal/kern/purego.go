//go:build !openblas

package kern

// Backend names the product implementation selected at build time.
const Backend = "purego"

// BackendInfo describes the active backend.
func BackendInfo() string { return "pure-go" }

// BackendWarning returns a non-empty message when the backend is misconfigured. The
// pure-Go backend has nothing to configure.
func BackendWarning() string { return "" }

// prepMul transposes B (cols x k) into s.shared (k x cols) so that the Dgemv kernels
// read contiguous columns of B, or packs it in panels of 12 columns for the AVX2 kernels.
func prepMul[T float32 | float64](s *scratch, B []float64, cols, k int) {
	if avxFor(k) { // the AVX2 kernels read B in panels of 12 columns
		s.shared = grow64(s.shared, (k+panelW-1)/panelW*panelW*cols)
		packPanels(s.shared, B, cols, k)
		return
	}
	s.shared = grow64(s.shared, cols*k)
	bt := s.shared
	if k == 1 {
		copy(bt, B)
		return
	}
	for j := range cols {
		row := B[j*k : j*k+k]
		for c, v := range row {
			bt[c*cols+j] = v
		}
	}
}

func prepMulT[T float32 | float64](s *scratch, k int) {}

func mulChunk[T float32 | float64](x []T, n, cols int, B []float64, k int, dst []float64, s *scratch, ws *workspace) {
	goMulChunk(x, n, cols, s.shared, k, dst, ws)
}

func mulTChunk[T float32 | float64](x []T, n, cols int, A []float64, k int, part []float64, s *scratch, ws *workspace) {
	goMulTChunk(x, n, cols, A, k, part, ws)
}
