package dataio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

const npyMagic = "\x93NUMPY"

// maxNPYHeader bounds the header length we are willing to read.
const maxNPYHeader = 1 << 20

// npyDType describes a supported .npy element type.
type npyDType struct {
	descr  string // as found in the file
	kind   byte   // 'f', 'i', 'u', 'b'
	size   int    // bytes per element
	little bool   // byte order of the data in the file
}

// parseDescr interprets a NumPy dtype string such as "<f8" or "|u1".
func parseDescr(descr string) (npyDType, error) {
	d := npyDType{descr: descr}
	if len(descr) < 3 {
		return d, fmt.Errorf("%w %q", ErrDType, descr)
	}
	order, kind, sizeText := descr[0], descr[1], descr[2:]
	size, err := strconv.Atoi(sizeText)
	if err != nil {
		return d, fmt.Errorf("%w %q", ErrDType, descr)
	}
	d.kind, d.size = kind, size
	switch kind {
	case 'f':
		if size != 2 && size != 4 && size != 8 {
			return d, fmt.Errorf("%w %q (only float16, float32 and float64 are supported)", ErrDType, descr)
		}
	case 'i', 'u':
		if size != 1 && size != 2 && size != 4 && size != 8 {
			return d, fmt.Errorf("%w %q", ErrDType, descr)
		}
	case 'b':
		if size != 1 {
			return d, fmt.Errorf("%w %q", ErrDType, descr)
		}
	case 'c':
		return d, fmt.Errorf("%w %q (complex numbers are not supported)", ErrDType, descr)
	case 'O':
		return d, fmt.Errorf("%w %q (object arrays are not supported)", ErrDType, descr)
	case 'U', 'S', 'a':
		return d, fmt.Errorf("%w %q (string arrays are not supported)", ErrDType, descr)
	default:
		return d, fmt.Errorf("%w %q", ErrDType, descr)
	}
	switch order {
	case '<':
		d.little = true
	case '>':
		d.little = false
	case '|':
		if size != 1 {
			return d, fmt.Errorf("%w %q (byte order '|' on a multi-byte type)", ErrDType, descr)
		}
		d.little = true
	case '=':
		// "native" in the writer's terms; NumPy itself never writes it.
		// Little-endian is by far the most likely.
		d.little = true
	default:
		return d, fmt.Errorf("%w %q (unknown byte order)", ErrDType, descr)
	}
	return d, nil
}

// npyHeader is the decoded dictionary at the start of an .npy file.
type npyHeader struct {
	dtype   npyDType
	fortran bool
	shape   []int
}

// readNPYHeader reads the magic, version and header dictionary. It returns
// the header and the number of bytes consumed.
func readNPYHeader(r io.Reader, nd bool) (npyHeader, int64, error) {
	var h npyHeader
	var pre [10]byte
	if n, err := io.ReadFull(r, pre[:8]); err != nil {
		if n == 0 && err == io.EOF {
			return h, 0, fmt.Errorf("%w: empty file", ErrFormat)
		}
		return h, 0, fmt.Errorf("%w: file too short for the .npy preamble", ErrFormat)
	}
	if string(pre[:6]) != npyMagic {
		return h, 0, fmt.Errorf("%w: not an .npy file (bad magic %q)", ErrFormat, pre[:6])
	}
	major, minor := pre[6], pre[7]
	var hlen int
	var consumed int64
	switch major {
	case 1:
		if _, err := io.ReadFull(r, pre[8:10]); err != nil {
			return h, 0, fmt.Errorf("%w: truncated .npy header length", ErrFormat)
		}
		hlen = int(binary.LittleEndian.Uint16(pre[8:10]))
		consumed = 10
	case 2, 3:
		var l [4]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return h, 0, fmt.Errorf("%w: truncated .npy header length", ErrFormat)
		}
		n := binary.LittleEndian.Uint32(l[:])
		if n > maxNPYHeader {
			return h, 0, fmt.Errorf("%w: .npy header length %d is implausibly large", ErrFormat, n)
		}
		hlen = int(n)
		consumed = 12
	default:
		return h, 0, fmt.Errorf("%w: unsupported .npy format version %d.%d", ErrFormat, major, minor)
	}
	hb := make([]byte, hlen)
	if _, err := io.ReadFull(r, hb); err != nil {
		return h, 0, fmt.Errorf("%w: truncated .npy header (want %d bytes)", ErrFormat, hlen)
	}
	consumed += int64(hlen)
	text := string(bytes.TrimRight(hb, " \t\r\n\x00"))
	v, err := parsePyLiteral(text)
	if err != nil {
		return h, 0, fmt.Errorf("%w: bad .npy header %q: %v", ErrFormat, clip(text), err)
	}
	dict, ok := v.(map[string]any)
	if !ok {
		return h, 0, fmt.Errorf("%w: .npy header is not a dict: %q", ErrFormat, clip(text))
	}
	descrV, ok1 := dict["descr"]
	fortV, ok2 := dict["fortran_order"]
	shapeV, ok3 := dict["shape"]
	if !ok1 || !ok2 || !ok3 {
		return h, 0, fmt.Errorf("%w: .npy header lacks descr, fortran_order or shape: %q", ErrFormat, clip(text))
	}
	descr, ok := descrV.(string)
	if !ok {
		// Structured dtypes are lists of fields.
		return h, 0, fmt.Errorf("%w %v (structured arrays are not supported)", ErrDType, descrV)
	}
	h.dtype, err = parseDescr(descr)
	if err != nil {
		return h, 0, err
	}
	if h.fortran, ok = fortV.(bool); !ok {
		return h, 0, fmt.Errorf("%w: fortran_order is %v, not a bool", ErrFormat, fortV)
	}
	dims, ok := shapeV.([]any)
	if !ok {
		return h, 0, fmt.Errorf("%w: shape is %v, not a tuple", ErrFormat, shapeV)
	}
	for _, d := range dims {
		n, ok := d.(int64)
		if !ok || n < 0 || n > math.MaxInt32*int64(1<<20) {
			return h, 0, fmt.Errorf("%w: bad dimension %v in shape %v", ErrShape, d, shapeText(dims))
		}
		h.shape = append(h.shape, int(n))
	}
	switch len(h.shape) {
	case 0:
		return h, 0, fmt.Errorf("%w: 0-d array (a scalar), need 1-D or 2-D", ErrShape)
	case 1, 2:
	default:
		if !nd {
			return h, 0, fmt.Errorf("%w: %d-D array of shape %v, need 1-D or 2-D", ErrShape, len(h.shape), shapeText(dims))
		}
		if h.fortran {
			return h, 0, fmt.Errorf("%w: %d-D array of shape %v in Fortran order; save it in C order (numpy.ascontiguousarray)", ErrShape, len(h.shape), shapeText(dims))
		}
	}
	return h, consumed, nil
}

// FormatShape formats a shape the way Python prints a tuple: "(3,)", "(16, 3, 12, 12)".
func FormatShape(shape []int) string { return pyShape(shape) }

// pyShape formats a shape the way Python prints a tuple.
func pyShape(shape []int) string {
	dims := make([]any, len(shape))
	for i, d := range shape {
		dims[i] = d
	}
	return shapeText(dims)
}

func shapeText(dims []any) string {
	parts := make([]string, len(dims))
	for i, d := range dims {
		parts[i] = fmt.Sprint(d)
	}
	if len(parts) == 1 {
		return "(" + parts[0] + ",)"
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// sizeHint returns how many bytes are left to read from r, or -1 if that is
// unknown.
func sizeHint(r io.Reader) int64 {
	switch v := r.(type) {
	case interface{ Len() int }: // bytes.Reader, strings.Reader, bytes.Buffer
		return int64(v.Len())
	case *os.File:
		st, err := v.Stat()
		if err != nil || !st.Mode().IsRegular() {
			return -1
		}
		off, err := v.Seek(0, io.SeekCurrent)
		if err != nil {
			return -1
		}
		return st.Size() - off
	}
	return -1
}

// ReadNPY decodes an .npy stream. name is used in error messages and as the
// Matrix name. Float32 and float64 data is read straight into the result's
// backing store; integer and bool data becomes float64 (float32 for 1- and
// 2-byte integers); float16 becomes float32. A 1-D array of length n becomes
// an n x 1 matrix with Vector set. Fortran-order data is transposed in place
// so the result is always row-major.
func ReadNPY(r io.Reader, name string) (Matrix, error) {
	return readNPY(r, name, sizeHint(r), false)
}

// ReadNPYFileND reads the .npy file at path like ReadNPYFile, and also accepts C-order
// arrays of more than two dimensions (images (N, C, H, W)): their trailing dimensions are
// flattened into the columns, and Shape keeps the array's own shape.
func ReadNPYFileND(path string) (Matrix, error) {
	f, err := os.Open(path)
	if err != nil {
		return Matrix{}, fmt.Errorf("dataio: %w", err)
	}
	defer f.Close()
	return readNPY(f, path, sizeHint(f), true)
}

// ReadNPYFile reads the .npy file at path.
func ReadNPYFile(path string) (Matrix, error) {
	f, err := os.Open(path)
	if err != nil {
		return Matrix{}, fmt.Errorf("dataio: %w", err)
	}
	defer f.Close()
	return ReadNPY(f, path)
}

// readNPY decodes an .npy stream with avail bytes in it (-1 if unknown).
func readNPY(r io.Reader, name string, avail int64, nd bool) (Matrix, error) {
	h, used, err := readNPYHeader(r, nd)
	if err != nil {
		return Matrix{}, fmt.Errorf("dataio: %s: %w", name, err)
	}
	m := Matrix{Name: name, Rows: h.shape[0], Cols: 1, Shape: h.shape}
	if len(h.shape) == 1 {
		m.Vector = true
	} else {
		for _, d := range h.shape[1:] {
			if d != 0 && m.Cols > math.MaxInt/8/d {
				return Matrix{}, fileErr(name, ErrShape, "shape %s is too large", pyShape(h.shape))
			}
			m.Cols *= d
		}
	}
	if m.Cols != 0 && m.Rows > math.MaxInt/8/m.Cols {
		return Matrix{}, fileErr(name, ErrShape, "shape %s is too large", pyShape(h.shape))
	}
	n := m.Rows * m.Cols
	if avail >= 0 {
		avail -= used
		if need := int64(n) * int64(h.dtype.size); need > avail {
			return Matrix{}, fileErr(name, ErrFormat,
				"truncated data: shape %s of %s needs %d bytes, file has %d", pyShape(h.shape), h.dtype.descr, need, max(avail, 0))
		}
	}
	known := avail >= 0
	d := h.dtype
	// Fortran-order floats of known size are transposed while reading.
	streamT := known && h.fortran && len(h.shape) == 2 && m.Rows > 1 && m.Cols > 1
	switch {
	case d.kind == 'f' && d.size == 4 && streamT:
		m.F32, err = readFloatsFortran[float32](r, m.Rows, m.Cols, d.little != hostLittle)
	case d.kind == 'f' && d.size == 8 && streamT:
		m.F64, err = readFloatsFortran[float64](r, m.Rows, m.Cols, d.little != hostLittle)
	case d.kind == 'f' && d.size == 4:
		m.F32, err = readFloats[float32](r, n, known, d.little != hostLittle)
	case d.kind == 'f' && d.size == 8:
		m.F64, err = readFloats[float64](r, n, known, d.little != hostLittle)
	case d.size <= 2 && d.kind != 'b':
		m.F32, err = readConverted[float32](r, n, known, d)
	default:
		m.F64, err = readConverted[float64](r, n, known, d)
	}
	if err == errTruncated {
		return Matrix{}, fileErr(name, ErrFormat, "truncated data: shape %s of %s ends early", pyShape(h.shape), d.descr)
	}
	if err != nil {
		return Matrix{}, fileErr(name, ErrFormat, "reading %s array of %s: %v", pyShape(h.shape), d.descr, err)
	}
	if h.fortran && len(h.shape) == 2 && !(d.kind == 'f' && d.size >= 4 && streamT) {
		// Column-major r x c is row-major c x r; transpose it back.
		if m.F32 != nil {
			transposeInPlace(m.F32, m.Cols, m.Rows)
		} else {
			transposeInPlace(m.F64, m.Cols, m.Rows)
		}
	}
	return m, nil
}

// growChunk is how much we allocate up front when the input size is unknown.
var growChunk = 64 << 20

var errTruncated = errors.New("unexpected end of data")

// readFloats reads n elements of T directly into the result's memory (see streamBuf for
// how memory grows when the stream's length is unknown).
func readFloats[T float32 | float64](r io.Reader, n int, known, swap bool) ([]T, error) {
	buf := newStreamBuf[T](n, known)
	for buf.total < n {
		chunk := buf.space()
		if _, err := io.ReadFull(r, bytesOf(chunk)); err != nil {
			return nil, truncErr(err)
		}
		buf.commit(len(chunk))
	}
	out := buf.result()
	if swap {
		swapBytes(out)
	}
	return out, nil
}

// streamBuf collects the n elements an .npy header promises. When the stream's length is
// known (a regular file, already checked to hold them) it allocates all n at once. When it
// is not (a pipe or FIFO, whose header may promise 1e18 elements that never come), memory
// grows with what actually arrives: chunks of growChunk bytes at first, then a quarter of
// what has been received, so at most 1.25x the received data plus growChunk is allocated
// while reading, and nothing is copied until the last element has arrived. Then the chunks
// are joined into one slice (peak about 2x the array, for unknown-length streams only).
type streamBuf[T rawElem] struct {
	n, total int
	chunks   [][]T
	first    int // elements in the first chunk
}

func newStreamBuf[T rawElem](n int, known bool) *streamBuf[T] {
	var zero T
	first := n
	if !known {
		first = max(1, min(n, growChunk/int(unsafeSizeof(zero))))
	}
	return &streamBuf[T]{n: n, first: first}
}

// space returns the unfilled part of the last chunk, allocating a chunk when it is full.
func (b *streamBuf[T]) space() []T {
	if len(b.chunks) > 0 {
		if c := b.chunks[len(b.chunks)-1]; len(c) < cap(c) {
			return c[len(c):cap(c)]
		}
	}
	size := min(max(b.first, b.total/4), b.n-b.total)
	c := make([]T, 0, size)
	prefault(bytesOf(c[:size]))
	b.chunks = append(b.chunks, c)
	return c[:size]
}

// commit marks k more elements of the last chunk as received.
func (b *streamBuf[T]) commit(k int) {
	c := &b.chunks[len(b.chunks)-1]
	*c = (*c)[:len(*c)+k]
	b.total += k
}

// result returns the received elements as one slice.
func (b *streamBuf[T]) result() []T {
	if len(b.chunks) == 1 {
		return b.chunks[0]
	}
	out := make([]T, 0, b.total)
	for i, c := range b.chunks {
		out = append(out, c...)
		b.chunks[i] = nil // let the collector take the chunk
	}
	return out
}

// fortranBlock is the minimum size of the staging buffer readFloatsFortran
// uses (tests lower it).
var fortranBlock = defaultFortranBlock

const defaultFortranBlock = 32 << 20

// readFloatsFortran reads a column-major rows x cols array and returns it in
// row-major order. It reads blocks of whole columns (or, for very long
// columns, pieces of one column) into a small staging buffer and scatters
// them into place, so it needs only that buffer beyond the result and
// touches memory almost sequentially, unlike an in-place transpose.
func readFloatsFortran[T float32 | float64](r io.Reader, rows, cols int, swap bool) ([]T, error) {
	var zero T
	size := int(unsafeSizeof(zero))
	out := make([]T, rows*cols)
	prefault(bytesOf(out))
	// Bigger blocks mean fewer sweeps over the result; allow up to a tenth
	// of the array (at most 256 MiB) so peak memory stays near 1.1x.
	block := fortranBlock
	if fortranBlock == defaultFortranBlock {
		block = min(max(block, rows*cols*size/10), 256<<20)
	}
	budget := max(block/size, 1)
	if rows <= budget {
		k := min(budget/rows, cols) // whole columns per block
		buf := make([]T, k*rows)
		for j0 := 0; j0 < cols; j0 += k {
			kk := min(k, cols-j0)
			b := buf[:kk*rows]
			if _, err := io.ReadFull(r, bytesOf(b)); err != nil {
				return nil, truncErr(err)
			}
			if swap {
				swapBytes(b)
			}
			for i := range rows {
				row := out[i*cols+j0 : i*cols+j0+kk]
				for jj := range row {
					row[jj] = b[jj*rows+i]
				}
			}
		}
		return out, nil
	}
	buf := make([]T, budget)
	for j := range cols {
		for i0 := 0; i0 < rows; i0 += budget {
			b := buf[:min(budget, rows-i0)]
			if _, err := io.ReadFull(r, bytesOf(b)); err != nil {
				return nil, truncErr(err)
			}
			if swap {
				swapBytes(b)
			}
			for t, v := range b {
				out[(i0+t)*cols+j] = v
			}
		}
	}
	return out, nil
}

func truncErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errTruncated
	}
	return err
}

// readConverted reads n elements of dtype d and converts them to T.
func readConverted[T float32 | float64](r io.Reader, n int, known bool, d npyDType) ([]T, error) {
	out := newStreamBuf[T](n, known)
	buf := make([]byte, min(n*d.size, 1<<20))
	var bo binary.ByteOrder = binary.LittleEndian
	if !d.little {
		bo = binary.BigEndian
	}
	for out.total < n {
		dst := out.space()
		k := min(len(dst), len(buf)/d.size)
		dst = dst[:0:k]
		b := buf[:k*d.size]
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, truncErr(err)
		}
		switch {
		case d.kind == 'b':
			for _, v := range b {
				dst = append(dst, T(b2f(v != 0)))
			}
		case d.kind == 'f': // float16
			for i := 0; i < len(b); i += 2 {
				dst = append(dst, T(halfToFloat32(bo.Uint16(b[i:]))))
			}
		case d.kind == 'i' && d.size == 1:
			for _, v := range b {
				dst = append(dst, T(int8(v)))
			}
		case d.kind == 'u' && d.size == 1:
			for _, v := range b {
				dst = append(dst, T(v))
			}
		case d.kind == 'i' && d.size == 2:
			for i := 0; i < len(b); i += 2 {
				dst = append(dst, T(int16(bo.Uint16(b[i:]))))
			}
		case d.kind == 'u' && d.size == 2:
			for i := 0; i < len(b); i += 2 {
				dst = append(dst, T(bo.Uint16(b[i:])))
			}
		case d.kind == 'i' && d.size == 4:
			for i := 0; i < len(b); i += 4 {
				dst = append(dst, T(int32(bo.Uint32(b[i:]))))
			}
		case d.kind == 'u' && d.size == 4:
			for i := 0; i < len(b); i += 4 {
				dst = append(dst, T(bo.Uint32(b[i:])))
			}
		case d.kind == 'i' && d.size == 8:
			for i := 0; i < len(b); i += 8 {
				dst = append(dst, T(int64(bo.Uint64(b[i:]))))
			}
		case d.kind == 'u' && d.size == 8:
			for i := 0; i < len(b); i += 8 {
				dst = append(dst, T(bo.Uint64(b[i:])))
			}
		default:
			return nil, fmt.Errorf("%w %q", ErrDType, d.descr)
		}
		out.commit(k)
	}
	return out.result(), nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// npyHeaderBytes builds the magic, version and padded header for an array of
// the given dtype and shape, with the data starting at a multiple of 64 bytes.
func npyHeaderBytes(descr string, shape []int) []byte {
	var sh string
	if len(shape) == 1 {
		sh = fmt.Sprintf("(%d,)", shape[0])
	} else {
		parts := make([]string, len(shape))
		for i, d := range shape {
			parts[i] = strconv.Itoa(d)
		}
		sh = "(" + strings.Join(parts, ", ") + ")"
	}
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, sh)
	pre := 10
	version := byte(1)
	if len(dict)+1+pre > math.MaxUint16 {
		pre, version = 12, 2
	}
	total := (pre + len(dict) + 1 + 63) / 64 * 64
	hlen := total - pre
	out := make([]byte, 0, total)
	out = append(out, npyMagic...)
	out = append(out, version, 0)
	if version == 1 {
		out = binary.LittleEndian.AppendUint16(out, uint16(hlen))
	} else {
		out = binary.LittleEndian.AppendUint32(out, uint32(hlen))
	}
	out = append(out, dict...)
	for len(out) < total-1 {
		out = append(out, ' ')
	}
	return append(out, '\n')
}

// EncodeNPY writes m to w in .npy format (version 1.0, C order, '<f4' or
// '<f8'). A Vector matrix is written as a 1-D array, and one with an N-D Shape that
// matches its rows and columns in that shape.
func EncodeNPY(w io.Writer, m Matrix) error {
	if err := m.Validate(); err != nil {
		return err
	}
	shape := []int{m.Rows, m.Cols}
	if m.Vector {
		shape = []int{m.Rows}
	} else if len(m.Shape) > 2 && m.Shape[0] == m.Rows {
		// An N-D array (ReadNPYFileND) keeps its shape if it still describes the data.
		cols := 1
		for _, d := range m.Shape[1:] {
			cols *= d
		}
		if cols == m.Cols {
			shape = m.Shape
		}
	}
	descr := "<f8"
	if m.F32 != nil {
		descr = "<f4"
	}
	if _, err := w.Write(npyHeaderBytes(descr, shape)); err != nil {
		return err
	}
	if m.F32 != nil {
		return writeLE(w, m.F32)
	}
	return writeLE(w, m.F64)
}

// writeLE writes s to w as little-endian bytes.
func writeLE[T rawElem](w io.Writer, s []T) error {
	if hostLittle {
		_, err := w.Write(bytesOf(s))
		return err
	}
	const chunk = 1 << 16
	tmp := make([]T, 0, chunk)
	for len(s) > 0 {
		k := min(len(s), chunk)
		tmp = append(tmp[:0], s[:k]...)
		swapBytes(tmp)
		if _, err := w.Write(bytesOf(tmp)); err != nil {
			return err
		}
		s = s[k:]
	}
	return nil
}

// WriteNPY writes m to path in .npy format, atomically (see WriteFileAtomic).
func WriteNPY(path string, m Matrix) error {
	return WriteFileAtomic(path, func(w io.Writer) error { return EncodeNPY(w, m) })
}
