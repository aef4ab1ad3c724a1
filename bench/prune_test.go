package main

import (
	"strings"
	"testing"
)

// TestReplaceSection: -prune-results appends the section to a file without one and
// replaces an earlier run's section in place, leaving the rest of the file as it was.
func TestReplaceSection(t *testing.T) {
	sec1 := sectionBegin + "\nrun 1\n" + sectionEnd + "\n"
	sec2 := sectionBegin + "\nrun 2\n" + sectionEnd + "\n"
	doc := "# results\n\nsolver table\n"
	d1 := replaceSection(doc, sec1)
	if d1 != doc+"\n"+sec1 {
		t.Fatalf("appended:\n%q", d1)
	}
	d2 := replaceSection(d1+"\nlater text\n", sec2)
	if want := doc + "\n" + sec2 + "\nlater text\n"; d2 != want {
		t.Fatalf("replaced:\n%q\nwant\n%q", d2, want)
	}
	if got := replaceSection("", sec1); got != sec1 {
		t.Fatalf("new file: %q", got)
	}
}

// TestPruneSection: the table has one row per model and level, the split from relutrim's
// keep counts, the time ratio relutrim / SparseGPT, and "-" for a method that failed (with
// the failure listed under the table).
func TestPruneSection(t *testing.T) {
	rel := &pruneOut{Keep: []int{10, 50}, Sizes: []int{100, 100}, Accuracy: 0.9812, Seconds: 35.5, PeakRSSKB: 246 << 10, Dense: 0.9832}
	sg := &pruneOut{Keep: []int{10, 50}, Sizes: []int{100, 100}, Accuracy: 0.9663, Seconds: 0.5, PeakRSSKB: 92 << 10}
	r := &pruneRun{Date: "2026-12-07T00:00:00Z", CPU: "cpu", Cores: 2, Rows: []pruneRow{
		{Model: "mlp", Level: 0.9, Methods: map[string]*pruneOut{"relutrim": rel, "sparsegpt": sg}},
		{Model: "mlp", Pattern: "2:4", Methods: map[string]*pruneOut{"relutrim": rel}, Errors: map[string]string{"sparsegpt": "exit status 1"}},
	}}
	s := pruneSection(r)
	for _, want := range []string{
		"| mlp | 90% | 90.0 / 50.0 | 98.12% | 96.63% | 35.50 s | 0.50 s | 71.0x | 246 MB | 92 MB |",
		"| mlp | 2:4 | 90.0 / 50.0 | 98.12% | - | 35.50 s | - | - | 246 MB | - |",
		"- mlp 2:4, sparsegpt: exit status 1", "dense test accuracy: mlp 98.32%", "2 logical cores",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("section lacks %q:\n%s", want, s)
		}
	}
	if !strings.HasPrefix(s, sectionBegin) || !strings.HasSuffix(s, sectionEnd+"\n") {
		t.Errorf("section not between the markers:\n%s", s)
	}
}
