package solver

import (
	"context"
	"math"
	"slices"
	"time"
)

// What the two inner solvers (newton.go, admm_ccp.go) share: the interface through which
// Prepared.Fit drives them, the mask, the start, and the best point per output.

// inner is an inner solver of the CCP.
type inner interface {
	// run is one CCP run from the standardised start z0: it returns the best point per
	// output, its F per output, and the status; counts accumulate in res.
	run(ctx context.Context, st *Settings, z0 []float64, res *Result, start time.Time) ([]float64, []float64, Status, error)
	// coldStart returns the start of the first run when z0 is the default cold start (no
	// InitU or InitB): Newton solves a large fit on its row sample first (coarseStart),
	// the ADMM starts from z0.
	coldStart(ctx context.Context, st *Settings, z0 []float64, res *Result, start time.Time) ([]float64, error)
	// residuals returns the per-output state of the last run that Result reports: the
	// ADMM's rho and residuals; nil for Newton (run adds its KKT residual to res.DualRes).
	residuals() *outputResiduals
}

// newMask returns the fit's mask (p x ny, false = coordinate fixed at 0) from Settings.Mask
// (Nx x Ny): a copy with the bias row free. nil (no mask) stays nil.
func newMask(m []bool, g *design, ny int) []bool {
	if m == nil {
		return nil
	}
	mask := make([]bool, g.p*ny)
	copy(mask, m)
	for j := 0; j < ny && g.bias; j++ {
		mask[g.nx*ny+j] = true
	}
	return mask
}

// applyMask sets the masked coordinates of z to 0.
func applyMask(z []float64, mask []bool) {
	if mask == nil {
		return
	}
	for i := range z {
		if !mask[i] {
			z[i] = 0
		}
	}
}

// isZero reports whether every entry of z is 0: a cold start (U = 0, b = 0), whose first
// majoriser is solved to RemajorizeTol times the tolerances before the first
// re-majorisation (docs/method.md, section 2).
func isZero(z []float64) bool {
	for _, v := range z {
		if v != 0 {
			return false
		}
	}
	return true
}

// bestPoint is the best point found per output (p x ny) and its F per output: the outputs
// are separate problems, so each keeps its own best.
type bestPoint struct {
	z, f []float64
	ny   int
}

// newBestPoint starts from copies of z and f.
func newBestPoint(z, f []float64, ny int) *bestPoint {
	return &bestPoint{z: append([]float64(nil), z...), f: append([]float64(nil), f...), ny: ny}
}

// offer takes output j of z when fj is below its best F.
func (b *bestPoint) offer(j int, z []float64, fj float64) {
	if fj < b.f[j] {
		b.f[j] = fj
		b.take(j, z)
	}
}

// offerAll takes all of z when the sum of f is below the best sum (outputs coupled by the
// group penalty).
func (b *bestPoint) offerAll(z, f []float64) {
	if sum(f) < sum(b.f) {
		copy(b.z, z)
		copy(b.f, f)
	}
}

// keep merges the result (zs, fs) of a later start, output by output, and returns the
// outputs it took. A later start must win by more than rounding (1e-9 relative), so that
// ties keep the first start's exact zeros.
func (b *bestPoint) keep(zs, fs []float64) (taken []int) {
	for j := range b.f {
		if fs[j] < b.f[j]-1e-9*math.Abs(b.f[j]) {
			b.f[j] = fs[j]
			b.take(j, zs)
			taken = append(taken, j)
		}
	}
	return taken
}

// take copies output j's column of z.
func (b *bestPoint) take(j int, z []float64) {
	for k := 0; k < len(b.z)/b.ny; k++ {
		b.z[k*b.ny+j] = z[k*b.ny+j]
	}
}

// outputResiduals are the ADMM's per-output penalty rho and scaled primal and dual
// residuals.
type outputResiduals struct{ rho, pri, dua []float64 }

// clone returns a copy (nil for nil).
func (r *outputResiduals) clone() *outputResiduals {
	if r == nil {
		return nil
	}
	return &outputResiduals{slices.Clone(r.rho), slices.Clone(r.pri), slices.Clone(r.dua)}
}

// take copies output j's values from o (nothing for nil).
func (r *outputResiduals) take(j int, o *outputResiduals) {
	if r == nil {
		return
	}
	r.rho[j], r.pri[j], r.dua[j] = o.rho[j], o.pri[j], o.dua[j]
}
