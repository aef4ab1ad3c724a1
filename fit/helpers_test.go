package fit

import (
	"math"
	"math/rand/v2"

	"relutrim/solver"
)

// planted returns a ReLU regression problem y = relu(X U* + 0.1) + noise with a 20%-dense
// U* (Nx x Ny) and standard normal X.
func planted(n, nx, ny int, noise float64, seed uint64) (solver.Matrix, solver.Matrix) {
	r := rand.New(rand.NewPCG(seed, 7))
	X := solver.Matrix{Rows: n, Cols: nx, F64: make([]float64, n*nx)}
	for i := range X.F64 {
		X.F64[i] = r.NormFloat64()
	}
	return X, plantedY(X, ny, noise, r)
}

func toF32(m solver.Matrix) solver.Matrix {
	out := solver.Matrix{Rows: m.Rows, Cols: m.Cols, F32: make([]float32, len(m.F64))}
	for i, v := range m.F64 {
		out.F32[i] = float32(v)
	}
	return out
}

func maxOf(v []float64) float64 {
	m := math.Inf(-1)
	for _, x := range v {
		m = math.Max(m, x)
	}
	return m
}

// plantedY draws a 20%-dense U* (Nx x Ny) from r and returns Y = relu(X U* + 0.1) + noise.
func plantedY(X solver.Matrix, ny int, noise float64, r *rand.Rand) solver.Matrix {
	n, nx := X.Rows, X.Cols
	U := make([]float64, nx*ny)
	for i := range U {
		if r.Float64() < 0.2 {
			U[i] = r.NormFloat64()
		}
	}
	Y := solver.Matrix{Rows: n, Cols: ny, F64: make([]float64, n*ny)}
	for i := 0; i < n; i++ {
		for j := 0; j < ny; j++ {
			w := 0.1
			for k := 0; k < nx; k++ {
				w += X.F64[i*nx+k] * U[k*ny+j]
			}
			Y.F64[i*ny+j] = math.Max(0, w) + noise*r.NormFloat64()
		}
	}
	return Y
}
