// Package demo runs relutrim's main job end to end: prune the bundled LeNet-300-100 MNIST
// model at several sparsities and compare test accuracy with magnitude, Wanda-style and
// SparseGPT pruning at the same per-layer sparsities.
package demo

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"relutrim/internal/mnist"
	"relutrim/internal/models"
	"relutrim/prune"
	"relutrim/prune/model"
)

// Config sets the size of the run. The zero value is the full demo.
type Config struct {
	// Levels are the overall sparsities; default 0.5, 0.8, 0.9, 0.95 (none when NM is set).
	Levels []float64
	// CalibRows is the number of MNIST training images used as calibration data (the first
	// ones); default 2000 (measured: 2000 rows ran the demo in 86 s, 3000 in 139 s, with
	// test accuracy within 0.2 points at every level).
	CalibRows int
	// TestRows limits the test set (0 = all 10000; the ResNet demo's default is
	// DefaultResNetTestRows).
	TestRows int
	// Parallel selects Net-Trim's parallel scheme instead of cascade.
	Parallel bool
	// Threads for the solver (0 = GOMAXPROCS).
	Threads int
	// NoTimes leaves the time column out (for golden tests).
	NoTimes bool
	// Log receives progress lines (may be nil): one per pruned layer and one per level.
	Log func(string)
	// NM lists N:M patterns to run after the levels (one row each; magnitude, Wanda and
	// SparseGPT at the same pattern).
	NM []prune.NM
	// CNN prunes the bundled all-conv MNIST network (internal/models/cnn_mnist.onnx)
	// instead of LeNet-300-100; CalibRows then defaults to DefaultCNNCalibRows and the
	// convolutions are fitted on at most MaxXBytes of patches (default DefaultCNNMaxXBytes).
	CNN bool
	// ResNet prunes the bundled MNIST ResNet (internal/models/resnet_mnist.onnx, a residual
	// graph) instead; CalibRows then defaults to DefaultResNetCalibRows and MaxXBytes to
	// DefaultResNetMaxXBytes. CNN and ResNet exclude each other.
	ResNet    bool
	MaxXBytes int
	// Neurons, if > 0, adds one line under the table: that fraction of each hidden layer's
	// units removed (structured pruning, neurons.go).
	Neurons float64
	// Budget names the split of each level over the layers (prune.Pruner.LayerBudget):
	// prune.BudgetCurves or prune.BudgetErdosRenyi ("" = prune.DefaultBudget).
	Budget string
	// Unweighted turns the unit weights of the layer fits off (prune.Options.Unweighted).
	Unweighted bool
	// Select and SelectRows are prune.Options.Select and SelectRows.
	Select     string
	SelectRows int
}

// Defaults of the CNN demo (Config.CNN) and of the ResNet demo (Config.ResNet).
const (
	DefaultCNNCalibRows    = 1000
	DefaultCNNMaxXBytes    = 8 << 20
	DefaultResNetCalibRows = 1000
	DefaultResNetMaxXBytes = 8 << 20
	// DefaultResNetTestRows: the ResNet demo evaluates on the first 3000 test images unless
	// TestRows says otherwise. Its 17 evaluations (dense, then relutrim and three baselines
	// at four levels) took about 85% of a 108 s run on all 10000 images, each forward
	// pass 5.7-6.0 s.
	DefaultResNetTestRows = 3000
)

// Row is one line of the table.
type Row struct {
	// Pattern is "N:M" for the rows of Config.NM (then Sparsity is the pattern's).
	Pattern                    string
	Sparsity                   float64
	LayerSparsity              []float64
	Relutrim, Magnitude, Wanda float64
	// SparseGPT is SparseGPT's accuracy at the same per-layer split (prune.Pruner.SparseGPT;
	// for an N:M row, SparseGPTNM), SparseGPTSeconds its time.
	SparseGPT, SparseGPTSeconds float64
	Seconds                     float64
	Layers                      []prune.LayerReport
}

// Result is the demo's outcome.
type Result struct {
	// Model names the network; Layers describes its layers for the table's header.
	Model, Layers       string
	Dense               float64
	Rows                []Row
	Seconds             float64
	TestRows, CalibRows int
	Parallel            bool
	Neurons             *NeuronRow // Config.Neurons's line, nil without it
	Budget              string
	Unweighted          bool
}

// unitWeighted reports whether any layer of any row was fitted with unit weights.
func (r *Result) unitWeighted() bool {
	for _, row := range r.Rows {
		for _, l := range row.Layers {
			if l.UnitWeighted {
				return true
			}
		}
	}
	return false
}

// WriteTable writes the demo's table, whole: a header, one row per level in the order of
// Config.Levels, and with times the time column and the total.
func (r *Result) WriteTable(w io.Writer, times bool) {
	mode := "cascade"
	if r.Parallel {
		mode = "parallel"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "relutrim demo: %s on MNIST, %d test images\n", r.Model, r.TestRows)
	units := "off"
	switch {
	case r.unitWeighted():
		units = "on (each hidden unit's error weighted by its effect on the output)"
	case !r.Unweighted:
		units = "none (no hidden layer is followed by dense layers only)"
	}
	fmt.Fprintf(&b, "calibration: first %d training images; mode %s; layer budget: %s; refit of kept weights: on; unit weights: %s\n", r.CalibRows, mode, budgetLine(r.Budget), units)
	fmt.Fprintf(&b, "dense test accuracy: %.2f%%\n\n", 100*r.Dense)
	hdr := "| sparsity | per-layer sparsity (" + r.Layers + ") | relutrim | magnitude | Wanda | SparseGPT |"
	sep := "|---|---|---|---|---|---|"
	if times {
		hdr += " time |"
		sep += "---|"
	}
	fmt.Fprintln(&b, hdr)
	fmt.Fprintln(&b, sep)
	for _, row := range r.Rows {
		var ls []string
		for _, s := range row.LayerSparsity {
			ls = append(ls, fmt.Sprintf("%.1f%%", 100*s))
		}
		level := fmt.Sprintf("%.0f%%", 100*row.Sparsity)
		if row.Pattern != "" {
			level = row.Pattern + " (N:M)"
		}
		line := fmt.Sprintf("| %s | %s | %.2f%% | %.2f%% | %.2f%% | %.2f%% |", level, strings.Join(ls, " / "),
			100*row.Relutrim, 100*row.Magnitude, 100*row.Wanda, 100*row.SparseGPT)
		if times {
			line += fmt.Sprintf(" %.1f s |", row.Seconds)
		}
		fmt.Fprintln(&b, line)
	}
	if r.Neurons != nil {
		fmt.Fprintf(&b, "\n%s\n", r.Neurons.line(times))
	}
	if times {
		fmt.Fprintf(&b, "\ntotal time %.1f s\n", r.Seconds)
	}
	io.WriteString(w, b.String())
}

// describe names a CNN and its layers for the table: "conv 1-16 3x3 / ... / fc 64-10".
func describe(m model.Model) (name, layers string) {
	var ls []string
	weights, conv := 0, 0
	for _, L := range m.Layers {
		weights += L.In * L.Out
		if c := L.Conv; c != nil {
			conv += L.In * L.Out
			ls = append(ls, fmt.Sprintf("conv %d-%d", c.In.C, L.Out))
		} else {
			ls = append(ls, fmt.Sprintf("fc %d-%d", L.In, L.Out))
		}
	}
	return fmt.Sprintf("all-conv CNN (%d weights, %.0f%% in convolutions)", weights, 100*float64(conv)/float64(weights)), strings.Join(ls, " / ")
}

// describeResNet names a residual network and its layers for the table, in layer order, by
// the module paths torch.onnx.export gives the nodes ("/layer2/layer2.0/conv1/Conv" is
// layer2.0.conv1), with each layer's input and output channels: "conv1 1-16 /
// layer1.0.conv1 16-16 / ... / layer2.0.proj 16-32 / ... / fc 64-10". A projection shortcut
// (model.Shortcut.Proj, torchvision's downsample) is named proj after its block.
func describeResNet(m model.Model) (name, layers string) {
	proj := map[int]bool{}
	scs := m.Shortcuts()
	for _, s := range scs {
		if s.Proj >= 0 {
			proj[s.Proj] = true
		}
	}
	var ls []string
	weights, conv := 0, 0
	for l, L := range m.Layers {
		weights += L.In * L.Out
		n := moduleName(L.Key)
		if proj[l] {
			n = strings.TrimSuffix(strings.TrimSuffix(n, ".0"), ".downsample") + ".proj"
		}
		if L.Conv == nil {
			ls = append(ls, fmt.Sprintf("%s %d-%d", n, L.In, L.Out))
			continue
		}
		conv += L.In * L.Out
		ls = append(ls, fmt.Sprintf("%s %d-%d", n, L.Conv.In.C, L.Out))
	}
	return fmt.Sprintf("ResNet (%d residual blocks, %d with a projection shortcut; %d weights, %.0f%% in convolutions)",
		len(scs), len(proj), weights, 100*float64(conv)/float64(weights)), strings.Join(ls, " / ")
}

// moduleName turns the name torch.onnx.export gives a layer's node, the module path and the
// op ("/layer2/layer2.0/conv1/Conv"), into the module's name ("layer2.0.conv1"); a name
// of another form is kept.
func moduleName(key string) string {
	parts := strings.Split(strings.TrimPrefix(key, "/"), "/")
	if len(parts) < 2 || !strings.HasPrefix(key, "/") {
		return key
	}
	parts = parts[:len(parts)-1] // the op type
	var out []string
	for i, p := range parts {
		if i+1 < len(parts) && strings.HasPrefix(parts[i+1], p+".") {
			continue // "layer2" before "layer2.0"
		}
		out = append(out, p)
	}
	return strings.Join(out, ".")
}

// Run executes the demo; progress goes to cfg.Log, and when the demo has finished its whole
// table is written to w (if non-nil), so that progress printed meanwhile cannot split it.
func Run(ctx context.Context, cfg Config, w io.Writer) (*Result, error) {
	start := time.Now()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.Levels == nil && len(cfg.NM) == 0 {
		cfg.Levels = []float64{0.5, 0.8, 0.9, 0.95}
	}
	if cfg.CNN && cfg.ResNet {
		return nil, fmt.Errorf("demo: the CNN and the ResNet demo exclude each other")
	}
	if cfg.CalibRows == 0 {
		switch {
		case cfg.CNN:
			cfg.CalibRows = DefaultCNNCalibRows
		case cfg.ResNet:
			cfg.CalibRows = DefaultResNetCalibRows
		default:
			cfg.CalibRows = 2000
		}
	}
	if cfg.Budget == "" {
		cfg.Budget = prune.DefaultBudget
	}
	if cfg.MaxXBytes == 0 {
		switch {
		case cfg.CNN:
			cfg.MaxXBytes = DefaultCNNMaxXBytes
		case cfg.ResNet:
			cfg.MaxXBytes = DefaultResNetMaxXBytes
		}
	}
	dir, err := mnist.Dir()
	if err != nil {
		return nil, err
	}
	train, err := mnist.LoadFirst(dir, true, cfg.CalibRows) // only the calibration images
	if err != nil {
		return nil, err
	}
	if train.N < cfg.CalibRows {
		return nil, fmt.Errorf("demo: %d calibration images asked for, MNIST has %d training images", cfg.CalibRows, train.N)
	}
	test, err := mnist.Load(dir, false)
	if err != nil {
		return nil, err
	}
	if cfg.TestRows == 0 && cfg.ResNet {
		cfg.TestRows = DefaultResNetTestRows
	}
	if cfg.TestRows > 0 && cfg.TestRows < test.N {
		test.N, test.X, test.Labels = cfg.TestRows, test.X[:cfg.TestRows*784], test.Labels[:cfg.TestRows]
	}
	res := &Result{Model: "LeNet-300-100 (784-300-100-10)", Layers: "784-300 / 300-100 / 100-10"}
	load := models.LeNet300100
	switch {
	case cfg.CNN:
		load = models.CNNMNIST
	case cfg.ResNet:
		load = models.ResNetMNIST
	}
	m, err := load()
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.CNN:
		res.Model, res.Layers = describe(m)
	case cfg.ResNet:
		res.Model, res.Layers = describeResNet(m)
	}
	n := cfg.CalibRows
	calib := train.X[:n*784]
	opt := prune.Options{Parallel: cfg.Parallel, Threads: cfg.Threads, Log: cfg.Log, MaxXBytes: cfg.MaxXBytes, Unweighted: cfg.Unweighted,
		Select: cfg.Select, SelectRows: cfg.SelectRows}
	// Every evaluation on the test images checks ctx between blocks (the CNN's takes
	// seconds); accErr keeps the first cancellation, checked after each evaluation. The
	// dense network's comes first, before the pruner's dense pass over the calibration
	// images (which does not check ctx: about a second on the CNN).
	var accErr error
	accuracy := func(pm model.Model) float64 {
		a, err := pm.AccuracyContext(ctx, test.X, test.N, test.Labels)
		if accErr == nil {
			accErr = err
		}
		return a
	}
	if res.Dense = accuracy(m); accErr != nil {
		return nil, accErr
	}
	p, err := prune.NewPrunerContext(ctx, m, calib, n, opt)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res.TestRows, res.CalibRows, res.Parallel, res.Budget = test.N, n, cfg.Parallel, cfg.Budget
	res.Unweighted = cfg.Unweighted
	// Prune from the sparsest level down: the first layer's lambda path (shared by all
	// levels, its input never changes) then descends once instead of jumping.
	order := make([]int, len(cfg.Levels))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return cfg.Levels[order[a]] > cfg.Levels[order[b]] })
	rows := make([]Row, len(cfg.Levels))
	for done, li := range order {
		s := cfg.Levels[li]
		t0 := time.Now()
		keep, err := p.LayerBudget(ctx, cfg.Budget, s)
		if err != nil {
			return nil, err
		}
		pm, reps, err := p.Prune(ctx, keep)
		if err != nil {
			return nil, err
		}
		row := Row{Sparsity: s, Layers: reps, Seconds: time.Since(t0).Seconds()}
		row.Relutrim = accuracy(pm)
		row.Magnitude = accuracy(prune.Magnitude(m, keep))
		row.Wanda = accuracy(prune.Wanda(m, keep, p.InputNorms()))
		t1 := time.Now()
		sg, err := p.SparseGPT(ctx, keep)
		if err != nil {
			return nil, err
		}
		row.SparseGPTSeconds = time.Since(t1).Seconds()
		row.SparseGPT = accuracy(sg)
		if accErr != nil {
			return nil, accErr
		}
		for _, r := range reps {
			row.LayerSparsity = append(row.LayerSparsity, r.Sparsity)
		}
		rows[li] = row
		if cfg.Log != nil {
			cfg.Log(fmt.Sprintf("level %d/%d done: sparsity %.0f%%, relutrim %.2f%%, %.1f s", done+1, len(order), 100*s, 100*row.Relutrim, row.Seconds))
		}
	}
	for _, pat := range cfg.NM {
		t0 := time.Now()
		pn := p.WithNM(pat) // continues the levels' cached first-layer path
		pm, reps, err := pn.Prune(ctx, prune.NMKeep(m, pat, nil))
		if err != nil {
			return nil, err
		}
		row := Row{Pattern: fmt.Sprintf("%d:%d", pat.N, pat.M), Sparsity: 1 - float64(pat.N)/float64(pat.M), Layers: reps}
		row.Relutrim = accuracy(pm)
		row.Magnitude = accuracy(prune.MagnitudeNM(m, pat, nil))
		row.Wanda = accuracy(prune.WandaNM(m, pat, pn.InputNorms(), nil))
		if accErr != nil {
			return nil, accErr
		}
		for _, r := range reps {
			row.LayerSparsity = append(row.LayerSparsity, r.Sparsity)
		}
		row.Seconds = time.Since(t0).Seconds()
		t1 := time.Now()
		sg, err := pn.SparseGPTNM(ctx, pat, nil)
		if err != nil {
			return nil, err
		}
		row.SparseGPTSeconds = time.Since(t1).Seconds()
		if row.SparseGPT = accuracy(sg); accErr != nil {
			return nil, accErr
		}
		rows = append(rows, row)
		if cfg.Log != nil {
			cfg.Log(fmt.Sprintf("pattern %s done: relutrim %.2f%%, %.1f s", row.Pattern, 100*row.Relutrim, row.Seconds))
		}
	}
	res.Rows = rows
	if cfg.Neurons > 0 && !cfg.CNN && !cfg.ResNet { // neuron pruning is for the MLP
		if res.Neurons, err = runNeurons(ctx, cfg, m, calib, n, test); err != nil {
			return nil, err
		}
	}
	res.Seconds = time.Since(start).Seconds()
	if w != nil {
		res.WriteTable(w, !cfg.NoTimes)
	}
	return res, nil
}
