package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"relutrim/dataio"
	lampath "relutrim/fit"
	"relutrim/internal/mnist"
	"relutrim/solver"
)

// problem is one benchmark instance, materialised as X.npy / Y.npy in Dir.
type problem struct {
	Name       string  `json:"name"`
	Desc       string  `json:"desc"`
	N          int     `json:"N"`
	Nx         int     `json:"Nx"`
	Ny         int     `json:"Ny"`
	Link       string  `json:"link"`
	Bias       bool    `json:"bias"`
	F32        bool    `json:"x_float32"`
	LambdaMax  float64 `json:"lambda_max"`
	LambdaFrac float64 `json:"lambda_frac"`
	Lambda     float64 `json:"lambda"`
	TrueNNZ    int     `json:"true_nnz,omitempty"`
	Dir        string  `json:"dir"`
	XPath      string  `json:"x"`
	YPath      string  `json:"y"`
	Skip       string  `json:"skip,omitempty"`
}

// XBytes is the size of X's data (the .npy payload, and the float64 or float32 X a
// method holds): the unit of the peak/X memory column.
func (p *problem) XBytes() int64 {
	size := int64(8)
	if p.F32 {
		size = 4
	}
	return int64(p.N) * int64(p.Nx) * size
}

type spec struct {
	N, Nx, Ny int
	link      string
	frac      float64
	desc      string
}

// specs returns the problem sizes; quick shrinks them for a smoke run.
func specs(quick bool) map[string]spec {
	if quick {
		return map[string]spec{
			"S":  {2000, 20, 1, "relu", 0.05, "planted relu, small (quick)"},
			"M":  {20000, 50, 5, "relu", 0.05, "planted relu, medium (quick)"},
			"L":  {50000, 100, 10, "relu", 0.05, "planted relu, large (quick)"},
			"LS": {20000, 50, 5, "identity", 0.05, "planted linear = multi-output Lasso (quick)"},
			"W":  {2000, 784, 300, "relu", 0.1, "MNIST first layer of lenet300100 (quick)"},
		}
	}
	return map[string]spec{
		"S":  {20000, 50, 1, "relu", 0.05, "planted relu, small"},
		"M":  {200000, 100, 10, "relu", 0.05, "planted relu, medium"},
		"L":  {1000000, 100, 10, "relu", 0.05, "planted relu, large"},
		"LS": {200000, 100, 10, "identity", 0.05, "planted linear = multi-output Lasso"},
		"W":  {10000, 784, 300, "relu", 0.1, "MNIST first layer of lenet300100"},
	}
}

const genChunk = 4096

// genPlanted writes a planted problem: X ~ N(0,1) (N x Nx), U_true with each entry nonzero
// with probability 0.15 (at least one per output) and N(0,1) values, b_true ~ 0.1 N(0,1),
// Y = act(X U_true + b_true) + 0.1 N(0,1). X is held once (float32 with -f32), written and
// dropped before any method runs.
func genPlanted(p *problem, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, uint64(len(p.Name))*0x9e3779b97f4a7c15))
	nx, ny := p.Nx, p.Ny
	U := make([]float64, nx*ny)
	for j := 0; j < ny; j++ {
		any := false
		for k := 0; k < nx; k++ {
			if rng.Float64() < 0.15 {
				U[k*ny+j] = rng.NormFloat64()
				any = true
			}
		}
		if !any {
			U[rng.IntN(nx)*ny+j] = rng.NormFloat64()
		}
	}
	for _, v := range U {
		if v != 0 {
			p.TrueNNZ++
		}
	}
	b := make([]float64, ny)
	for j := range b {
		b[j] = 0.1 * rng.NormFloat64()
	}
	X := dataio.NewMatrix64(p.XPath, p.N, nx)
	if p.F32 {
		X = dataio.NewMatrix32(p.XPath, p.N, nx)
	}
	Y := dataio.NewMatrix64(p.YPath, p.N, ny)
	x := make([]float64, genChunk*nx)
	// The random stream per chunk (its X values, then the noise of its rows) is that of
	// the earlier streaming generator, so the problems did not change.
	for lo := 0; lo < p.N; lo += genChunk {
		n := min(genChunk, p.N-lo)
		xc := x[:n*nx]
		for i := range xc {
			xc[i] = rng.NormFloat64()
			if p.F32 {
				xc[i] = float64(float32(xc[i])) // Y from the values actually stored
			}
		}
		if p.F32 {
			for i, v := range xc {
				X.F32[lo*nx+i] = float32(v)
			}
		} else {
			copy(X.F64[lo*nx:], xc)
		}
		for i := 0; i < n; i++ {
			row := xc[i*nx : (i+1)*nx]
			for j := 0; j < ny; j++ {
				w := b[j]
				for k, xv := range row {
					w += xv * U[k*ny+j]
				}
				if p.Link == "relu" && w < 0 {
					w = 0
				}
				Y.F64[(lo+i)*ny+j] = w + 0.1*rng.NormFloat64()
			}
		}
	}
	return finishProblem(p, X, Y)
}

// finishProblem writes X and Y and sets lambda = frac * fit.LambdaMax (package relutrim/fit).
func finishProblem(p *problem, X, Y dataio.Matrix) error {
	if err := dataio.WriteNPY(p.XPath, X); err != nil {
		return err
	}
	if err := dataio.WriteNPY(p.YPath, Y); err != nil {
		return err
	}
	link := solver.ReLU
	if p.Link == "identity" {
		link = solver.Identity
	}
	p.LambdaMax, _ = lampath.LambdaMax(solverMatrix(X), solverMatrix(Y), link, !p.Bias)
	p.Lambda = p.LambdaFrac * p.LambdaMax
	return nil
}

// solverMatrix views a dataio matrix as a solver matrix (no copy).
func solverMatrix(m dataio.Matrix) solver.Matrix {
	return solver.Matrix{Rows: m.Rows, Cols: m.Cols, F64: m.F64, F32: m.F32}
}

// objective evaluates F(U, b) = 1/(2N) sum ||act(U^T x + b) - y||^2 + lambda ||U||_1 in
// float64, independently of every solver (U is Nx x Ny row-major).
func objective(X, Y dataio.Matrix, U, B []float64, lambda float64, link string, bias bool) (float64, error) {
	n, nx, ny := X.Rows, X.Cols, Y.Cols
	if Y.Rows != n || len(U) != nx*ny || (bias && len(B) != ny) {
		return 0, fmt.Errorf("objective: shapes X %dx%d, Y %dx%d, len(U)=%d, len(B)=%d",
			n, nx, Y.Rows, ny, len(U), len(B))
	}
	x := make([]float64, nx)
	w := make([]float64, ny)
	loss := 0.0
	for i := 0; i < n; i++ {
		if X.F32 != nil {
			for k, v := range X.F32[i*nx : (i+1)*nx] {
				x[k] = float64(v)
			}
		} else {
			x = X.F64[i*nx : (i+1)*nx]
		}
		for j := range w {
			w[j] = 0
			if bias {
				w[j] = B[j]
			}
		}
		for k, xv := range x {
			if xv == 0 {
				continue
			}
			u := U[k*ny : (k+1)*ny]
			for j, uv := range u {
				w[j] += xv * uv
			}
		}
		for j, wv := range w {
			if link == "relu" && wv < 0 {
				wv = 0
			}
			d := wv - Y.At(i, j)
			loss += d * d
		}
	}
	l1 := 0.0
	for _, v := range U {
		l1 += math.Abs(v)
	}
	return loss/(2*float64(n)) + lambda*l1, nil
}

// --- W: the first layer of the bundled MNIST model ---

// genMNIST builds W: X = first N MNIST training images / 255, Y = relu(X W0^T + b0) with
// the first layer ("0.weight" 300x784, "0.bias") of internal/models/lenet300100.safetensors.
func genMNIST(p *problem, root string) error {
	model := filepath.Join(root, "internal", "models", "lenet300100.safetensors")
	if _, err := os.Stat(model); err != nil {
		p.Skip = "model " + model + " not found"
		return nil
	}
	W0, b0, err := firstLayer(model)
	if err != nil {
		return err
	}
	dir, err := mnist.Dir()
	if err != nil {
		p.Skip = err.Error()
		return nil
	}
	train, err := mnist.Load(dir, true)
	if err != nil {
		return err
	}
	d := W0.Cols
	if d != 784 {
		return fmt.Errorf("%s: 0.weight takes %d inputs, images have 784 pixels", model, d)
	}
	if p.N > train.N {
		return fmt.Errorf("problem W: %d images requested, MNIST has %d", p.N, train.N)
	}
	p.Nx, p.Ny = d, W0.Rows
	X := dataio.Matrix{Name: p.XPath, Rows: p.N, Cols: d, F64: train.X[:p.N*d]}
	if p.F32 {
		X = dataio.NewMatrix32(p.XPath, p.N, d)
		for i, v := range train.X[:p.N*d] {
			X.F32[i] = float32(v)
		}
	}
	Y := dataio.NewMatrix64(p.YPath, p.N, p.Ny)
	x := make([]float64, d)
	for i := 0; i < p.N; i++ {
		for k := range x {
			x[k] = X.At(i, k)
		}
		for j := 0; j < p.Ny; j++ {
			w := b0.At(j, 0)
			for k, xv := range x {
				if xv != 0 {
					w += xv * W0.At(j, k)
				}
			}
			Y.F64[i*p.Ny+j] = max(w, 0)
		}
	}
	return finishProblem(p, X, Y)
}

// firstLayer reads the tensors "0.weight" (out x in) and "0.bias" (out) of a safetensors
// state_dict.
func firstLayer(path string) (W, b dataio.Matrix, err error) {
	ts, err := dataio.ReadSafetensors(path)
	if err != nil {
		return W, b, err
	}
	wt, okw := ts["0.weight"]
	bt, okb := ts["0.bias"]
	if !okw || !okb {
		return W, b, fmt.Errorf("%s: no tensors 0.weight and 0.bias", path)
	}
	if W, err = dataio.TensorMatrix(wt, path+": 0.weight"); err != nil {
		return W, b, err
	}
	if b, err = dataio.TensorMatrix(bt, path+": 0.bias"); err != nil {
		return W, b, err
	}
	if W.Vector || b.Rows != W.Rows || b.Cols != 1 {
		return W, b, fmt.Errorf("%s: 0.weight is %dx%d, 0.bias has %d values", path, W.Rows, W.Cols, b.Len())
	}
	return W, b, nil
}
