package solver

import (
	"testing"

	"relutrim/internal/kern"
)

// TestThreadsCapped: Settings.Threads above kern.MaxThreads is capped (issue 22: ten
// million threads allocated a gather buffer each in the row sample's Gram and ran out of
// memory); small counts are kept.
func TestThreadsCapped(t *testing.T) {
	if got := (&Settings{Threads: 10_000_000}).withDefaults().Threads; got != kern.MaxThreads() {
		t.Errorf("Threads 10000000 -> %d, want kern.MaxThreads() = %d", got, kern.MaxThreads())
	}
	if got := (&Settings{Threads: 1}).withDefaults().Threads; got != 1 {
		t.Errorf("Threads 1 -> %d", got)
	}
}
