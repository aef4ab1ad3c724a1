package dataio

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of these where it
// applies, so callers can test them with errors.Is.
var (
	// ErrFormat means the input is not a well-formed file of the expected
	// format (bad magic, malformed header, truncated data, ...).
	ErrFormat = errors.New("malformed file")
	// ErrDType means the array's element type is not supported.
	ErrDType = errors.New("unsupported dtype")
	// ErrShape means the array's shape is not supported (0-D, more than 2-D,
	// negative or overflowing dimensions).
	ErrShape = errors.New("unsupported shape")
	// ErrEmpty means the input holds no data.
	ErrEmpty = errors.New("no data")
	// ErrFieldCount means a CSV row has a different number of fields than
	// the first row.
	ErrFieldCount = errors.New("wrong number of fields")
	// ErrNotNumber means a CSV field could not be parsed as a number.
	ErrNotNumber = errors.New("not a number")
	// ErrNonFinite means a matrix holds a NaN or an infinity.
	ErrNonFinite = errors.New("non-finite value")
	// ErrNoArray means an .npz archive does not hold the requested array, or
	// holds several and none was requested.
	ErrNoArray = errors.New("array not found")
	// ErrExtension means Load does not know the file's extension.
	ErrExtension = errors.New("unknown file extension")
)

// ParseError reports a problem at a position in a CSV input, like
// encoding/csv's ParseError. Line and Column are 1-based; Column counts
// fields (not bytes), and a zero Column means the whole line.
type ParseError struct {
	File   string // file name
	Line   int    // 1-based line
	Column int    // 1-based field number, 0 for the whole line
	Err    error  // underlying error, usually one of the sentinels
}

func (e *ParseError) Error() string {
	if e.Column > 0 {
		return fmt.Sprintf("dataio: %s: line %d, column %d: %v", e.File, e.Line, e.Column, e.Err)
	}
	return fmt.Sprintf("dataio: %s: line %d: %v", e.File, e.Line, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// fileErr wraps err (usually a sentinel) with the file name and a detail.
func fileErr(name string, err error, format string, args ...any) error {
	detail := fmt.Sprintf(format, args...)
	if detail == "" {
		return fmt.Errorf("dataio: %s: %w", name, err)
	}
	return fmt.Errorf("dataio: %s: %w: %s", name, err, detail)
}
