"""Minimal safetensors reader and writer (numpy based, no third-party safetensors).

File layout written and accepted here (the safetensors format):

    [8 bytes]  N, unsigned 64-bit little-endian: length of the JSON header
    [N bytes]  UTF-8 JSON object
                 {name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]},
                  ..., "__metadata__": {str: str}}
               offsets are relative to the first byte after the header;
               the writer sorts tensor names, lays the tensors out in that
               order without gaps and pads the header with ASCII spaces so
               that N is a multiple of 8
    [rest]     raw tensor bytes, little-endian, C (row-major) order

Usage:
    import st
    st.save_file({"0.weight": w, ...}, "m.safetensors", metadata={"k": "v"})
    tensors = st.load_file("m.safetensors")          # dict name -> numpy array
                                                     # (BF16 is read as float32)
    meta = st.load_metadata("m.safetensors")
    model.load_state_dict(st.load_torch("m.safetensors"), strict=True)
"""
import json
import struct

import numpy as np

# safetensors dtype string <-> little-endian numpy dtype
_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "U16": np.dtype("<u2"),
    "U32": np.dtype("<u4"),
    "U64": np.dtype("<u8"),
    "BOOL": np.dtype("?"),
}
# read-only: numpy has no bfloat16, so BF16 tensors are widened to float32 on reading
_READ_ONLY = {"BF16": np.dtype("<u2")}
_NAMES = {v: k for k, v in _DTYPES.items()}


def _dtype_name(dt):
    dt = np.dtype(dt).newbyteorder("<")  # no-op for single-byte types
    for k, v in _DTYPES.items():
        if v == dt:
            return k
    raise ValueError("unsupported dtype %s" % dt)


def to_bytes(tensors, metadata=None):
    """Serialise a dict name -> array-like (numpy array or torch tensor)."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        if hasattr(t, "detach"):  # torch tensor
            t = t.detach().cpu().numpy()
        a = np.asarray(t)
        dname = _dtype_name(a.dtype)
        raw = np.ascontiguousarray(a.astype(_DTYPES[dname], copy=False)).tobytes(order="C")
        header[name] = {
            "dtype": dname,
            "shape": [int(s) for s in a.shape],
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hjson = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    return struct.pack("<Q", len(hjson)) + hjson + b"".join(blobs)


def save_file(tensors, path, metadata=None):
    with open(path, "wb") as f:
        f.write(to_bytes(tensors, metadata))


def _parse(buf):
    if len(buf) < 8:
        raise ValueError("safetensors: file shorter than 8 bytes")
    (n,) = struct.unpack("<Q", buf[:8])
    if 8 + n > len(buf):
        raise ValueError("safetensors: header length %d exceeds file size" % n)
    header = json.loads(bytes(buf[8:8 + n]).decode("utf-8"))
    return header, 8 + n


def from_bytes(buf):
    """Parse bytes into (dict name -> numpy array, metadata dict)."""
    header, start = _parse(buf)
    data_len = len(buf) - start
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        dt = _DTYPES.get(info["dtype"], _READ_ONLY.get(info["dtype"]))
        if dt is None:
            raise ValueError("safetensors: unsupported dtype %r for %s" % (info["dtype"], name))
        shape = tuple(int(s) for s in info["shape"])
        b, e = (int(x) for x in info["data_offsets"])
        count = int(np.prod(shape)) if shape else 1
        if not (0 <= b <= e <= data_len) or e - b != count * dt.itemsize:
            raise ValueError("safetensors: bad data_offsets %r for %s" % ([b, e], name))
        arr = np.frombuffer(buf, dtype=dt, count=count, offset=start + b).reshape(shape)
        if info["dtype"] == "BF16":
            out[name] = (arr.astype(np.uint32) << 16).view(np.float32)
        else:
            out[name] = arr.astype(dt.newbyteorder("="), copy=True)
    return out, meta


def load_file(path):
    """Read a safetensors file into a dict name -> numpy array (native byte order)."""
    with open(path, "rb") as f:
        buf = f.read()
    return from_bytes(buf)[0]


def load_metadata(path):
    with open(path, "rb") as f:
        buf = f.read()
    return from_bytes(buf)[1]


def load_torch(path):
    """Read a safetensors file into a dict name -> torch.Tensor (for load_state_dict)."""
    import torch

    return {k: torch.from_numpy(v) for k, v in load_file(path).items()}


if __name__ == "__main__":
    # Round-trip self test: python3 scripts/st.py
    import os
    import tempfile

    rng = np.random.default_rng(0)
    ts = {
        "b": rng.standard_normal((3, 5)).astype(np.float32),
        "a": rng.standard_normal(7).astype(np.float64),
        "c": np.arange(4, dtype=np.int64),
        "s": np.float32(2.5),
    }
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "t.safetensors")
        save_file(ts, p, metadata={"format": "pt"})
        raw = open(p, "rb").read()
        (n,) = struct.unpack("<Q", raw[:8])
        assert n % 8 == 0
        back = load_file(p)
        assert sorted(back) == sorted(ts)
        for k in ts:
            assert back[k].dtype == np.asarray(ts[k]).dtype and np.array_equal(back[k], ts[k]), k
        assert load_metadata(p) == {"format": "pt"}
        # BF16 reading: 1.0 is 0x3F80, -2.0 is 0xC000
        hdr = b'{"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}'
        raw = struct.pack("<Q", len(hdr)) + hdr + struct.pack("<HH", 0x3F80, 0xC000)
        assert from_bytes(raw)[0]["x"].tolist() == [1.0, -2.0]
    print("st.py round trip ok")
