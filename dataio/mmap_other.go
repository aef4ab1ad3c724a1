//go:build !unix

package dataio

// MapNPYFile is not available on this system (it needs mmap); see the unix version.
func MapNPYFile(path string) (m Matrix, unmap func() error, err error) {
	return Matrix{}, nil, fileErr(path, ErrFormat, "cannot be memory-mapped on this system")
}
