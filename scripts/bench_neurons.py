"""Inference time and accuracy of the dense, the unstructured-sparse and the structurally
pruned (neurons removed) LeNet-300-100 in PyTorch on CPU, side by side in one run.

Usage (from the repository root; Debian's python3 has torch):

    /usr/bin/python3 scripts/bench_neurons.py [--relutrim BIN] [--sparsity 0.5] [--rounds 15] [--budget 0.2]

Steps:
  1. writes the demo's calibration data (the first 2000 MNIST training images,
     pixel/255 as float64, as internal/demo uses them) and the 10000 test images
     to a temporary directory;
  2. runs relutrim (built with `go build` unless --relutrim is given):
       relutrim prune --sparsity S                      (unstructured: same shapes, zeros)
       relutrim prune --structure neurons --sparsity S --compare
                                                        (S of each hidden layer's units removed)
     both with --test-x/--test-y, so their reports hold the Go-side accuracies
     (the neurons report also the L2-norm baseline's, whose model has the same
     shapes as relutrim's and therefore the same speed);
  3. loads the dense model (internal/models/lenet300100.safetensors) and the two
     pruned files into torch.nn.Sequential(Linear, ReLU, Linear, ReLU, Linear)
     (float32, load_state_dict(strict=True)), and the unstructured one a second
     time with its weights as torch sparse CSR tensors (y = W_csr x^T + b);
  4. measures test accuracy in torch, and the time of one forward pass
     (torch.no_grad, eval mode) at batch 1 and 256 with torch.set_num_threads(1)
     and (2): per setting, `rounds` rounds, each timing every model in turn over
     about `budget` seconds of calls (round-robin, so that load changes on a
     shared machine hit all models alike); the table gives the median over rounds
     of the mean time per call, and the speedups from the medians, from the
     minima (the least disturbed round) and from the median process CPU time per
     call (which leaves out time spent waiting for a core on a shared machine).

Prints a markdown table (with date, CPU, torch version and `uptime` before and
after) on stdout; relutrim's own output goes to stderr.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# OpenMP threads that spin while waiting make every 2-thread forward pass 10x slower when
# the 2 cores are shared with other processes (measured here: 31 ms instead of 3 ms for the
# dense model at batch 256); passive waiting avoids it. Set before torch loads OpenMP; an
# OMP_WAIT_POLICY already in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, HERE)
import mnist_data  # noqa: E402
import st  # noqa: E402

DENSE = os.path.join(ROOT, "internal", "models", "lenet300100.safetensors")


def build(tensors):
    """Sequential of Linear layers (keys 0, 2, 4, ...) with ReLU between, sized from the file."""
    keys = sorted({int(k.split(".")[0]) for k in tensors})
    mods = []
    for i, k in enumerate(keys):
        w = tensors["%d.weight" % k]
        mods.append(nn.Linear(w.shape[1], w.shape[0]))
        if i < len(keys) - 1:
            mods.append(nn.ReLU())
    model = nn.Sequential(*mods)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in tensors.items()}, strict=True)
    return model.eval()


class CSRLinear(nn.Module):
    """A Linear layer whose weight is a torch sparse CSR tensor: y = (W x^T)^T + b."""

    def __init__(self, lin):
        super().__init__()
        self.w = lin.weight.detach().to_sparse_csr()
        self.b = lin.bias.detach()

    def forward(self, x):
        return torch.mm(self.w, x.t()).t() + self.b


def csr_model(dense_model):
    return nn.Sequential(*[CSRLinear(m) if isinstance(m, nn.Linear) else m for m in dense_model]).eval()


def shapes(tensors):
    keys = sorted({int(k.split(".")[0]) for k in tensors})
    return " / ".join("%dx%d" % tuple(tensors["%d.weight" % k].shape[::-1]) for k in keys)


def nonzeros(tensors):
    return sum(int(np.count_nonzero(v)) for k, v in tensors.items() if k.endswith(".weight"))


def run(cmd):
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=sys.stderr)


def uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "uptime unavailable"


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def time_models(models, x, budget, rounds):
    """Per model, the median and the minimum over rounds of the mean wall seconds per forward
    call, and the median of the mean process CPU seconds per call (all threads; on a shared
    machine it leaves out the time the process waits for a core). Each round times every
    model in turn (round-robin) over as many calls as fill about `budget` seconds (estimated
    from a warm-up), at least 5."""
    per = {name: [] for name in models}
    cpu = {name: [] for name in models}
    calls = {}
    with torch.no_grad():
        for name, m in models.items():  # warm-up and call count
            for _ in range(3):
                m(x)
            t0 = time.perf_counter()
            for _ in range(10):
                m(x)
            calls[name] = max(5, int(budget / ((time.perf_counter() - t0) / 10)))
        for _ in range(rounds):
            for name, m in models.items():
                c0, t0 = time.process_time(), time.perf_counter()
                for _ in range(calls[name]):
                    m(x)
                per[name].append((time.perf_counter() - t0) / calls[name])
                cpu[name].append((time.process_time() - c0) / calls[name])
    return ({name: statistics.median(v) for name, v in per.items()},
            {name: min(v) for name, v in per.items()},
            {name: statistics.median(v) for name, v in cpu.items()})


def prepare(args, tmp, calib_rows, image_shape):
    """Writes the first calib_rows MNIST training images and the test set (pixel/255,
    float64, image_shape per sample) and the test labels into tmp, and builds relutrim
    there unless --relutrim gives a binary or --reuse skips it. Returns the test images and
    labels (uint8), the three .npy paths and the binary."""
    xtr, _ = mnist_data.load("train")
    xte, yte = mnist_data.load("t10k")
    calib = os.path.join(tmp, "calib.npy")
    np.save(calib, (xtr[:calib_rows].astype(np.float64) / 255.0).reshape((-1,) + image_shape))
    tx, ty = os.path.join(tmp, "test_x.npy"), os.path.join(tmp, "test_y.npy")
    np.save(tx, (xte.astype(np.float64) / 255.0).reshape((-1,) + image_shape))
    np.save(ty, yte)
    binary = args.relutrim
    if args.reuse and not args.keep:
        raise SystemExit("--reuse needs --keep")
    if not binary and not args.reuse:
        binary = os.path.join(tmp, "relutrim")
        run(["go", "build", "-o", binary, "./cmd/relutrim"])
    return xte, yte, calib, tx, ty, binary


def prune_both(binary, common, sparsity, sparse_out, sparse_js, struct_out, struct_js, reuse):
    """Runs relutrim prune twice (unstructured, then --structure neurons with --compare)
    unless reuse, and returns the two wall times (nan when reused) and the two reports."""
    t_sparse = t_struct = float("nan")
    if not reuse:
        t0 = time.time()
        run([binary, "prune"] + common + ["--sparsity", sparsity, "--out", sparse_out, "--report", sparse_js])
        t_sparse = time.time() - t0
        t0 = time.time()
        run([binary, "prune"] + common + ["--structure", "neurons", "--sparsity", sparsity, "--compare",
                                          "--out", struct_out, "--report", struct_js])
        t_struct = time.time() - t0
    with open(sparse_js) as f:
        srep = json.load(f)
    with open(struct_js) as f:
        nrep = json.load(f)
    return t_sparse, t_struct, srep, nrep


def accuracies(models, xt, yt):
    """Test accuracy of every model in torch, 1000 images at a time."""
    acc = {}
    with torch.no_grad():
        for name, m in models.items():
            pred = torch.cat([m(xt[i:i + 1000]).argmax(dim=1) for i in range(0, xt.shape[0], 1000)])
            acc[name] = (pred == yt).double().mean().item()
    return acc


def time_grid(models, xt, budget, rounds):
    """time_models at 1 and 2 threads and batches 1 and 256 (the same 256 seeded test
    images for every model): dicts keyed by (threads, batch) of the per-model medians,
    minima and CPU times."""
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, xt.shape[0], (256,), generator=g)
    times, mins, cpus = {}, {}, {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for batch in (1, 256):
            x = xt[idx[:batch]].contiguous()
            times[(threads, batch)], mins[(threads, batch)], cpus[(threads, batch)] = time_models(
                models, x, budget, rounds)
    return times, mins, cpus


def header(script, args, before, after):
    """The first lines of a report: when, where, torch, the timing rounds and the load."""
    return ["%s: %s UTC, %s, torch %s, OMP_WAIT_POLICY=%s; median over %d rounds of ~%g s per model"
            % (script, datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"), cpu_name(), torch.__version__,
               os.environ.get("OMP_WAIT_POLICY"), args.rounds, args.budget),
            "uptime before: " + before, "uptime after:  " + after, ""]


def relutrim_line(srep, rep, pct, what):
    """relutrim's own accuracies from its reports (Go forward pass)."""
    a = rep.get("accuracy", {})
    return ("relutrim's reports (Go forward pass, 10000 test images): dense %.2f%%; unstructured %s: %.2f%%; "
            "%s: relutrim %.2f%%, L2-norm baseline %.2f%% (same shapes as relutrim's), L2-norm + relutrim's refit %.2f%%"
            % (100 * a.get("dense_test", float("nan")), pct, 100 * srep["accuracy"]["relutrim_test"], what,
               100 * a.get("relutrim_test", float("nan")), 100 * a.get("l2norm_test", float("nan")),
               100 * a.get("l2norm_refit_test", float("nan"))))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--relutrim", help="relutrim binary (default: go build one)")
    ap.add_argument("--sparsity", type=float, default=0.5, help="fraction removed (weights / each hidden layer's units)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--budget", type=float, default=0.2, help="seconds of forward calls per model and round")
    ap.add_argument("--keep", help="directory to keep the pruned files and reports in")
    ap.add_argument("--reuse", action="store_true", help="with --keep: time the files already there (skip relutrim)")
    args = ap.parse_args(argv)

    tmp = tempfile.mkdtemp(prefix="bench_neurons.")
    try:
        bench(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the data and the binary (--keep holds the results)


def bench(args, tmp):
    work = args.keep or tmp
    os.makedirs(work, exist_ok=True)
    before = uptime()
    xte, yte, calib, tx, ty, binary = prepare(args, tmp, 2000, (784,))
    s = "%g" % args.sparsity
    pct = "%g%%" % (100 * args.sparsity)
    sparse_st, sparse_js = os.path.join(work, "sparse.safetensors"), os.path.join(work, "sparse.json")
    neur_st, neur_js = os.path.join(work, "neurons.safetensors"), os.path.join(work, "neurons.json")
    common = ["--model", DENSE, "--calib", calib, "--test-x", tx, "--test-y", ty]
    t_sparse, t_neur, srep, nrep = prune_both(binary, common, s, sparse_st, sparse_js, neur_st, neur_js, args.reuse)

    tensors = {"dense": st.load_file(DENSE), "sparse": st.load_file(sparse_st), "neurons": st.load_file(neur_st)}
    models = {
        "dense": build(tensors["dense"]),
        "unstructured %s (zeros)" % pct: build(tensors["sparse"]),
        "unstructured %s (torch CSR)" % pct: csr_model(build(tensors["sparse"])),
        "neurons: %s of units removed (relutrim)" % pct: build(tensors["neurons"]),
    }
    src = {"dense": "dense", "unstructured %s (zeros)" % pct: "sparse", "unstructured %s (torch CSR)" % pct: "sparse",
           "neurons: %s of units removed (relutrim)" % pct: "neurons"}
    xt = torch.from_numpy(xte.astype(np.float32) / np.float32(255.0))
    yt = torch.from_numpy(yte)
    acc = accuracies(models, xt, yt)
    times, mins, cpus = time_grid(models, xt, args.budget, args.rounds)
    after = uptime()

    out = header("bench_neurons.py", args, before, after)
    out.append("| model | layers (in x out) | non-zero weights | test acc. (torch) | b=1, 1 thr | b=1, 2 thr | b=256, 1 thr | b=256, 2 thr | speedup b=256, 1 / 2 thr (median) | (min) | (CPU time) |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    d = "dense"
    for name in models:
        t = tensors[src[name]]
        us = lambda th, b: "%.1f us" % (1e6 * times[(th, b)][name])  # noqa: E731
        sp = "%.2fx / %.2fx" % (times[(1, 256)][d] / times[(1, 256)][name], times[(2, 256)][d] / times[(2, 256)][name])
        spm = "%.2fx / %.2fx" % (mins[(1, 256)][d] / mins[(1, 256)][name], mins[(2, 256)][d] / mins[(2, 256)][name])
        spc = "%.2fx / %.2fx" % (cpus[(1, 256)][d] / cpus[(1, 256)][name], cpus[(2, 256)][d] / cpus[(2, 256)][name])
        out.append("| %s | %s | %d | %.2f%% | %s | %s | %s | %s | %s | %s | %s |" % (
            name, shapes(t), nonzeros(t), 100 * acc[name], us(1, 1), us(2, 1), us(1, 256), us(2, 256), sp, spm, spc))
    out.append("")
    out.append(relutrim_line(srep, nrep, pct, "neurons"))
    out.append("units kept per hidden layer: %s of %s; prune times: unstructured %.1f s, neurons (with --compare) %.1f s"
               % (nrep["units_kept"], nrep["units"], t_sparse, t_neur))
    print("\n".join(out))


if __name__ == "__main__":
    main()
