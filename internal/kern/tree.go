package kern

import "fmt"

// Chunk partials are combined by one fixed binary tree over the chunk indices (pairwise
// summation), never by a running sum: node (lo, size), size a power of two and lo a
// multiple of size, covers the chunks [lo, min(lo+size, nc)) of nc; a leaf (size 1) is the
// chunk's partial, and a larger node is merge(left child, right child), or its left child
// alone when the right one covers no chunk. The root is (0, R), R the smallest power of two
// >= nc. The tree depends on nc alone, so the result is bitwise the same for any number of
// worker goroutines and for any split of the chunks into contiguous ranges held by
// different processes: a process reduces its range [c0, c1) to its frontier, the maximal
// nodes that cover chunks of the range only (at most about 2 log2(nc) of them), and the
// root is evaluated from the frontiers of all ranges (Combine) in the same order.
// Pairwise summation also bounds the rounding error by O(log nc) instead of O(nc).

// Merge combines a node's children: left = left (+) right. nil means elementwise addition.
type Merge func(left, right []float64)

// Node is a node of the chunk tree and its value.
type Node struct {
	Lo, Size int
	V        []float64
}

// Tree reduces the partials of the chunks [c0, c1) of nc, pushed in chunk order, to their
// frontier nodes. Its buffers are reused across Resets (no garbage per reduction).
type Tree struct {
	c0, c1, nc, width int
	next              int // the next chunk to push
	merge             Merge
	stack             []Node
	free              [][]float64
}

// RootSize is the size of the root node for nc chunks: the smallest power of two >= nc.
func RootSize(nc int) int {
	r := 1
	for r < nc {
		r *= 2
	}
	return r
}

// Reset prepares t for the partials (width values each) of the chunks [c0, c1) of nc,
// combined by merge (nil: addition).
func (t *Tree) Reset(width, c0, c1, nc int, merge Merge) {
	if c0 < 0 || c1 < c0 || c1 > nc {
		panic(fmt.Sprintf("kern: Tree range [%d,%d) of %d chunks", c0, c1, nc))
	}
	for _, n := range t.stack {
		t.release(n.V)
	}
	t.stack = t.stack[:0]
	t.c0, t.c1, t.nc, t.width, t.next, t.merge = c0, c1, nc, width, c0, merge
}

// Width is the number of values per partial.
func (t *Tree) Width() int { return t.width }

// Range returns the chunk range [c0, c1) of nc that t reduces.
func (t *Tree) Range() (c0, c1, nc int) { return t.c0, t.c1, t.nc }

func (t *Tree) buf() []float64 {
	if n := len(t.free); n > 0 {
		b := t.free[n-1]
		t.free = t.free[:n-1]
		if cap(b) >= t.width {
			return b[:t.width]
		}
	}
	return make([]float64, t.width)
}

func (t *Tree) release(b []float64) { t.free = append(t.free, b) }

func (t *Tree) combine(left, right []float64) {
	if t.merge != nil {
		t.merge(left, right)
		return
	}
	right = right[:len(left)]
	for i, v := range right {
		left[i] += v
	}
}

// Push adds the partial p (Width values, copied) of the next chunk of the range.
func (t *Tree) Push(p []float64) {
	if t.next >= t.c1 {
		panic("kern: Tree.Push beyond the range")
	}
	b := t.buf()
	copy(b, p[:t.width])
	t.stack = append(t.stack, Node{Lo: t.next, Size: 1, V: b})
	t.next++
	t.mergeSiblings()
}

// mergeSiblings merges the top two nodes while they are the two children of one node.
func (t *Tree) mergeSiblings() {
	for len(t.stack) >= 2 {
		l, r := &t.stack[len(t.stack)-2], t.stack[len(t.stack)-1]
		if l.Size != r.Size || l.Lo%(2*l.Size) != 0 || l.Lo+l.Size != r.Lo {
			return
		}
		t.combine(l.V, r.V)
		l.Size *= 2
		t.release(r.V)
		t.stack = t.stack[:len(t.stack)-1]
	}
}

// Nodes returns the frontier of the range once every chunk of it has been pushed: the
// maximal nodes covering chunks of the range only, in increasing Lo. When the range ends
// at nc, nodes whose right child is empty are raised to their parents (same value); for the
// whole range [0, nc) the result is the root alone. The values stay owned by t (valid until
// the next Reset).
func (t *Tree) Nodes() []Node {
	if t.next != t.c1 {
		panic(fmt.Sprintf("kern: Tree.Nodes after %d of %d chunks", t.next-t.c0, t.c1-t.c0))
	}
	if t.c1 == t.nc {
		root := RootSize(t.nc)
		for len(t.stack) > 0 {
			top := &t.stack[len(t.stack)-1]
			if top.Size >= root || top.Lo%(2*top.Size) != 0 || top.Lo+top.Size < t.nc {
				break
			}
			top.Size *= 2 // right child empty: the parent has the same value
			t.mergeSiblings()
		}
	}
	return t.stack
}

// Root returns the value of the root once the whole range [0, nc) has been pushed.
func (t *Tree) Root() []float64 {
	if t.c0 != 0 || t.c1 != t.nc {
		panic("kern: Tree.Root of a partial range")
	}
	nodes := t.Nodes()
	if len(nodes) != 1 {
		panic(fmt.Sprintf("kern: Tree.Root: %d nodes", len(nodes)))
	}
	return nodes[0].V
}

// Frontier returns the (Lo, Size) of the frontier nodes of the chunks [c0, c1) of nc, as
// Tree.Nodes gives them, without the values: every process can compute every other's.
func Frontier(c0, c1, nc int) []Node {
	var out []Node
	var walk func(lo, size int)
	walk = func(lo, size int) {
		hi := min(lo+size, nc)
		if hi <= c0 || lo >= c1 || lo >= nc {
			return
		}
		if lo >= c0 && hi <= c1 {
			out = append(out, Node{Lo: lo, Size: size})
			return
		}
		walk(lo, size/2)
		walk(lo+size/2, size/2)
	}
	if c1 > c0 {
		walk(0, RootSize(nc))
	}
	return out
}

// Combine sets dst to the root value of the chunk tree over nc chunks from nodes, the
// frontiers of ranges that together cover [0, nc) (any order), merging as Tree does. The
// node values are not modified.
func Combine(dst []float64, nodes []Node, nc int, merge Merge) {
	byPos := make(map[[2]int][]float64, len(nodes))
	for _, n := range nodes {
		byPos[[2]int{n.Lo, n.Size}] = n.V
	}
	var t Tree
	t.width, t.merge = len(dst), merge
	var eval func(lo, size int, out []float64)
	eval = func(lo, size int, out []float64) {
		if v, ok := byPos[[2]int{lo, size}]; ok {
			copy(out, v)
			return
		}
		if size == 1 {
			panic(fmt.Sprintf("kern: Combine: chunk %d of %d is in no frontier", lo, nc))
		}
		eval(lo, size/2, out)
		if lo+size/2 < nc {
			r := t.buf()
			eval(lo+size/2, size/2, r)
			t.combine(out, r)
			t.release(r)
		}
	}
	eval(0, RootSize(nc), dst)
}

// TreeMulT is implemented by the dense matrices (NewDense64, NewDense32): X^T A (and the
// fused Pass) with the chunk partials pushed into a caller's Tree, so that a process holding some of the
// chunks of a larger X can combine them with the other processes' (Combine).
type TreeMulT interface {
	MulTTree(t *Tree, A []float64, k int)
	// PassTree is Matrix.Pass with the chunk partials of X^T A pushed into t.
	PassTree(t *Tree, B []float64, k, kt int, f PassFunc)
}
