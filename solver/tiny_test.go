package solver

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
)

// Global minima of tiny ReLU problems (Nx = 2 plus a bias) by brute force, to measure how
// often the CCP reaches the global minimum and to check that the lower bound is valid.

// tinyProblem is F(u1, u2, b) = 1/(2N) sum_p (max(0, u.x_p + b + s_p) - y_p)^2 + lambda (|u1| + |u2|),
// with the known offset s (Settings.Offset) nil for none.
type tinyProblem struct {
	x1, x2, y []float64
	s         []float64
	lambda    float64
}

// tinyEval evaluates min_b F(u, b) exactly. For fixed u, h(b) = sum_p (max(0, a_p + b) - y_p)^2
// with a_p = u.x_p is piecewise quadratic in b with breakpoints b = -a_p; with the points
// sorted by decreasing a_p, on the segment between the i-th and (i+1)-th breakpoint the
// active set is the first i+1 points and h = sum_A (b - e_p)^2 + sum_{not A} y_p^2 with
// e_p = y_p - a_p, minimised at mean_A(e), clipped to the segment. perm carries the sort
// order from the previous call (insertion sort is then nearly linear on a grid walk).
type tinyEval struct {
	p    *tinyProblem
	a    []float64
	perm []int
	y2   float64
}

func newTinyEval(p *tinyProblem) *tinyEval {
	n := len(p.y)
	ev := &tinyEval{p: p, a: make([]float64, n), perm: make([]int, n)}
	for i := range ev.perm {
		ev.perm[i] = i
		ev.y2 += p.y[i] * p.y[i]
	}
	return ev
}

// F returns min_b F(u1, u2, b) and the minimising b (-Inf if h is minimal on b -> -Inf).
func (ev *tinyEval) F(u1, u2 float64) (float64, float64) {
	p := ev.p
	n := len(p.y)
	a, perm := ev.a, ev.perm
	for i := 0; i < n; i++ {
		a[i] = u1*p.x1[i] + u2*p.x2[i]
		if p.s != nil {
			a[i] += p.s[i] // the offset only moves the breakpoints
		}
	}
	for i := 1; i < n; i++ { // insertion sort of perm by decreasing a
		v := perm[i]
		j := i
		for j > 0 && a[perm[j-1]] < a[v] {
			perm[j] = perm[j-1]
			j--
		}
		perm[j] = v
	}
	best, bestB := ev.y2, math.Inf(-1) // all inactive: b below every breakpoint
	var m, s1, s2, yA2 float64
	for i := 0; i < n; i++ {
		q := perm[i]
		e := p.y[q] - a[q]
		m++
		s1 += e
		s2 += e * e
		yA2 += p.y[q] * p.y[q]
		lo := -a[q] // segment [lo, hi): points 0..i active
		hi := math.Inf(1)
		if i+1 < n {
			hi = -a[perm[i+1]]
		}
		b := s1 / m
		if b < lo {
			b = lo
		} else if b > hi {
			b = hi
		}
		h := m*b*b - 2*b*s1 + s2 + (ev.y2 - yA2)
		if h < best {
			best, bestB = h, b
		}
	}
	return best/(2*float64(n)) + p.lambda*(math.Abs(u1)+math.Abs(u2)), bestB
}

// off is s_i, 0 without an offset.
func (p *tinyProblem) off(i int) float64 {
	if p.s == nil {
		return 0
	}
	return p.s[i]
}

// exactF evaluates F(u, b) directly (the definition), for cross-checks.
func (p *tinyProblem) exactF(u1, u2, b float64) float64 {
	s := 0.0
	for i := range p.y {
		w := u1*p.x1[i] + u2*p.x2[i] + b
		if p.s != nil {
			w += p.s[i]
		}
		s += sq(math.Max(0, w) - p.y[i])
	}
	return s/(2*float64(len(p.y))) + p.lambda*(math.Abs(u1)+math.Abs(u2))
}

// bruteMin returns the global minimum of F (to ~1e-9 relative or better) and a minimiser.
//
// Box: F(u*, b*) <= F(0, b*(0)) =: F0 and F >= lambda |u|_1, so |u*|_1 <= F0 / lambda = R.
// Stage 1: a 101 x 101 grid over [-R, R]^2 restricted to the diamond |u|_1 <= R. Stage 2:
// from each of the best 6 grid local minima (not merely the best 6 cells, which could all
// sit in one basin), from the origin (twice: with the grid spacing and with 1/100 of it as the first step) and from the best point on each axis, a pattern search on 5 x 5 windows: re-centre on the window's best point,
// halve the spacing only when that point is interior (so narrow valleys are followed), down
// to a spacing of 1e-9 R. Stage 3: polish by active-set descent (see below). Every candidate is evaluated with the exact
// bias minimisation, so the result is always an attained value (an upper bound on min F
// that the refinement drives down to min F).
func bruteMin(p *tinyProblem) (fmin, u1, u2, b float64) {
	ev := newTinyEval(p)
	f0, _ := ev.F(0, 0)
	R := f0 / p.lambda
	const G = 101
	h := 2 * R / (G - 1)
	vals := make([]float64, G*G)
	for i := 0; i < G; i++ {
		for j := 0; j < G; j++ {
			v1, v2 := -R+float64(i)*h, -R+float64(j)*h
			if i%2 == 1 { // walk rows in alternating direction: the sort order changes little
				v2 = R - float64(j)*h
			}
			jj := j
			if i%2 == 1 {
				jj = G - 1 - j
			}
			if math.Abs(v1)+math.Abs(v2) > R*(1+1e-12)+h { // outside the diamond (plus one cell)
				vals[i*G+jj] = math.Inf(1)
				continue
			}
			vals[i*G+jj], _ = ev.F(v1, v2)
		}
	}
	type cand struct {
		f      float64
		u1, u2 float64
		h      float64 // initial step of the pattern search (0: the grid spacing)
	}
	var locs []cand
	for i := 0; i < G; i++ {
		for j := 0; j < G; j++ {
			v := vals[i*G+j]
			if math.IsInf(v, 1) {
				continue
			}
			isMin := true
			for di := -1; di <= 1 && isMin; di++ {
				for dj := -1; dj <= 1; dj++ {
					ii, jj := i+di, j+dj
					if (di != 0 || dj != 0) && ii >= 0 && ii < G && jj >= 0 && jj < G && vals[ii*G+jj] < v {
						isMin = false
						break
					}
				}
			}
			if isMin {
				locs = append(locs, cand{v, -R + float64(i)*h, -R + float64(j)*h, 0})
			}
		}
	}
	sort.Slice(locs, func(a, b int) bool { return locs[a].f < locs[b].f })
	if len(locs) > 6 {
		locs = locs[:6]
	}
	// The L1 penalty puts minima on the axes and at the origin, in basins that can be
	// narrower than the grid spacing: also start from the origin and from the best points
	// of a 1001-point scan along each axis.
	for axis := 0; axis < 2; axis++ {
		bc := cand{f: math.Inf(1)}
		for i := 0; i <= 1000; i++ {
			v := -R + 2*R*float64(i)/1000
			c := cand{u1: v}
			if axis == 1 {
				c = cand{u2: v}
			}
			if c.f, _ = ev.F(c.u1, c.u2); c.f < bc.f {
				bc = c
			}
		}
		locs = append(locs, bc)
	}
	locs = append(locs, cand{f: f0}, cand{f: f0, h: h / 100})
	fmin = math.Inf(1)
	for _, c := range locs {
		cu1, cu2, cf := c.u1, c.u2, c.f
		hs := h
		if c.h > 0 {
			hs = c.h
		}
		for steps := 0; hs > 1e-9*R && steps < 400; steps++ {
			bi, bj := 0, 0
			for i := -2; i <= 2; i++ {
				for j := -2; j <= 2; j++ {
					if f, _ := ev.F(cu1+float64(i)*hs, cu2+float64(j)*hs); f < cf {
						cf, bi, bj = f, i, j
					}
				}
			}
			cu1 += float64(bi) * hs
			cu2 += float64(bj) * hs
			if bi > -2 && bi < 2 && bj > -2 && bj < 2 {
				hs /= 2
			}
		}
		if cf < fmin {
			fmin, u1, u2 = cf, cu1, cu2
		}
	}
	// Polish: active-set descent. With the active set and the signs of u fixed at the current
	// point, F is a convex quadratic; the segment from the current point to that quadratic's
	// minimiser starts as a descent direction (F equals the quadratic near the point), and F
	// along it is a continuous piecewise quadratic, minimised by a 100-point scan plus golden
	// section. Variants with u1 = 0 and/or u2 = 0 fixed handle the L1 kinks, variants with
	// u.x_q + b = 0 for samples q near their kink the relu kinks. The pattern search alone
	// can stall on such a non-smooth ridge when it is not axis-aligned.
	_, b = ev.F(u1, u2)
	for round := 0; round < 100 && !math.IsInf(b, -1); round++ {
		improved := false
		// The (up to) two samples nearest their kink, if within 1e-3: faces to try.
		var near []int
		for i := range p.y {
			if math.Abs(u1*p.x1[i]+u2*p.x2[i]+b+p.off(i)) < 1e-3 {
				near = append(near, i)
			}
		}
		sort.Slice(near, func(x, y int) bool {
			return math.Abs(u1*p.x1[near[x]]+u2*p.x2[near[x]]+b+p.off(near[x])) < math.Abs(u1*p.x1[near[y]]+u2*p.x2[near[y]]+b+p.off(near[y]))
		})
		if len(near) > 2 {
			near = near[:2]
		}
		var variants []struct {
			fix   [2]bool
			kinks []int
		}
		for _, fix := range [][2]bool{{false, false}, {true, false}, {false, true}} {
			for mask := 0; mask < 1<<len(near); mask++ {
				var ks []int
				for j, q := range near {
					if mask&(1<<j) != 0 {
						ks = append(ks, q)
					}
				}
				variants = append(variants, struct {
					fix   [2]bool
					kinks []int
				}{fix, ks})
			}
		}
		for _, vr := range variants {
			q1, q2, qb, ok := tinyQP(p, u1, u2, b, vr.fix, vr.kinks)
			if !ok {
				continue
			}
			phi := func(t float64) float64 { return p.exactF(u1+t*(q1-u1), u2+t*(q2-u2), b+t*(qb-b)) }
			const m = 100
			bt, bv := 0.0, phi(0)
			for k := 1; k <= m; k++ {
				if v := phi(float64(k) / m); v < bv {
					bt, bv = float64(k)/m, v
				}
			}
			tt := golden(phi, math.Max(0, bt-1.0/m), math.Min(1, bt+1.0/m), 60)
			if phi(tt) < bv {
				bt = tt
			}
			n1, n2 := u1+bt*(q1-u1), u2+bt*(q2-u2)
			if f, nb := ev.F(n1, n2); f < fmin*(1-1e-15) && !math.IsInf(nb, -1) {
				fmin, u1, u2, b, improved = f, n1, n2, nb, true
			}
		}
		if !improved {
			break
		}
	}
	_, b = ev.F(u1, u2)
	return fmin, u1, u2, b
}

// tinyQP returns the minimiser of the convex quadratic that equals F near (u1, u2, b): the
// active set {p: u.x_p + b > 0} and the signs of u taken at that point, subject to the
// equality constraints u_k = 0 where fix[k] or u_k = 0, and u.x_q + b = 0 for q in kinks
// (a face of a relu kink, where minima of F can sit, like L1 kinks). The KKT system
// [H C^T; C 0] [v; mu] = [g; 0] is solved by Gauss-Jordan elimination.
func tinyQP(p *tinyProblem, u1, u2, b float64, fix [2]bool, kinks []int) (q1, q2, qb float64, ok bool) {
	n := float64(len(p.y))
	u := [2]float64{u1, u2}
	var C [][3]float64
	for k := 0; k < 2; k++ {
		if fix[k] || u[k] == 0 {
			var c [3]float64
			c[k] = 1
			C = append(C, c)
		}
	}
	var rhs []float64 // of the constraints: u.x_q + b = -s_q on a kink
	for range C {
		rhs = append(rhs, 0)
	}
	for _, q := range kinks {
		C = append(C, [3]float64{p.x1[q], p.x2[q], 1})
		rhs = append(rhs, -p.off(q))
	}
	d := 3 + len(C)
	M := make([][]float64, d)
	for r := range M {
		M[r] = make([]float64, d+1)
	}
	for i := range p.y {
		if u1*p.x1[i]+u2*p.x2[i]+b+p.off(i) <= 0 {
			continue
		}
		row := [3]float64{p.x1[i], p.x2[i], 1}
		for r := 0; r < 3; r++ {
			for c := 0; c < 3; c++ {
				M[r][c] += row[r] * row[c] / n
			}
			M[r][d] += row[r] * (p.y[i] - p.off(i)) / n
		}
	}
	for k := 0; k < 2; k++ {
		M[k][d] -= p.lambda * sign(u[k])
	}
	for ci, c := range C {
		for k := 0; k < 3; k++ {
			M[3+ci][k] = c[k]
			M[k][3+ci] = c[k]
		}
		M[3+ci][d] = rhs[ci]
	}
	for c := 0; c < d; c++ {
		piv := c
		for r := c + 1; r < d; r++ {
			if math.Abs(M[r][c]) > math.Abs(M[piv][c]) {
				piv = r
			}
		}
		if math.Abs(M[piv][c]) < 1e-12 {
			return 0, 0, 0, false // singular: this variant has no unique minimiser
		}
		M[c], M[piv] = M[piv], M[c]
		for r := 0; r < d; r++ {
			if r != c {
				f := M[r][c] / M[c][c]
				for cc := c; cc <= d; cc++ {
					M[r][cc] -= f * M[c][cc]
				}
			}
		}
	}
	return M[0][d] / M[0][0], M[1][d] / M[1][1], M[2][d] / M[2][2], true
}

// makeTiny draws instance i: N in [10, 30], X standard normal, y either a planted relu
// model plus noise (sd in [0.05, 1], so some y < 0) or (every fourth instance) pure N(0, 1)
// noise; lambda log-uniform in [0.02, 0.3] (at 0.02 the penalty is small against the data
// term ~0.1-0.5; at 0.3 it zeroes most fits).
func makeTiny(i int) *tinyProblem {
	r := rand.New(rand.NewPCG(uint64(i), 77))
	n := 10 + r.IntN(21)
	p := &tinyProblem{x1: make([]float64, n), x2: make([]float64, n), y: make([]float64, n)}
	w1, w2, w0 := r.NormFloat64(), r.NormFloat64(), 0.5*r.NormFloat64()
	sd := 0.05 + 0.95*r.Float64()
	pure := i%4 == 3
	for k := 0; k < n; k++ {
		p.x1[k], p.x2[k] = r.NormFloat64(), r.NormFloat64()
		if pure {
			p.y[k] = r.NormFloat64()
		} else {
			p.y[k] = math.Max(0, w1*p.x1[k]+w2*p.x2[k]+w0) + sd*r.NormFloat64()
		}
	}
	p.lambda = 0.02 * math.Pow(15, r.Float64())
	return p
}

// TestTinyEvalExact: the exact bias minimisation against a dense scan over b plus golden
// section (h is continuous piecewise quadratic; the scan's best cell brackets a local
// minimum and the grid is fine enough that it is the global one to 1e-9).
func TestTinyEvalExact(t *testing.T) {
	for i := 0; i < 10; i++ {
		p := makeTiny(i)
		ev := newTinyEval(p)
		r := rand.New(rand.NewPCG(uint64(i), 5))
		u1, u2 := 2*r.NormFloat64(), 2*r.NormFloat64()
		got, gb := ev.F(u1, u2)
		// Any b beyond all breakpoints is as good as +-Inf; the scan covers them.
		lo, hi := math.Inf(1), math.Inf(-1)
		for k := range p.y {
			a := u1*p.x1[k] + u2*p.x2[k]
			lo, hi = math.Min(lo, -a-5), math.Max(hi, -a+5+math.Abs(p.y[k]))
		}
		const m = 20000
		bs, bv := lo, math.Inf(1)
		for k := 0; k <= m; k++ {
			b := lo + (hi-lo)*float64(k)/m
			if v := p.exactF(u1, u2, b); v < bv {
				bs, bv = b, v
			}
		}
		step := (hi - lo) / m
		bs = golden(func(b float64) float64 { return p.exactF(u1, u2, b) }, bs-step, bs+step, 200)
		want := p.exactF(u1, u2, bs)
		if math.Abs(got-want) > 1e-12*(1+want) {
			t.Errorf("instance %d: exact bias minimisation %.15g (b=%.6g), scan %.15g (b=%.6g)", i, got, gb, want, bs)
		}
		if !math.IsInf(gb, -1) {
			if v := p.exactF(u1, u2, gb); math.Abs(v-got) > 1e-12*(1+got) {
				t.Errorf("instance %d: F at the returned bias %.15g != returned value %.15g", i, v, got)
			}
		}
	}
}

// TestTinyGlobal: 200 seeded instances; (a) LowerBound <= brute-force minimum in every
// instance; (b) Fit's F within 1e-4 relative of the brute-force minimum in >= 95% of them.
func TestTinyGlobal(t *testing.T) {
	const count = 200
	type outcome struct {
		n                 int
		lambda            float64
		brute, fit, bound float64
		bu1, bu2, fu1     float64
		fu2, fb           float64
		local             float64 // F after a local search in (u, b) from Fit's point
		status            Status
		err               error
	}
	outs := make([]outcome, count)
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < 2; w++ { // two workers: the test machine has 2 cores
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				p := makeTiny(i)
				n := len(p.y)
				X := Matrix{Rows: n, Cols: 2, F64: make([]float64, 2*n)}
				Y := Matrix{Rows: n, Cols: 1, F64: append([]float64(nil), p.y...)}
				for k := 0; k < n; k++ {
					X.F64[2*k], X.F64[2*k+1] = p.x1[k], p.x2[k]
				}
				o := outcome{n: n, lambda: p.lambda}
				res, err := Fit(context.Background(), X, Y, p.lambda, &Settings{Threads: 1})
				if err != nil {
					o.err = err
					outs[i] = o
					continue
				}
				o.fit, o.bound, o.status = res.F, res.LowerBound, res.Status
				o.fu1, o.fu2, o.fb = res.U[0], res.U[1], res.B[0]
				o.brute, o.bu1, o.bu2, _ = bruteMin(p)
				if (o.fit-o.brute)/o.brute > 1e-4 {
					o.local = localSearch3(p, o.fu1, o.fu2, o.fb)
				}
				outs[i] = o
			}
		}()
	}
	for i := 0; i < count; i++ {
		work <- i
	}
	close(work)
	wg.Wait()

	ok, boundOK, below, localMin := 0, 0, 0, 0
	var fails []string
	for i, o := range outs {
		if o.err != nil {
			t.Fatalf("instance %d: %v", i, o.err)
		}
		// (a) 1e-12 relative: LowerBound and the brute-force value are sums of the same
		// O(30) squared terms computed in different orders; a real violation is large.
		if o.bound <= o.brute*(1+1e-12) {
			boundOK++
		} else {
			t.Errorf("instance %d: LowerBound %.15g > brute-force minimum %.15g", i, o.bound, o.brute)
		}
		// The reference must not be beaten by more than its own accuracy (~1e-9): if the
		// solver finds a lower F, the brute force missed the global minimum.
		if o.fit < o.brute*(1-1e-9) {
			below++
			t.Errorf("instance %d: Fit's F %.15g below the brute-force minimum %.15g: the reference failed",
				i, o.fit, o.brute)
		}
		rel := (o.fit - o.brute) / o.brute
		if rel <= 1e-4 {
			ok++
		} else {
			// Classify: a local search in (u, b) from Fit's point that cannot decrease F
			// by more than 1e-6 relative (a converged fit is accurate to ~1e-8 relative,
			// the local search gains that much on fits that are minima) means Fit stopped
			// at a non-global local minimum; otherwise at a non-minimal stationary point.
			kind := "local minimum"
			if o.local < o.fit*(1-1e-6) {
				kind = fmt.Sprintf("NOT a local minimum (local search reaches %.8g)", o.local)
			} else {
				localMin++
			}
			fails = append(fails, fmt.Sprintf("#%d N=%d lambda=%.3g F=%.8g min=%.8g rel=%.2e fit (u,b)=(%.4g,%.4g,%.4g) min u=(%.4g,%.4g) %v: %s",
				i, o.n, o.lambda, o.fit, o.brute, rel, o.fu1, o.fu2, o.fb, o.bu1, o.bu2, o.status, kind))
		}
	}
	rate := float64(ok) / count
	msg := fmt.Sprintf("tiny relu problems: Fit within 1e-4 of the global minimum in %d/%d (%.1f%%); LowerBound <= global minimum in %d/%d; of the %d misses, %d are local minima of F",
		ok, count, 100*rate, boundOK, count, count-ok, localMin)
	t.Log(msg)
	if testing.Verbose() {
		fmt.Println(msg)
	}
	for _, f := range fails {
		t.Log("not global: " + f)
	}
	if rate < 0.95 {
		t.Errorf("success rate %.1f%% < 95%%", 100*rate)
	}
}

// localSearch3 runs a pattern search on F(u1, u2, b) (the definition, no bias elimination,
// so it stays local in b too) from the given point: 26 neighbours at step h, starting at
// 1e-6 and halving on failure down to 1e-12. Returns the F reached.
func localSearch3(p *tinyProblem, u1, u2, b float64) float64 {
	u := [3]float64{u1, u2, b}
	cf := p.exactF(u[0], u[1], u[2])
	h := 1e-6
	for st := 0; st < 5000 && h > 1e-12; st++ {
		moved := false
		for d := 0; d < 27; d++ {
			v := u
			v[0] += float64(d%3-1) * h
			v[1] += float64(d/3%3-1) * h
			v[2] += float64(d/9-1) * h
			if f := p.exactF(v[0], v[1], v[2]); f < cf {
				cf, u, moved = f, v, true
			}
		}
		if !moved {
			h /= 2
		}
	}
	return cf
}
