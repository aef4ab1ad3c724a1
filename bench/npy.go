package main

// A minimal .npy (format 1.0) writer and reader for the benchmark's own files: row-major
// ('fortran_order': False) little-endian float64 ('<f8') or float32 ('<f4') arrays of one
// or two dimensions. The writer streams rows so that large X never has to be held twice.

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// npyHeader returns the magic, version, header length and the padded header dictionary.
func npyHeader(descr string, rows, cols int) []byte {
	shape := fmt.Sprintf("(%d, %d)", rows, cols)
	if cols < 0 {
		shape = fmt.Sprintf("(%d,)", rows)
	}
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape)
	// magic(6) + version(2) + len(2) + dict + '\n' must be a multiple of 64.
	total := 10 + len(dict) + 1
	pad := (64 - total%64) % 64
	dict += strings.Repeat(" ", pad) + "\n"
	h := make([]byte, 0, 10+len(dict))
	h = append(h, 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0)
	h = binary.LittleEndian.AppendUint16(h, uint16(len(dict)))
	return append(h, dict...)
}

// npyWriter streams a rows x cols matrix into a .npy file.
type npyWriter struct {
	f       *os.File
	w       *bufio.Writer
	f32     bool
	want    int // values still expected
	path    string
	scratch []byte
}

func createNPY(path string, rows, cols int, f32 bool) (*npyWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	descr := "<f8"
	if f32 {
		descr = "<f4"
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := w.Write(npyHeader(descr, rows, cols)); err != nil {
		f.Close()
		return nil, err
	}
	n := rows
	if cols >= 0 {
		n = rows * cols
	}
	return &npyWriter{f: f, w: w, f32: f32, want: n, path: path}, nil
}

// write appends values (converted to float32 if the file is float32).
func (n *npyWriter) write(v []float64) error {
	if len(v) > n.want {
		return fmt.Errorf("%s: %d values more than the shape holds", n.path, len(v)-n.want)
	}
	n.want -= len(v)
	size := 8
	if n.f32 {
		size = 4
	}
	if cap(n.scratch) < size*len(v) {
		n.scratch = make([]byte, size*len(v))
	}
	b := n.scratch[:size*len(v)]
	for i, x := range v {
		if n.f32 {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(x)))
		} else {
			binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
		}
	}
	_, err := n.w.Write(b)
	return err
}

func (n *npyWriter) close() error {
	if n.want != 0 {
		n.f.Close()
		return fmt.Errorf("%s: %d values missing", n.path, n.want)
	}
	if err := n.w.Flush(); err != nil {
		n.f.Close()
		return err
	}
	return n.f.Close()
}

// writeNPY writes a whole row-major matrix (cols < 0: 1-D array of length rows).
func writeNPY(path string, data []float64, rows, cols int, f32 bool) error {
	w, err := createNPY(path, rows, cols, f32)
	if err != nil {
		return err
	}
	if err := w.write(data); err != nil {
		w.f.Close()
		return err
	}
	return w.close()
}

var (
	reDescr   = regexp.MustCompile(`'descr':\s*'([^']*)'`)
	reFortran = regexp.MustCompile(`'fortran_order':\s*(True|False)`)
	reShape   = regexp.MustCompile(`'shape':\s*\(([^)]*)\)`)
)

// npyReader streams the values of a .npy file written by npyWriter (or numpy.save of a
// C-ordered <f8 / <f4 array of one or two dimensions).
type npyReader struct {
	f          *os.File
	r          *bufio.Reader
	rows, cols int
	f32        bool
	path       string
	buf        []byte
}

func openNPY(path string) (*npyReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r := bufio.NewReaderSize(f, 1<<20)
	bad := func(format string, a ...any) (*npyReader, error) {
		f.Close()
		return nil, fmt.Errorf("%s: "+format, append([]any{path}, a...)...)
	}
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return bad("reading magic: %v", err)
	}
	if string(pre[:6]) != "\x93NUMPY" {
		return bad("not a .npy file")
	}
	var hlen int
	switch pre[6] {
	case 1:
		var l [2]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return bad("reading header length: %v", err)
		}
		hlen = int(binary.LittleEndian.Uint16(l[:]))
	case 2, 3:
		var l [4]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return bad("reading header length: %v", err)
		}
		hlen = int(binary.LittleEndian.Uint32(l[:]))
	default:
		return bad("unsupported .npy version %d", pre[6])
	}
	if hlen > 1<<20 {
		return bad("header length %d too large", hlen)
	}
	h := make([]byte, hlen)
	if _, err := io.ReadFull(r, h); err != nil {
		return bad("reading header: %v", err)
	}
	hs := string(h)
	d, fo, sh := reDescr.FindStringSubmatch(hs), reFortran.FindStringSubmatch(hs), reShape.FindStringSubmatch(hs)
	if d == nil || fo == nil || sh == nil {
		return bad("cannot parse header %q", hs)
	}
	if fo[1] != "False" {
		return bad("fortran_order arrays are not supported")
	}
	n := &npyReader{f: f, r: r, path: path}
	switch d[1] {
	case "<f8":
	case "<f4":
		n.f32 = true
	default:
		return bad("dtype %q not supported (want <f8 or <f4)", d[1])
	}
	var dims []int
	for _, s := range strings.Split(sh[1], ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return bad("bad shape %q", sh[1])
		}
		dims = append(dims, v)
	}
	switch len(dims) {
	case 1:
		n.rows, n.cols = dims[0], 1
	case 2:
		n.rows, n.cols = dims[0], dims[1]
	default:
		return bad("want a 1-D or 2-D array, got shape (%s)", sh[1])
	}
	return n, nil
}

// read fills dst with the next len(dst) values, converted to float64.
func (n *npyReader) read(dst []float64) error {
	size := 8
	if n.f32 {
		size = 4
	}
	if cap(n.buf) < size*len(dst) {
		n.buf = make([]byte, size*len(dst))
	}
	b := n.buf[:size*len(dst)]
	if _, err := io.ReadFull(n.r, b); err != nil {
		return fmt.Errorf("%s: %v", n.path, err)
	}
	for i := range dst {
		if n.f32 {
			dst[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
		} else {
			dst[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
		}
	}
	return nil
}

func (n *npyReader) close() error { return n.f.Close() }
