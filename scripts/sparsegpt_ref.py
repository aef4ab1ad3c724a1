"""Independent numpy reference of SparseGPT for relutrim's Go implementation (prune/sparsegpt.go).

Writes prune/testdata/sparsegpt/*.npy and manifest.json (committed, so the Go tests need no
Python). Rerun from the repository root with Debian's interpreter:

    /usr/bin/python3 scripts/sparsegpt_ref.py

Written from the paper (Frantar & Alistarh 2023, "SparseGPT: Massive Language Models Can Be
Accurately Pruned in One-Shot", Algorithm 1), not from any implementation, and on purpose in
a different form from the Go code, so that the comparison tests the Go code's shortcuts:

- the inverse Hessian's Cholesky factor is taken the textbook way, chol(inv(H)) (Go avoids
  the explicit inverse);
- the weight updates are applied eagerly: after every column, all columns to its right get
  their correction at once (Go applies them lazily per block of columns, with a matrix
  product; the results are equal up to rounding);
- the N:M groups are built here from the convolution geometry (Go uses prune.nmGroups) and
  block ends play no role for them (in the eager form a group's weights are final when the
  sweep reaches it; Go moves its block ends to group boundaries).

The rules relutrim fixes and this script follows (see the comment of prune/sparsegpt.go):
H = X^T X / n; dead inputs (H_jj = 0) get H_jj = 1 and zero weights; then 1% of the mean
diagonal is added; U = upper Cholesky factor of H^{-1}. Unstructured: blocks of `block`
columns; a block's mask is chosen at its start, the cnt entries of W[:, block] with the
smallest w^2 / U_jj^2 (ties by row-major position in the block), where the P = rows*cols -
keep pruned entries are split over blocks by floor(P e_b / E) - floor(P e_{b-1} / E)
(e_b: entries up to block b's end, E = rows*cols). N:M: groups (M consecutive inputs of a
dense layer, M consecutive input channels at one kernel position of a convolution, whose
input index is (c*KH + i)*KW + j) are swept one after the other, in the order kernel
position, then channel; when the sweep reaches a group's first column, each row drops its
len(g) - min(N, len(g)) smallest w^2 / U_jj^2 (ties to the earlier column).

Each fixture: <layer>_W.npy (rows x cols, input weights), <layer>_X.npy (n x cols
calibration rows; for the convolution the unfolded patches of random channel-first images,
one row per output position, columns in PyTorch's weight order), <case>_Wout.npy (the
pruned weights), and an entry in manifest.json with keep / N, M / block / convolution
geometry.
"""

import json
import os

import numpy as np

OUT = os.path.join("prune", "testdata", "sparsegpt")
DAMP = 0.01


def hinv_upper(X, W):
    """Returns U (upper Cholesky factor of the damped H^{-1}) and W with dead inputs zeroed."""
    n = X.shape[0]
    H = X.T @ X / n
    W = W.copy()
    dead = np.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    H = H + DAMP * np.mean(np.diag(H)) * np.eye(H.shape[0])
    U = np.linalg.cholesky(np.linalg.inv(H)).T  # lower L with L L^T = H^{-1}; U = L^T
    return U, W


def obs_column(W, U, j, pruned):
    """Prunes W[pruned, j] and corrects columns j+1.. of those rows (eagerly)."""
    d = U[j, j]
    err = np.where(pruned, W[:, j] / d, 0.0)
    W[:, j + 1:] -= np.outer(err, U[j, j + 1:])
    W[pruned, j] = 0.0


def sparsegpt_unstructured(W, X, keep, block):
    rows, cols = W.shape
    U, W = hinv_upper(X, W)
    E = rows * cols
    P = E - keep
    done = 0
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        bs = i2 - i1
        cnt = P * (done + bs * rows) // E - P * done // E
        done += bs * rows
        score = W[:, i1:i2] ** 2 / np.diag(U)[i1:i2][None, :] ** 2
        order = np.argsort(score.ravel(), kind="stable")  # row-major, ties by position
        mask = np.zeros(rows * bs, dtype=bool)
        mask[order[:cnt]] = True
        mask = mask.reshape(rows, bs)
        for c in range(bs):
            obs_column(W, U, i1 + c, mask[:, c])
    return W


def groups_of(cols, M, conv=None):
    """relutrim's N:M groups, in sweep order. conv = (C, KH, KW) or None for a dense layer."""
    if conv is None:
        return [list(range(c0, min(c0 + M, cols))) for c0 in range(0, cols, M)]
    C, KH, KW = conv
    out = []
    for i in range(KH):
        for j in range(KW):
            for c0 in range(0, C, M):
                out.append([(c * KH + i) * KW + j for c in range(c0, min(c0 + M, C))])
    return out


def sparsegpt_nm(W, X, N, M, conv=None):
    rows, cols = W.shape
    order = [j for g in groups_of(cols, M, conv) for j in g]
    assert sorted(order) == list(range(cols))
    Xp, Wp = X[:, order], W[:, order]  # sweep order
    U, Wp = hinv_upper(Xp, Wp)
    s = 0
    for g in groups_of(cols, M, conv):
        L = len(g)
        drop = L - min(N, L)
        mask = np.zeros((rows, L), dtype=bool)
        if drop > 0:
            score = Wp[:, s:s + L] ** 2 / np.diag(U)[s:s + L][None, :] ** 2
            idx = np.argsort(score, axis=1, kind="stable")[:, :drop]
            np.put_along_axis(mask, idx, True, axis=1)
        for c in range(L):
            obs_column(Wp, U, s + c, mask[:, c])
        s += L
    out = np.empty_like(W)
    out[:, order] = Wp
    return out


def unfold(img, KH, KW, pad):
    """im2col of channel-first images (n, C, H, W), stride 1: (n*OH*OW, C*KH*KW), columns in
    PyTorch's weight order (c, kh, kw), rows by sample, then output row, then column."""
    n, C, H, Wd = img.shape
    x = np.pad(img, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    OH, OW = H + 2 * pad - KH + 1, Wd + 2 * pad - KW + 1
    rows = []
    for s in range(n):
        for oh in range(OH):
            for ow in range(OW):
                rows.append(x[s, :, oh:oh + KH, ow:ow + KW].reshape(-1))
    return np.array(rows)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(19)
    layers, cases = {}, []

    def relu_data(n, d, dead=()):
        X = np.maximum(rng.normal(size=(n, d)) + 0.3 * rng.normal(size=(1, d)), 0.0)
        X[:, list(dead)] = 0.0
        return X

    layers["fc"] = dict(W=rng.normal(size=(7, 40)), X=relu_data(90, 40, dead=(5,)))
    layers["fcwide"] = dict(W=rng.normal(size=(5, 150)), X=relu_data(120, 150, dead=(3, 140)))
    C, KH, KW = 5, 3, 3
    img = np.maximum(rng.normal(size=(4, C, 6, 6)), 0.0)
    layers["conv"] = dict(W=rng.normal(size=(6, C * KH * KW)), X=unfold(img, KH, KW, 1),
                          conv=dict(C=C, KH=KH, KW=KW))

    def add(name, layer, W, **kw):
        np.save(os.path.join(OUT, name + "_Wout.npy"), W)
        cases.append(dict(name=name, layer=layer, **kw))

    L = layers["fc"]
    add("fc_keep30", "fc", sparsegpt_unstructured(L["W"], L["X"], keep=84, block=16), keep=84, block=16)
    add("fc_2of4", "fc", sparsegpt_nm(L["W"], L["X"], 2, 4), n=2, m=4, block=16)
    add("fc_1of3", "fc", sparsegpt_nm(L["W"], L["X"], 1, 3), n=1, m=3, block=16)
    L = layers["fcwide"]
    add("fcwide_keep10", "fcwide", sparsegpt_unstructured(L["W"], L["X"], keep=75, block=128), keep=75, block=128)
    L = layers["conv"]
    geo = (C, KH, KW)
    add("conv_keep20", "conv", sparsegpt_unstructured(L["W"], L["X"], keep=54, block=16), keep=54, block=16)
    add("conv_2of4", "conv", sparsegpt_nm(L["W"], L["X"], 2, 4, conv=geo), n=2, m=4, block=16)

    for name, L in layers.items():
        np.save(os.path.join(OUT, name + "_W.npy"), L["W"])
        np.save(os.path.join(OUT, name + "_X.npy"), L["X"])
    manifest = dict(layers={k: dict(conv=v.get("conv")) for k, v in layers.items()}, cases=cases)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")

    # Self checks of the reference: exact counts and patterns.
    for c in cases:
        Wout = np.load(os.path.join(OUT, c["name"] + "_Wout.npy"))
        if "keep" in c:
            assert np.count_nonzero(Wout) == c["keep"], (c["name"], np.count_nonzero(Wout))
        else:
            conv = layers[c["layer"]].get("conv")
            geo = None if conv is None else (conv["C"], conv["KH"], conv["KW"])
            for g in groups_of(Wout.shape[1], c["m"], geo):
                assert (np.count_nonzero(Wout[:, g], axis=1) <= c["n"]).all(), c["name"]
        print(c["name"], "non-zeros", np.count_nonzero(Wout), "of", Wout.size)


if __name__ == "__main__":
    main()
