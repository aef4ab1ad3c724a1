package kern

import (
	"runtime"
	"testing"
)

// TestWorkers: a worker count is at least 1, at most the work and at most MaxThreads (four
// per CPU), whatever was asked for (issue 22: --threads 10000000).
func TestWorkers(t *testing.T) {
	for _, c := range []struct{ threads, work, want int }{
		{1, 10, 1},
		{3, 10, min(3, MaxThreads())},
		{10_000_000, 5, 5},
		{10_000_000, 1 << 40, MaxThreads()},
		{0, 1 << 40, min(runtime.GOMAXPROCS(0), MaxThreads())},
		{4, 0, 1},
	} {
		if got := Workers(c.threads, c.work); got != c.want {
			t.Errorf("Workers(%d, %d) = %d, want %d", c.threads, c.work, got, c.want)
		}
	}
	if MaxThreads() != 4*runtime.NumCPU() {
		t.Errorf("MaxThreads() = %d, want 4 x %d CPUs", MaxThreads(), runtime.NumCPU())
	}
}
