// Command valcheck measures pruning settings on MNIST away from the test set: it prunes an
// MNIST MLP (the bundled LeNet-300-100, or --model) on the first --calib training images,
// level by level from the sparsest (as the demo does), and prints for each level the layer
// errors, the mean cross-entropy and the accuracy on a validation slice (training images
// 50000-59999: not calibration images; the bundled model was trained on them, so they
// measure the damage pruning does rather than generalisation) and on the 10,000 test
// images. It is how the unit weights (prune/gains.go) were measured:
//
//	go run ./bench/valcheck                 # unit weights (the default)
//	go run ./bench/valcheck --unweighted    # without them
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"relutrim/internal/mnist"
	"relutrim/internal/models"
	"relutrim/prune"
	"relutrim/prune/model"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "valcheck:", err)
		os.Exit(1)
	}
}

func run() error {
	path := flag.String("model", "", "MLP safetensors (784 inputs, 10 outputs); default the bundled LeNet-300-100")
	calib := flag.Int("calib", 2000, "calibration images (the first ones of the training set)")
	budget := flag.String("budget", prune.DefaultBudget, "curves or erdos-renyi")
	unweighted := flag.Bool("unweighted", false, "fit without unit weights")
	var levels levelList = []float64{0.5, 0.8, 0.9, 0.95}
	flag.Var(&levels, "levels", "sparsities (comma separated)")
	nm := flag.String("nm", "", "an N:M pattern (e.g. 2:4) to run after the levels, as the demo does")
	selectM := flag.String("select", "", "support selection: gradual (default) or l1-path")
	selectRows := flag.Int("select-rows", 0, "rows the support is selected on (0: the default, -1: all)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the pruning (not the evaluation) to this file")
	flag.Parse()
	const valFrom, valN = 50000, 10000
	if *calib < 1 || *calib > valFrom {
		return fmt.Errorf("--calib %d: must be in [1, %d] (the validation images start there)", *calib, valFrom)
	}
	dir, err := mnist.Dir()
	if err != nil {
		return err
	}
	train, err := mnist.Load(dir, true)
	if err != nil {
		return err
	}
	test, err = mnist.Load(dir, false)
	if err != nil {
		return err
	}
	m, err := models.LeNet300100()
	if *path != "" {
		m, err = model.Load(*path)
	}
	if err != nil {
		return err
	}
	vx, vl = train.X[valFrom*784:(valFrom+valN)*784], train.Labels[valFrom:valFrom+valN]
	fmt.Printf("model %s: dense validation %.4f / %.2f%%, test %.4f / %.2f%% (cross-entropy / accuracy)\n",
		name(*path), crossEntropy(m, vx, vl), 100*m.Accuracy(vx, valN, vl), crossEntropy(m, test.X, test.Labels), 100*m.Accuracy(test.X, test.N, test.Labels))
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	t0 := time.Now()
	p, err := prune.NewPruner(m, train.X[:*calib*784], *calib, prune.Options{Unweighted: *unweighted, Select: *selectM, SelectRows: *selectRows})
	if err != nil {
		return err
	}
	fmt.Printf("NewPruner: %.2f s\n", time.Since(t0).Seconds())
	ctx := context.Background()
	sort.Sort(sort.Reverse(sort.Float64Slice(levels)))
	for _, s := range levels {
		t0 := time.Now()
		keep, err := p.LayerBudget(ctx, *budget, s)
		if err != nil {
			return err
		}
		fmt.Printf("budget: %.2f s\n", time.Since(t0).Seconds())
		pm, reps, err := p.Prune(ctx, keep)
		if err != nil {
			return err
		}
		show(fmt.Sprintf("%.0f%%", 100*s), keep, pm, reps, t0)
	}
	if *nm != "" {
		var pat prune.NM
		if _, err := fmt.Sscanf(*nm, "%d:%d", &pat.N, &pat.M); err != nil || !pat.Valid() {
			return fmt.Errorf("--nm %q: want N:M with 1 <= N < M", *nm)
		}
		t0 := time.Now()
		keep := prune.NMKeep(m, pat, nil)
		pm, reps, err := p.WithNM(pat).Prune(ctx, keep)
		if err != nil {
			return err
		}
		show(*nm, keep, pm, reps, t0)
	}
	return nil
}

var vx []float64
var vl []int
var test mnist.Set

func show(name string, keep []int, pm model.Model, reps []prune.LayerReport, t0 time.Time) {
	fmt.Printf("%s: keep %v, post-activation errors", name, keep)
	for _, r := range reps {
		fmt.Printf(" %.4f", r.PostErr)
	}
	fmt.Printf(", layer seconds (select+refit)")
	for _, r := range reps {
		fmt.Printf(" %.2f (%.2f+%.2f)", r.Seconds, r.SelectSeconds, r.RefitSeconds)
	}
	fmt.Printf("; validation %.4f / %.2f%%, test %.4f / %.2f%%; %.1f s\n",
		crossEntropy(pm, vx, vl), 100*pm.Accuracy(vx, len(vl), vl), crossEntropy(pm, test.X, test.Labels), 100*pm.Accuracy(test.X, test.N, test.Labels), time.Since(t0).Seconds())
}

func name(path string) string {
	if path == "" {
		return "LeNet-300-100 (bundled)"
	}
	return path
}

// crossEntropy is the mean of -log softmax(logits)[label] over the rows of X.
func crossEntropy(m model.Model, X []float64, labels []int) float64 {
	n := len(labels)
	out := m.Forward(X, n)
	z := out[len(out)-1]
	k := len(z) / n
	t := 0.0
	for s := 0; s < n; s++ {
		row := z[s*k : (s+1)*k]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, v)
		}
		se := 0.0
		for _, v := range row {
			se += math.Exp(v - mx)
		}
		t += mx + math.Log(se) - row[labels[s]]
	}
	return t / float64(n)
}

type levelList []float64

func (l *levelList) String() string { return fmt.Sprint(*l) }
func (l *levelList) Set(v string) error {
	*l = nil
	var s float64
	for _, f := range strings.Split(v, ",") {
		if _, err := fmt.Sscan(f, &s); err != nil || !(s >= 0 && s < 1) {
			return fmt.Errorf("sparsity %q: want a number in [0, 1)", f)
		}
		*l = append(*l, s)
	}
	return nil
}
