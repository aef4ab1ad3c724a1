package solver

import (
	"math"
	"math/rand/v2"
)

// Shared generators and small helpers of the solver tests.

// plantedProblem is a seeded planted ReLU (or linear) problem: X Gaussian, a sparse U whose
// nonzero entries satisfy |u| >= uMin, bias bTrue, y = act(U^T x + b) + noise * N(0,1).
type plantedProblem struct {
	X, Y  Matrix
	U     []float64 // Nx x Ny, the planted weights
	B     []float64 // Ny
	Nx    int
	Ny, N int
}

// makePlanted draws a problem with about a fraction density of nonzeros per output (at
// least one per output), magnitudes uniform in [uMin, uMin+1], random signs.
func makePlanted(seed uint64, n, nx, ny int, density, uMin, noise float64, link Link) plantedProblem {
	r := rand.New(rand.NewPCG(seed, 42))
	pp := plantedProblem{N: n, Nx: nx, Ny: ny}
	pp.X = Matrix{Rows: n, Cols: nx, F64: make([]float64, n*nx)}
	for i := range pp.X.F64 {
		pp.X.F64[i] = r.NormFloat64()
	}
	pp.U = make([]float64, nx*ny)
	for j := 0; j < ny; j++ {
		nz := 0
		for k := 0; k < nx; k++ {
			if r.Float64() < density {
				pp.U[k*ny+j] = (uMin + r.Float64()) * sign(r.Float64()-0.5)
				nz++
			}
		}
		if nz == 0 {
			pp.U[r.IntN(nx)*ny+j] = uMin + 0.5
		}
	}
	pp.B = make([]float64, ny)
	for j := range pp.B {
		pp.B[j] = 0.2 * r.NormFloat64()
	}
	pp.Y = Matrix{Rows: n, Cols: ny, F64: make([]float64, n*ny)}
	for i := 0; i < n; i++ {
		for j := 0; j < ny; j++ {
			w := pp.B[j]
			for k := 0; k < nx; k++ {
				w += pp.X.F64[i*nx+k] * pp.U[k*ny+j]
			}
			if link == ReLU {
				w = math.Max(0, w)
			}
			pp.Y.F64[i*ny+j] = w + noise*r.NormFloat64()
		}
	}
	return pp
}

func sign(v float64) float64 {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

// relDiff is |a - b| / max(|b|, tiny).
func relDiff(a, b float64) float64 {
	return math.Abs(a-b) / math.Max(math.Abs(b), 1e-300)
}

// progressLog is a Recorder that keeps every Progress it receives.
type progressLog struct {
	inits int
	recs  []Progress
}

func (l *progressLog) Init() error { l.inits++; return nil }
func (l *progressLog) Record(p Progress) error {
	l.recs = append(l.recs, p)
	return nil
}

// bitwiseSame reports whether two results have exactly the same F, iteration counts, U and b.
func bitwiseSame(a, b *Result) bool {
	same := a.F == b.F && a.Iters == b.Iters && a.CCPIters == b.CCPIters
	for i := range a.U {
		same = same && a.U[i] == b.U[i]
	}
	for j := range a.B {
		same = same && a.B[j] == b.B[j]
	}
	return same
}
