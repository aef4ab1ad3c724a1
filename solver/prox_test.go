package solver

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

// surrogateCase is one row of the table of surrogates in docs/method.md (section 2), written
// out here from the table's formulas (not from prox.go's generic form), so that it is an
// independent reference for surrogateValue and proxSurrogate.
type surrogateCase struct {
	name string
	z    float64                 // the table's switch point (c = y always)
	g    func(w float64) float64 // the table's surrogate, up to the constant fixed below
}

// tableCases returns the surrogates of that table for one target y: for y <= 0 only "f
// itself"; for y > 0 the two majorisers and the relaxation.
func tableCases(y float64) []surrogateCase {
	if y <= 0 {
		return []surrogateCase{{"y<=0", 0, func(w float64) float64 { return sq(math.Max(0, w) - y) }}}
	}
	return []surrogateCase{
		{"upper(w0>=0)", math.Inf(-1), func(w float64) float64 { return sq(w - y) }},
		{"lower(w0<0)", 2 * y, func(w float64) float64 {
			if w <= 2*y {
				return y * y
			}
			return y*y + w*w - 2*w*y
		}},
		{"relax", y, func(w float64) float64 {
			if w <= y {
				return 0
			}
			return sq(w - y)
		}},
	}
}

func sq(v float64) float64 { return v * v }

// bruteProx minimises phi(t) = g(t) + (s/2)(t - r)^2 over [lo, hi] by a uniform grid of
// 20001 points followed by golden section on the bracket [best - h, best + h] around the
// best grid point (phi is strictly convex, so the bracket contains the minimiser).
func bruteProx(g func(float64) float64, r, s, lo, hi float64) float64 {
	phi := func(t float64) float64 { return g(t) + s/2*sq(t-r) }
	const m = 20000
	h := (hi - lo) / m
	best, bv := lo, math.Inf(1)
	for i := 0; i <= m; i++ {
		t := lo + float64(i)*h
		if v := phi(t); v < bv {
			best, bv = t, v
		}
	}
	return golden(phi, best-h, best+h, 200)
}

// golden minimises a unimodal function on [a, b] by golden-section search.
func golden(f func(float64) float64, a, b float64, iters int) float64 {
	const ig = 0.6180339887498949
	c, d := b-ig*(b-a), a+ig*(b-a)
	fc, fd := f(c), f(d)
	for it := 0; it < iters && b-a > 0; it++ {
		if fc <= fd {
			b, d, fd = d, c, fc
			c = b - ig*(b-a)
			fc = f(c)
		} else {
			a, c, fc = c, d, fd
			d = a + ig*(b-a)
			fd = f(d)
		}
	}
	return (a + b) / 2
}

// TestSurrogateZMatchesTable: surrogateZ and relaxZ return the table's switch points.
func TestSurrogateZMatchesTable(t *testing.T) {
	for _, y := range []float64{-2, -1e-3, 0, 1e-3, 0.7, 5} {
		for _, upper := range []bool{false, true} {
			want := 0.0
			switch {
			case y <= 0:
			case upper:
				want = math.Inf(-1)
			default:
				want = 2 * y
			}
			if got := surrogateZ(y, upper); got != want {
				t.Errorf("surrogateZ(%v, %v) = %v, table says %v", y, upper, got, want)
			}
		}
		want := math.Max(0, y) // relaxation: z = y for y > 0; f itself (z = 0) for y <= 0
		if got := relaxZ(y); got != want {
			t.Errorf("relaxZ(%v) = %v, want %v", y, got, want)
		}
	}
}

// TestProxMatchesBruteForce: proxSurrogate(r, s, z, c=y) against a brute-force minimisation
// of g(t) + (s/2)(t - r)^2 with g from the table (grid + golden section), for random y, s
// and every surrogate case, with r left of z, in [z, r_U], right of r_U and on both
// boundaries.
func TestProxMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	checked := map[string]int{}
	for trial := 0; trial < 60; trial++ {
		y := 4 * (rng.Float64() - 0.5) // y in [-2, 2]: both signs
		if trial%10 == 0 {
			y = 0 // the boundary of the case split
		}
		s := math.Pow(10, 4*rng.Float64()-2) // s in [1e-2, 1e2]: steps over four decades
		for _, sc := range tableCases(y) {
			var rs []float64
			region := []string{}
			if math.IsInf(sc.z, -1) {
				// Complete quadratic: t = (s r + 2y)/(s + 2) for every r.
				for i := 0; i < 4; i++ {
					rs = append(rs, 6*(rng.Float64()-0.5))
					region = append(region, "any")
				}
			} else {
				rU := (sc.z*(s+2) - 2*y) / s // (s rU + 2c)/(s + 2) = z
				rs = append(rs, sc.z-0.1-2*rng.Float64(), sc.z, sc.z+rng.Float64()*(rU-sc.z), rU, rU+0.1+2*rng.Float64())
				region = append(region, "r<z", "r=z", "z<r<rU", "r=rU", "r>rU")
			}
			for i, r := range rs {
				got := proxSurrogate(r, s, sc.z, y)
				// The minimiser lies between r and the minimisers of g, all of which are
				// within [min(r, z, y) - 1, max(r, z, y) + 1].
				lo, hi := math.Min(r, y)-1, math.Max(r, y)+1
				if !math.IsInf(sc.z, -1) {
					lo, hi = math.Min(lo, sc.z-1), math.Max(hi, sc.z+1)
				}
				want := bruteProx(sc.g, r, s, lo, hi)
				// Golden section brackets the minimiser to ~1e-12 in t; the objective is
				// flat to second order there, so compare t with 1e-7 (relative to the
				// interval size) - a wrong branch of the closed form is off by O(1).
				if math.Abs(got-want) > 1e-7*(hi-lo) {
					t.Errorf("%s y=%.4g s=%.4g z=%.4g r=%.6g (%s): prox %.12g, brute force %.12g",
						sc.name, y, s, sc.z, r, region[i], got, want)
				}
				// Second, independent check by optimality: phi(got) <= phi at the grid's
				// best, up to rounding.
				phi := func(t float64) float64 { return sc.g(t) + s/2*sq(t-r) }
				if phi(got) > phi(want)+1e-12*(1+math.Abs(phi(want))) {
					t.Errorf("%s y=%.4g s=%.4g r=%.6g: phi(prox)=%.15g > phi(brute)=%.15g", sc.name, y, s, r, phi(got), phi(want))
				}
				checked[sc.name+"/"+region[i]]++
			}
		}
	}
	// Every case x region was exercised.
	keys := make([]string, 0, len(checked))
	for k := range checked {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) != 3*5+1 { // y<=0, lower, relax: 5 regions each; upper: 1
		t.Errorf("cases exercised: %v", keys)
	}
}

// TestSurrogatesBoundTheTerm: every majoriser (surrogateValue with surrogateZ(y, upper), the
// case chosen by the sign of w0) is >= f(w) = (max(0,w) - y)^2 on a grid and equals f at
// w0; surrogateValue agrees with the table's formula; the relaxation (relaxZ) is <= f,
// convex, and equals the lower convex hull of f computed independently from the grid.
func TestSurrogatesBoundTheTerm(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	f := func(w, y float64) float64 { return sq(math.Max(0, w) - y) }
	const L, m = 8.0, 4000 // grid [-L, L], spacing 4e-3: covers w0 and y in [-3, 3] with margin
	grid := make([]float64, m+1)
	for i := range grid {
		grid[i] = -L + 2*L*float64(i)/m
	}
	for trial := 0; trial < 40; trial++ {
		y := 6 * (rng.Float64() - 0.5)
		w0 := 6 * (rng.Float64() - 0.5)
		if trial%8 == 0 {
			w0 = 0 // w0 = 0 belongs to the "w0 >= 0" case
		}
		z := surrogateZ(y, w0 >= 0)
		// Exactness at w0.
		if g := surrogateValue(w0, z, y); math.Abs(g-f(w0, y)) > 1e-12*(1+f(w0, y)) {
			t.Errorf("y=%.4g w0=%.4g: surrogate(w0)=%.15g != f(w0)=%.15g", y, w0, g, f(w0, y))
		}
		ref := tableCases(y)[0]
		if y > 0 {
			if w0 >= 0 {
				ref = tableCases(y)[0]
			} else {
				ref = tableCases(y)[1]
			}
		}
		for _, w := range grid {
			g := surrogateValue(w, z, y)
			// 1e-12 relative: the two sides are evaluated by different (exact in real
			// arithmetic) formulas, values are O(100) at most.
			if g < f(w, y)-1e-12*(1+f(w, y)) {
				t.Fatalf("y=%.4g w0=%.4g (z=%v): majoriser %.15g < f %.15g at w=%.4g", y, w0, z, g, f(w, y), w)
			}
			if r := ref.g(w); math.Abs(g-r) > 1e-12*(1+r) {
				t.Fatalf("y=%.4g z=%v: surrogateValue %.15g != table's %s %.15g at w=%.4g", y, z, g, ref.name, r, w)
			}
		}
	}
	// The relaxation.
	for trial := 0; trial < 20; trial++ {
		y := 6 * (rng.Float64() - 0.5)
		if trial == 0 {
			y = 0
		}
		z := relaxZ(y)
		h := make([]float64, len(grid))
		for i, w := range grid {
			h[i] = surrogateValue(w, z, y)
			if h[i] > f(w, y)+1e-12*(1+f(w, y)) {
				t.Fatalf("y=%.4g: relaxation %.15g > f %.15g at w=%.4g", y, h[i], f(w, y), w)
			}
		}
		// Convexity: second differences >= 0 (up to rounding of O(100) values).
		for i := 1; i < len(grid)-1; i++ {
			if d2 := h[i-1] - 2*h[i] + h[i+1]; d2 < -1e-10 {
				t.Fatalf("y=%.4g: relaxation not convex at w=%.4g (second difference %.3g)", y, grid[i], d2)
			}
		}
		// Largest convex minorant: the lower convex hull of f, computed by Andrew's
		// monotone chain on the grid (plus the point w = y, so that min f = 0 is on it).
		// f is constant (y^2) left of the grid and the hull of f on the
		// whole line may use points arbitrarily far left: segments to (-X, f(-X)) become
		// horizontal as X grows, which is the same as replacing f at each grid point by
		// its running minimum from the right, m(w_i) = min_{j >= i} f(w_j). Without this
		// the hull of a bounded interval would tilt down from its left end.
		pts := append([]float64(nil), grid...)
		if y > -L && y < L {
			pts = append(pts, y)
			sort.Float64s(pts)
		}
		ms := make([]float64, len(pts))
		run := math.Inf(1)
		for i := len(pts) - 1; i >= 0; i-- {
			run = math.Min(run, f(pts[i], y))
			ms[i] = run
		}
		hull := lowerHull(pts, ms)
		for i, w := range grid {
			// Both sides are exact at grid points up to rounding of O(100) values.
			if hv := hull(w); math.Abs(hv-h[i]) > 1e-9 {
				t.Fatalf("y=%.4g: relaxation %.10g != convex envelope %.10g at w=%.4g", y, h[i], hv, w)
			}
		}
	}
}

// lowerHull returns the piecewise-linear lower convex hull of (x_i, v_i), x sorted
// ascending, as a function on [x_0, x_last].
func lowerHull(x, v []float64) func(float64) float64 {
	type pt struct{ x, y float64 }
	var hs []pt
	for i, xi := range x {
		p := pt{xi, v[i]}
		for len(hs) >= 2 {
			a, b := hs[len(hs)-2], hs[len(hs)-1]
			// Pop b if it lies on or above the segment a-p.
			if (b.x-a.x)*(p.y-a.y)-(b.y-a.y)*(p.x-a.x) <= 0 {
				hs = hs[:len(hs)-1]
			} else {
				break
			}
		}
		hs = append(hs, p)
	}
	return func(v float64) float64 {
		i := sort.Search(len(hs), func(i int) bool { return hs[i].x >= v })
		if i == 0 {
			return hs[0].y
		}
		a, b := hs[i-1], hs[min(i, len(hs)-1)]
		if b.x == a.x {
			return a.y
		}
		return a.y + (b.y-a.y)*(v-a.x)/(b.x-a.x)
	}
}
