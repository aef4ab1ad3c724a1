package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"relutrim/dataio"
	"relutrim/prune"
	"relutrim/prune/model"
)

// Out-of-core inputs: an X larger than --max-memory is memory-mapped read-only from its
// .npy file instead of read into memory (dataio.MapNPYFile), so that every pass over X
// reads it from the file and the kernel may drop its pages again.

// parseSize parses a memory size: a number of bytes with an optional binary suffix
// K, M, G or T (also KB/KiB, ..., any case; 2G = 2 * 1024^3 bytes), e.g. 2G, 512M, 1.5G.
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "IB"), "B")
	mult := 1.0
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:len(t)-1]
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || !(v > 0) || math.IsInf(v, 0) || v*mult >= math.MaxInt64 || strings.ContainsAny(t, "xXpP") {
		return 0, fmt.Errorf("want a positive size such as 2G, 512M or 1073741824, got %q", s)
	}
	if v*mult < 1 {
		// 0.1 would truncate to 0 bytes, which means "no cap" inside (as an unknown
		// MemAvailable does): refuse it like 0.
		return 0, fmt.Errorf("%q is less than one byte; want a positive size such as 2G, 512M or 1073741824", s)
	}
	return int64(v * mult), nil
}

// availableMemory is --max-memory's default: MemAvailable from /proc/meminfo, or the
// memory limit of the process's cgroup minus its usage when that is smaller (a container
// or a `systemd-run -p MemoryMax=` scope sees the whole machine's MemAvailable). It
// returns 0 (no limit: X is always read into memory) when neither can be read.
func availableMemory() int64 {
	var avail int64
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
				fs := strings.Fields(rest)
				if len(fs) >= 1 {
					if kb, err := strconv.ParseInt(fs[0], 10, 64); err == nil {
						avail = kb << 10
					}
				}
			}
		}
		f.Close()
	}
	if lim := cgroupRoom(); lim > 0 && (avail == 0 || lim < avail) {
		avail = lim
	}
	return avail
}

// cgroupRoom returns the memory limit of the process's cgroup minus its current usage
// (cgroup v2 memory.max/memory.current, or v1 memory.limit_in_bytes/usage_in_bytes), or 0
// when there is no limit or it cannot be read.
func cgroupRoom() int64 {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	readInt := func(p string) int64 {
		b, err := os.ReadFile(p)
		if err != nil {
			return 0
		}
		v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return 0 // "max": no limit
		}
		return v
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var lim, used int64
		switch {
		case parts[0] == "0" && parts[1] == "":
			dir := "/sys/fs/cgroup" + parts[2]
			lim, used = readInt(dir+"/memory.max"), readInt(dir+"/memory.current")
		case strings.Contains(","+parts[1]+",", ",memory,"):
			dir := "/sys/fs/cgroup/memory" + parts[2]
			lim, used = readInt(dir+"/memory.limit_in_bytes"), readInt(dir+"/memory.usage_in_bytes")
		default:
			continue
		}
		if lim > 0 && lim < 1<<60 { // v1 reports "no limit" as about 2^63
			return max(lim-used, 1)
		}
	}
	return 0
}

// mappedX decides how X is held: nil, nil, 0 when it is read into memory as before (not an
// .npy file, or it fits in maxMem), else the X memory-mapped from its .npy file with its
// unmap function and the passes checkLoaded made over it. An X above maxMem that cannot be mapped (not .npy, Fortran order, an
// integer dtype, ...) is a usage error naming the file and the reason.
func mappedX(cmd *cobra.Command, flag, spec string, maxMem int64) (*dataio.Matrix, func() error, int, error) {
	name := cmd.Name()
	path, member := splitNPZ(spec)
	if maxMem <= 0 {
		return nil, nil, 0, nil
	}
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() {
		return nil, nil, 0, nil // loadMatrix reports or reads it
	}
	isNPY := member == "" && strings.EqualFold(pathExt(path), ".npy")
	if !isNPY {
		if st.Size() > maxMem {
			return nil, nil, 0, usageErrorf("%s: %s %s: the file (%d bytes) is larger than --max-memory (%d bytes) and only a "+
				".npy file can be used from disk without loading it; save X with numpy.save as float32 or float64 .npy", name, flag, spec, st.Size(), maxMem)
		}
		return nil, nil, 0, nil
	}
	in, err := dataio.InspectNPYFile(path)
	if err != nil {
		return nil, nil, 0, usageErrorf("%s: %s %s", name, flag, cleanErr(err))
	}
	if in.MemBytes <= maxMem {
		return nil, nil, 0, nil
	}
	if !in.Mappable {
		return nil, nil, 0, usageErrorf("%s: %s %s: X needs %d bytes in memory, more than --max-memory (%d bytes), and cannot be "+
			"used from disk because %s", name, flag, spec, in.MemBytes, maxMem, in.Why)
	}
	m, unmap, err := dataio.MapNPYFile(path)
	if err != nil {
		return nil, nil, 0, usageErrorf("%s: %s %s", name, flag, cleanErr(err))
	}
	passes, err := checkLoaded(cmd, flag, spec, m)
	if err != nil {
		unmap()
		return nil, nil, 0, err
	}
	return &m, unmap, passes, nil
}

func pathExt(p string) string {
	if i := strings.LastIndexByte(p, '.'); i >= 0 && !strings.ContainsRune(p[i:], '/') {
		return p[i:]
	}
	return ""
}

// ioCounters returns the bytes this process has had read from storage (read_bytes of
// /proc/self/io: page-cache misses, including those of memory-mapped files), or -1.
func ioReadBytes() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "read_bytes:"); ok {
			v, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// peakRSS returns the process's peak resident set size (VmHWM, file-backed pages of a
// mapped X included), or -1.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			fs := strings.Fields(rest)
			if len(fs) >= 1 {
				if kb, err := strconv.ParseInt(fs[0], 10, 64); err == nil {
					return kb << 10
				}
			}
		}
	}
	return -1
}

// checkPruneMemory refuses, before anything is allocated, a prune whose calibration
// activations and convolution patches need more than avail bytes (the memory available,
// as fit's --max-memory default; 0: unknown, no check), computed from the model's shapes
// (model.PruneBytes, a lower bound). The message gives the size needed, the memory
// available and what to reduce: the --calib rows (how many would fit), or --max-patch-mib
// when the patches alone are the problem.
func checkPruneMemory(cmd *cobra.Command, fl *pruneConfig, m model.Model, rows int, avail int64) error {
	if avail <= 0 {
		return nil
	}
	patch := int64(fl.maxPatchMiB) << 20
	if patch == 0 {
		patch = prune.DefaultMaxXBytes
	}
	need := m.PruneBytes(rows, patch)
	if need <= float64(avail) {
		return nil
	}
	// The most rows that fit (the bound grows with the rows).
	lo, hi := 0, rows
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if m.PruneBytes(mid, patch) <= float64(avail) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	var hint string
	switch {
	case lo >= 1:
		hint = fmt.Sprintf("reduce the --calib rows (at most about %d fit)", lo)
	case m.PruneBytes(1, 0) <= float64(avail):
		hint = fmt.Sprintf("lower --max-patch-mib (now %d) and the --calib rows", patch>>20)
	default:
		hint = fmt.Sprintf("one calibration sample alone needs %.3g GB: the model's activations are too large for this machine", m.PruneBytes(1, 0)/1e9)
	}
	return usageErrorf("%s: --model %s with --calib %s (%d rows): the calibration activations and patches need at least %.3g GB, "+
		"more than the %.3g GB of memory available (MemAvailable or the cgroup's limit); %s",
		cmd.Name(), fl.model, fl.calib, rows, need/1e9, float64(avail)/1e9, hint)
}

// leanGCPercent is the garbage collector's target (GOGC) while prune and demo run: the
// heap grows to (1 + leanGCPercent/100) times the live data between collections instead
// of twice it. Their large allocations are activations and patches, float64 slices
// without pointers, which a collection does not scan: a random-weight ResNet-20 (270k
// weights, 2000 MNIST images) pruned to 90% peaked at 2.98 GB with GOGC=100 and 1.91 GB
// with 25, in 24 s and 28 s (one run each, the machine shared).
const leanGCPercent = 25

// leanGC sets the garbage collector's target to leanGCPercent unless the environment sets
// GOGC, and returns the function that restores it.
func leanGC() func() {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	old := debug.SetGCPercent(leanGCPercent)
	return func() { debug.SetGCPercent(old) }
}
