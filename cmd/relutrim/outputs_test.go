package main

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// copyFile copies src to dst (test inputs that a test may try to overwrite).
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fileBytes returns the content of path ("" if it does not exist).
func fileBytes(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// TestFitOutputsAllOrNothing: when one output of fit cannot be written (--report or
// --path-out is a FIFO, which is not a regular file), the run exits 1 and no output lands:
// an existing --out keeps its content and no temporary is left.
func TestFitOutputsAllOrNothing(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no FIFOs")
	}
	for _, bad := range []string{"--report", "--path-out"} {
		t.Run(bad, func(t *testing.T) {
			dir := t.TempDir()
			layer, rep, path := filepath.Join(dir, "layer.safetensors"), filepath.Join(dir, "r.json"), filepath.Join(dir, "p.csv")
			if err := os.WriteFile(layer, []byte("old layer"), 0o644); err != nil {
				t.Fatal(err)
			}
			fifo := map[string]string{"--report": rep, "--path-out": path}[bad]
			if err := syscall.Mkfifo(fifo, 0o644); err != nil {
				t.Fatal(err)
			}
			r := run(t, "testdata", "fit", "--x", "X.npy", "--y", "Y.npy", "--lambda", "0.02", "--lambda-path", "3",
				"--out", layer, "--report", rep, "--path-out", path)
			if r.code != 1 || !strings.Contains(r.stderr, bad) || !strings.Contains(r.stderr, "no output written") {
				t.Errorf("exit %d, stderr %q; want 1 naming %s", r.code, r.stderr, bad)
			}
			if got := fileBytes(layer); got != "old layer" {
				t.Errorf("--out was overwritten (%d bytes)", len(got))
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 2 { // layer.safetensors and the FIFO
				for _, e := range ents {
					t.Errorf("directory holds %s", e.Name())
				}
			}
		})
	}
}

// TestPruneOutputsAllOrNothing: a --plot that cannot be written leaves --out and --report
// as they were.
func TestPruneOutputsAllOrNothing(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no FIFOs")
	}
	dir := t.TempDir()
	model, rep, plot := filepath.Join(dir, "p.safetensors"), filepath.Join(dir, "r.json"), filepath.Join(dir, "c.png")
	os.WriteFile(model, []byte("old model"), 0o644)
	if err := syscall.Mkfifo(plot, 0o644); err != nil {
		t.Fatal(err)
	}
	args := append(smallArgs(), "--sparsity", "0.5", "--quiet", "--test-x", filepath.Join(smallDir, "test_x.npy"),
		"--test-y", filepath.Join(smallDir, "test_y.npy"), "--out", model, "--report", rep, "--plot", plot)
	r := run(t, ".", args...)
	if r.code != 1 || !strings.Contains(r.stderr, "--plot") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if got := fileBytes(model); got != "old model" {
		t.Errorf("--out was overwritten")
	}
	if _, err := os.Stat(rep); err == nil {
		t.Errorf("--report written although --plot failed")
	}
}

// TestEncodeJSONNonFinite: a report holding NaN or Inf cannot be encoded; the error names
// the flag and the value (runFit and runPrune encode the report before staging any output,
// so nothing is written; TestFitOutputsAllOrNothing checks that path end to end).
func TestEncodeJSONNonFinite(t *testing.T) {
	for _, v := range []float64{math.NaN(), math.Inf(1)} {
		_, err := encodeJSON(fitCmd, "--report", "r.json", &fitReport{F: v})
		if err == nil || !strings.Contains(err.Error(), "--report r.json") || !strings.Contains(err.Error(), "JSON cannot encode") {
			t.Errorf("F = %v: error %v", v, err)
		}
	}
	if _, err := encodeJSON(fitCmd, "--report", "r.json", &fitReport{F: 1}); err != nil {
		t.Error(err)
	}
}

// TestSameFileRefused: an output equal to an input or to another output is refused with
// exit 2 before anything is read or written, whether the paths are spelled alike, differ
// (./X.npy), go through a symlink or are hard links to one file.
func TestSameFileRefused(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"X.npy", "Y.npy"} {
		copyFile(t, filepath.Join("testdata", f), filepath.Join(dir, f))
	}
	if err := os.Symlink("Y.npy", filepath.Join(dir, "ylink.npy")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "X.npy"), filepath.Join(dir, "xhard.safetensors")); err != nil {
		t.Fatal(err)
	}
	xBefore, yBefore := fileBytes(filepath.Join(dir, "X.npy")), fileBytes(filepath.Join(dir, "Y.npy"))
	fit := []string{"fit", "--x", "X.npy", "--y", "Y.npy", "--lambda", "0.02"}
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"out is x", []string{"--out", "X.npy"}, []string{"--out X.npy is the same file as the input --x X.npy"}},
		{"out is ./y", []string{"--out", "./Y.npy"}, []string{"--out ./Y.npy", "input --y Y.npy"}},
		{"out is absolute x", []string{"--out", filepath.Join(dir, "X.npy")}, []string{"input --x"}},
		{"out symlinks to y", []string{"--out", "ylink.npy"}, []string{"--out ylink.npy", "input --y"}},
		{"out hard-links x", []string{"--out", "xhard.safetensors"}, []string{"--out xhard.safetensors", "input --x"}},
		{"report is out", []string{"--out", "l.safetensors", "--report", "./l.safetensors"}, []string{"--report ./l.safetensors is the same file as --out l.safetensors"}},
		{"report is x", []string{"--out", "l.safetensors", "--report", "X.npy"}, []string{"--report X.npy", "input --x"}},
		{"path-out is report", []string{"--out", "l.safetensors", "--report", "r.json", "--lambda-path", "3", "--path-out", "r.json"}, []string{"--path-out r.json is the same file as --report r.json"}},
		{"default path.csv is x", []string{"--out", "l.safetensors", "--lambda-path", "3"}, nil}, // control: path.csv is free
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := run(t, dir, append(fit, c.args...)...)
			if c.want == nil {
				if r.code != 0 {
					t.Errorf("exit %d: %s", r.code, r.stderr)
				}
				return
			}
			if r.code != 2 {
				t.Errorf("exit %d, want 2 (stderr %q)", r.code, r.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q lacks %q", r.stderr, w)
				}
			}
		})
	}
	if fileBytes(filepath.Join(dir, "X.npy")) != xBefore || fileBytes(filepath.Join(dir, "Y.npy")) != yBefore {
		t.Error("an input was modified")
	}
	t.Run("path.csv default equals x", func(t *testing.T) {
		d := t.TempDir()
		copyFile(t, filepath.Join("testdata", "Y.npy"), filepath.Join(d, "Y.npy"))
		// X saved as CSV under the name the default --path-out takes.
		copyFile(t, filepath.Join("testdata", "X.csv"), filepath.Join(d, "path.csv"))
		r := run(t, d, "fit", "--x", "path.csv", "--y", "Y.npy", "--lambda", "0.02", "--lambda-path", "3", "--out", "l.safetensors")
		if r.code != 2 || !strings.Contains(r.stderr, "--path-out") || !strings.Contains(r.stderr, "input --x path.csv") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("prune", func(t *testing.T) {
		d := t.TempDir()
		model := filepath.Join(d, "m.safetensors")
		copyFile(t, filepath.Join(smallDir, "small.safetensors"), model)
		before := fileBytes(model)
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"--out", model}, "--out " + model + " is the same file as the input --model"},
			{[]string{"--out", filepath.Join(d, "p.safetensors"), "--report", filepath.Join(smallDir, "calib_x.npy")}, "input --calib"},
			{[]string{"--out", filepath.Join(d, "p.safetensors"), "--report", filepath.Join(d, "p.safetensors")}, "--report " + filepath.Join(d, "p.safetensors") + " is the same file as --out"},
		} {
			args := []string{"prune", "--model", model, "--calib", filepath.Join(smallDir, "calib_x.npy"), "--sparsity", "0.5"}
			r := run(t, ".", append(args, c.args...)...)
			if r.code != 2 || !strings.Contains(r.stderr, c.want) {
				t.Errorf("%v: exit %d, stderr %q, want %q", c.args, r.code, r.stderr, c.want)
			}
		}
		if fileBytes(model) != before {
			t.Error("the model was modified")
		}
	})
}

// TestFitCleansStaleTemporary: a temporary of our naming left beside --out by a killed run
// (nobody holds its lock) is removed, with a warning, when the outputs are written.
func TestFitCleansStaleTemporary(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no flock")
	}
	dir := t.TempDir()
	stale := filepath.Join(dir, ".layer.safetensors.tmp-4242")
	os.WriteFile(stale, []byte("half a layer"), 0o644)
	r := run(t, "testdata", "fit", "--quiet", "--x", "X.npy", "--y", "Y.npy", "--lambda", "0.02", "--out", filepath.Join(dir, "layer.safetensors"))
	if r.code != 0 || !strings.Contains(r.stderr, "removed "+stale) {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("stale temporary still there")
	}
}

// TestSignalWhileWriting runs fit in this process and delivers SIGTERM after every output
// has been staged, just before they are renamed into place: the run must exit 130 with the
// interruption message and leave nothing behind (it used to ignore the signal and exit 0).
func TestSignalWhileWriting(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM")
	}
	dir := t.TempDir()
	defer func() { beforeCommit = func(context.Context) {} }()
	beforeCommit = func(ctx context.Context) {
		syscall.Kill(os.Getpid(), syscall.SIGTERM) // caught by execute's signal.NotifyContext
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			t.Error("SIGTERM did not cancel the context")
		}
	}
	var stdout, stderr bytes.Buffer
	code := execute([]string{"fit", "--quiet", "--x", "testdata/X.npy", "--y", "testdata/Y.npy", "--lambda", "0.02",
		"--out", filepath.Join(dir, "layer.safetensors"), "--report", filepath.Join(dir, "r.json")}, &stdout, &stderr)
	if code != 130 || !strings.Contains(stderr.String(), "interrupted; no output written") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
	assertEmptyDir(t, dir)
}
