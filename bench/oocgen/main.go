// Command oocgen writes a seeded planted fit problem of any size to .npy files without
// holding it in memory (rows are generated and written in blocks): X (N x Nx, float32,
// C order) with columns of different scales and offsets, and Y (N x Ny, float64) =
// relu(X U* + b*) + noise for a sparse U* (10% non-zeros). scripts/ooc_bench.sh uses it to
// make an X larger than a memory limit.
//
//	go run ./bench/oocgen -n 1200000 -nx 500 -ny 4 -x X.npy -y Y.npy
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
)

func main() {
	n := flag.Int("n", 1000000, "rows N")
	nx := flag.Int("nx", 500, "inputs Nx")
	ny := flag.Int("ny", 4, "outputs Ny")
	xPath := flag.String("x", "X.npy", "X output (.npy, float32)")
	yPath := flag.String("y", "Y.npy", "Y output (.npy, float64)")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if err := run(*n, *nx, *ny, *xPath, *yPath, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "oocgen:", err)
		os.Exit(1)
	}
}

// header returns a version 1.0 .npy header for a C-order array, padded so the data starts
// at a multiple of 64 bytes.
func header(descr string, rows, cols int) []byte {
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%d, %d), }", descr, rows, cols)
	total := (10 + len(dict) + 1 + 63) / 64 * 64
	h := dict + strings.Repeat(" ", total-10-len(dict)-1) + "\n"
	out := []byte("\x93NUMPY\x01\x00")
	out = binary.LittleEndian.AppendUint16(out, uint16(len(h)))
	return append(out, h...)
}

func run(n, nx, ny int, xPath, yPath string, seed uint64) error {
	r := rand.New(rand.NewPCG(seed, 77))
	scale, off := make([]float64, nx), make([]float64, nx)
	for k := range scale {
		scale[k] = math.Exp(r.NormFloat64())
		off[k] = r.NormFloat64()
	}
	U := make([]float64, nx*ny)
	for i := range U {
		if r.Float64() < 0.1 {
			U[i] = r.NormFloat64() / scale[i/ny]
		}
	}
	b := make([]float64, ny)
	for j := range b {
		b[j] = 0.5
		for k := 0; k < nx; k++ {
			b[j] -= U[k*ny+j] * off[k]
		}
	}
	xf, err := os.Create(xPath)
	if err != nil {
		return err
	}
	yf, err := os.Create(yPath)
	if err != nil {
		return err
	}
	xw, yw := bufio.NewWriterSize(xf, 8<<20), bufio.NewWriterSize(yf, 1<<20)
	xw.Write(header("<f4", n, nx))
	yw.Write(header("<f8", n, ny))
	row := make([]float32, nx)
	buf := make([]byte, 8*max(nx, ny))
	for i := 0; i < n; i++ {
		for k := range row {
			row[k] = float32(off[k] + scale[k]*r.NormFloat64())
			binary.LittleEndian.PutUint32(buf[4*k:], math.Float32bits(row[k]))
		}
		if _, err := xw.Write(buf[:4*nx]); err != nil {
			return err
		}
		for j := 0; j < ny; j++ {
			w := b[j]
			for k, v := range row {
				w += float64(v) * U[k*ny+j]
			}
			y := math.Max(0, w) + 0.1*r.NormFloat64()
			binary.LittleEndian.PutUint64(buf[8*j:], math.Float64bits(y))
		}
		if _, err := yw.Write(buf[:8*ny]); err != nil {
			return err
		}
	}
	for _, c := range []struct {
		w *bufio.Writer
		f *os.File
	}{{xw, xf}, {yw, yf}} {
		if err := c.w.Flush(); err != nil {
			return err
		}
		if err := c.f.Close(); err != nil {
			return err
		}
	}
	return nil
}
