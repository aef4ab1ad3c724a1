"""Make the ONNX fixtures for the Go ONNX reader/writer: prune/model/testdata/onnx/.

All models are built with torch (seed 0, CPU, 2 threads), left at their random
initialisation (BatchNorm statistics and affine parameters set to seeded
non-trivial values), put in eval mode and exported with torch.onnx.export,
opset 13.  The good models are exported with
training=torch.onnx.TrainingMode.PRESERVE and do_constant_folding=False: in
TrainingMode.EVAL torch 1.13 fuses a BatchNormalization that follows a Conv
into the Conv (its eval peephole pass), PRESERVE with the model in eval mode
skips that pass, so BatchNormalization stays a node (with one output,
running statistics as initializers).

Good models (input name "input", output "logits", batch axis fixed at 16):

  cnn.onnx      input (16,3,12,16) (H != W on purpose):
                  Conv(3,8,k=(3,5),pad=(1,2)) BatchNormalization Relu        -> act0 (8,12,16)
                  MaxPool(k2,s2)                                             -> (8,6,8)
                  Conv(8,8,k3,pad2,dilation2,bias=False) Relu                -> act1 (8,6,8)
                  AveragePool(k2,s1)                                         -> (8,5,7)
                  Conv(8,12,k3,stride2,pad1) Relu                            -> act2 (12,3,4)
                  MaxPool(k3,s2,pad1)                                        -> (12,2,2)
                  Flatten Gemm(48,16) BatchNormalization(16) Relu            -> act3 (16)
                  Gemm(16,4)                                                 -> logits (4)
  cnn_gap.onnx  input (16,3,12,12):
                  Conv(3,8,k3,pad1) Relu -> act0 ; Conv(8,16,k3,stride2,pad1) Relu -> act1 (16,6,6)
                  GlobalAveragePool Flatten Gemm(16,12) Relu -> act2 ; Gemm(12,5) -> logits
  mlp.onnx      Sequential(Linear(20,16), ReLU, Linear(16,8), ReLU, Linear(8,3)) with the
                weights of prune/testdata/small.safetensors (loaded through scripts/st.py),
                input (16,20) = the first 16 rows of prune/testdata/calib_x.npy

For each good model <name>: <name>_x.npy (the input, float32), <name>_logits.npy
(torch's output, float32) and <name>_act<k>.npy (torch's output of the k-th
ReLU, in torch's layout (N,C,H,W) or (N,F)), all computed by the torch module
that was exported.

Bad models in bad/ (each passes onnx.checker.check_model except truncated.onnx):
  sigmoid.onnx          Conv Sigmoid Flatten Gemm: unsupported activation
  residual.onnx         Conv Relu Conv Relu Add(branch, skip) ...: not a chain
  group_conv.onnx       Conv with group=2
  dynamic_reshape.onnx  x.view(x.size(0), -1) with a dynamic batch axis: Shape, Gather,
                        Unsqueeze, Concat, Reshape
  nan_weight.onnx       a Conv weight with a NaN
  truncated.onnx        the first half of cnn.onnx's bytes (not parseable)

meta.json lists every file with its shape, each model's op list, node names,
initializer names and shapes, and for each bad model the node/op the error
should name.  The script checks each good fixture with scripts/eval_onnx.py
(graph -> torch module from the ONNX file; logits and activations must match
to 1e-5) and that eval_onnx.py rejects every bad one.

Rerun from the repository root:
    /usr/bin/python3 scripts/make_onnx_fixtures.py
"""
import hashlib
import json
import os
import sys

import numpy as np
import onnx
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eval_onnx  # noqa: E402
import st  # noqa: E402

SEED = 0
N = 16
OPSET = 13
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join(ROOT, "prune", "model", "testdata", "onnx")
BAD = os.path.join(OUT, "bad")


def randomize_bn(bn, gen):
    """Seeded non-trivial BatchNorm parameters and running statistics."""
    c = bn.num_features
    with torch.no_grad():
        bn.weight.copy_(0.5 + torch.rand(c, generator=gen))          # gamma in [0.5, 1.5)
        bn.bias.copy_(0.2 * torch.randn(c, generator=gen))           # beta
        bn.running_mean.copy_(0.3 * torch.randn(c, generator=gen))
        bn.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=gen))  # in [0.5, 2)


def cnn():
    torch.manual_seed(SEED)
    m = nn.Sequential(
        nn.Conv2d(3, 8, (3, 5), padding=(1, 2)), nn.BatchNorm2d(8), nn.ReLU(),   # 0 1 2
        nn.MaxPool2d(2),                                                          # 3
        nn.Conv2d(8, 8, 3, padding=2, dilation=2, bias=False), nn.ReLU(),         # 4 5
        nn.AvgPool2d(2, stride=1, count_include_pad=False),                       # 6
        nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.ReLU(),                      # 7 8
        nn.MaxPool2d(3, stride=2, padding=1),                                     # 9
        nn.Flatten(),                                                             # 10
        nn.Linear(48, 16), nn.BatchNorm1d(16), nn.ReLU(),                         # 11 12 13
        nn.Linear(16, 4))                                                         # 14
    gen = torch.Generator().manual_seed(SEED + 1)
    randomize_bn(m[1], gen)
    randomize_bn(m[12], gen)
    return m.eval(), (N, 3, 12, 16)


def cnn_gap():
    torch.manual_seed(SEED)
    m = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(16, 12), nn.ReLU(),
        nn.Linear(12, 5))
    return m.eval(), (N, 3, 12, 12)


def mlp():
    m = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    m.load_state_dict(st.load_torch(os.path.join(ROOT, "prune", "testdata", "small.safetensors")),
                      strict=True)
    return m.eval(), (N, 20)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        h = torch.relu(self.conv1(x))
        h = torch.relu(self.conv2(h)) + h
        return self.fc(torch.flatten(h, 1))


class DynamicReshape(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        return self.fc(h.view(h.size(0), -1))


def export(model, shape, path, dynamic=False, preserve=True):
    kw = {}
    if dynamic:
        kw["dynamic_axes"] = {"input": {0: "N"}, "logits": {0: "N"}}
    torch.onnx.export(model, torch.zeros(shape), path, opset_version=OPSET,
                      training=torch.onnx.TrainingMode.PRESERVE if preserve else torch.onnx.TrainingMode.EVAL,
                      do_constant_folding=not preserve,
                      input_names=["input"], output_names=["logits"], **kw)


def describe(path):
    m = onnx.load(path)
    g = m.graph
    return {
        "ops": [n.op_type for n in g.node],
        "nodes": [{"name": n.name, "op": n.op_type, "inputs": list(n.input), "outputs": list(n.output)}
                  for n in g.node],
        "initializers": {t.name: {"shape": list(t.dims), "dtype": onnx.TensorProto.DataType.Name(t.data_type),
                                  "raw_data": bool(t.raw_data)} for t in g.initializer},
        "inputs": [v.name for v in g.input],
        "outputs": [v.name for v in g.output],
        "opset": [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")],
        "producer": "%s %s" % (m.producer_name, m.producer_version),
    }


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def save_npy(name, a):
    a = np.ascontiguousarray(a)
    np.save(os.path.join(OUT, name), a, allow_pickle=False)
    return {"file": name, "shape": list(a.shape), "dtype": str(a.dtype)}


@torch.no_grad()
def run_with_acts(model, x):
    acts = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: acts.append(out.detach().clone()))
             for m in model.modules() if isinstance(m, nn.ReLU)]
    logits = model(x)
    for h in hooks:
        h.remove()
    return logits, acts


def good(name, builder, x_np, meta):
    model, shape = builder()
    path = os.path.join(OUT, name + ".onnx")
    export(model, shape, path)
    x = torch.from_numpy(x_np)
    logits, acts = run_with_acts(model, x)
    d = describe(path)
    print("%-14s ops: %s" % (name + ".onnx", " ".join(d["ops"])))
    files = {"x": save_npy(name + "_x.npy", x_np), "logits": save_npy(name + "_logits.npy", logits.numpy())}
    for k, a in enumerate(acts):
        files["act%d" % k] = save_npy("%s_act%d.npy" % (name, k), a.numpy())
        dead = float((a.reshape(a.shape[0], -1) == 0).all(dim=0).double().mean())
        print("    act%d %s  zero fraction %.3f  never-active units %.3f"
              % (k, list(a.shape), float((a == 0).double().mean()), dead))

    # Independent check: rebuild from the ONNX file alone and compare.
    net, info = eval_onnx.load(path)
    assert info["ops"] == d["ops"]
    l2, a2 = eval_onnx.forward(net, info, x)
    ld = (l2 - logits).abs().max().item()
    ad = [(p - q).abs().max().item() for p, q in zip(a2, acts)]
    print("    eval_onnx rebuild: max |logit diff| %.3g, act diffs %s" % (ld, ["%.3g" % v for v in ad]))
    assert len(a2) == len(acts) and ld <= 1e-5 and max(ad) <= 1e-5

    meta[name] = {"file": name + ".onnx", "sha256": sha256(path), "bytes": os.path.getsize(path),
                  "torch_module": repr(model).replace("\n", " ").replace("  ", ""),
                  **d, "files": files, "eval_onnx_max_abs_logit_diff": ld}
    return model


def bad(name, model, shape, meta, want, dynamic=False, preserve=False):
    path = os.path.join(BAD, name + ".onnx")
    export(model.eval(), shape, path, dynamic=dynamic, preserve=preserve)
    return finish_bad(name, path, meta, want)


def finish_bad(name, path, meta, want, check=True):
    entry = {"file": "bad/" + name + ".onnx", "sha256": sha256(path), "bytes": os.path.getsize(path)}
    if check:
        onnx.checker.check_model(onnx.load(path))
        entry.update(describe(path))
        entry["onnx_checker"] = "passes"
        print("bad/%-20s ops: %s" % (name + ".onnx", " ".join(entry["ops"])))
    entry.update(want)
    try:
        eval_onnx.load(path)
    except Exception as e:  # noqa: BLE001  (any failure is a rejection)
        entry["eval_onnx_error"] = "%s: %s" % (type(e).__name__, str(e).split("\n")[0][:300])
        print("    rejected by eval_onnx: %s" % entry["eval_onnx_error"])
    else:
        sys.exit("eval_onnx.py accepted bad model %s" % path)
    meta[name] = entry


def main():
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    os.makedirs(BAD, exist_ok=True)
    rng = np.random.default_rng(SEED)
    meta = {"good": {}, "bad": {}}

    good("cnn", cnn, rng.standard_normal((N, 3, 12, 16)).astype(np.float32), meta["good"])
    good("cnn_gap", cnn_gap, rng.standard_normal((N, 3, 12, 12)).astype(np.float32), meta["good"])
    calib = np.load(os.path.join(ROOT, "prune", "testdata", "calib_x.npy"))
    good("mlp", mlp, np.ascontiguousarray(calib[:N], dtype=np.float32), meta["good"])
    meta["good"]["mlp"]["same_weights_as"] = "prune/testdata/small.safetensors"
    meta["good"]["mlp"]["same_weights_note"] = (
        "the initializers are exactly the tensors of prune/testdata/small.safetensors (loaded with "
        "scripts/st.py); mlp_x.npy is calib_x.npy[:16], so mlp_logits.npy equals logits.npy[:16]")
    ref = np.load(os.path.join(ROOT, "prune", "testdata", "logits.npy"))[:N]
    got = np.load(os.path.join(OUT, "mlp_logits.npy"))
    print("    mlp logits vs prune/testdata/logits.npy[:16]: max |diff| %.3g" % np.abs(ref - got).max())
    meta["good"]["mlp"]["max_abs_diff_vs_prune_testdata_logits"] = float(np.abs(ref - got).max())

    def seeded(cls, *a, **k):
        torch.manual_seed(SEED)
        return cls(*a, **k)

    b = meta["bad"]
    bad("sigmoid", nn.Sequential(seeded(nn.Conv2d, 2, 4, 3, padding=1), nn.Sigmoid(), nn.Flatten(),
                                 seeded(nn.Linear, 4 * 6 * 6, 3)), (1, 2, 6, 6), b,
        {"reject_op": "Sigmoid", "reason": "unsupported activation Sigmoid"})
    bad("residual", seeded(Residual), (1, 2, 6, 6), b,
        {"reject_op": "Add", "reason": "residual Add of the second Relu's output and the first Relu's "
                                       "output: two branches, not a chain"})
    bad("group_conv", nn.Sequential(seeded(nn.Conv2d, 4, 4, 3, padding=1, groups=2), nn.ReLU(), nn.Flatten(),
                                    seeded(nn.Linear, 4 * 6 * 6, 3)), (1, 4, 6, 6), b,
        {"reject_op": "Conv", "reason": "Conv with group=2 (weight shape (4,2,3,3))"})
    bad("dynamic_reshape", seeded(DynamicReshape), (1, 2, 6, 6), b,
        {"reject_op": "Shape", "reason": "x.view(x.size(0), -1) with a dynamic batch axis: "
                                         "Shape/Gather/Unsqueeze/Concat/Reshape; the first unsupported node "
                                         "is the Shape node"}, dynamic=True)
    nanm = nn.Sequential(seeded(nn.Conv2d, 2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         seeded(nn.Linear, 4 * 6 * 6, 3))
    with torch.no_grad():
        nanm[0].weight[1, 0, 2, 1] = float("nan")
    bad("nan_weight", nanm, (1, 2, 6, 6), b,
        {"reject_op": "Conv", "reason": "the Conv weight initializer has a NaN at [1,0,2,1]"})
    # name the node and initializer concretely
    conv_nodes = [n for n in b["nan_weight"]["nodes"] if n["op"] == "Conv"]
    b["nan_weight"]["reject_node"] = conv_nodes[0]["name"]
    b["nan_weight"]["reject_initializer"] = conv_nodes[0]["inputs"][1]
    for name in ("sigmoid", "residual", "group_conv", "dynamic_reshape"):
        e = b[name]
        e["reject_node"] = [n["name"] for n in e["nodes"] if n["op"] == e["reject_op"]][0]

    with open(os.path.join(OUT, "cnn.onnx"), "rb") as f:
        data = f.read()
    path = os.path.join(BAD, "truncated.onnx")
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])
    finish_bad("truncated", path, b, {"reject_op": None, "reason": "first %d of the %d bytes of cnn.onnx; "
                                      "protobuf parse error (no node to name)" % (len(data) // 2, len(data))},
               check=False)

    meta["seed"] = SEED
    meta["opset"] = OPSET
    meta["export"] = ("torch.onnx.export(opset_version=13, input_names=['input'], output_names=['logits']); "
                      "good models and residual/dynamic_reshape: see each entry; good models use "
                      "training=TrainingMode.PRESERVE, do_constant_folding=False with the module in eval mode "
                      "(keeps BatchNormalization nodes); bad models use TrainingMode.EVAL, "
                      "do_constant_folding=True; dynamic_reshape has dynamic batch axis 'N'")
    meta["layouts"] = ("x and act files are in torch's layout: (N,C,H,W) after convolutions/pools, (N,F) after "
                       "Flatten/Gemm; Conv weights (out,in,kh,kw); Gemm B is (out,in) with transB=1")
    meta["torch_version"] = torch.__version__
    meta["onnx_version"] = onnx.__version__
    meta["numpy_version"] = np.__version__
    meta["script"] = "scripts/make_onnx_fixtures.py"
    with open(os.path.join(OUT, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print("wrote", len(os.listdir(OUT)) - 1, "files and bad/ with", len(os.listdir(BAD)), "files in",
          os.path.relpath(OUT, ROOT))


if __name__ == "__main__":
    main()
