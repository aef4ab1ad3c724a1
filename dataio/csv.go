package dataio

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// ReadCSV reads comma-separated numbers from r into a float64 Matrix named
// name. A UTF-8 byte order mark at the start is skipped. The first row is a
// header (stored in Matrix.Header) when none of its fields is a number, and
// data when all of them are; a first row mixing numbers and text is an error
// (usually a typo in a data row or a number among the column names), so a
// row of data is never dropped silently. Spaces around fields are ignored.
// Empty input, rows of differing length and non-numeric fields are errors;
// those errors are *ParseError values giving the line and (field) column,
// wrapping ErrEmpty, ErrFieldCount or ErrNotNumber.
func ReadCSV(r io.Reader, name string) (Matrix, error) {
	br := bufio.NewReader(r)
	if b, err := br.Peek(len(utf8BOM)); err == nil && string(b) == utf8BOM {
		br.Discard(len(utf8BOM))
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1 // we check row lengths ourselves
	cr.ReuseRecord = true
	m := Matrix{Name: name, F64: []float64{}}
	first := true
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return Matrix{}, &ParseError{File: name, Line: pe.Line, Column: 0,
					Err: fmt.Errorf("%w: %v", ErrFormat, pe.Err)}
			}
			return Matrix{}, fmt.Errorf("dataio: %s: %w", name, err)
		}
		line, _ := cr.FieldPos(0)
		if first {
			first = false
			m.Cols = len(rec)
			header, mixed := classifyFirstRow(rec)
			if mixed >= 0 {
				return Matrix{}, &ParseError{File: name, Line: line, Column: mixed + 1,
					Err: fmt.Errorf("%w: %q in the first row, whose other fields are numbers (a header must be all names, a data row all numbers)", ErrNotNumber, clip(rec[mixed]))}
			}
			if header {
				m.Header = make([]string, len(rec))
				for i, f := range rec {
					m.Header[i] = strings.TrimSpace(f)
				}
				continue
			}
		}
		if len(rec) != m.Cols {
			return Matrix{}, &ParseError{File: name, Line: line, Column: min(len(rec), m.Cols) + 1,
				Err: fmt.Errorf("%w: %d fields, expected %d", ErrFieldCount, len(rec), m.Cols)}
		}
		for j, f := range rec {
			v, err := parseNumber(f)
			if err != nil {
				return Matrix{}, &ParseError{File: name, Line: line, Column: j + 1,
					Err: fmt.Errorf("%w: %q", ErrNotNumber, clip(f))}
			}
			m.F64 = append(m.F64, v)
		}
		m.Rows++
	}
	if m.Rows == 0 {
		if m.Header != nil {
			return Matrix{}, fileErr(name, ErrEmpty, "a header but no data rows")
		}
		return Matrix{}, fileErr(name, ErrEmpty, "empty CSV file")
	}
	return m, nil
}

func parseNumber(f string) (float64, error) {
	return strconv.ParseFloat(strings.TrimSpace(f), 64)
}

// utf8BOM is the byte order mark some editors (and Excel's "CSV UTF-8") put first.
const utf8BOM = "\xef\xbb\xbf"

// classifyFirstRow reports whether the first row is a header (no field is a number). When
// it mixes numbers and non-numbers, mixed is the index of the first non-number (else -1).
func classifyFirstRow(rec []string) (header bool, mixed int) {
	text, nums := -1, 0
	for i, f := range rec {
		if _, err := parseNumber(f); err != nil {
			if text < 0 {
				text = i
			}
		} else {
			nums++
		}
	}
	switch {
	case text < 0:
		return false, -1
	case nums == 0:
		return true, -1
	}
	return false, text
}

// ReadCSVFile reads the CSV file at path (see ReadCSV).
func ReadCSVFile(path string) (Matrix, error) {
	f, err := os.Open(path)
	if err != nil {
		return Matrix{}, fmt.Errorf("dataio: %w", err)
	}
	defer f.Close()
	return ReadCSV(f, path)
}

// EncodeCSV writes m to w as CSV, preceded by header when it is non-nil
// (header must then have m.Cols entries). Numbers are written in the
// shortest form that reads back exactly.
func EncodeCSV(w io.Writer, m Matrix, header []string) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if header != nil && len(header) != m.Cols {
		return fmt.Errorf("dataio: %s: %d header names for %d columns", m.Name, len(header), m.Cols)
	}
	cw := csv.NewWriter(w)
	if header != nil {
		if len(header) == 1 && header[0] == "" {
			// encoding/csv would write a blank line, which readers skip.
			if _, err := io.WriteString(w, "\"\"\n"); err != nil {
				return err
			}
		} else if err := cw.Write(header); err != nil {
			return err
		}
	}
	rec := make([]string, m.Cols)
	for i := range m.Rows {
		for j := range m.Cols {
			if m.F32 != nil {
				rec[j] = strconv.FormatFloat(float64(m.F32[i*m.Cols+j]), 'g', -1, 32)
			} else {
				rec[j] = strconv.FormatFloat(m.F64[i*m.Cols+j], 'g', -1, 64)
			}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteCSV writes m (and header, if non-nil) to path as CSV, atomically.
func WriteCSV(path string, m Matrix, header []string) error {
	return WriteFileAtomic(path, func(w io.Writer) error { return EncodeCSV(w, m, header) })
}
