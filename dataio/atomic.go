package dataio

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// WriteFileAtomic creates or replaces the file at path with what write
// produces. The data goes to a temporary file in the same directory, which is
// flushed, fsynced and then renamed over path. If anything fails (including
// write itself, or a panic in write) the temporary file is removed and any
// existing file at path is left untouched.
//
// A new file gets mode 0644; a replaced file keeps its permission bits.
func WriteFileAtomic(path string, write func(w io.Writer) error) error {
	var o Outputs
	defer o.Discard()
	if err := o.Stage(path, write); err != nil {
		return err
	}
	return o.Commit()
}

// Outputs writes several files so that they appear together or not at all.
// Stage writes each file completely to a temporary file beside its target
// (".NAME.tmp-DIGITS", flushed and fsynced, and locked with flock(2) where
// the system has it, see CleanStale); Commit renames them all into place, in
// the order staged, once every one of them has been written; Discard removes
// whatever was staged and not committed. The zero value is ready to use.
//
// The renames are the only step after the last write; a failure among them
// (only possible if the directory changes under us) is reported with the
// files already in place named.
type Outputs struct {
	staged []*stagedFile
}

type stagedFile struct {
	path, tmp string
	f         *os.File // kept open (and locked) until committed or discarded
}

// tmpPattern is the os.CreateTemp pattern of the temporary file for base.
func tmpPattern(base string) string { return "." + base + ".tmp-*" }

// Stage writes what write produces to a temporary file for path. On error
// nothing is left behind for this path.
func (o *Outputs) Stage(path string, write func(w io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	mode := os.FileMode(0o644)
	if st, serr := os.Stat(path); serr == nil {
		if !st.Mode().IsRegular() {
			return fmt.Errorf("dataio: %s: not a regular file", path)
		}
		mode = st.Mode().Perm()
	}
	f, err := os.CreateTemp(dir, tmpPattern(base))
	if err != nil {
		return fmt.Errorf("dataio: %s: %w", path, err)
	}
	lockFile(f) // advisory: tells CleanStale this temporary has a live owner
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	fail := func(err error) error { return fmt.Errorf("dataio: writing %s: %w", path, err) }
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := write(bw); err != nil {
		return fail(err)
	}
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	if err := f.Chmod(mode); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	ok = true
	o.staged = append(o.staged, &stagedFile{path: path, tmp: tmp, f: f})
	return nil
}

// Commit renames every staged file into place and makes the renames durable.
// After Commit, Discard does nothing.
func (o *Outputs) Commit() error {
	staged := o.staged
	o.staged = nil
	var done []string
	for i, s := range staged {
		err := s.f.Close()
		if err == nil {
			err = os.Rename(s.tmp, s.path)
		}
		if err != nil {
			for _, r := range staged[i:] {
				r.f.Close()
				os.Remove(r.tmp)
			}
			if len(done) > 0 {
				return fmt.Errorf("dataio: writing %s: %w (already in place: %s)", s.path, err, strings.Join(done, ", "))
			}
			return fmt.Errorf("dataio: writing %s: %w", s.path, err)
		}
		done = append(done, s.path)
	}
	// Make the renames durable. Not every system can fsync a directory, and
	// the files are already in place, so failures here are ignored.
	synced := map[string]bool{}
	for _, s := range staged {
		dir := filepath.Dir(s.path)
		if synced[dir] {
			continue
		}
		synced[dir] = true
		if d, derr := os.Open(dir); derr == nil {
			_ = d.Sync()
			d.Close()
		}
	}
	return nil
}

// Discard removes the staged files that were not committed.
func (o *Outputs) Discard() {
	for _, s := range o.staged {
		s.f.Close()
		os.Remove(s.tmp)
	}
	o.staged = nil
}

// CleanStale removes the temporary files of path (".NAME.tmp-DIGITS" in its
// directory, the names Stage and WriteFileAtomic use) that no live process
// owns: a process killed by SIGKILL while writing leaves its temporary
// behind. Ownership is the flock(2) lock Stage holds until the rename, which
// the kernel drops when the owner dies; a temporary whose lock can be taken
// is stale. On systems without flock nothing is removed (see lockFile). It
// returns the names removed.
func CleanStale(path string) ([]string, error) {
	if !canLock {
		return nil, nil
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("dataio: %w", err)
	}
	prefix := "." + base + ".tmp-"
	var removed []string
	var errs []error
	for _, e := range ents {
		name := e.Name()
		digits, ok := strings.CutPrefix(name, prefix)
		if !ok || !e.Type().IsRegular() || !allDigits(digits) {
			continue
		}
		p := filepath.Join(dir, name)
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			continue // gone meanwhile, or not ours to touch
		}
		if tryLockFile(f) {
			if err := os.Remove(p); err == nil {
				removed = append(removed, p)
			} else if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		f.Close()
	}
	return removed, errors.Join(errs...)
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
