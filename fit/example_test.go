package fit_test

import (
	"context"
	"fmt"
	"math/rand/v2"

	"relutrim/fit"
	"relutrim/solver"
)

// ExampleEngine walks a short warm-started lambda path on a planted ReLU layer: 400 samples,
// 8 inputs, 2 outputs, each output reading 2 of the inputs. At lambda_max every weight is
// zero; as lambda decreases the planted weights enter first.
func ExampleEngine() {
	const n, nx, ny = 400, 8, 2
	r := rand.New(rand.NewPCG(3, 4)) // PCG is specified exactly: the same data everywhere
	X := solver.Matrix{Rows: n, Cols: nx, F64: make([]float64, n*nx)}
	Y := solver.Matrix{Rows: n, Cols: ny, F64: make([]float64, n*ny)}
	for i := 0; i < n; i++ {
		x := X.F64[i*nx : (i+1)*nx]
		for k := range x {
			x[k] = r.NormFloat64()
		}
		Y.F64[i*ny] = max(0, x[0]-0.5*x[1]+0.2)
		Y.F64[i*ny+1] = max(0, 2*x[5]+x[6])
	}
	e, err := fit.NewEngine(X, Y, &solver.Settings{}) // ReLU link with a bias
	if err != nil {
		panic(err)
	}
	lmax, _ := e.LambdaMax()
	var from *fit.Point // nil: the first solve starts from U = 0
	for _, frac := range []float64{1, 0.5, 0.1, 0.01} {
		pt, err := e.Solve(context.Background(), frac*lmax, from)
		if err != nil {
			panic(err)
		}
		fmt.Printf("lambda = %-4g lambda_max: %s, nonzeros per output %v\n", frac, pt.Status, pt.NonzerosOut)
		from = &pt
	}
	// Output:
	// lambda = 1    lambda_max: converged, nonzeros per output [0 0]
	// lambda = 0.5  lambda_max: converged, nonzeros per output [1 2]
	// lambda = 0.1  lambda_max: converged, nonzeros per output [2 2]
	// lambda = 0.01 lambda_max: converged, nonzeros per output [2 2]
}
