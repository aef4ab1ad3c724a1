package dataio

import (
	"math/bits"
	"unsafe"
)

// hostLittle reports whether this machine stores numbers little-endian.
var hostLittle = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

type rawElem interface {
	~float32 | ~float64 | ~uint8 | ~int64 | ~uint16
}

// bytesOf returns the memory of s as a byte slice, without copying.
func bytesOf[T rawElem](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	var zero T
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(zero)))
}

// swapBytes reverses the byte order of every element of s in place.
func swapBytes[T rawElem](s []T) {
	if len(s) == 0 {
		return
	}
	var zero T
	p := unsafe.Pointer(&s[0])
	switch unsafe.Sizeof(zero) {
	case 2:
		w := unsafe.Slice((*uint16)(p), len(s))
		for i, v := range w {
			w[i] = bits.ReverseBytes16(v)
		}
	case 4:
		w := unsafe.Slice((*uint32)(p), len(s))
		for i, v := range w {
			w[i] = bits.ReverseBytes32(v)
		}
	case 8:
		w := unsafe.Slice((*uint64)(p), len(s))
		for i, v := range w {
			w[i] = bits.ReverseBytes64(v)
		}
	}
}

// transposeInPlace turns a, a rows x cols row-major array, into its
// cols x rows transpose, in place. It follows the cycles of the permutation
// and marks moved positions in a bitset, so the extra memory is one bit per
// element.
func transposeInPlace[T any](a []T, rows, cols int) {
	n := rows * cols
	if rows <= 1 || cols <= 1 {
		return // same memory layout either way
	}
	// Element at p = i*cols + j holds A[i][j]; it belongs at j*rows + i.
	dest := func(p int) int { return (p%cols)*rows + p/cols }
	visited := make([]uint64, (n+63)/64)
	// Positions 0 and n-1 never move.
	for start := 1; start < n-1; start++ {
		w := visited[start>>6]
		if w == ^uint64(0) {
			start |= 63 // whole word done; loop increment moves to the next word
			continue
		}
		if w&(1<<(start&63)) != 0 {
			continue
		}
		v := a[start]
		p := start
		for {
			q := dest(p)
			v, a[q] = a[q], v
			visited[q>>6] |= 1 << (q & 63)
			p = q
			if q == start {
				break
			}
		}
	}
}

func unsafeSizeof[T any](v T) uintptr { return unsafe.Sizeof(v) }

// uintptrOf returns the address of b's first byte.
func uintptrOf(b []byte) uintptr {
	if len(b) == 0 {
		return 0
	}
	return uintptr(unsafe.Pointer(&b[0]))
}
