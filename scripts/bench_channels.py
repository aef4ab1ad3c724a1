"""Inference time and accuracy of the dense, the unstructured-sparse and the channel-pruned
demo CNN (internal/models/cnn_mnist.onnx) in PyTorch on CPU, side by side in one run.

Usage (from the repository root; Debian's python3 has torch and onnx):

    /usr/bin/python3 scripts/bench_channels.py [--relutrim BIN] [--sparsity 0.5] [--max-patch-mib 8]
                                               [--rounds 15] [--budget 0.2] [--keep DIR [--reuse]]

Steps:
  1. writes the CNN demo's calibration data (the first 1000 MNIST training images,
     pixel/255 as float64, shape (N, 1, 28, 28), as `relutrim demo --cnn` uses them)
     and the 10000 test images to a temporary directory;
  2. runs relutrim (built with `go build` unless --relutrim is given), each convolution
     fitted on at most --max-patch-mib MiB of patches (the CNN demo's 8 by default):
       relutrim prune --sparsity S                      (unstructured: same shapes, zeros)
       relutrim prune --structure neurons --sparsity S --compare
                                                        (S of each hidden layer's channels removed)
     both with --test-x/--test-y, so their reports hold the Go-side accuracies (the
     channels report also the L2-norm baseline's, whose model has the same shapes as
     relutrim's and therefore the same speed);
  3. rebuilds a torch module from each ONNX file (dense, unstructured, channels) with
     scripts/eval_onnx.py's loader (float32, load_state_dict(strict=True));
  4. measures test accuracy in torch, the multiply-adds per image (from the layers'
     shapes and output sizes), and the time of one forward pass (torch.no_grad, eval mode)
     at batch 1 and 256 with torch.set_num_threads(1) and (2), timed as
     scripts/bench_neurons.py does (round-robin rounds; median of the per-call means;
     speedups also from the minima and from process CPU time).

Prints a markdown table (with date, CPU, torch version and `uptime` before and after) on
stdout; relutrim's own output goes to stderr.
"""
import argparse
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# bench_neurons sets OMP_WAIT_POLICY=PASSIVE before torch loads (see there) and holds the
# timing loop, so that both benchmarks time alike.
import bench_neurons  # noqa: E402
from bench_neurons import accuracies, header, prepare, prune_both, relutrim_line, time_grid, uptime  # noqa: E402
import eval_onnx  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

ROOT = bench_neurons.ROOT
DENSE = os.path.join(ROOT, "internal", "models", "cnn_mnist.onnx")


def weight_shapes(info):
    return " / ".join("x".join(str(d) for d in info["tensors"][w].shape) for w in info["weights"])


def nonzeros(info):
    return sum(int(np.count_nonzero(info["tensors"][w])) for w in info["weights"])


def macs(net, x):
    """Multiply-adds of one image: per Conv2d, out channels x out positions x in channels x
    kh x kw; per Linear, in x out (measured with forward hooks on one image)."""
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            total[0] += out[0].numel() * mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, nn.Linear):
            total[0] += mod.in_features * mod.out_features

    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        net(x[:1])
    for h in hs:
        h.remove()
    return total[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--relutrim", help="relutrim binary (default: go build one)")
    ap.add_argument("--sparsity", type=float, default=0.5, help="fraction removed (weights / each hidden layer's channels)")
    ap.add_argument("--max-patch-mib", type=int, default=8, help="relutrim's --max-patch-mib (the CNN demo's 8)")
    ap.add_argument("--calib-rows", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--budget", type=float, default=0.2, help="seconds of forward calls per model and round")
    ap.add_argument("--keep", help="directory to keep the pruned files and reports in")
    ap.add_argument("--reuse", action="store_true", help="with --keep: time the files already there (skip relutrim)")
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="bench_channels.")
    try:
        bench(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench(args, tmp):
    work = args.keep or tmp
    os.makedirs(work, exist_ok=True)
    before = uptime()
    xte, yte, calib, tx, ty, binary = prepare(args, tmp, args.calib_rows, (1, 28, 28))
    s = "%g" % args.sparsity
    pct = "%g%%" % (100 * args.sparsity)
    sparse, sparse_js = os.path.join(work, "sparse.onnx"), os.path.join(work, "sparse.json")
    chan, chan_js = os.path.join(work, "channels.onnx"), os.path.join(work, "channels.json")
    common = ["--model", DENSE, "--calib", calib, "--test-x", tx, "--test-y", ty, "--max-patch-mib", str(args.max_patch_mib)]
    t_sparse, t_chan, srep, crep = prune_both(binary, common, s, sparse, sparse_js, chan, chan_js, args.reuse)

    names = {"dense": DENSE, "unstructured %s (zeros)" % pct: sparse,
             "channels: %s of hidden channels removed (relutrim)" % pct: chan}
    models, infos = {}, {}
    for name, path in names.items():
        models[name], infos[name] = eval_onnx.load(path)
    xt = torch.from_numpy((xte.astype(np.float32) / np.float32(255.0)).reshape(-1, 1, 28, 28))
    yt = torch.from_numpy(yte)
    acc = accuracies(models, xt, yt)
    mac = {name: macs(m, xt) for name, m in models.items()}
    times, mins, cpus = time_grid(models, xt, args.budget, args.rounds)
    after = uptime()

    out = header("bench_channels.py", args, before, after)
    out.append("| model | weight shapes | non-zero weights | MACs / image | test acc. (torch) | b=1, 1 thr | b=1, 2 thr | b=256, 1 thr | b=256, 2 thr | speedup b=1, 1 / 2 thr | speedup b=256, 1 / 2 thr (median) | (min) | (CPU time) |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    d = "dense"
    for name in models:
        def us(th, b):
            return "%.1f us" % (1e6 * times[(th, b)][name])

        def ratio(tab, b):
            return "%.2fx / %.2fx" % (tab[(1, b)][d] / tab[(1, b)][name], tab[(2, b)][d] / tab[(2, b)][name])

        out.append("| %s | %s | %d | %d | %.2f%% | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, weight_shapes(infos[name]), nonzeros(infos[name]), mac[name], 100 * acc[name],
            us(1, 1), us(2, 1), us(1, 256), us(2, 256), ratio(times, 1), ratio(times, 256), ratio(mins, 256), ratio(cpus, 256)))
    out.append("")
    out.append(relutrim_line(srep, crep, pct, "channels"))
    out.append("channels kept per hidden layer: %s of %s; prune times: unstructured %.1f s, channels (with --compare) %.1f s"
               % (crep["units_kept"], crep["units"], t_sparse, t_chan))
    print("\n".join(out))


if __name__ == "__main__":
    main()
