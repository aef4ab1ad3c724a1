package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"relutrim/internal/mnist"
	prunemodel "relutrim/prune/model"
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
// Y = act(X U_true + b_true) + 0.1 N(0,1). X is streamed to disk and never held in memory.
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
	xw, err := createNPY(p.XPath, p.N, nx, p.F32)
	if err != nil {
		return err
	}
	Y := make([]float64, p.N*ny)
	xc := make([]float64, genChunk*nx)
	for lo := 0; lo < p.N; lo += genChunk {
		n := min(genChunk, p.N-lo)
		x := xc[:n*nx]
		for i := range x {
			x[i] = rng.NormFloat64()
			if p.F32 {
				x[i] = float64(float32(x[i])) // Y from the values actually stored
			}
		}
		for i := 0; i < n; i++ {
			row := x[i*nx : (i+1)*nx]
			for j := 0; j < ny; j++ {
				w := b[j]
				for k, xv := range row {
					w += xv * U[k*ny+j]
				}
				if p.Link == "relu" && w < 0 {
					w = 0
				}
				Y[(lo+i)*ny+j] = w + 0.1*rng.NormFloat64()
			}
		}
		if err := xw.write(x); err != nil {
			xw.f.Close()
			return err
		}
	}
	if err := xw.close(); err != nil {
		return err
	}
	return finishProblem(p, Y)
}

// finishProblem writes Y and sets lambda from lambda_max.
func finishProblem(p *problem, Y []float64) error {
	if err := writeNPY(p.YPath, Y, p.N, p.Ny, false); err != nil {
		return err
	}
	lm, err := lambdaMax(p.XPath, Y, p.Ny, p.Bias)
	if err != nil {
		return err
	}
	p.LambdaMax = lm
	p.Lambda = p.LambdaFrac * lm
	return nil
}

// lambdaMax returns max_{k,j} |sum_p x_pk (y_pj - c_j)| / N with c_j = mean_p y_pj when a
// bias is fitted (else 0). For the identity link this is exactly the smallest lambda with
// U = 0 optimal (scikit-learn's alpha_max). For the relu link it is the smallest lambda for
// which U = 0 with the fitted bias-only model b_j = mean(y_j) > 0 is stationary (the
// gradient of the loss in U there is X^T (b - y)/N since relu'(b) = 1).
func lambdaMax(xpath string, Y []float64, ny int, bias bool) (float64, error) {
	r, err := openNPY(xpath)
	if err != nil {
		return 0, err
	}
	defer r.close()
	n, nx := r.rows, r.cols
	if len(Y) != n*ny {
		return 0, fmt.Errorf("lambdaMax: Y has %d values, want %d x %d", len(Y), n, ny)
	}
	c := make([]float64, ny)
	if bias {
		for i := 0; i < n; i++ {
			for j := 0; j < ny; j++ {
				c[j] += Y[i*ny+j]
			}
		}
		for j := range c {
			c[j] /= float64(n)
		}
	}
	g := make([]float64, nx*ny)
	x := make([]float64, nx)
	for i := 0; i < n; i++ {
		if err := r.read(x); err != nil {
			return 0, err
		}
		for j := 0; j < ny; j++ {
			rj := Y[i*ny+j] - c[j]
			if rj == 0 {
				continue
			}
			for k, xv := range x {
				g[k*ny+j] += xv * rj
			}
		}
	}
	m := 0.0
	for _, v := range g {
		m = max(m, math.Abs(v))
	}
	return m / float64(n), nil
}

// objective evaluates F(U, b) = 1/(2N) sum ||act(U^T x + b) - y||^2 + lambda ||U||_1
// independently of every solver, streaming X from disk.
func objective(xpath, ypath string, U, B []float64, lambda float64, link string, bias bool) (float64, error) {
	xr, err := openNPY(xpath)
	if err != nil {
		return 0, err
	}
	defer xr.close()
	yr, err := openNPY(ypath)
	if err != nil {
		return 0, err
	}
	defer yr.close()
	n, nx, ny := xr.rows, xr.cols, yr.cols
	if yr.rows != n || len(U) != nx*ny || (bias && len(B) != ny) {
		return 0, fmt.Errorf("objective: shapes X %dx%d, Y %dx%d, len(U)=%d, len(B)=%d",
			n, nx, yr.rows, ny, len(U), len(B))
	}
	x := make([]float64, nx)
	y := make([]float64, ny)
	w := make([]float64, ny)
	loss := 0.0
	for i := 0; i < n; i++ {
		if err := xr.read(x); err != nil {
			return 0, err
		}
		if err := yr.read(y); err != nil {
			return 0, err
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
			d := wv - y[j]
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
	m, err := prunemodel.Load(model)
	if err != nil {
		return err
	}
	first := m.Layers[0]
	dir, err := mnist.Dir()
	if err != nil {
		p.Skip = err.Error()
		return nil
	}
	train, err := mnist.Load(dir, true)
	if err != nil {
		return err
	}
	d := first.In
	if d != 784 {
		return fmt.Errorf("%s: 0.weight takes %d inputs, images have 784 pixels", model, d)
	}
	if p.N > train.N {
		return fmt.Errorf("W: %d images requested, MNIST has %d", p.N, train.N)
	}
	X := train.X[:p.N*d]
	W0, b0 := first.W, first.B
	p.Nx, p.Ny = d, first.Out
	if p.F32 {
		for i := range X {
			X[i] = float64(float32(X[i]))
		}
	}
	Y := make([]float64, p.N*p.Ny)
	for i := 0; i < p.N; i++ {
		x := X[i*d : (i+1)*d]
		for j := 0; j < p.Ny; j++ {
			w := b0[j]
			wr := W0[j*d : (j+1)*d]
			for k, xv := range x {
				if xv != 0 {
					w += xv * wr[k]
				}
			}
			Y[i*p.Ny+j] = max(w, 0)
		}
	}
	if err := writeNPY(p.XPath, X, p.N, d, p.F32); err != nil {
		return err
	}
	return finishProblem(p, Y)
}
