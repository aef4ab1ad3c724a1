//go:build openblas

package kern

// OpenBLAS backend (build tag `openblas`, needs cgo and Debian's libopenblas-dev).
//
// The chunking of dense.go is kept: every chunk of ChunkRows rows is one single-threaded
// OpenBLAS call (openblas_set_num_threads(1) at init) and the chunks run on the kern
// worker goroutines; MulT partials are reduced in chunk order. Because OpenBLAS picks its
// kernel from the shape and the core type only, results are bitwise identical across
// kern thread counts, provided the same OpenBLAS core type is used (a different
// OPENBLAS_CORETYPE or CPU selects different kernels and gives different rounding).
//
// Float32 X uses sgemm/sgemv with float32 copies of the thin factor and float32
// accumulation; results are converted to float64. Expect float32 rounding (relative
// error ~1e-6..1e-5 of sum |x||b|) on that path, unlike the pure-Go backend, which
// computes in float64 for both precisions.
//
// Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) does not recognise recent Xeons and falls
// back to generic kernels (core "Prescott"); OPENBLAS_CORETYPE=SkylakeX (or Haswell)
// must be set in the environment before the process starts. See BackendWarning.

/*
#cgo LDFLAGS: -lopenblas

// Minimal hand-written prototypes (CBLAS enums passed as int; Debian's libopenblas
// uses 32-bit integers).
void cblas_dgemm(int order, int transA, int transB, int m, int n, int k,
	double alpha, const double *a, int lda, const double *b, int ldb,
	double beta, double *c, int ldc);
void cblas_sgemm(int order, int transA, int transB, int m, int n, int k,
	float alpha, const float *a, int lda, const float *b, int ldb,
	float beta, float *c, int ldc);
void cblas_dgemv(int order, int trans, int m, int n, double alpha, const double *a,
	int lda, const double *x, int incx, double beta, double *y, int incy);
void cblas_sgemv(int order, int trans, int m, int n, float alpha, const float *a,
	int lda, const float *x, int incx, float beta, float *y, int incy);
void openblas_set_num_threads(int n);
char *openblas_get_corename(void);
char *openblas_get_config(void);
*/
import "C"

import (
	"fmt"
	"os"
	"strings"
	"unsafe"
)

// Backend names the product implementation selected at build time.
const Backend = "openblas"

const (
	cblasRowMajor = 101
	cblasNoTrans  = 111
	cblasTrans    = 112
)

func init() {
	C.openblas_set_num_threads(1)
}

// CoreName returns OpenBLAS's selected core (kernel set), e.g. "SkylakeX".
func CoreName() string { return C.GoString(C.openblas_get_corename()) }

// BackendInfo describes the active backend, e.g. "openblas 0.3.21 core=SkylakeX".
func BackendInfo() string {
	cfg := C.GoString(C.openblas_get_config()) // "OpenBLAS 0.3.21 DYNAMIC_ARCH ..."
	ver := "?"
	if f := strings.Fields(cfg); len(f) >= 2 {
		ver = f[1]
	}
	return fmt.Sprintf("openblas %s core=%s", ver, CoreName())
}

// genericCores are OpenBLAS core names that mean "generic/old x86 kernels"; on a
// modern CPU they indicate that OpenBLAS did not recognise it.
var genericCores = map[string]bool{
	"prescott": true, "core2": true, "penryn": true, "dunnington": true, "nehalem": true,
	"katmai": true, "coppermine": true, "northwood": true, "banias": true, "atom": true,
	"generic": true, "unknown": true, "": true,
}

// BackendWarning returns a non-empty warning if OpenBLAS fell back to a generic kernel
// set while OPENBLAS_CORETYPE is unset. It cannot be fixed at run time: OpenBLAS reads
// the variable when the library is loaded.
func BackendWarning() string {
	core := CoreName()
	if !genericCores[strings.ToLower(core)] {
		return ""
	}
	if os.Getenv("OPENBLAS_CORETYPE") != "" {
		return ""
	}
	return fmt.Sprintf("kern: OpenBLAS selected the generic core %q (CPU not recognised); "+
		"products are several times slower. Set OPENBLAS_CORETYPE=SkylakeX (or Haswell "+
		"on CPUs without AVX-512) in the environment before starting the program; it "+
		"cannot be changed after start", core)
}

func asF32[T float32 | float64](x []T) ([]float32, bool) {
	var zero T
	if _, ok := any(zero).(float32); !ok {
		return nil, false
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(x))), len(x)), true
}

func dptr(s []float64) *C.double { return (*C.double)(unsafe.Pointer(unsafe.SliceData(s))) }
func sptr(s []float32) *C.float  { return (*C.float)(unsafe.Pointer(unsafe.SliceData(s))) }

// prepMul makes a float32 copy of B for float32 X.
func prepMul[T float32 | float64](s *scratch, B []float64, cols, k int) {
	if _, ok := asF32([]T(nil)); !ok {
		return
	}
	s.shr32 = grow32(s.shr32, cols*k)
	for i, v := range B {
		s.shr32[i] = float32(v)
	}
}

func prepMulT[T float32 | float64](s *scratch, k int) {}

// mulChunk sets dst (n x k) = x (n x cols) * B.
func mulChunk[T float32 | float64](x []T, n, cols int, B []float64, k int, dst []float64, s *scratch, ws *workspace) {
	if xx, ok := asF64(x); ok {
		if k == 1 {
			C.cblas_dgemv(cblasRowMajor, cblasNoTrans, C.int(n), C.int(cols), 1, dptr(xx), C.int(cols),
				dptr(B), 1, 0, dptr(dst), 1)
			return
		}
		C.cblas_dgemm(cblasRowMajor, cblasNoTrans, cblasNoTrans, C.int(n), C.int(k), C.int(cols),
			1, dptr(xx), C.int(cols), dptr(B), C.int(k), 0, dptr(dst), C.int(k))
		return
	}
	xx, _ := asF32(x)
	ws.o32 = grow32(ws.o32, n*k)
	out := ws.o32
	if k == 1 {
		C.cblas_sgemv(cblasRowMajor, cblasNoTrans, C.int(n), C.int(cols), 1, sptr(xx), C.int(cols),
			sptr(s.shr32), 1, 0, sptr(out), 1)
	} else {
		C.cblas_sgemm(cblasRowMajor, cblasNoTrans, cblasNoTrans, C.int(n), C.int(k), C.int(cols),
			1, sptr(xx), C.int(cols), sptr(s.shr32), C.int(k), 0, sptr(out), C.int(k))
	}
	dst = dst[:len(out)]
	for i, v := range out {
		dst[i] = float64(v)
	}
}

// mulTChunk sets part (cols x k) = x^T a for one chunk (x n x cols, a n x k).
func mulTChunk[T float32 | float64](x []T, n, cols int, a []float64, k int, part []float64, s *scratch, ws *workspace) {
	if xx, ok := asF64(x); ok {
		if k == 1 {
			C.cblas_dgemv(cblasRowMajor, cblasTrans, C.int(n), C.int(cols), 1, dptr(xx), C.int(cols),
				dptr(a), 1, 0, dptr(part), 1)
			return
		}
		C.cblas_dgemm(cblasRowMajor, cblasTrans, cblasNoTrans, C.int(cols), C.int(k), C.int(n),
			1, dptr(xx), C.int(cols), dptr(a), C.int(k), 0, dptr(part), C.int(k))
		return
	}
	xx, _ := asF32(x)
	ws.f32 = grow32(ws.f32, n*k)
	ws.o32 = grow32(ws.o32, cols*k)
	a32, out := ws.f32, ws.o32
	for i, v := range a[:n*k] {
		a32[i] = float32(v)
	}
	if k == 1 {
		C.cblas_sgemv(cblasRowMajor, cblasTrans, C.int(n), C.int(cols), 1, sptr(xx), C.int(cols),
			sptr(a32), 1, 0, sptr(out), 1)
	} else {
		C.cblas_sgemm(cblasRowMajor, cblasTrans, cblasNoTrans, C.int(cols), C.int(k), C.int(n),
			1, sptr(xx), C.int(cols), sptr(a32), C.int(k), 0, sptr(out), C.int(k))
	}
	part = part[:len(out)]
	for i, v := range out {
		part[i] = float64(v)
	}
}
