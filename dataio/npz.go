package dataio

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// ReadNPZ reads one array from the .npz archive at path. If name is empty
// the archive must hold exactly one array. name may be given with or without
// the ".npy" suffix. The Matrix is named "path:name".
func ReadNPZ(path, name string) (Matrix, error) {
	f, err := os.Open(path)
	if err != nil {
		return Matrix{}, fmt.Errorf("dataio: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Matrix{}, fmt.Errorf("dataio: %w", err)
	}
	return readNPZ(f, st.Size(), path, name)
}

func readNPZ(r io.ReaderAt, size int64, path, name string) (Matrix, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return Matrix{}, fileErr(path, ErrFormat, "not a valid .npz (zip) archive: %v", err)
	}
	var names []string
	byName := map[string]*zip.File{}
	for _, zf := range zr.File {
		n := strings.TrimSuffix(zf.Name, ".npy")
		names = append(names, n)
		byName[n] = zf
	}
	sort.Strings(names)
	var zf *zip.File
	switch {
	case name != "":
		zf = byName[strings.TrimSuffix(name, ".npy")]
		if zf == nil {
			return Matrix{}, fileErr(path, ErrNoArray, "no array %q; the archive holds %s", name, quoteList(names))
		}
	case len(names) == 1:
		zf = zr.File[0]
		name = names[0]
	case len(names) == 0:
		return Matrix{}, fileErr(path, ErrEmpty, "the archive holds no arrays")
	default:
		return Matrix{}, fileErr(path, ErrNoArray,
			"the archive holds %d arrays (%s); choose one with %s:NAME", len(names), quoteList(names), path)
	}
	spec := path + ":" + strings.TrimSuffix(name, ".npy")
	rc, err := zf.Open()
	if err != nil {
		return Matrix{}, fileErr(spec, ErrFormat, "%v", err)
	}
	defer rc.Close()
	// Trust the declared size only as far as the compressed data could
	// possibly expand (deflate never exceeds about 1032:1), so a forged
	// size cannot make us allocate far more than the archive could hold.
	avail := int64(zf.UncompressedSize64)
	bound := int64(zf.CompressedSize64)
	if zf.Method != zip.Store {
		bound = bound*1032 + 1024
	}
	if avail < 0 || avail > bound {
		avail = -1
	}
	m, err := readNPY(rc, spec, avail, false)
	if err != nil {
		return Matrix{}, err
	}
	// archive/zip checks the member's CRC-32 only when it is read to its end; readNPY stops
	// after the array, so read the rest (numpy rejects a member with a bad CRC too; like
	// numpy, bytes after the array are otherwise ignored).
	if _, err := io.Copy(io.Discard, rc); err != nil {
		if errors.Is(err, zip.ErrChecksum) {
			return Matrix{}, fileErr(spec, ErrFormat, "the member's CRC-32 does not match its data (corrupted archive)")
		}
		return Matrix{}, fileErr(spec, ErrFormat, "%v", err)
	}
	return m, nil
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
