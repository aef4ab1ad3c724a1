//go:build mpi

package main

// The MPI integration tests (build tag mpi; scripts/test.sh runs them with
// `go test -tags mpi ./cmd/relutrim -run MPI`): relutrim started by mpirun on this machine
// (--oversubscribe, loopback), compared with the same binary run as one process, the
// reference: its output file must be byte for byte the same for K = 1, 2, 3 processes, on
// the rows of one file and on shards. The failure cases must end every process with the
// same non-zero status, a message naming the problem, and no output file.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"relutrim/dataio"
	"relutrim/internal/kern"
)

var buildTags = []string{"-tags", "mpi"}

// runMPI runs `mpirun -np k relutrim args...` in dir. Every process's exit status is
// written by a shell wrapper to status-RANK in dir and returned; mpirun does not abort the
// job when one process exits non-zero (so that every process's status can be seen), except
// when abortOnFailure (a process killed by a signal ends the job either way).
func runMPI(t *testing.T, dir string, k int, env []string, args ...string) (result, []string) {
	return runMPIOpt(t, dir, k, true, env, args...)
}

// runMPIOpt is runMPI; without wrap, relutrim runs directly under mpirun's default
// behaviour (a failing or killed process aborts the job; mpirun's status is the first
// failing process's) and no statuses are returned.
func runMPIOpt(t *testing.T, dir string, k int, wrap bool, env []string, args ...string) (result, []string) {
	t.Helper()
	mpirun, err := exec.LookPath("mpirun")
	if err != nil {
		t.Fatal("mpirun not found (apt-get install openmpi-bin libopenmpi-dev)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	wrapper := `"$0" "$@"; s=$?; echo $s > status-$OMPI_COMM_WORLD_RANK; exit $s`
	full := []string{"--oversubscribe", "--bind-to", "none", "--mca", "btl", "self,vader,tcp", "--mca", "btl_tcp_if_include", "lo", "-np", fmt.Sprint(k)}
	if wrap {
		full = append(full, "--mca", "orte_abort_on_non_zero_status", "0", "/bin/sh", "-c", wrapper)
	}
	full = append(append(full, binary), args...)
	cmd := exec.CommandContext(ctx, mpirun, full...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("mpirun -np %d relutrim %v did not finish within 120 s\nstderr %s", k, args, errb.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if !wrap {
		return result{out.String(), errb.String(), code}, nil
	}
	statuses := make([]string, k)
	for r := range statuses {
		b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("status-%d", r)))
		statuses[r] = strings.TrimSpace(string(b))
		os.Remove(filepath.Join(dir, fmt.Sprintf("status-%d", r)))
	}
	return result{out.String(), errb.String(), code}, statuses
}

// writeShards writes rows [lo[r], lo[r+1]) of the .npy file src to name-r.npy in dir.
func writeShards(t *testing.T, dir, src, name string, lo []int) {
	t.Helper()
	m, err := dataio.ReadNPYFile(src)
	if err != nil {
		t.Fatal(err)
	}
	for r := 0; r+1 < len(lo); r++ {
		if err := dataio.WriteNPY(filepath.Join(dir, fmt.Sprintf("%s-%d.npy", name, r)), rowsOf(m, lo[r], lo[r+1], true)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMPIFitBitwise: the layer written by mpirun -np K (K = 1, 2, 3) is byte for byte the
// one the single-process run writes (its F, lambda and status are in its metadata too),
// for the rows of one file and for chunk-aligned shards, on a small problem and on one
// large enough for the Hessian's row sample and the coarse start (N >= 40000); and the
// report counts the processes and their collectives.
func TestMPIFitBitwise(t *testing.T) {
	for _, c := range []struct {
		name      string
		n, nx, ny int
		f32       bool
		extra     []string
	}{
		{"small", 5000, 8, 3, false, nil},
		{"f32-linear", 5000, 8, 2, true, []string{"--linear"}},
		{"sample", 41000, 6, 2, false, nil},
		{"sparsity-path", 5000, 8, 3, false, []string{"--sparsity", "0.5", "--lambda-path", "4"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			oocData(t, dir, c.n, c.nx, c.ny, c.f32, 1, true)
			args := func(x, y, out string) []string {
				a := []string{"fit", "--x", x, "--y", y, "--threads", "1", "--out", out, "--quiet"}
				if !slices.Contains(c.extra, "--sparsity") {
					a = append(a, "--lambda", "0.01")
				}
				return append(a, c.extra...)
			}
			if r := run(t, dir, args("X.npy", "Y.npy", "single.safetensors")...); r.code != 0 {
				t.Fatalf("single process: exit %d: %s", r.code, r.stderr)
			}
			want, err := os.ReadFile(filepath.Join(dir, "single.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			check := func(label, out string, k int, r result, st []string) {
				t.Helper()
				if r.code != 0 {
					t.Fatalf("%s: exit %d (process statuses %v)\nstderr %s", label, r.code, st, r.stderr)
				}
				got, err := os.ReadFile(filepath.Join(dir, out))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s: %s differs from the single-process output", label, out)
				}
			}
			for k := 1; k <= 3; k++ {
				out := fmt.Sprintf("k%d.safetensors", k)
				a := append(args("X.npy", "Y.npy", out), "--report", fmt.Sprintf("k%d.json", k))
				r, st := runMPI(t, dir, k, nil, a...)
				check(fmt.Sprintf("K=%d", k), out, k, r, st)
				var rep fitReport
				b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("k%d.json", k)))
				if err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(b, &rep); err != nil {
					t.Fatal(err)
				}
				if rep.Processes != k || rep.MPI == nil || len(rep.MPI.Rows) != k || rep.MPI.Calls == 0 || !rep.MPI.ChunkAligned || rep.N != c.n {
					t.Errorf("K=%d: report processes %d, mpi %+v, N %d", k, rep.Processes, rep.MPI, rep.N)
				}
			}
			lo := kern.SplitRows(c.n, 3)
			writeShards(t, dir, filepath.Join(dir, "X.npy"), "xs", lo)
			writeShards(t, dir, filepath.Join(dir, "Y.npy"), "ys", lo)
			r, st := runMPI(t, dir, 3, nil, args("xs-%d.npy", "ys-%d.npy", "shards.safetensors")...)
			check("shards", "shards.safetensors", 3, r, st)
		})
	}
}

// TestMPIFailures: a shard that cannot be read, shards that disagree on Nx or on dtype, a
// NaN in one process's rows, and a process killed mid-run: every process ends with the
// same non-zero status (the killed one by its signal), stderr names the problem, and no
// output file appears.
func TestMPIFailures(t *testing.T) {
	dir := t.TempDir()
	oocData(t, dir, 5000, 8, 3, false, 1, true)
	lo := kern.SplitRows(5000, 3)
	writeShards(t, dir, filepath.Join(dir, "X.npy"), "xs", lo)
	writeShards(t, dir, filepath.Join(dir, "Y.npy"), "ys", lo)
	x, _ := dataio.ReadNPYFile(filepath.Join(dir, "X.npy"))
	for r := 0; r < 3; r++ {
		b := rowsOf(x, lo[r], lo[r+1], true)
		nx := b
		if r == 1 { // 7 columns instead of 8
			nx = dataio.NewMatrix64("x", b.Rows, 7)
			for i := 0; i < b.Rows; i++ {
				copy(nx.F64[i*7:(i+1)*7], b.F64[i*8:i*8+7])
			}
		}
		dt := b
		if r == 2 {
			dt = dataio.NewMatrix32("x", b.Rows, 8)
			for i, v := range b.F64 {
				dt.F32[i] = float32(v)
			}
		}
		for name, m := range map[string]dataio.Matrix{"nx": nx, "dt": dt} {
			if err := dataio.WriteNPY(filepath.Join(dir, fmt.Sprintf("%s-%d.npy", name, r)), m); err != nil {
				t.Fatal(err)
			}
		}
	}
	nan := x
	nan.F64 = slices.Clone(x.F64)
	nan.F64[3000*8+5] = math.NaN() // row 3000: process 1's block (rows 2048..4095)
	if err := dataio.WriteNPY(filepath.Join(dir, "Xnan.npy"), nan); err != nil {
		t.Fatal(err)
	}
	// mpirun's own status is the failing processes' (2 for bad input), without the wrapper.
	if r, _ := runMPIOpt(t, dir, 3, false, nil, "fit", "--x", "nx-%d.npy", "--y", "ys-%d.npy", "--lambda", "0.01", "--out", "o.safetensors"); r.code != 2 {
		t.Errorf("mpirun exit %d on shards with different Nx, want 2\n%s", r.code, r.stderr)
	}
	for _, c := range []struct {
		name   string
		k      int
		env    []string
		x, y   string
		status string // every process's exit status ("" for the killed run)
		msg    []string
	}{
		{"missing-shard", 4, nil, "xs-%d.npy", "ys-%d.npy", "2", []string{"process 3: fit: --x xs-3.npy: no such file"}},
		{"nx-mismatch", 3, nil, "nx-%d.npy", "ys-%d.npy", "2", []string{"--x nx-1.npy (process 1) has 7 columns but nx-0.npy (process 0) has 8"}},
		{"dtype-mismatch", 3, nil, "dt-%d.npy", "ys-%d.npy", "2", []string{"--x dt-2.npy (process 2) is float32 but dt-0.npy (process 0) is float64"}},
		{"nan-row", 2, nil, "Xnan.npy", "Y.npy", "2", []string{"process 1: fit: --x Xnan.npy: row 3000, column 5 (0-based) is not finite (NaN)"}},
		{"killed", 2, []string{"RELUTRIM_MPI_TEST_KILL=1:2"}, "X.npy", "Y.npy", "", []string{"killing itself", "exited on signal 9"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := c.name + ".safetensors"
			args := []string{"fit", "--x", c.x, "--y", c.y, "--lambda", "0.01", "--threads", "1", "--out", out}
			// With the wrapper (every process's status; mpirun's own is then 0), except for the
			// killed process: its signal must reach mpirun, which then ends the others.
			r, st := runMPIOpt(t, dir, c.k, c.status != "", c.env, args...)
			if c.status == "" && r.code == 0 {
				t.Errorf("mpirun exit 0, want failure")
			}
			if c.status != "" {
				for rank, s := range st {
					if s != c.status {
						t.Errorf("process %d exited with %q, want %s (statuses %v)", rank, s, c.status, st)
					}
				}
			}
			for _, m := range c.msg {
				if !strings.Contains(r.stderr, m) {
					t.Errorf("stderr lacks %q:\n%s", m, r.stderr)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, out)); err == nil {
				t.Errorf("%s was written", out)
			}
		})
	}
}

// TestMPIOutputIsShard (issue 22): an output that is one of the %d shards, of any process,
// is refused by every process with exit 2 before anything runs, and no shard changes (it
// used to exit 0 and replace the shard with the output).
func TestMPIOutputIsShard(t *testing.T) {
	dir := t.TempDir()
	oocData(t, dir, 5000, 8, 3, false, 1, true) // not tiny: the Newton solver runs across processes
	lo := kern.SplitRows(5000, 2)
	writeShards(t, dir, filepath.Join(dir, "X.npy"), "xs", lo)
	writeShards(t, dir, filepath.Join(dir, "Y.npy"), "ys", lo)
	before := map[string]string{}
	for _, f := range []string{"xs-0.npy", "xs-1.npy", "ys-0.npy", "ys-1.npy"} {
		before[f] = fileBytes(filepath.Join(dir, f))
	}
	for _, c := range []struct {
		outs []string
		want string
	}{
		{[]string{"--out", "ys-1.npy"}, "--out ys-1.npy is the same file as the input --y ys-1.npy"},
		{[]string{"--out", "ys-0.npy"}, "--out ys-0.npy is the same file as the input --y ys-0.npy"},
		{[]string{"--out", "o.safetensors", "--report", "xs-1.npy"}, "--report xs-1.npy is the same file as the input --x xs-1.npy"},
	} {
		args := append([]string{"fit", "--x", "xs-%d.npy", "--y", "ys-%d.npy", "--lambda", "0.01", "--threads", "1"}, c.outs...)
		r, st := runMPI(t, dir, 2, nil, args...)
		for rank, s := range st {
			if s != "2" {
				t.Errorf("%v: process %d exited with %q, want 2 (stderr %s)", c.outs, rank, s, r.stderr)
			}
		}
		if !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: stderr lacks %q:\n%s", c.outs, c.want, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, "o.safetensors")); err == nil {
			t.Errorf("%v: o.safetensors was written", c.outs)
		}
	}
	for f, b := range before {
		if fileBytes(filepath.Join(dir, f)) != b {
			t.Errorf("shard %s was changed", f)
		}
	}
}
