"""Make the hostile ONNX fixtures of issue 22: prune/model/testdata/onnx/hostile/.

Small graphs built with onnx.helper (no torch), each a variation of one tiny CNN

    input (N, 3, 8, 8) float32 -> Conv(3->4, k3, pads 1) -> Relu -> GlobalAveragePool
    -> Flatten -> Gemm(4->2, transB=1) -> logits (N, 2)          opset 13, seeded weights

that a careless or hostile user could hand to `relutrim prune`:

  good.onnx            the base model (accepted)
  pads_1e6.onnx        Conv pads of 1,000,000 (activations of 2e6 x 2e6 per channel)
  input_overflow.onnx  input (N, 1, 192, 192153584101141163): C*H*W wraps int64 to 64;
                       Conv(1->4, k1)
  pads_2999.onnx       Conv(3->8, k1, pads 2999): 8x8 becomes 6006x6006 (288e6 values
                       per sample: 100 calibration rows need 230 GB)
  dup_init.onnx        two initializers named "conv.weight" (different values)
  dup_output.onnx      the Relu writes the Conv's output name again (not SSA)
  fp16_weights.onnx    float32 input, float16 Conv weight (type-inconsistent)
  fp16_model.onnx      everything float16 (consistent; relutrim does not prune float16 ONNX)
  opset7.onnx          the base model declared as opset 7 (README: opset 13 or later)

For every file, meta.json records onnx.checker.check_model(model, full_check=True)'s
verdict ("ok" or its error message): the reference for which files are invalid ONNX.
Python's onnx package is the reference implementation of the ONNX rules; relutrim's
reader must refuse every file the checker refuses (and the float16 and opset-7 ones, which
the checker accepts but relutrim does not support).

Rerun from the repository root (under a second):
    /usr/bin/python3 scripts/make_hostile_onnx.py
"""
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join(ROOT, "prune", "model", "testdata", "onnx", "hostile")


def build(name, opset=13, cin=3, hw=(8, 8), cout=4, k=3, pads=1, dtype=np.float32,
          wdtype=None, dup_init=False, dup_output=False):
    rng = np.random.default_rng(0)
    elem = onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[np.dtype(dtype)]
    wdtype = wdtype or dtype
    w = (rng.standard_normal((cout, cin, k, k)) * 0.3).astype(wdtype)
    b = (rng.standard_normal(cout) * 0.1).astype(dtype)
    gw = (rng.standard_normal((2, cout)) * 0.3).astype(dtype)
    gb = np.zeros(2, dtype=dtype)
    inits = [numpy_helper.from_array(w, "conv.weight"), numpy_helper.from_array(b, "conv.bias"),
             numpy_helper.from_array(gw, "fc.weight"), numpy_helper.from_array(gb, "fc.bias")]
    if dup_init:
        inits.append(numpy_helper.from_array((w * 2).astype(wdtype), "conv.weight"))
    relu_out = "conv_out" if dup_output else "relu_out"
    nodes = [
        helper.make_node("Conv", ["input", "conv.weight", "conv.bias"], ["conv_out"], name="/conv/Conv",
                         kernel_shape=[k, k], pads=[pads] * 4, strides=[1, 1]),
        helper.make_node("Relu", ["conv_out"], [relu_out], name="/relu/Relu"),
        helper.make_node("GlobalAveragePool", [relu_out], ["gap_out"], name="/gap/GlobalAveragePool"),
        helper.make_node("Flatten", ["gap_out"], ["flat_out"], name="/flat/Flatten", axis=1),
        helper.make_node("Gemm", ["flat_out", "fc.weight", "fc.bias"], ["logits"], name="/fc/Gemm",
                         transB=1),
    ]
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", elem, ["N", cin, hw[0], hw[1]])],
        [helper.make_tensor_value_info("logits", elem, ["N", 2])],
        initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                             producer_name="relutrim scripts/make_hostile_onnx.py")


CASES = {
    "good.onnx": {},
    "pads_1e6.onnx": {"pads": 1000000},
    "input_overflow.onnx": {"cin": 1, "hw": (192, 192153584101141163), "k": 1, "pads": 0},
    "pads_2999.onnx": {"cout": 8, "k": 1, "pads": 2999},
    "dup_init.onnx": {"dup_init": True},
    "dup_output.onnx": {"dup_output": True},
    "fp16_weights.onnx": {"wdtype": np.float16},
    "fp16_model.onnx": {"dtype": np.float16},
    "opset7.onnx": {"opset": 7},
}


def main():
    os.makedirs(OUT, exist_ok=True)
    meta = {"onnx_version": onnx.__version__, "checker": "onnx.checker.check_model(model, full_check=True)",
            "files": {}}
    for fname, kw in CASES.items():
        m = build(fname[:-5], **kw)
        path = os.path.join(OUT, fname)
        onnx.save(m, path)
        try:
            onnx.checker.check_model(onnx.load(path), full_check=True)
            verdict = "ok"
        except Exception as e:  # the checker's ValidationError or InferenceError
            verdict = type(e).__name__ + ": " + str(e).strip().splitlines()[0]
        meta["files"][fname] = {"checker": verdict, "bytes": os.path.getsize(path)}
        print(f"{fname:22s} {verdict}")
    with open(os.path.join(OUT, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
