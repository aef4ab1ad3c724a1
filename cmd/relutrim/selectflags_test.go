package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSelectFlags: an unknown --select or a --select-rows of 0 or below -1 is a usage
// error (exit 2) naming the flag, for prune and for demo (before the demo loads anything),
// and prune writes nothing; --select-rows 100 prunes on a 100-row sample and says so in
// the report's select_rows.
func TestSelectFlags(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "p.safetensors")
	base := []string{"prune", "--model", filepath.Join(smallDir, "small.safetensors"), "--calib", filepath.Join(smallDir, "calib_x.npy"),
		"--sparsity", "0.5", "--out", out, "--quiet"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{append(append([]string{}, base...), "--select", "obs"), `--select "obs"`},
		{append(append([]string{}, base...), "--select-rows", "0"), "--select-rows 0"},
		{append(append([]string{}, base...), "--select-rows", "-2"), "--select-rows -2"},
		{[]string{"demo", "--select", "obs"}, `--select "obs"`},
		{[]string{"demo", "--select-rows", "0"}, "--select-rows 0"},
	} {
		r := run(t, ".", c.args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 naming %s", c.args[len(c.args)-2:], r.code, r.stderr, c.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%v wrote %s", c.args, out)
		}
	}
	rep := filepath.Join(dir, "r.json")
	r := run(t, ".", append(append([]string{}, base...), "--select-rows", "100", "--report", rep)...)
	if r.code != 0 {
		t.Fatalf("--select-rows 100: exit %d: %s", r.code, r.stderr)
	}
	var report pruneReport
	readJSON(t, rep, &report)
	for _, l := range report.Layers {
		if l.SelectRows != 100 {
			t.Errorf("layer %s: select_rows %d, want 100", l.Key, l.SelectRows)
		}
	}
}
