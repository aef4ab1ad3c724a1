// Command bench compares relutrim with its peers (scipy L-BFGS-B, torch Adam, sklearn
// Lasso) on seeded planted problems and an MNIST first layer. See README.md in this directory.
//
//	go run ./bench [-problems S,M,L,W,LS] [-out bench/out] [-peers lbfgsb,lbfgsb-warm,adam,lasso]
//	               [-backends purego,openblas] [-methods newton,admm] [-quick] [-time-limit 600]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"relutrim/dataio"
)

func main() {
	var (
		solveMode = flag.Bool("solve", false, "internal: run relutrim on -x/-y and write -result")
		sa        solveArgs

		problems  = flag.String("problems", "S,M,L,W,LS", "comma-separated problems: S, M, L, W, LS")
		outDir    = flag.String("out", "bench/out", "output directory")
		peers     = flag.String("peers", "lbfgsb,lbfgsb-warm,adam,lasso", "comma-separated peers (empty: none): lbfgsb, lbfgsb-warm, adam, lasso")
		backends  = flag.String("backends", "purego,openblas", "relutrim kernel backends to run")
		methods   = flag.String("methods", "newton,admm", "relutrim inner solvers (solver.Method) to run with every backend: auto, newton, admm")
		warmRows  = flag.Int("warm-rows", 20000, "lbfgsb-warm: rows of the random subsample solved first (the row is skipped when N <= this)")
		layout    = flag.String("lbfgsb-layout", "T", "L-BFGS-B product layout: T = (Ny, N) work arrays with X^T contiguous (faster), N = (N, Ny)")
		quick     = flag.Bool("quick", false, "reduced sizes for a smoke run (and -time-limit 60 -adam-steps 1000 -restarts 2 unless given)")
		timeLimit = flag.Float64("time-limit", 600, "seconds per method and problem (0: none)")
		restarts  = flag.Int("restarts", 3, "L-BFGS-B random restarts")
		adamSteps = flag.Int("adam-steps", 5000, "Adam steps per learning rate")
		f32       = flag.Bool("f32", false, "store X as float32 (relutrim reads float32, peers upcast except Adam)")
		seed      = flag.Uint64("seed", 1, "problem generator seed")
		python    = flag.String("python", "/usr/bin/python3", "Python interpreter with numpy, scipy, sklearn, torch")
		fracFlag  = flag.Float64("lambda-frac", 0, "override lambda/lambda_max for every problem (0: per-problem default)")
	)
	flag.StringVar(&sa.x, "x", "", "internal (-solve): X.npy")
	flag.StringVar(&sa.y, "y", "", "internal (-solve): Y.npy")
	flag.StringVar(&sa.result, "result", "", "internal (-solve): result JSON")
	flag.StringVar(&sa.link, "link", "relu", "internal (-solve): relu or identity")
	flag.Float64Var(&sa.lambda, "lambda", 0, "internal (-solve): lambda")
	flag.BoolVar(&sa.noBias, "nobias", false, "internal (-solve): no bias")
	flag.StringVar(&sa.method, "method", "auto", "internal (-solve): auto, newton or admm")
	flag.Parse()

	if done, code := pruneMain(*outDir); done { // -prune, -prune-child: prune.go
		os.Exit(code)
	}
	if *solveMode {
		sa.timeLimit = *timeLimit
		if err := runSolve(sa); err != nil {
			fmt.Fprintln(os.Stderr, "bench -solve:", err)
			os.Exit(1)
		}
		return
	}
	if *quick { // smaller defaults for a smoke run, unless given explicitly
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["time-limit"] {
			*timeLimit = 60
		}
		if !set["adam-steps"] {
			*adamSteps = 1000
		}
		if !set["restarts"] {
			*restarts = 2
		}
	}
	h := &harness{
		quick: *quick, timeLimit: *timeLimit, restarts: *restarts, adamSteps: *adamSteps,
		f32: *f32, seed: *seed, python: *python, frac: *fracFlag,
		peers: splitList(*peers), backends: splitList(*backends), methods: splitList(*methods),
		warmRows: *warmRows, layout: *layout,
	}
	for _, m := range h.methods {
		if _, err := parseMethod(m); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(2)
		}
	}
	for _, p := range h.peers {
		if peerScript(p) == "" {
			fmt.Fprintf(os.Stderr, "bench: unknown peer %q (want lbfgsb, lbfgsb-warm, adam, lasso)\n", p)
			os.Exit(2)
		}
	}
	if err := h.run(splitList(*problems), *outDir); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

type harness struct {
	quick               bool
	timeLimit           float64
	restarts, adamSteps int
	f32                 bool
	seed                uint64
	python              string
	frac                float64
	peers, backends     []string
	methods             []string // relutrim inner solvers
	warmRows            int
	layout              string

	root     string            // module root
	out      string            // absolute output directory
	bins     map[string]string // backend -> executable
	childEnv []string          // environment of the peers and of relutrim children
	res      runResult
}

func (h *harness) logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
}

// moduleRoot walks up from the working directory to the go.mod of module relutrim.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.Contains(string(b), "module relutrim\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run inside the relutrim module (no go.mod with module relutrim above the working directory)")
		}
		dir = parent
	}
}

func cpuInfo() (model string, flags string) {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown", ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "model name":
			if model == "" {
				model = strings.TrimSpace(v)
			}
		case "flags":
			if flags == "" {
				flags = " " + strings.TrimSpace(v) + " "
			}
		}
	}
	if model == "" {
		model = "unknown"
	}
	return model, flags
}

func (h *harness) run(names []string, outDir string) error {
	var err error
	if h.root, err = moduleRoot(); err != nil {
		return err
	}
	if h.out, err = filepath.Abs(outDir); err != nil {
		return err
	}
	if err := os.MkdirAll(h.out, 0o755); err != nil {
		return err
	}
	cpu, flags := cpuInfo()
	h.res = runResult{
		Date: time.Now().Format(time.RFC3339), CPU: cpu, Cores: runtime.NumCPU(),
		GoVersion: runtime.Version(), Backends: map[string]string{}, PeerEnv: map[string]string{},
		Quick: h.quick, TimeLimit: h.timeLimit, Command: strings.Join(os.Args, " "),
	}
	if strings.HasPrefix(h.res.Command, os.TempDir()) || strings.Contains(h.res.Command, "go-build") {
		h.res.Command = "go run ./bench " + strings.Join(os.Args[1:], " ")
	}
	h.prepareBackends()
	h.preparePeerEnv(flags)

	sp := specs(h.quick)
	for _, name := range names {
		s, ok := sp[name]
		if !ok {
			return fmt.Errorf("unknown problem %q (want S, M, L, W, LS)", name)
		}
		pr := h.runProblem(name, s)
		h.res.Problems = append(h.res.Problems, pr)
		if err := h.write(); err != nil { // after every problem, so a crash keeps the rest
			return err
		}
	}
	fmt.Print(formatTable(&h.res))
	h.logf("wrote %s and %s", filepath.Join(h.out, "results.json"), filepath.Join(h.out, "table.md"))
	return nil
}

func (h *harness) write() error {
	data, err := json.MarshalIndent(&h.res, "", " ")
	if err != nil {
		return err
	}
	if err := writeBytes(filepath.Join(h.out, "results.json"), data); err != nil {
		return err
	}
	return writeBytes(filepath.Join(h.out, "table.md"), []byte(formatTable(&h.res)))
}

// writeBytes replaces path with data atomically.
func writeBytes(path string, data []byte) error {
	return dataio.WriteFileAtomic(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// prepareBackends finds an executable per requested backend: this binary for its own
// backend, `go build -tags <backend>` for the other one. A backend that does not build
// is reported and skipped.
func (h *harness) prepareBackends() {
	h.bins = map[string]string{}
	for _, b := range h.backends {
		if b == buildBackend {
			exe, err := os.Executable()
			if err == nil {
				h.bins[b] = exe
				h.res.Backends[b] = "(this binary)"
				continue
			}
		}
		tags := ""
		switch b {
		case "purego":
		case "openblas":
			tags = "openblas"
		default:
			h.res.Backends[b] = "skipped: unknown backend"
			continue
		}
		exe := filepath.Join(h.out, "bin", "bench-"+b)
		args := []string{"build", "-o", exe}
		if tags != "" {
			args = append(args, "-tags", tags)
		}
		args = append(args, "./bench")
		cmd := exec.Command("go", args...)
		cmd.Dir = h.root
		h.logf("building the %s backend: go %s", b, strings.Join(args, " "))
		if out, err := cmd.CombinedOutput(); err != nil {
			msg := fmt.Sprintf("skipped: go build failed: %v: %s", err, truncate(strings.TrimSpace(string(out)), 300))
			h.logf("backend %s %s", b, msg)
			h.res.Backends[b] = msg
			continue
		}
		h.bins[b] = exe
		h.res.Backends[b] = "(built)"
	}
}

// preparePeerEnv gives the Python peers (and relutrim's openblas backend) their best
// OpenBLAS configuration: Debian's OpenBLAS 0.3.21 picks slow generic kernels on CPUs it
// does not recognise unless told the core type.
func (h *harness) preparePeerEnv(flags string) {
	env := os.Environ()
	if v := os.Getenv("OPENBLAS_CORETYPE"); v != "" {
		h.res.PeerEnv["OPENBLAS_CORETYPE"] = v + " (from the environment)"
	} else {
		core := ""
		switch {
		case strings.Contains(flags, " avx512f "):
			core = "SkylakeX"
		case strings.Contains(flags, " avx2 "):
			core = "Haswell"
		}
		if core != "" {
			env = append(env, "OPENBLAS_CORETYPE="+core)
			h.res.PeerEnv["OPENBLAS_CORETYPE"] = core
		}
	}
	h.childEnv = env
}

func (h *harness) runProblem(name string, s spec) problemResult {
	dir := filepath.Join(h.out, name)
	p := problem{Name: name, Desc: s.desc, N: s.N, Nx: s.Nx, Ny: s.Ny, Link: s.link, Bias: true,
		F32: h.f32, LambdaFrac: s.frac, Dir: dir,
		XPath: filepath.Join(dir, "X.npy"), YPath: filepath.Join(dir, "Y.npy")}
	if h.frac > 0 {
		p.LambdaFrac = h.frac
	}
	pr := problemResult{}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		pr.Problem, pr.Error = p, err.Error()
		return pr
	}
	h.logf("%s: generating (N=%d Nx=%d Ny=%d %s)", name, p.N, p.Nx, p.Ny, p.Link)
	var err error
	if name == "W" {
		err = genMNIST(&p, h.root)
	} else {
		err = genPlanted(&p, h.seed)
	}
	runtime.GC()
	debug.FreeOSMemory() // X is on disk now; the harness holds no copy while methods run
	pr.Problem = p
	if err != nil {
		pr.Error = err.Error()
		h.logf("%s: %v", name, err)
		return pr
	}
	if p.Skip != "" {
		h.logf("%s: skipped: %s", name, p.Skip)
		return pr
	}
	h.logf("%s: lambda = %.4g x lambda_max %.4g = %.4g", name, p.LambdaFrac, p.LambdaMax, p.Lambda)

	for _, b := range h.backends {
		exe, ok := h.bins[b]
		if !ok {
			continue
		}
		for _, sm := range h.methods {
			pr.Methods = append(pr.Methods, h.runRelutrim(&p, b, sm, exe))
		}
	}
	for _, peer := range h.peers {
		if peer == "lasso" && p.Link != "identity" {
			continue
		}
		if peer == "lbfgsb-warm" && p.N <= h.warmRows {
			h.logf("%s: lbfgsb-warm skipped: N = %d <= -warm-rows %d (it would be lbfgsb)", name, p.N, h.warmRows)
			continue
		}
		pr.Methods = append(pr.Methods, h.runPeer(&p, peer))
	}
	if err := verify(&p, pr.Methods); err != nil {
		pr.Error = "verifying F: " + err.Error()
		return pr
	}
	for i := range pr.Methods {
		m := &pr.Methods[i]
		if m.Error != "" {
			continue
		}
		h.logf("%s: %s: F = %.12g (own %.12g), nnz %d/%d, %s, %.2fs", name, m.label(), m.VerifiedF,
			m.FinalF, m.NNZ, m.SizeU, m.Status, m.Wall)
		if d := math.Abs(m.VerifiedF-m.FinalF) / math.Max(math.Abs(m.VerifiedF), 1e-300); d > 1e-8 {
			h.logf("%s: WARNING %s reports F %.12g, harness computes %.12g (rel. diff %.1e)",
				name, m.label(), m.FinalF, m.VerifiedF, d)
		}
	}
	var idx int
	pr.FStar, idx = fStar(pr.Methods)
	if idx >= 0 {
		pr.FStarBy = pr.Methods[idx].label()
		fillTargets(pr.Methods, pr.FStar)
	} else {
		pr.Error = "no method succeeded"
	}
	return pr
}

// runChild runs cmd with a hard deadline and returns the child's peak RSS (KB).
func (h *harness) runChild(cmd *exec.Cmd, logPath string) (int64, float64, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return 0, 0, err
	}
	defer lf.Close()
	cmd.Stdout, cmd.Stderr = lf, lf
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start).Seconds()
	var rss int64
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			rss = ru.Maxrss
		}
	}
	if err != nil {
		tail, _ := os.ReadFile(logPath)
		err = fmt.Errorf("%v: %s", err, truncate(lastLines(string(tail), 3), 400))
	}
	return rss, wall, err
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

// hardDeadline is how long a child may run before it is killed: its own time limit is
// soft (checked between iterations, or not at all inside one sklearn fit).
func (h *harness) hardDeadline(mult float64) (context.Context, context.CancelFunc) {
	if h.timeLimit <= 0 {
		return context.WithCancel(context.Background())
	}
	return context.WithTimeout(context.Background(), time.Duration((mult*h.timeLimit+120)*float64(time.Second)))
}

// verify recomputes every successful method's F at its returned point (VerifiedF) with
// the independent objective. X and Y are read once, after all methods ran, and dropped.
func verify(p *problem, ms []methodResult) error {
	X, err := dataio.ReadNPYFile(p.XPath)
	if err != nil {
		return err
	}
	Y, err := dataio.ReadNPYFile(p.YPath)
	if err != nil {
		return err
	}
	for i := range ms {
		m := &ms[i]
		if m.Error != "" || m.u == nil {
			continue
		}
		if m.VerifiedF, err = objective(X, Y, m.u, m.b, p.Lambda, p.Link, p.Bias); err != nil {
			m.Error = "verifying F: " + err.Error()
			m.VerifiedF = math.NaN()
		}
		m.u, m.b = nil, nil
	}
	X, Y = dataio.Matrix{}, dataio.Matrix{}
	runtime.GC()
	debug.FreeOSMemory()
	return nil
}

func (h *harness) runRelutrim(p *problem, backend, method, exe string) methodResult {
	m := methodResult{Method: "relutrim", Backend: backend, Solver: method, SizeU: p.Nx * p.Ny, VerifiedF: math.NaN()}
	resPath := filepath.Join(p.Dir, "relutrim-"+backend+"-"+method+".json")
	os.Remove(resPath)
	args := []string{"-solve", "-x", p.XPath, "-y", p.YPath, "-lambda", fmt.Sprint(p.Lambda),
		"-link", p.Link, "-result", resPath, "-time-limit", fmt.Sprint(h.timeLimit), "-method", method}
	if !p.Bias {
		args = append(args, "-nobias")
	}
	h.logf("%s: %s", p.Name, m.label())
	ctx, cancel := h.hardDeadline(1.5)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = h.childEnv // same OpenBLAS configuration as the peers (openblas backend)
	rss, wall, err := h.runChild(cmd, filepath.Join(p.Dir, "relutrim-"+backend+"-"+method+".log"))
	m.PeakRSSKB, m.Wall = rss, wall // replaced by the child's own VmHWM below
	if err != nil {
		m.Error = err.Error()
		return m
	}
	var o solveOutput
	if err := readJSON(resPath, &o); err != nil {
		m.Error = err.Error()
		return m
	}
	if o.Error != "" && o.U == nil {
		m.Error = o.Error
		return m
	}
	m.Trace, m.FinalF, m.NNZ, m.Iters, m.Status = o.Trace, o.FinalF, o.NNZ, o.Iters, o.Status
	m.Passes = o.Passes
	if o.MethodRan != method {
		m.Status += " (ran " + o.MethodRan + ")"
	}
	if o.Error != "" {
		m.Status += " (" + o.Error + ")"
	}
	m.Wall, m.LoadRSSKB, m.Threads = o.Wall, o.LoadRSSKB, o.Threads
	if o.PeakRSSKB > 0 {
		m.PeakRSSKB = o.PeakRSSKB
	}
	m.Info = map[string]any{"backend_info": o.BackendInfo, "backend_warning": o.BackendWarn, "ccp_iters": o.CCPIters,
		"lower_bound": o.LowerBound, "gap": o.Gap, "x_float32": o.XFloat32,
		"wait4_maxrss_kb": rss, "method_ran": o.MethodRan}
	if info := h.res.Backends[backend]; strings.HasPrefix(info, "(") {
		h.res.Backends[backend] = o.BackendInfo
		if o.BackendWarn != "" {
			h.res.Backends[backend] += "; WARNING: " + o.BackendWarn
		}
	}
	m.u, m.b = o.U, o.B // F is verified by verify once every method ran
	return m
}

// peerOutput is the part of peers.py's JSON the harness reads.
type peerOutput struct {
	Trace     [][]float64    `json:"trace"`
	FinalF    float64        `json:"final_F"`
	NNZ       int            `json:"nnz"`
	SizeU     int            `json:"size_U"`
	Iters     int            `json:"iters"`
	Wall      float64        `json:"wall_seconds"`
	LoadRSSKB int64          `json:"rss_after_load_kb"`
	PeakRSSKB int64          `json:"peak_rss_kb"`
	Threads   int            `json:"threads"`
	BLAS      map[string]any `json:"blas"`
	Versions  map[string]any `json:"versions"`
	U         [][]float64    `json:"U"`
	B         []float64      `json:"b"`
	Runs      []any          `json:"runs"`
	BestLR    float64        `json:"best_lr"`
	Note      string         `json:"note"`
	Passes    float64        `json:"passes"`
}

// peerScript maps a peer name to peers.py's --method ("" for an unknown peer).
func peerScript(peer string) string {
	switch peer {
	case "lbfgsb", "lbfgsb-warm":
		return "lbfgsb"
	case "adam", "lasso":
		return peer
	}
	return ""
}

func (h *harness) runPeer(p *problem, method string) methodResult {
	m := methodResult{Method: method, SizeU: p.Nx * p.Ny, VerifiedF: math.NaN()}
	resPath := filepath.Join(p.Dir, method+".json")
	os.Remove(resPath)
	args := []string{filepath.Join(h.root, "bench", "peers.py"), "--x", p.XPath, "--y", p.YPath,
		"--lambda", fmt.Sprint(p.Lambda), "--link", p.Link, "--method", peerScript(method), "--out", resPath,
		"--time-limit", fmt.Sprint(h.timeLimit), "--restarts", fmt.Sprint(h.restarts),
		"--steps", fmt.Sprint(h.adamSteps), "--layout", h.layout}
	if method == "lbfgsb-warm" {
		args = append(args, "--warm-rows", fmt.Sprint(h.warmRows))
	}
	if !p.Bias {
		args = append(args, "--no-bias")
	}
	h.logf("%s: peer %s", p.Name, method)
	mult := 2.0
	if method == "lasso" {
		mult = 8 // a run cannot be interrupted; there are 8 of them
	}
	ctx, cancel := h.hardDeadline(mult)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.python, args...)
	cmd.Env = h.childEnv
	rss, wall, err := h.runChild(cmd, filepath.Join(p.Dir, method+".log"))
	m.PeakRSSKB, m.Wall = rss, wall
	if err != nil {
		m.Error = err.Error()
		return m
	}
	var o peerOutput
	if err := readJSON(resPath, &o); err != nil {
		m.Error = err.Error()
		return m
	}
	m.Trace, m.FinalF, m.NNZ, m.Iters, m.Passes = o.Trace, o.FinalF, o.NNZ, o.Iters, o.Passes
	m.Wall, m.LoadRSSKB, m.Threads = o.Wall, o.LoadRSSKB, o.Threads
	if o.PeakRSSKB > 0 {
		m.PeakRSSKB = o.PeakRSSKB
	}
	m.Status = fmt.Sprintf("%d runs", len(o.Runs))
	if method == "adam" {
		m.Status += fmt.Sprintf(", best lr %g", o.BestLR)
	}
	if peerScript(method) == "lbfgsb" && len(o.Runs) > 0 {
		if r, ok := o.Runs[len(o.Runs)-1].(map[string]any); ok {
			m.Status += fmt.Sprintf(", last: %v", r["status"])
		}
	}
	m.Info = map[string]any{"blas": o.BLAS, "versions": o.Versions, "runs": o.Runs,
		"wait4_maxrss_kb": rss, "note": o.Note}
	if h.res.PeerBLAS == "" {
		h.res.PeerBLAS = describeBLAS(o.BLAS)
	}
	m.u = make([]float64, 0, p.Nx*p.Ny)
	for _, row := range o.U {
		m.u = append(m.u, row...)
	}
	m.b = o.B
	return m
}

// describeBLAS summarises threadpoolctl's view of the peers' BLAS.
func describeBLAS(b map[string]any) string {
	var parts []string
	if pools, ok := b["threadpools"].([]any); ok {
		for _, p := range pools {
			if m, ok := p.(map[string]any); ok && m["internal_api"] != "openmp" {
				parts = append(parts, fmt.Sprintf("%v %v, kernel %v, %v threads",
					m["internal_api"], m["version"], m["architecture"], m["num_threads"]))
			}
		}
	}
	if v, ok := b["OPENBLAS_CORETYPE"].(string); ok && v != "" {
		parts = append(parts, "OPENBLAS_CORETYPE="+v)
	}
	if len(parts) == 0 {
		return fmt.Sprint(b)
	}
	return strings.Join(parts, "; ")
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	return nil
}
