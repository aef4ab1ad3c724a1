//go:build !mpi

package main

import (
	"strings"
	"testing"
)

// buildTags are the build tags of the binary the CLI tests run (those of the test).
var buildTags []string

// TestShardPatternWithoutMPI: a %d shard pattern in the default build is a usage error
// that says how to get MPI, and nothing is written.
func TestShardPatternWithoutMPI(t *testing.T) {
	dir := t.TempDir()
	r := run(t, dir, "fit", "--x", "shard-%d.npy", "--y", "y-%d.npy", "--lambda", "0.1", "--out", "o.safetensors")
	if r.code != 2 || !strings.Contains(r.stderr, "built without MPI") || !strings.Contains(r.stderr, "-tags mpi") {
		t.Errorf("exit %d, stderr %q; want 2 and a message about building with -tags mpi", r.code, r.stderr)
	}
}
