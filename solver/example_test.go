package solver_test

import (
	"context"
	"fmt"
	"math/rand/v2"

	"relutrim/solver"
)

// ExampleFit fits a two-output ReLU layer to data generated from a sparse planted layer
// (outputs relu(2 x0 - 1) and relu(-x2 + 0.5), no noise) and prints the status and which
// weights are nonzero; the planted zeros stay exactly zero.
func ExampleFit() {
	const n, nx, ny = 200, 3, 2
	r := rand.New(rand.NewPCG(1, 2)) // PCG is specified exactly: the same data everywhere
	X := solver.Matrix{Rows: n, Cols: nx, F64: make([]float64, n*nx)}
	Y := solver.Matrix{Rows: n, Cols: ny, F64: make([]float64, n*ny)}
	for i := 0; i < n; i++ {
		for k := 0; k < nx; k++ {
			X.F64[i*nx+k] = 2*r.Float64() - 1
		}
		x := X.F64[i*nx : (i+1)*nx]
		Y.F64[i*ny] = max(0, 2*x[0]-1)
		Y.F64[i*ny+1] = max(0, -x[2]+0.5)
	}
	res, err := solver.Fit(context.Background(), X, Y, 1e-3, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println("status:", res.Status)
	for k := 0; k < nx; k++ {
		fmt.Printf("x%d: %v %v\n", k, res.U[k*ny] != 0, res.U[k*ny+1] != 0)
	}
	fmt.Println("lower bound <= F:", res.LowerBound <= res.F)
	// Output:
	// status: converged
	// x0: true false
	// x1: false false
	// x2: false true
	// lower bound <= F: true
}
