package dataio

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// onlyReader hides every method but Read, so the reader cannot learn the stream's length
// (as with a pipe or FIFO).
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// patternStream is an .npy header for shape (rows, cols) of descr followed by body.
func patternStream(descr string, rows, cols int, body []byte) io.Reader {
	return onlyReader{io.MultiReader(bytes.NewReader(npyHeaderBytes(descr, []int{rows, cols})), bytes.NewReader(body))}
}

// allocated returns the bytes allocated while f runs.
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// TestStreamLyingHeader: a stream whose header claims 1e12 x 1e6 elements but delivers 40 MB
// fails as truncated after allocating little more than what arrived (limit: 1.25x the data
// plus the first chunk plus 4 MB of slack; the doubling-with-copy reader this replaced
// allocated 127 MB for the same stream, and its peak was 3x the data).
func TestStreamLyingHeader(t *testing.T) {
	defer func(g int) { growChunk = g }(growChunk)
	growChunk = 1 << 20 // 1 MiB first chunk, so growth is exercised on a small stream
	const sent = 40 << 20
	body := make([]byte, sent)
	for _, descr := range []string{"<f8", "<f4", "<i4", "|u1"} {
		var err error
		got := allocated(func() {
			_, err = ReadNPY(patternStream(descr, 1_000_000_000_000, 1_000_000, body), "fifo.npy")
		})
		if !errors.Is(err, ErrFormat) {
			t.Fatalf("%s: got %v, want a truncation error", descr, err)
		}
		limit := uint64(1.25*sent) + uint64(growChunk) + 4<<20
		if descr == "|u1" || descr == "<i4" {
			// Converted to float32/float64: the result is 4 or 2 times the bytes read
			// (int32 -> float64 doubles, uint8 -> float32 quadruples).
			limit = uint64(1.25*4*sent) + uint64(growChunk)*8 + 4<<20
		}
		t.Logf("%s: %.1f MB allocated for %d MB received", descr, float64(got)/1e6, sent>>20)
		if got > limit {
			t.Errorf("%s: allocated %d bytes for %d received, limit %d", descr, got, sent, limit)
		}
	}
}

// TestStreamUnknownLength: a complete stream of unknown length, spanning many chunks, reads
// back exactly (float64 direct, big-endian float32, int16 converted).
func TestStreamUnknownLength(t *testing.T) {
	defer func(g int) { growChunk = g }(growChunk)
	growChunk = 4096
	rows, cols := 1000, 37
	m := NewMatrix64("m", rows, cols)
	for i := range m.F64 {
		m.F64[i] = float64(i%1013) - 500
	}
	var buf bytes.Buffer
	if err := EncodeNPY(&buf, m); err != nil {
		t.Fatal(err)
	}
	got, err := ReadNPY(onlyReader{&buf}, "s.npy")
	if err != nil {
		t.Fatal(err)
	}
	if d := diffMatrix(m, got); d != "" {
		t.Error(d)
	}
	// int16 data, converted to float32 through the same chunks.
	body := make([]byte, 2*rows*cols)
	for i := 0; i < rows*cols; i++ {
		v := int16(i%1013 - 500)
		body[2*i], body[2*i+1] = byte(v), byte(uint16(v)>>8)
	}
	got, err = ReadNPY(patternStream("<i2", rows, cols, body), "s16.npy")
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got.F32 {
		if v != float32(i%1013-500) {
			t.Fatalf("element %d = %v", i, v)
		}
	}
}

// TestFIFOLyingHeader: the same through a real FIFO opened by path (ReadNPYFile, the CLI's
// path): a header claiming 1e12 x 1e6 float64 followed by 8 MB ends in a truncation error
// after allocating little more than what arrived.
func TestFIFOLyingHeader(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no FIFOs")
	}
	defer func(g int) { growChunk = g }(growChunk)
	growChunk = 1 << 20
	path := filepath.Join(t.TempDir(), "x.npy")
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	const sent = 8 << 20
	hdr, body := npyHeaderBytes("<f8", []int{1_000_000_000_000, 1_000_000}), make([]byte, sent) // before measuring
	go func() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		f.Write(hdr)
		f.Write(body)
	}()
	var err error
	got := allocated(func() { _, err = ReadNPYFile(path) })
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("got %v, want a truncation error", err)
	}
	if limit := uint64(1.25*sent) + uint64(growChunk) + 4<<20; got > limit {
		t.Errorf("allocated %d bytes for %d received, limit %d", got, sent, limit)
	}
}
