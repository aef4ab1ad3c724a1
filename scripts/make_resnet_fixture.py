"""Writes the residual-network ONNX fixtures of prune/model (onnx_graph_test.go).

A small torchvision-style ResNet (BasicBlocks written out here, seeded random weights and
BatchNorm statistics, eval mode):

  stem    Conv(1,4,3x3,pad 1,no bias) BatchNorm ReLU                     12x12
  block1  BasicBlock(4,4): identity shortcut                             12x12
  block2  BasicBlock(4,8,stride 2): projection shortcut Conv(4,8,1x1,stride 2) + BatchNorm  6x6
  block3  BasicBlock(8,8): identity shortcut                             6x6
  head    GlobalAveragePool Flatten Linear(8,5)

BasicBlock(x) = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), conv 3x3 pad 1 without
bias, as torchvision's.  It is exported twice, opset 13, input (N,1,12,12):

  resnet.onnx        TrainingMode.PRESERVE, no constant folding: BatchNormalization nodes kept
  resnet_fused.onnx  TrainingMode.EVAL with constant folding: torch folds each BatchNorm into
                     its Conv (the projection shortcut is then a bare strided 1x1 Conv)

and the reference:

  resnet_x.npy       (16,1,12,12) float32 standard normal inputs (seeded)
  resnet_logits.npy  (16,5) float64: torch's logits of the same module run in float64 (the
                     float32 weights, exactly representable) - the Go forward pass of both
                     files must match them to 1e-5.

Rerun from the repository root (Debian's torch and onnx):
    /usr/bin/python3 scripts/make_resnet_fixture.py
"""
import os

import numpy as np
import onnx
import torch
from torch import nn

SEED = 21
N = 16
OPSET = 13
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join(ROOT, "prune", "model", "testdata", "resnet")


def randomize_bn(bn, gen):
    c = bn.num_features
    with torch.no_grad():
        bn.weight.copy_(0.5 + torch.rand(c, generator=gen))
        bn.bias.copy_(0.2 * torch.randn(c, generator=gen))
        bn.running_mean.copy_(0.3 * torch.randn(c, generator=gen))
        bn.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=gen))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.layer1 = BasicBlock(4, 4)
        self.layer2 = BasicBlock(4, 8, stride=2)
        self.layer3 = BasicBlock(8, 8)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build():
    torch.manual_seed(SEED)
    m = ResNet()
    gen = torch.Generator().manual_seed(SEED + 1)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            randomize_bn(mod, gen)
    return m.eval()


def main():
    os.makedirs(OUT, exist_ok=True)
    m = build()
    x = torch.randn((N, 1, 12, 12), generator=torch.Generator().manual_seed(SEED + 2))
    for name, preserve in (("resnet.onnx", True), ("resnet_fused.onnx", False)):
        path = os.path.join(OUT, name)
        torch.onnx.export(m, torch.zeros((N, 1, 12, 12)), path, opset_version=OPSET,
                          training=torch.onnx.TrainingMode.PRESERVE if preserve else torch.onnx.TrainingMode.EVAL,
                          do_constant_folding=not preserve, input_names=["input"], output_names=["logits"])
        onnx.checker.check_model(onnx.load(path))
        ops = [n.op_type for n in onnx.load(path).graph.node]
        print(name, os.path.getsize(path), "bytes:", " ".join(ops))
    with torch.no_grad():
        logits = m.double()(x.double()).numpy()
    np.save(os.path.join(OUT, "resnet_x.npy"), x.numpy().astype(np.float32), allow_pickle=False)
    np.save(os.path.join(OUT, "resnet_logits.npy"), logits.astype(np.float64), allow_pickle=False)
    print("logits[0]", logits[0])


if __name__ == "__main__":
    main()
