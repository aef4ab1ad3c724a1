package dataio

import (
	"fmt"
	"math"
	"os"
)

// NPYInfo describes an .npy file from its header alone, without reading the data.
type NPYInfo struct {
	Rows, Cols int
	Vector     bool   // a 1-D array (Cols == 1)
	DType      string // the header's descr, e.g. "<f4"
	Fortran    bool   // column-major data
	// DataOffset is where the data starts in the file; ElemSize the bytes per element in
	// the file.
	DataOffset int64
	ElemSize   int
	// MemBytes is what ReadNPYFile allocates for the array: float32 and float64 stay as
	// they are, float16, bool and 1- and 2-byte integers become float32, the rest float64.
	MemBytes int64
	// Mappable reports whether MapNPYFile can use the file's data in place: float32 or
	// float64 in the host's byte order, C order (or one row or column), data offset a
	// multiple of the element size. Why lists what is missing when it cannot.
	Mappable bool
	Why      string
}

// InspectNPYFile reads the header of the .npy file at path and checks that the file holds
// all the data it promises. Errors name the file.
func InspectNPYFile(path string) (NPYInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return NPYInfo{}, fmt.Errorf("dataio: %w", err)
	}
	defer f.Close()
	h, used, err := readNPYHeader(f, false)
	if err != nil {
		return NPYInfo{}, fmt.Errorf("dataio: %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		return NPYInfo{}, fmt.Errorf("dataio: %w", err)
	}
	in := NPYInfo{Rows: h.shape[0], Cols: 1, DType: h.dtype.descr, Fortran: h.fortran,
		DataOffset: used, ElemSize: h.dtype.size}
	if len(h.shape) == 1 {
		in.Vector = true
	} else {
		in.Cols = h.shape[1]
	}
	if in.Cols != 0 && in.Rows > math.MaxInt/8/in.Cols {
		return NPYInfo{}, fileErr(path, ErrShape, "shape %s is too large", pyShape(h.shape))
	}
	n := int64(in.Rows) * int64(in.Cols)
	need := n * int64(h.dtype.size)
	if st.Mode().IsRegular() && need > st.Size()-used {
		return NPYInfo{}, fileErr(path, ErrFormat,
			"truncated data: shape %s of %s needs %d bytes, file has %d", pyShape(h.shape), h.dtype.descr, need, max(st.Size()-used, 0))
	}
	d := h.dtype
	switch {
	case d.kind == 'f' && d.size >= 4:
		in.MemBytes = n * int64(d.size)
	case d.size <= 2 && d.kind != 'b':
		in.MemBytes = n * 4
	default:
		in.MemBytes = n * 8
	}
	switch {
	case !st.Mode().IsRegular():
		in.Why = "not a regular file"
	case d.kind != 'f' || d.size < 4:
		in.Why = fmt.Sprintf("its dtype %s is not float32 or float64 (only those are used in place; convert with X.astype(np.float32))", d.descr)
	case d.little != hostLittle:
		in.Why = fmt.Sprintf("its dtype %s is not in this machine's byte order (convert with X.astype('=f%d'))", d.descr, d.size)
	case h.fortran && in.Rows > 1 && in.Cols > 1:
		in.Why = "it is in Fortran (column-major) order; rows must be contiguous (save np.ascontiguousarray(X))"
	case used%int64(d.size) != 0:
		in.Why = fmt.Sprintf("its data starts at byte %d, not a multiple of the element size %d", used, d.size)
	default:
		in.Mappable = true
	}
	return in, nil
}
