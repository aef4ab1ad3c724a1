package dataio

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
)

// Tensor is one array of a safetensors file. DType is the safetensors dtype
// name; exactly one data slice is set, depending on DType:
//
//	F32, F16, BF16  F32 (F16 and BF16 are widened on read and rounded to
//	                nearest even on write)
//	F64             F64
//	U8              U8
//	I64             I64
//
// The slice holds the product of Shape elements in row-major order.
type Tensor struct {
	DType string
	Shape []int
	F32   []float32
	F64   []float64
	U8    []uint8
	I64   []int64
}

// maxSafetensorsHeader bounds the JSON header (the reference implementation
// uses 100 MB as well).
const maxSafetensorsHeader = 100 << 20

// dtypeSize returns the element size of a supported safetensors dtype.
func dtypeSize(dt string) (int, bool) {
	switch dt {
	case "F64", "I64":
		return 8, true
	case "F32":
		return 4, true
	case "F16", "BF16":
		return 2, true
	case "U8":
		return 1, true
	}
	return 0, false
}

// numElems returns the product of shape, or an error on negative or
// overflowing dimensions.
func numElems(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("%w: negative dimension in shape %v", ErrShape, shape)
		}
		if d != 0 && n > math.MaxInt/8/d {
			return 0, fmt.Errorf("%w: shape %v is too large", ErrShape, shape)
		}
		n *= d
	}
	return n, nil
}

// check verifies that the tensor's data matches its dtype and shape.
func (t Tensor) check() error {
	n, err := numElems(t.Shape)
	if err != nil {
		return err
	}
	f32, f64, u8, i64 := t.F32 != nil, t.F64 != nil, t.U8 != nil, t.I64 != nil
	var got int
	var others bool
	switch t.DType {
	case "F32", "F16", "BF16":
		got, others = len(t.F32), f64 || u8 || i64
	case "F64":
		got, others = len(t.F64), f32 || u8 || i64
	case "U8":
		got, others = len(t.U8), f32 || f64 || i64
	case "I64":
		got, others = len(t.I64), f32 || f64 || u8
	default:
		return fmt.Errorf("%w %q", ErrDType, t.DType)
	}
	if others {
		return fmt.Errorf("dtype %s has a data slice of another type set", t.DType)
	}
	if got != n {
		return fmt.Errorf("%d elements of %s data for shape %v", got, t.DType, t.Shape)
	}
	return nil
}

type stEntry struct {
	DType       string  `json:"dtype"`
	Shape       []int   `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// ReadSafetensors reads all tensors of the safetensors file at path.
func ReadSafetensors(path string) (map[string]Tensor, error) {
	t, _, err := ReadSafetensorsMetadata(path)
	return t, err
}

// ReadSafetensorsMetadata reads all tensors of the safetensors file at path,
// and its "__metadata__" map (nil if absent).
func ReadSafetensorsMetadata(path string) (map[string]Tensor, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("dataio: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("dataio: %w", err)
	}
	return decodeSafetensors(f, st.Size(), path)
}

// DecodeSafetensors decodes a safetensors file held in memory. name is used
// in error messages.
func DecodeSafetensors(data []byte, name string) (map[string]Tensor, map[string]string, error) {
	return decodeSafetensors(bytes.NewReader(data), int64(len(data)), name)
}

func decodeSafetensors(r io.ReaderAt, size int64, name string) (map[string]Tensor, map[string]string, error) {
	var lb [8]byte
	if _, err := r.ReadAt(lb[:], 0); err != nil {
		return nil, nil, fileErr(name, ErrFormat, "file too short for the safetensors header length (%d bytes)", size)
	}
	hlen := binary.LittleEndian.Uint64(lb[:])
	if hlen > maxSafetensorsHeader || int64(hlen) > size-8 {
		return nil, nil, fileErr(name, ErrFormat, "safetensors header length %d does not fit a %d-byte file", hlen, size)
	}
	hb := make([]byte, hlen)
	if _, err := r.ReadAt(hb, 8); err != nil {
		return nil, nil, fileErr(name, ErrFormat, "reading safetensors header: %v", err)
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(hb))
	if err := dec.Decode(&raw); err != nil {
		return nil, nil, fileErr(name, ErrFormat, "safetensors header is not a JSON object: %v", err)
	}
	// Only trailing spaces may follow the object.
	if rest := bytes.TrimLeft(hb[dec.InputOffset():], " \t\r\n"); len(rest) > 0 {
		return nil, nil, fileErr(name, ErrFormat, "unexpected text after the safetensors header JSON")
	}
	var meta map[string]string
	if m, ok := raw["__metadata__"]; ok {
		if err := json.Unmarshal(m, &meta); err != nil {
			return nil, nil, fileErr(name, ErrFormat, "__metadata__ is not a map of strings: %v", err)
		}
		delete(raw, "__metadata__")
	}
	dataStart := 8 + int64(hlen)
	dataLen := size - dataStart
	type span struct {
		name       string
		begin, end int64
	}
	entries := make(map[string]stEntry, len(raw))
	spans := make([]span, 0, len(raw))
	for k, v := range raw {
		var e stEntry
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, nil, fileErr(name, ErrFormat, "tensor %q: bad header entry: %v", k, err)
		}
		size, ok := dtypeSize(e.DType)
		if !ok {
			return nil, nil, fileErr(name, ErrDType, "tensor %q has dtype %q (supported: F64, F32, F16, BF16, I64, U8)", k, e.DType)
		}
		if e.Shape == nil {
			return nil, nil, fileErr(name, ErrFormat, "tensor %q has no shape", k)
		}
		n, err := numElems(e.Shape)
		if err != nil {
			return nil, nil, fileErr(name, err, "tensor %q", k)
		}
		if len(e.DataOffsets) != 2 || e.DataOffsets[0] < 0 || e.DataOffsets[1] < e.DataOffsets[0] {
			return nil, nil, fileErr(name, ErrFormat, "tensor %q has bad data_offsets %v", k, e.DataOffsets)
		}
		b, end := e.DataOffsets[0], e.DataOffsets[1]
		if end > dataLen {
			return nil, nil, fileErr(name, ErrFormat, "tensor %q data_offsets %v run past the end of the data (%d bytes)", k, e.DataOffsets, dataLen)
		}
		if end-b != int64(n)*int64(size) {
			return nil, nil, fileErr(name, ErrFormat, "tensor %q: %s shape %v needs %d bytes, data_offsets %v give %d",
				k, e.DType, e.Shape, int64(n)*int64(size), e.DataOffsets, end-b)
		}
		entries[k] = e
		spans = append(spans, span{k, b, end})
	}
	// Like the reference implementation, require the tensors to tile the
	// data area exactly: no gaps, no overlaps, nothing left over.
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].begin != spans[j].begin {
			return spans[i].begin < spans[j].begin
		}
		return spans[i].end < spans[j].end
	})
	var pos int64
	for _, s := range spans {
		if s.begin != pos {
			return nil, nil, fileErr(name, ErrFormat, "tensor %q starts at data offset %d, expected %d (gap or overlap)", s.name, s.begin, pos)
		}
		pos = s.end
	}
	if pos != dataLen {
		return nil, nil, fileErr(name, ErrFormat, "tensors cover %d data bytes but the file has %d", pos, dataLen)
	}
	out := make(map[string]Tensor, len(entries))
	for k, e := range entries {
		t, err := readTensor(r, dataStart, e)
		if err != nil {
			return nil, nil, fileErr(name, ErrFormat, "tensor %q: %v", k, err)
		}
		out[k] = t
	}
	return out, meta, nil
}

func readTensor(r io.ReaderAt, dataStart int64, e stEntry) (Tensor, error) {
	t := Tensor{DType: e.DType, Shape: e.Shape}
	n, _ := numElems(e.Shape)
	sec := io.NewSectionReader(r, dataStart+e.DataOffsets[0], e.DataOffsets[1]-e.DataOffsets[0])
	var err error
	switch e.DType {
	case "F32":
		t.F32, err = readFloats[float32](sec, n, true, !hostLittle)
	case "F64":
		t.F64, err = readFloats[float64](sec, n, true, !hostLittle)
	case "U8":
		t.U8 = make([]uint8, n)
		_, err = io.ReadFull(sec, t.U8)
	case "I64":
		t.I64 = make([]int64, n)
		if _, err = io.ReadFull(sec, bytesOf(t.I64)); err == nil && !hostLittle {
			swapBytes(t.I64)
		}
	case "F16", "BF16":
		h := make([]uint16, n)
		if _, err = io.ReadFull(sec, bytesOf(h)); err != nil {
			break
		}
		if !hostLittle {
			swapBytes(h)
		}
		t.F32 = make([]float32, n)
		conv := halfToFloat32
		if e.DType == "BF16" {
			conv = bf16ToFloat32
		}
		for i, v := range h {
			t.F32[i] = conv(v)
		}
	}
	if err != nil {
		return Tensor{}, truncErr(err)
	}
	return t, nil
}

// EncodeSafetensors writes tensors (and meta, if non-nil) to w in
// safetensors format. Tensors are laid out in order of their names, and the
// header is padded with spaces to a multiple of 8 bytes.
func EncodeSafetensors(w io.Writer, tensors map[string]Tensor, meta map[string]string) error {
	names := make([]string, 0, len(tensors))
	for k := range tensors {
		if k == "__metadata__" {
			return fmt.Errorf("dataio: tensor name %q is reserved", k)
		}
		names = append(names, k)
	}
	sort.Strings(names)
	var hdr bytes.Buffer
	hdr.WriteByte('{')
	if meta != nil {
		mb, err := json.Marshal(meta) // keys sorted
		if err != nil {
			return err
		}
		hdr.WriteString(`"__metadata__":`)
		hdr.Write(mb)
	}
	var off int64
	for i, k := range names {
		t := tensors[k]
		if err := t.check(); err != nil {
			return fmt.Errorf("dataio: tensor %q: %w", k, err)
		}
		n, _ := numElems(t.Shape)
		size, _ := dtypeSize(t.DType)
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		kb, _ := json.Marshal(k)
		sb, _ := json.Marshal(shape)
		if i > 0 || meta != nil {
			hdr.WriteByte(',')
		}
		hdr.Write(kb)
		fmt.Fprintf(&hdr, `:{"dtype":%q,"shape":%s,"data_offsets":[%d,%d]}`, t.DType, sb, off, off+int64(n*size))
		off += int64(n * size)
	}
	hdr.WriteByte('}')
	for hdr.Len()%8 != 0 {
		hdr.WriteByte(' ')
	}
	var lb [8]byte
	binary.LittleEndian.PutUint64(lb[:], uint64(hdr.Len()))
	if _, err := w.Write(lb[:]); err != nil {
		return err
	}
	if _, err := w.Write(hdr.Bytes()); err != nil {
		return err
	}
	for _, k := range names {
		if err := writeTensorData(w, tensors[k]); err != nil {
			return err
		}
	}
	return nil
}

func writeTensorData(w io.Writer, t Tensor) error {
	switch t.DType {
	case "F32":
		return writeLE(w, t.F32)
	case "F64":
		return writeLE(w, t.F64)
	case "U8":
		_, err := w.Write(t.U8)
		return err
	case "I64":
		return writeLE(w, t.I64)
	case "F16", "BF16":
		conv := float32ToHalf
		if t.DType == "BF16" {
			conv = float32ToBF16
		}
		h := make([]uint16, len(t.F32))
		for i, v := range t.F32 {
			h[i] = conv(v)
		}
		return writeLE(w, h)
	}
	return fmt.Errorf("%w %q", ErrDType, t.DType)
}

// WriteSafetensors writes tensors to path in safetensors format, atomically.
func WriteSafetensors(path string, tensors map[string]Tensor) error {
	return WriteSafetensorsMetadata(path, tensors, nil)
}

// WriteSafetensorsMetadata is WriteSafetensors with a "__metadata__" map.
func WriteSafetensorsMetadata(path string, tensors map[string]Tensor, meta map[string]string) error {
	return WriteFileAtomic(path, func(w io.Writer) error { return EncodeSafetensors(w, tensors, meta) })
}

// TensorMatrix converts a 1-D or 2-D floating-point tensor to a Matrix
// (sharing its data). name is used as the Matrix name.
func TensorMatrix(t Tensor, name string) (Matrix, error) {
	m := Matrix{Name: name}
	switch len(t.Shape) {
	case 1:
		m.Rows, m.Cols, m.Vector = t.Shape[0], 1, true
	case 2:
		m.Rows, m.Cols = t.Shape[0], t.Shape[1]
	default:
		return Matrix{}, fileErr(name, ErrShape, "%d-D tensor of shape %v, need 1-D or 2-D", len(t.Shape), t.Shape)
	}
	switch t.DType {
	case "F32", "F16", "BF16":
		m.F32 = t.F32
		if m.F32 == nil {
			m.F32 = []float32{}
		}
	case "F64":
		m.F64 = t.F64
		if m.F64 == nil {
			m.F64 = []float64{}
		}
	default:
		return Matrix{}, fileErr(name, ErrDType, "tensor dtype %s is not floating point", t.DType)
	}
	return m, m.Validate()
}
