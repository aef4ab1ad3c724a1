package dataio

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Load reads a matrix described by spec, choosing the format by extension:
//
//	data.npy        a NumPy array
//	data.npz:name   array "name" of a NumPy archive
//	data.npz        the only array of a NumPy archive
//	data.csv        comma-separated numbers, optional header
//
// Extensions are matched case-insensitively. Errors name the file.
func Load(spec string) (Matrix, error) {
	path, member := splitSpec(spec)
	switch strings.ToLower(filepath.Ext(path)) {
	case ".npy":
		return ReadNPYFile(path)
	case ".npz":
		return ReadNPZ(path, member)
	case ".csv":
		return ReadCSVFile(path)
	}
	return Matrix{}, fmt.Errorf("dataio: %s: %w %q (want .npy, .npz or .csv)", spec, ErrExtension, filepath.Ext(path))
}

// splitSpec splits "archive.npz:name" into path and member. Other specs are
// returned whole.
func splitSpec(spec string) (path, member string) {
	lower := strings.ToLower(spec)
	if i := strings.LastIndex(lower, ".npz:"); i >= 0 {
		return spec[:i+4], spec[i+5:]
	}
	return spec, ""
}
