//go:build linux

// Command oocread measures how fast passes over a float32 .npy X larger than memory can
// go with the two ways of reading it out of core: the read-only memory map relutrim fit
// uses (dataio.MapNPYFile; pages faulted in by the kernel's read-ahead) and a bounded
// buffer filled by pread(2) (what a streaming kern.Matrix would do), with the same chunk
// order and the same work per chunk (a sum of every row chunk of kern.ChunkRows rows).
// scripts/ooc_bench.sh runs it inside the memory limit.
//
//	go run ./bench/oocread -mode mmap|mmap-seq|pread -passes 3 -buf 16 X.npy
package main

import (
	"flag"
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"

	"relutrim/dataio"
	"relutrim/internal/kern"
)

func main() {
	mode := flag.String("mode", "mmap", "mmap (as relutrim fit), mmap-seq (with MADV_SEQUENTIAL) or pread (a bounded buffer)")
	passes := flag.Int("passes", 3, "passes over X")
	bufMB := flag.Int("buf", 16, "pread buffer in MiB (whole row chunks)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: oocread [-mode mmap|mmap-seq|pread] [-passes 3] X.npy")
		os.Exit(2)
	}
	path := flag.Arg(0)
	in, err := dataio.InspectNPYFile(path)
	if err != nil || !in.Mappable || in.ElemSize != 4 {
		fmt.Fprintln(os.Stderr, "oocread: need a mappable float32 .npy:", err, in.Why)
		os.Exit(1)
	}
	rows, cols := in.Rows, in.Cols
	var pass func() float64
	switch *mode {
	case "mmap", "mmap-seq":
		m, unmap, err := dataio.MapNPYFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer unmap()
		if *mode == "mmap-seq" {
			b := unsafe.Slice((*byte)(unsafe.Pointer(&m.F32[0])), len(m.F32)*4)
			start := uintptr(unsafe.Pointer(&b[0])) % 4096 // madvise needs a page-aligned start
			_ = syscall.Madvise(b[4096-start:], syscall.MADV_SEQUENTIAL)
		}
		pass = func() float64 {
			s := 0.0
			for lo := 0; lo < rows; lo += kern.ChunkRows {
				hi := min(lo+kern.ChunkRows, rows)
				s += sum(m.F32[lo*cols : hi*cols])
			}
			return s
		}
	case "pread":
		f, err := os.Open(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer f.Close()
		per := max(1, (*bufMB<<20)/(kern.ChunkRows*cols*4)) // row chunks per buffer
		buf := make([]float32, per*kern.ChunkRows*cols)
		bb := unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), len(buf)*4)
		pass = func() float64 {
			s := 0.0
			for lo := 0; lo < rows; lo += per * kern.ChunkRows {
				hi := min(lo+per*kern.ChunkRows, rows)
				b := bb[:(hi-lo)*cols*4]
				if _, err := f.ReadAt(b, in.DataOffset+int64(lo)*int64(cols)*4); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				for c := lo; c < hi; c += kern.ChunkRows {
					e := min(c+kern.ChunkRows, hi)
					s += sum(buf[(c-lo)*cols : (e-lo)*cols])
				}
			}
			return s
		}
	default:
		fmt.Fprintln(os.Stderr, "oocread: unknown -mode", *mode)
		os.Exit(2)
	}
	xb := float64(rows) * float64(cols) * 4
	var total time.Duration
	var check float64
	for p := 0; p < *passes; p++ {
		t0 := time.Now()
		check = pass()
		d := time.Since(t0)
		total += d
		fmt.Printf("%s pass %d: %.2f s, %.3f GB/s\n", *mode, p+1, d.Seconds(), xb/1e9/d.Seconds())
	}
	fmt.Printf("%s: %d passes over %.2f GB in %.2f s: %.3f GB/s (checksum %g)\n", *mode, *passes, xb/1e9, total.Seconds(),
		float64(*passes)*xb/1e9/total.Seconds(), check)
}

func sum(x []float32) float64 {
	s := 0.0
	for _, v := range x {
		s += float64(v)
	}
	return s
}
