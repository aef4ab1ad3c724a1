package main

import (
	"strings"
	"testing"
)

// TestDemoOutput: the demo's table reaches stdout whole (header, separator, rows, total, in
// that order and nothing between them), and progress goes to stderr only: per-layer lines
// with --verbose, nothing when stderr is not a terminal without it. (The demo used to print
// its header, then a dozen per-layer lines, then the rows.) By default the table ends with
// a 2:4 row and the neuron line follows it; --nm none --neurons 0 leaves both out.
func TestDemoOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo twice on a reduced configuration (about 10 s each)")
	}
	args := []string{"demo", "--calib-rows", "50", "--test-rows", "100", "--levels", "0.9"}
	for _, variant := range []string{"", "--verbose", "--nm none"} {
		verbose := variant == "--verbose"
		a := append(args, strings.Fields(variant)...)
		want := []string{"relutrim demo:", "calibration:", "dense test accuracy:", "", "| sparsity |", "|---|", "| 90% |", "| 2:4 (N:M) |", "", "neurons: 50% of hidden units removed", "", "total time"}
		if variant == "--nm none" {
			a = append(a, "--neurons", "0")
			want = []string{"relutrim demo:", "calibration:", "dense test accuracy:", "", "| sparsity |", "|---|", "| 90% |", "", "total time"}
		}
		r := run(t, ".", a...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d: %s", a, r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != len(want) {
			t.Fatalf("%v: stdout has %d lines, want %d:\n%s", a, len(lines), len(want), r.stdout)
		}
		for i, w := range want {
			if !strings.HasPrefix(lines[i], w) || w == "" && lines[i] != "" {
				t.Errorf("%v: stdout line %d is %q, want it to start with %q", a, i+1, lines[i], w)
			}
		}
		hasLayers := strings.Contains(r.stderr, "layer 0:") && strings.Contains(r.stderr, "layer 4:")
		if verbose && !hasLayers {
			t.Errorf("--verbose: stderr %q has no per-layer lines", r.stderr)
		}
		if !verbose && r.stderr != "" {
			t.Errorf("without --verbose (stderr not a terminal): stderr %q, want nothing", r.stderr)
		}
	}
}

// TestDemoCNNResNetExclusive: --cnn and --resnet together are a usage error (exit 2) naming
// both flags, before the demo loads anything.
func TestDemoCNNResNetExclusive(t *testing.T) {
	r := run(t, ".", "demo", "--cnn", "--resnet")
	if r.code != 2 || !strings.Contains(r.stderr, "--cnn and --resnet exclude each other") {
		t.Errorf("demo --cnn --resnet: exit %d, stderr %q; want exit 2 naming both flags", r.code, r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("demo --cnn --resnet: stdout %q, want nothing", r.stdout)
	}
}
