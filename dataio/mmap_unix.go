//go:build unix

package dataio

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// MapNPYFile maps the .npy file at path read-only into memory and returns the array as a
// Matrix whose F32 or F64 is the file's data in place (nothing is read or copied: pages
// come from the file when first touched, and the kernel may drop them again under memory
// pressure, since they are clean). This is how relutrim fits an X larger than memory.
// The file must be Mappable (see NPYInfo: float32/float64 in the host's byte order,
// C order); anything else is an error naming the file and the reason. The data is
// read-only: writing to the Matrix crashes the program. Call unmap when the Matrix is no
// longer used (after it, any access crashes); the file must not be truncated meanwhile.
func MapNPYFile(path string) (m Matrix, unmap func() error, err error) {
	in, err := InspectNPYFile(path)
	if err != nil {
		return Matrix{}, nil, err
	}
	if !in.Mappable {
		return Matrix{}, nil, fileErr(path, ErrFormat, "cannot be memory-mapped: %s", in.Why)
	}
	m = Matrix{Name: path, Rows: in.Rows, Cols: in.Cols, Vector: in.Vector}
	n := in.Rows * in.Cols
	empty := func() error { return nil }
	if n == 0 {
		if in.ElemSize == 4 {
			m.F32 = []float32{}
		} else {
			m.F64 = []float64{}
		}
		return m, empty, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return Matrix{}, nil, fmt.Errorf("dataio: %w", err)
	}
	defer f.Close() // the mapping outlives the descriptor
	length := in.DataOffset + int64(n)*int64(in.ElemSize)
	if int64(int(length)) != length {
		return Matrix{}, nil, fileErr(path, ErrShape, "%d bytes cannot be mapped on this machine", length)
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(length), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return Matrix{}, nil, fmt.Errorf("dataio: %s: mmap: %w", path, err)
	}
	p := unsafe.Pointer(&b[in.DataOffset])
	if in.ElemSize == 4 {
		m.F32 = unsafe.Slice((*float32)(p), n)
	} else {
		m.F64 = unsafe.Slice((*float64)(p), n)
	}
	done := false
	unmap = func() error {
		if done {
			return nil
		}
		done = true
		return syscall.Munmap(b)
	}
	return m, unmap, nil
}
