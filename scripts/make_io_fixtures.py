#!/usr/bin/python3
"""Write the NumPy/CSV/safetensors fixtures used by relutrim/dataio tests.

Run from the repository root with Debian's NumPy:

    /usr/bin/python3 scripts/make_io_fixtures.py

Everything goes to dataio/testdata/. expected.json maps each fixture to the
values the Go reader must produce, computed here by NumPy (an independent
implementation). Floats are written with float.hex() so they are exact and
NaN/Inf survive JSON; Go's strconv.ParseFloat reads that syntax.

The safetensors fixture is assembled by hand (struct + json) rather than
with the safetensors package, as a second, independent writer.
"""

import io
import json
import os
import struct
import zipfile

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "dataio", "testdata")
OUT = os.path.normpath(OUT)
FUZZ = os.path.join(OUT, "fuzz")

rng = np.random.default_rng(20240611)
expected = {}


def hexlist(a):
    return [float(v).hex() for v in np.asarray(a, dtype=np.float64).ravel(order="C")]


def expect(name, arr, gotype, vector=False, header=None):
    """Record what the Go reader should return for fixture `name`."""
    arr = np.asarray(arr)
    if arr.ndim == 1:
        rows, cols = arr.shape[0], 1
    else:
        rows, cols = arr.shape
    e = {"rows": int(rows), "cols": int(cols), "type": gotype,
         "vector": vector, "values": hexlist(arr)}
    if header is not None:
        e["header"] = header
    expected[name] = e


def save(name, arr, gotype, version=None):
    path = os.path.join(OUT, name)
    with open(path, "wb") as f:
        if version is None:
            np.save(f, arr, allow_pickle=False)
        else:
            np.lib.format.write_array(f, arr, version=version, allow_pickle=False)
    expect(name, arr, gotype, vector=(arr.ndim == 1))


def main():
    os.makedirs(OUT, exist_ok=True)

    f4 = (rng.standard_normal((3, 4)) * 10).astype(np.float32)
    f8 = rng.standard_normal((4, 3)) * 1e3
    save("f4_c.npy", f4, "float32")
    save("f8_c.npy", f8, "float64")
    f8f = np.asfortranarray(rng.standard_normal((3, 5)))
    assert f8f.flags.f_contiguous and not f8f.flags.c_contiguous
    save("f8_fortran.npy", f8f, "float64")
    f4f = np.asfortranarray((rng.standard_normal((5, 2)) * 3).astype(np.float32))
    save("f4_fortran.npy", f4f, "float32")
    save("i4_fortran.npy", np.asfortranarray(np.arange(-6, 6, dtype=np.int32).reshape(3, 4)), "float64")
    save("f8_be.npy", f8.astype(">f8"), "float64")
    save("f4_be_fortran.npy", np.asfortranarray(f4.astype(">f4")), "float32")
    save("i4_be.npy", np.array([[-5, 7], [2**31 - 1, -2**31]], dtype=">i4"), "float64")
    save("i4.npy", np.array([[-3, 0, 2147483647], [-2147483648, 5, 9]], dtype=np.int32), "float64")
    save("u1.npy", np.array([[0, 1, 255], [7, 128, 3]], dtype=np.uint8), "float32")
    save("i1.npy", np.array([-128, -1, 0, 127], dtype=np.int8), "float32")
    save("i2.npy", np.array([[-32768, 32767]], dtype=np.int16), "float32")
    save("u2.npy", np.array([[0, 65535]], dtype=np.uint16), "float32")
    save("i8.npy", np.array([[-(2**63), 2**53 + 1], [12345, -1]], dtype=np.int64), "float64")
    save("u4.npy", np.array([0, 4294967295], dtype=np.uint32), "float64")
    save("u8.npy", np.array([[0, 2**64 - 1, 2**53 + 1]], dtype=np.uint64), "float64")
    save("bool.npy", np.array([[True, False], [False, True], [True, True]]), "float64")
    save("f2.npy", np.array([[1.5, -0.0, 65504.0], [6e-8, np.inf, 0.1]], dtype=np.float16), "float32")
    save("vec_f8.npy", rng.standard_normal(7), "float64")
    save("empty_rows.npy", np.zeros((0, 3), dtype=np.float32), "float32")
    save("v2_f8.npy", f8, "float64", version=(2, 0))
    save("v3_f4.npy", f4, "float32", version=(3, 0))
    nan = np.arange(12, dtype=np.float64).reshape(3, 4)
    nan[1, 2] = np.nan
    nan[2, 0] = np.inf
    save("nan_f8.npy", nan, "float64")
    inf = np.ones((2, 3), dtype=np.float32)
    inf[1, 1] = -np.inf
    save("inf_f4.npy", inf, "float32")

    # Inputs that must be rejected.
    np.save(os.path.join(OUT, "bad_complex.npy"), np.array([[1 + 2j, 3 - 1j]]))
    np.save(os.path.join(OUT, "bad_3d.npy"), np.zeros((2, 2, 2)))
    np.save(os.path.join(OUT, "bad_0d.npy"), np.float64(3.5))
    np.save(os.path.join(OUT, "bad_str.npy"), np.array(["ab", "cd"]))
    np.save(os.path.join(OUT, "bad_object.npy"), np.array([1, "x"], dtype=object), allow_pickle=True)
    np.save(os.path.join(OUT, "bad_struct.npy"), np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]))
    with open(os.path.join(OUT, "f8_c.npy"), "rb") as f:
        good = f.read()
    with open(os.path.join(OUT, "bad_truncated_data.npy"), "wb") as f:
        f.write(good[:-5])
    with open(os.path.join(OUT, "bad_truncated_header.npy"), "wb") as f:
        f.write(good[:40])
    with open(os.path.join(OUT, "bad_magic.npy"), "wb") as f:
        f.write(b"\x93NUMPX" + good[6:])

    # .npz: stored and deflated, several and single arrays.
    ya = rng.standard_normal(5)
    xa = rng.standard_normal((5, 2)).astype(np.float32)
    np.savez(os.path.join(OUT, "two.npz"), X=xa, y=ya)
    np.savez_compressed(os.path.join(OUT, "two_deflated.npz"), X=xa, y=ya)
    np.savez(os.path.join(OUT, "single.npz"), weights=f8)
    for z in ("two.npz", "two_deflated.npz"):
        expect(z + ":X", xa, "float32")
        expect(z + ":y", ya, "float64", vector=True)
    expect("single.npz", f8, "float64")
    with zipfile.ZipFile(os.path.join(OUT, "two_deflated.npz")) as zf:
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zf.infolist())
    with open(os.path.join(OUT, "bad_not_zip.npz"), "wb") as f:
        f.write(b"this is not a zip archive\n")

    # CSV.
    c = np.round(rng.standard_normal((4, 3)) * 100, 3)
    np.savetxt(os.path.join(OUT, "header.csv"), c, delimiter=",", header="a,b,c", comments="", fmt="%.17g")
    expect("header.csv", c, "float64", header=["a", "b", "c"])
    np.savetxt(os.path.join(OUT, "noheader.csv"), c, delimiter=",", fmt="%.17g")
    expect("noheader.csv", c, "float64")
    with open(os.path.join(OUT, "spaces.csv"), "w") as f:
        f.write(" x , y\n 1.5, -2\n3 ,4e2\n")
    expect("spaces.csv", np.array([[1.5, -2.0], [3.0, 400.0]]), "float64", header=["x", "y"])
    with open(os.path.join(OUT, "bad_ragged.csv"), "w") as f:
        f.write("a,b,c\n1,2,3\n4,5\n")
    with open(os.path.join(OUT, "bad_nonnumeric.csv"), "w") as f:
        f.write("1,2,3\n4,five,6\n")
    with open(os.path.join(OUT, "bad_empty.csv"), "w") as f:
        pass
    with open(os.path.join(OUT, "bad_header_only.csv"), "w") as f:
        f.write("a,b\n")
    with open(os.path.join(OUT, "bad_quote.csv"), "w") as f:
        f.write('1,2\n3,"4\n')

    write_safetensors()

    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")

    write_fuzz_corpus()


def write_safetensors():
    """Assemble a safetensors file by hand: u64 header length, JSON, data."""
    tensors = {
        "w": np.array([[1.5, -2.25, 3.0], [0.1, 1e-30, -7.0]], dtype="<f4"),
        "b": np.array([0.5, -1e300, 2.0**-1074, 4.0], dtype="<f8"),
        "mask": np.array([0, 1, 255, 3, 7], dtype="u1"),
        "idx": np.array([[-(2**63), 2**63 - 1], [0, -5]], dtype="<i8"),
        "h": np.array([1.0, -0.5, 65504.0, 6e-8], dtype="<f2"),
        "bf": np.array([1.0, -3.140625, 1e30], dtype="<f4"),
    }
    # bfloat16 by truncation of exactly representable values.
    bf_bits = (tensors["bf"].view("<u4") >> 16).astype("<u2")
    order = sorted(tensors)
    header = {"__metadata__": {"format": "pt", "source": "make_io_fixtures.py"}}
    data = b""
    for name in order:
        a = tensors[name]
        raw = bf_bits.tobytes() if name == "bf" else a.tobytes()
        dtype = {"w": "F32", "b": "F64", "mask": "U8", "idx": "I64", "h": "F16", "bf": "BF16"}[name]
        header[name] = {"dtype": dtype, "shape": list(a.shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * (-len(hj) % 8)
    with open(os.path.join(OUT, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + data)
    exp = {}
    for name in order:
        a = tensors[name]
        if name in ("mask", "idx"):
            vals = [str(int(v)) for v in a.ravel()]  # exact as strings
        elif name == "bf":
            vals = hexlist((bf_bits.astype("<u4") << 16).view("<f4"))
        else:
            vals = hexlist(a.astype(np.float64))
        exp[name] = {"dtype": header[name]["dtype"], "shape": list(a.shape), "values": vals}
    expected["model.safetensors"] = {"tensors": exp, "metadata": header["__metadata__"]}


def go_quote(b):
    out = []
    for ch in b:
        if ch == 0x22:
            out.append('\\"')
        elif ch == 0x5C:
            out.append("\\\\")
        elif 0x20 <= ch < 0x7F:
            out.append(chr(ch))
        else:
            out.append("\\x%02x" % ch)
    return '"' + "".join(out) + '"'


def write_corpus_entry(fuzzer, name, data):
    d = os.path.join(FUZZ, fuzzer)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "w") as f:
        f.write("go test fuzz v1\n[]byte(%s)\n" % go_quote(data))


def write_fuzz_corpus():
    def read(n):
        with open(os.path.join(OUT, n), "rb") as f:
            return f.read()

    for n in ("f4_c.npy", "f8_fortran.npy", "i4_be.npy", "bool.npy", "f2.npy",
              "vec_f8.npy", "v2_f8.npy", "bad_complex.npy", "empty_rows.npy"):
        write_corpus_entry("FuzzReadNPY", n.replace(".", "_"), read(n))
    for n in ("header.csv", "noheader.csv", "spaces.csv", "bad_ragged.csv", "bad_quote.csv"):
        write_corpus_entry("FuzzReadCSV", n.replace(".", "_"), read(n))
    write_corpus_entry("FuzzSafetensors", "model", read("model.safetensors"))
    write_corpus_entry("FuzzSafetensors", "empty", struct.pack("<Q", 8) + b"{}      ")


if __name__ == "__main__":
    main()
