"""Trains a small ResNet on MNIST briefly and writes it as an ONNX fixture of prune/model.

  stem    Conv(1,8,3x3,pad 1,no bias) BatchNorm ReLU                       28x28
  block1  BasicBlock(8,8): identity shortcut                               28x28
  block2  BasicBlock(8,16,stride 2): projection Conv(8,16,1x1,stride 2) + BatchNorm  14x14
  block3  BasicBlock(16,16): identity shortcut                             14x14
  head    GlobalAveragePool Flatten Linear(16,10)

(BasicBlock as in scripts/make_resnet_fixture.py, torchvision's.)  MNIST from the Go module
cache (scripts/mnist_data.py), x = pixel/255, 60000 train images; seeded and deterministic
(torch.use_deterministic_algorithms, 2 threads), Adam lr 3e-3, batch 128, EPOCHS epochs,
cross-entropy.  Written, to prune/model/testdata/resnet/:

  resnet_mnist.onnx         opset 13, TrainingMode.EVAL with constant folding (torch folds
                            each BatchNorm into its Conv), input (N,1,28,28)
  resnet_mnist_logits.npy   (16,10) float64: torch's logits of the first 16 test images,
                            the module run in float64
  resnet_mnist.json         test accuracy of the float64 module on the first 2000 and on all
                            10000 test images (and the correct counts), training time, versions

prune/model's TestResidualMNIST checks the Go forward pass against them.  Rerun from the
repository root: /usr/bin/python3 scripts/train_resnet.py  (a few minutes on 2 cores).
"""
import json
import os
import sys
import time

import numpy as np
import onnx
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mnist_data  # noqa: E402
from make_resnet_fixture import BasicBlock  # noqa: E402

SEED = 5
EPOCHS = 2
LR = 3e-3
BATCH = 128
OPSET = 13
OUT = os.path.join(mnist_data.REPO_ROOT, "prune", "model", "testdata", "resnet")


class ResNetMNIST(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.layer1 = BasicBlock(8, 8)
        self.layer2 = BasicBlock(8, 16, stride=2)
        self.layer3 = BasicBlock(16, 16)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def to_input(images_u8):
    x = images_u8.astype(np.float32) / np.float32(255.0)
    return torch.from_numpy(x.reshape(-1, 1, 28, 28))


@torch.no_grad()
def correct(model, x, y, batch=1000):
    c = 0
    for i in range(0, x.shape[0], batch):
        c += (model(x[i:i + batch]).argmax(dim=1) == y[i:i + batch]).sum().item()
    return c


def main():
    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    xtr_u8, ytr_np = mnist_data.load("train")
    xte_u8, yte_np = mnist_data.load("t10k")
    xtr, ytr = to_input(xtr_u8), torch.from_numpy(ytr_np)
    xte, yte = to_input(xte_u8), torch.from_numpy(yte_np)
    model = ResNetMNIST()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
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
        model.eval()
        print("epoch %d  loss %.4f  test acc %.4f  (%.0fs)" % (epoch, total / n, correct(model, xte, yte) / 10000,
                                                              time.time() - t0), flush=True)
    seconds = time.time() - t0
    model.eval()
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "resnet_mnist.onnx")
    torch.onnx.export(model, torch.zeros((1, 1, 28, 28)), path, opset_version=OPSET,
                      training=torch.onnx.TrainingMode.EVAL, do_constant_folding=True,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    onnx.checker.check_model(onnx.load(path))
    m64 = model.double()
    with torch.no_grad():
        logits = m64(xte[:16].double()).numpy()
    np.save(os.path.join(OUT, "resnet_mnist_logits.npy"), logits.astype(np.float64), allow_pickle=False)
    c2k = correct(m64, xte[:2000].double(), yte[:2000])
    c10k = correct(m64, xte.double(), yte)
    meta = {
        "arch": "stem Conv(1,8)+BN+ReLU; BasicBlock(8,8); BasicBlock(8,16,stride 2, 1x1 projection+BN); "
                "BasicBlock(16,16); GlobalAveragePool; Linear(16,10)",
        "seed": SEED, "epochs": EPOCHS, "optimizer": "Adam lr=%g batch %d, cross-entropy" % (LR, BATCH),
        "test_correct_first_2000": c2k, "test_correct_10000": c10k, "test_accuracy": c10k / 10000,
        "train_seconds": round(seconds), "onnx_bytes": os.path.getsize(path),
        "torch": torch.__version__, "onnx": onnx.__version__,
        "ops": [nd.op_type for nd in onnx.load(path).graph.node],
    }
    with open(os.path.join(OUT, "resnet_mnist.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
