package kern

import "testing"

// TestSplitRows: blocks on chunk boundaries, covering all rows, as even as chunks allow.
func TestSplitRows(t *testing.T) {
	for _, c := range []struct{ n, k int }{{5000, 3}, {200000, 2}, {1024, 1}, {3000, 3}, {20000, 7}} {
		lo := SplitRows(c.n, c.k)
		if lo[0] != 0 || lo[c.k] != c.n || !ChunkAligned(lo) {
			t.Errorf("SplitRows(%d, %d) = %v", c.n, c.k, lo)
		}
		for r := 0; r < c.k; r++ {
			if d := lo[r+1] - lo[r]; d <= 0 || d > (nChunks(c.n)/c.k+1)*ChunkRows {
				t.Errorf("SplitRows(%d, %d) = %v: block %d has %d rows", c.n, c.k, lo, r, d)
			}
		}
	}
}
