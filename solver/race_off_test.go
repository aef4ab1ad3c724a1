//go:build !race

package solver

// raceEnabled: the race detector slows the solver about tenfold; long tests run a slice.
const raceEnabled = false
