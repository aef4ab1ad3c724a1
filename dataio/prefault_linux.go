package dataio

import "syscall"

// prefaultMin is the smallest buffer worth prefaulting.
const prefaultMin = 64 << 20

// madvPopulateWrite is MADV_POPULATE_WRITE (Linux 5.14+).
const madvPopulateWrite = 23

// prefault asks the kernel to map all of b's pages now, in one call, before
// we read a large file into it. Letting read(2) fault the fresh pages in one
// 4 KiB page at a time is the main cost of loading a big array from the page
// cache, especially in virtual machines. On older kernels the call fails
// with EINVAL and nothing changes; it is only an optimisation, so errors are
// ignored.
func prefault(b []byte) {
	if len(b) < prefaultMin {
		return
	}
	const page = 4096
	start := 0
	if off := int(uintptrOf(b) % page); off != 0 {
		start = page - off
	}
	end := start + (len(b)-start)/page*page
	if end > start {
		_ = syscall.Madvise(b[start:end], madvPopulateWrite)
	}
}
