package dataio

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// writePatternNPY writes a rows x cols float32 .npy whose element at linear
// position k (in file order) is k % 1000, without holding the array in
// memory.
func writePatternNPY(path string, rows, cols int, fortran bool) error {
	const chunk = 16_000_000 // elements; a multiple of 1000
	buf := make([]float32, chunk)
	for i := range buf {
		buf[i] = float32(i % 1000)
	}
	return WriteFileAtomic(path, func(w io.Writer) error {
		hdr := npyHeaderBytes("<f4", []int{rows, cols})
		if fortran {
			hdr = []byte(strings.Replace(string(hdr), "False", "True ", 1))
		}
		if _, err := w.Write(hdr); err != nil {
			return err
		}
		for left := rows * cols; left > 0; left -= min(left, chunk) {
			if err := writeLE(w, buf[:min(left, chunk)]); err != nil {
				return err
			}
		}
		return nil
	})
}

func benchFile(b *testing.B, rows, cols int, fortran bool) string {
	path := filepath.Join(b.TempDir(), "bench.npy")
	if err := writePatternNPY(path, rows, cols, fortran); err != nil {
		b.Fatal(err)
	}
	return path
}

func BenchmarkReadNPYFloat32(b *testing.B) {
	path := benchFile(b, 1<<16, 256, false) // 64 MiB
	b.SetBytes(1 << 26)
	for b.Loop() {
		if _, err := ReadNPYFile(path); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadNPYFloat32Fortran(b *testing.B) {
	path := benchFile(b, 1<<14, 256, true) // 16 MiB
	b.SetBytes(1 << 24)
	for b.Loop() {
		if _, err := ReadNPYFile(path); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadCSV(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.csv")
	m := NewMatrix64("b", 20000, 20)
	for i := range m.F64 {
		m.F64[i] = float64(i) * 0.37
	}
	if err := WriteCSV(path, m, nil); err != nil {
		b.Fatal(err)
	}
	st, _ := os.Stat(path)
	b.SetBytes(st.Size())
	for b.Loop() {
		if _, err := ReadCSVFile(path); err != nil {
			b.Fatal(err)
		}
	}
}

// procStatusKB returns a field of /proc/self/status in kB.
func procStatusKB(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return -1
}

// TestLargeNPYChild is the loader half of TestLargeNPYLoad; it only runs in
// the child process that test starts, so its peak RSS is the loader's alone.
func TestLargeNPYChild(t *testing.T) {
	path := os.Getenv("DATAIO_BIG_FILE")
	if path == "" {
		t.Skip("runs only as a child of TestLargeNPYLoad")
	}
	before := procStatusKB("VmHWM")
	start := time.Now()
	m, err := ReadNPYFile(path)
	secs := time.Since(start).Seconds()
	after := procStatusKB("VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	fortran := os.Getenv("DATAIO_BIG_FORTRAN") == "1"
	// Spot-check values: file position k holds k % 1000.
	for _, ij := range [][2]int{{0, 0}, {0, 1}, {1, 0}, {m.Rows - 1, m.Cols - 1}, {m.Rows / 3, m.Cols / 2}, {m.Rows - 2, 3}} {
		i, j := ij[0], ij[1]
		k := i*m.Cols + j
		if fortran {
			k = j*m.Rows + i
		}
		if got, want := m.F32[i*m.Cols+j], float32(k%1000); got != want {
			t.Fatalf("(%d,%d) = %v, want %v", i, j, got, want)
		}
	}
	fmt.Printf("RESULT %d %.6f %d %d\n", int64(len(m.F32))*4, secs, before, after)
}

// TestLargeNPYLoad writes a ~1.5 GB float32 .npy to the temp directory,
// warms the page cache, and loads it in a child process, reporting GB/s and
// the loader's peak RSS increase. It is opt-in (it writes 1.5 GB and takes
// seconds): run it with DATAIO_BIG=1 go test ./dataio -run TestLargeNPYLoad -v.
// DATAIO_BIG_ROWS / DATAIO_BIG_COLS change the size; DATAIO_BIG_FORTRAN=1
// writes it in Fortran order.
func TestLargeNPYLoad(t *testing.T) {
	if os.Getenv("DATAIO_BIG") != "1" || raceEnabled || os.Getenv("DATAIO_BIG_FILE") != "" {
		t.Skip("large-file measurement: opt-in with DATAIO_BIG=1 (skipped under -race and in the child)")
	}
	rows, cols := envInt("DATAIO_BIG_ROWS", 1_500_000), envInt("DATAIO_BIG_COLS", 250)
	fortran := os.Getenv("DATAIO_BIG_FORTRAN") == "1"
	path := filepath.Join(t.TempDir(), "big.npy")
	if err := writePatternNPY(path, rows, cols, fortran); err != nil {
		t.Fatal(err)
	}
	// Warm the page cache.
	if f, err := os.Open(path); err == nil {
		io.Copy(io.Discard, bufio.NewReaderSize(f, 1<<22))
		f.Close()
	}
	for run := 1; run <= 2; run++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLargeNPYChild$", "-test.v")
		cmd.Env = append(os.Environ(), "DATAIO_BIG_FILE="+path)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		var nbytes, before, after int64
		var secs float64
		found := false
		for _, line := range strings.Split(string(out), "\n") {
			if _, err := fmt.Sscanf(line, "RESULT %d %f %d %d", &nbytes, &secs, &before, &after); err == nil {
				found = true
			}
		}
		if !found {
			t.Fatalf("no result from child:\n%s", out)
		}
		ratio := float64((after-before)*1024) / float64(nbytes)
		t.Logf("run %d: %dx%d float32 fortran=%v: %.2f GB in %.3f s = %.2f GB/s; peak RSS %d MB -> %d MB, increase %.3fx the array",
			run, rows, cols, fortran, float64(nbytes)/1e9, secs, float64(nbytes)/1e9/secs, before/1024, after/1024, ratio)
		if ratio > 1.2 {
			t.Errorf("peak RSS increase %.3fx the array size, want <= 1.2x", ratio)
		}
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
