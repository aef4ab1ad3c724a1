package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/* and the fixtures in testdata/")

// binary is the relutrim command built once by TestMain; the tests exec it as a user would.
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "relutrim-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "relutrim")
	build := exec.Command("go", append(append([]string{"build"}, buildTags...), "-o", binary, ".")...)
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building relutrim:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one run of the binary.
type result struct {
	stdout, stderr string
	code           int
}

// run executes the binary in dir (the working directory) with args.
func run(t *testing.T, dir string, args ...string) result {
	t.Helper()
	return runIn(t, dir, 0, args...)
}

// runIn is run that fails the test if the binary has not finished within d (0: no limit).
func runIn(t *testing.T, dir string, d time.Duration, args ...string) result {
	t.Helper()
	ctx := context.Background()
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("relutrim %v did not finish within %v", args, d)
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running relutrim %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// readJSON decodes the JSON file path into v.
func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestRootHelp: no subcommand prints the help and exits 0; an unknown one exits 2.
func TestRootHelp(t *testing.T) {
	r := run(t, ".")
	if r.code != 0 || !bytes.Contains([]byte(r.stdout), []byte("Available Commands:")) || !bytes.Contains([]byte(r.stdout), []byte("fit ")) {
		t.Errorf("relutrim: code %d, stdout %q", r.code, r.stdout)
	}
	r = run(t, ".", "frobnicate")
	if r.code != 2 || !bytes.Contains([]byte(r.stderr), []byte(`unknown command "frobnicate"`)) {
		t.Errorf("relutrim frobnicate: code %d, stderr %q", r.code, r.stderr)
	}
}

// expectUsageError asserts what every bad input must give: exit status 2, a message on
// stderr containing each of want, and nothing written to out.
func expectUsageError(t *testing.T, r result, want []string, out string) {
	t.Helper()
	if r.code != 2 {
		t.Errorf("exit status %d, want 2 (stderr %q)", r.code, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr %q does not contain %q", r.stderr, w)
		}
	}
	assertEmptyDir(t, out)
}

// TestLimitThreads: --threads n bounds GOMAXPROCS during the run (so it reaches the kernels'
// one-time CSR construction too) and the old value comes back afterwards.
func TestLimitThreads(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	restore := limitThreads(1)
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Errorf("GOMAXPROCS during --threads 1 = %d, want 1", got)
	}
	restore()
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Errorf("GOMAXPROCS after the run = %d, want %d", got, before)
	}
	restore = limitThreads(1 << 40) // a huge count is capped at the CPUs
	if got := runtime.GOMAXPROCS(0); got != runtime.NumCPU() {
		t.Errorf("GOMAXPROCS during --threads 2^40 = %d, want the %d CPUs", got, runtime.NumCPU())
	}
	restore()
	limitThreads(0)() // 0: all CPUs, nothing changes
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Errorf("GOMAXPROCS after --threads 0 = %d, want %d", got, before)
	}
}
