package dataio

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// ReadCSV reads comma-separated numbers from r into a float64 Matrix named
// name. If any field of the first row is not a number, that row is taken as
// a header and stored in Matrix.Header. Spaces around fields are ignored.
// Empty input, rows of differing length and non-numeric fields after the
// header are errors; those errors are *ParseError values giving the line and
// (field) column, wrapping ErrEmpty, ErrFieldCount or ErrNotNumber.
func ReadCSV(r io.Reader, name string) (Matrix, error) {
	cr := csv.NewReader(r)
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
			if isHeader(rec) {
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

func isHeader(rec []string) bool {
	for _, f := range rec {
		if _, err := parseNumber(f); err != nil {
			return true
		}
	}
	return false
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
