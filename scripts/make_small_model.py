"""Make the small MLP fixture for the prune tests: prune/testdata/.

Model: torch.nn.Sequential(Linear(20,16), ReLU(), Linear(16,8), ReLU(),
Linear(8,3)), trained (seed 0, deterministic, CPU) on a synthetic 3-class
problem: x ~ N(0, I_20); the label is argmax of a fixed random teacher
network's logits (20 -> 16 ReLU -> 3) plus Gumbel noise, so about 3% of
labels disagree with the teacher.  Train set 8000 points; test set 500 fresh points; the calibration
set is the first 500 points of the training set (pruning calibrates on
training data).

Files written (committed, so Go tests need no Python), all little-endian,
C order, .npy format version 1.0:
  small.safetensors  float32, keys 0.weight (16x20), 0.bias (16), 2.weight (8x16),
                     2.bias (8), 4.weight (3x8), 4.bias (3); torch Linear layout (out x in)
  calib_x.npy        500 x 20 float32      calib_y.npy  500 int64
  test_x.npy         500 x 20 float32      test_y.npy   500 int64
  act1.npy           500 x 16 float32: ReLU(Linear0(calib_x)), computed by torch
  act2.npy           500 x 8  float32: ReLU(Linear2(act1)), computed by torch
  logits.npy         500 x 3  float32: Linear4(act2), computed by torch
  small.json         dense accuracies (test/calib/train) computed by torch, seed, versions

Activations and accuracies are computed from the model as reloaded from
small.safetensors via scripts/st.py (load_state_dict strict=True), so they
belong to exactly the float32 weights in the file.

Rerun from the repository root:
    /usr/bin/python3 scripts/make_small_model.py
"""
import datetime
import json
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402

SEED = 0
N_TRAIN, N_CALIB, N_TEST = 8000, 500, 500
NX, NCLASS = 20, 3
EPOCHS = 60
BATCH = 100
LR = 3e-3
NOISE = 0.3  # Gumbel scale on teacher logits
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join(ROOT, "prune", "testdata")


def small_mlp():
    return nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


def make_data(rng):
    """Teacher: logits = ReLU(x W1 + b1) W2 (20 -> 16 -> 3), centred per class on each sample
    set for rough balance; label = argmax(logits + NOISE * Gumbel). Returns both sets and the
    fraction of labels that the noise changed in each."""
    W1 = rng.standard_normal((NX, 16)) / np.sqrt(NX)
    b1 = 0.5 * rng.standard_normal(16)
    W2 = rng.standard_normal((16, NCLASS)) * 2.0

    def sample(n):
        x = rng.standard_normal((n, NX))
        logits = np.maximum(x @ W1 + b1, 0) @ W2
        logits -= logits.mean(axis=0)
        y_clean = np.argmax(logits, axis=1)
        y = np.argmax(logits + NOISE * rng.gumbel(size=logits.shape), axis=1)
        return x.astype(np.float32), y.astype(np.int64), float(np.mean(y != y_clean))

    return sample(N_TRAIN), sample(N_TEST)


@torch.no_grad()
def accuracy(model, x, y):
    model.eval()
    return (model(x).argmax(dim=1) == y).double().mean().item()


def save_npy(name, a, dtype):
    a = np.ascontiguousarray(np.asarray(a, dtype=dtype))
    np.save(os.path.join(OUT, name), a, allow_pickle=False)


def main():
    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(SEED)
    (xtr_np, ytr_np, flip_tr), (xte_np, yte_np, flip_te) = make_data(rng)
    print("labels changed by noise: train %.3f test %.3f" % (flip_tr, flip_te))
    xtr, ytr = torch.from_numpy(xtr_np), torch.from_numpy(ytr_np)
    xte, yte = torch.from_numpy(xte_np), torch.from_numpy(yte_np)
    counts = np.bincount(ytr_np, minlength=NCLASS)
    print("train class counts", counts.tolist(), "test", np.bincount(yte_np, minlength=NCLASS).tolist())

    model = small_mlp()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=40, gamma=0.3)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(1, EPOCHS + 1):
        model.train()
        perm = torch.randperm(N_TRAIN, generator=gen)
        for i in range(0, N_TRAIN, BATCH):
            idx = perm[i:i + BATCH]
            opt.zero_grad()
            loss_fn(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
        sched.step()
        if epoch % 20 == 0:
            print("epoch %3d  train acc %.4f  test acc %.4f"
                  % (epoch, accuracy(model, xtr, ytr), accuracy(model, xte, yte)))

    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "small.safetensors")
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in model.state_dict().items()}
    st.save_file(state, path, metadata={"format": "pt", "model": "Sequential(Linear(20,16),ReLU,"
                                        "Linear(16,8),ReLU,Linear(8,3))", "seed": str(SEED)})

    fresh = small_mlp()
    fresh.load_state_dict(st.load_torch(path), strict=True)
    fresh.eval()
    xc, yc = xtr[:N_CALIB], ytr[:N_CALIB]
    with torch.no_grad():
        a1 = fresh[1](fresh[0](xc))
        a2 = fresh[3](fresh[2](a1))
        logits = fresh[4](a2)
        assert torch.equal(logits, fresh(xc))
    test_acc = accuracy(fresh, xte, yte)
    calib_acc = accuracy(fresh, xc, yc)
    train_acc = accuracy(fresh, xtr, ytr)
    assert test_acc == accuracy(model, xte, yte)
    print("dense (reloaded): train %.4f  calib %.4f  test %.4f" % (train_acc, calib_acc, test_acc))
    if test_acc <= 0.85:
        sys.exit("test accuracy %.4f not above 0.85" % test_acc)

    save_npy("calib_x.npy", xc.numpy(), "<f4")
    save_npy("calib_y.npy", yc.numpy(), "<i8")
    save_npy("test_x.npy", xte_np, "<f4")
    save_npy("test_y.npy", yte_np, "<i8")
    save_npy("act1.npy", a1.numpy(), "<f4")
    save_npy("act2.npy", a2.numpy(), "<f4")
    save_npy("logits.npy", logits.numpy(), "<f4")
    info = {
        "model": "Sequential(Linear(20,16), ReLU(), Linear(16,8), ReLU(), Linear(8,3))",
        "file": "small.safetensors",
        "keys": {k: list(v.shape) for k, v in state.items()},
        "dtype": "float32",
        "test_accuracy": test_acc,
        "calib_accuracy": calib_acc,
        "train_accuracy": train_acc,
        "n_train": N_TRAIN,
        "n_calib": N_CALIB,
        "n_test": N_TEST,
        "calib": "first 500 rows of the training set",
        "data": "x ~ N(0, I_20); y = argmax(ReLU(x W1 + b1) W2 (centred) + %g * Gumbel noise), random "
                "teacher 20-16-3 from numpy default_rng(%d)" % (NOISE, SEED),
        "label_noise_rate": {"train": flip_tr, "test": flip_te},
        "activations": "act1 = ReLU(Linear0(calib_x)), act2 = ReLU(Linear2(act1)), logits = Linear4(act2); "
                       "float32, computed by torch %s" % torch.__version__,
        "seed": SEED,
        "epochs": EPOCHS,
        "optimizer": "Adam lr=%g batch %d StepLR(40, 0.3), cross-entropy" % (LR, BATCH),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "script": "scripts/make_small_model.py",
    }
    with open(os.path.join(OUT, "small.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    print("wrote", sorted(os.listdir(OUT)))


if __name__ == "__main__":
    main()
