package dataio

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func writeString(s string) func(io.Writer) error {
	return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestOutputsAllOrNothing: staged files are invisible until Commit, a failure while staging
// the second file leaves the first target untouched after Discard, and Commit puts all of
// them in place.
func TestOutputsAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt")
	if err := os.WriteFile(a, []byte("old a"), 0o644); err != nil {
		t.Fatal(err)
	}
	var o Outputs
	if err := o.Stage(a, writeString("new a")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := o.Stage(b, func(io.Writer) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	if got, _ := os.ReadFile(a); string(got) != "old a" {
		t.Errorf("a = %q before commit", got)
	}
	o.Discard()
	if names := dirNames(t, dir); !slices.Equal(names, []string{"a.txt"}) {
		t.Errorf("after Discard the directory holds %v", names)
	}

	var o2 Outputs
	for _, p := range []string{a, b} {
		if err := o2.Stage(p, writeString("v2 "+filepath.Base(p))); err != nil {
			t.Fatal(err)
		}
	}
	if names := dirNames(t, dir); len(names) != 3 { // a.txt and two temporaries
		t.Errorf("while staged the directory holds %v", names)
	}
	if err := o2.Commit(); err != nil {
		t.Fatal(err)
	}
	o2.Discard() // no-op after Commit
	for _, p := range []string{a, b} {
		if got, _ := os.ReadFile(p); string(got) != "v2 "+filepath.Base(p) {
			t.Errorf("%s = %q", p, got)
		}
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{"a.txt", "b.txt"}) {
		t.Errorf("after Commit the directory holds %v", names)
	}
}

// TestCleanStaleKeepsLiveTemporaries: a temporary staged by a live Outputs (locked) survives
// CleanStale; an unlocked one with our naming is removed; files with other names are kept.
func TestCleanStaleKeepsLiveTemporaries(t *testing.T) {
	if !canLock {
		t.Skip("no flock on this system: CleanStale removes nothing")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "layer.safetensors")
	stale := filepath.Join(dir, ".layer.safetensors.tmp-123456")
	others := []string{".layer.safetensors.tmp-12x", ".other.tmp-1", "layer.safetensors.tmp-1"}
	for _, n := range append(others, filepath.Base(stale)) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var o Outputs
	defer o.Discard()
	if err := o.Stage(out, writeString("live")); err != nil {
		t.Fatal(err)
	}
	removed, err := CleanStale(out)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{stale}) {
		t.Errorf("removed %v, want only %s", removed, stale)
	}
	if err := o.Commit(); err != nil {
		t.Fatalf("commit after CleanStale: %v", err)
	}
	want := append(slices.Clone(others), "layer.safetensors")
	slices.Sort(want)
	if names := dirNames(t, dir); !slices.Equal(names, want) {
		t.Errorf("directory holds %v, want %v", names, want)
	}
}

// TestStageChild is the child half of TestCleanStaleAfterSIGKILL: it stages a file, says so
// on stdout and waits to be killed.
func TestStageChild(t *testing.T) {
	out := os.Getenv("DATAIO_STAGE_CHILD")
	if out == "" {
		t.Skip("runs only as a child of TestCleanStaleAfterSIGKILL")
	}
	var o Outputs
	if err := o.Stage(out, writeString("partial")); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("STAGED\n")
	time.Sleep(time.Minute)
}

// TestCleanStaleAfterSIGKILL: a process killed with SIGKILL while its output is staged leaves
// the temporary behind; CleanStale keeps it while the process lives and removes it after.
func TestCleanStaleAfterSIGKILL(t *testing.T) {
	if !canLock || runtime.GOOS == "windows" {
		t.Skip("needs flock and SIGKILL")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out.npy")
	cmd := exec.Command(os.Args[0], "-test.run=^TestStageChild$")
	cmd.Env = append(os.Environ(), "DATAIO_STAGE_CHILD="+out)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	buf := make([]byte, 7)
	if _, err := io.ReadFull(stdout, buf); err != nil || string(buf) != "STAGED\n" {
		t.Fatalf("child: %q %v", buf, err)
	}
	if removed, _ := CleanStale(out); len(removed) != 0 {
		t.Fatalf("removed the live child's temporary %v", removed)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	names := dirNames(t, dir)
	if len(names) != 1 || !strings.HasPrefix(names[0], ".out.npy.tmp-") {
		t.Fatalf("after SIGKILL the directory holds %v, want one temporary", names)
	}
	removed, err := CleanStale(out)
	if err != nil || len(removed) != 1 {
		t.Fatalf("CleanStale after SIGKILL: removed %v, %v", removed, err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("directory still holds %v", names)
	}
}
