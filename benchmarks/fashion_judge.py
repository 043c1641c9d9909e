#!/usr/bin/env python3
"""A second, independent judge of generated Fashion-MNIST images: a small CNN in PyTorch.

examples/fashion judges its samples with its own MLP classifier (flowmatch's MLPClassifier, about
89% on the test set). This script is a stronger judge that shares no code with flowmatch: a
convolutional classifier trained here, in PyTorch, on the 60000 real training images. For every
`samples_w<w>.csv` that `fashion --samples-out DIR` wrote (one image per line: label, then 784
pixels in [-1, 1]) it prints

  - the conditional accuracy: the fraction of generated images the CNN assigns to their label;
  - the Frechet distance between the CNN's penultimate features (256 wide) of the generated
    images and of the 10000 real test images;

and, as the floor, the same two numbers for 2000 real training images (200 per class).

  /usr/bin/python3 benchmarks/fashion_judge.py DIR [--judge FILE] [--data DIR] [--out FILE]

The trained judge is saved to --judge (default DIR/cnn_judge.pt) and loaded by later runs, so
that several sample folders are judged by the same network. Needs Debian's python3-torch and
python3-numpy, and the Fashion-MNIST IDX files (Debian's dataset-fashion-mnist).
"""

import argparse
import gzip
import math
import os
import re
import sys
import time

import numpy as np

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    sys.exit("fashion_judge.py needs PyTorch: apt-get install python3-torch")


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_fashion(folder, train):
    prefix = "train" if train else "t10k"
    images = read_idx(os.path.join(folder, prefix + "-images-idx3-ubyte.gz")).astype(np.float32)
    labels = read_idx(os.path.join(folder, prefix + "-labels-idx1-ubyte.gz")).astype(np.int64)
    # The same scaling as flowmatch's reader and the samples files: pixels in [-1, 1].
    return images.reshape(-1, 1, 28, 28) / 127.5 - 1.0, labels


class Judge(nn.Module):
    """conv 32 (28x28) -> pool -> conv 64, conv 64 (14x14) -> pool -> conv 128 (7x7) -> 256 -> 10,
    each conv with batch norm and ReLU; the 256 features before the last layer feed the distance."""

    def __init__(self):
        super().__init__()

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.body = nn.Sequential(*block(1, 32), nn.MaxPool2d(2), *block(32, 64), *block(64, 64), nn.MaxPool2d(2),
                                  *block(64, 128), nn.Flatten(), nn.Dropout(0.3), nn.Linear(128 * 49, 256),
                                  nn.ReLU())
        self.head = nn.Linear(256, 10)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))


def batches(x, size):
    for i in range(0, len(x), size):
        yield x[i:i + size]


@torch.no_grad()
def predict(model, images, batch=1000):
    model.eval()
    feats, logits = [], []
    for b in batches(torch.from_numpy(np.ascontiguousarray(images)), batch):
        f = model.features(b)
        feats.append(f.double().numpy())
        logits.append(model.head(f).argmax(1).numpy())
    return np.concatenate(feats), np.concatenate(logits)


def train_judge(model, images, labels, epochs, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps = epochs * math.ceil(len(images) / 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    x_all, y_all = torch.from_numpy(images), torch.from_numpy(labels)
    start = time.time()
    for epoch in range(epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(len(images)))
        total = 0.0
        for idx in batches(order, 128):
            x = x_all[idx]
            # Random shifts of up to 2 pixels: a judge that generalises, not one that memorises.
            dx, dy = rng.integers(-2, 3, size=2)
            x = torch.roll(x, shifts=(int(dy), int(dx)), dims=(2, 3))
            loss = F.cross_entropy(model(x), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"  epoch {epoch + 1}/{epochs}  loss {total / len(images):.4f}  {time.time() - start:.0f} s", flush=True)


def frechet(f1, f2):
    """Frechet distance between Gaussians fitted to two feature sets (rows are samples)."""
    m1, m2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    # trace sqrt(s1 s2) = sum of sqrt of the eigenvalues of r s2 r, r = sqrt(s1) (symmetric PSD).
    w, v = np.linalg.eigh(s1)
    r = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    ev = np.linalg.eigvalsh(r @ s2 @ r)
    tr_sqrt = np.sqrt(np.clip(ev, 0, None)).sum()
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def read_samples(path):
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float32, ndmin=2)
    if data.shape[1] != 785:
        sys.exit(f"{path}: {data.shape[1]} columns, expected 785 (label, p0..p783)")
    labels = data[:, 0].astype(np.int64)
    images = np.clip(data[:, 1:], -1.0, 1.0).reshape(-1, 1, 28, 28)
    return images, labels


def balanced(labels, per_class, seed):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("samples", help="folder holding samples_w<w>.csv (fashion --samples-out)")
    ap.add_argument("--judge", help="the CNN's weights: loaded if present, else trained and saved "
                    "(default SAMPLES/cnn_judge.pt)")
    ap.add_argument("--data", default=os.environ.get("FLOWMATCH_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"),
                    help="folder of the Fashion-MNIST IDX files")
    ap.add_argument("--epochs", type=int, default=4, help="training epochs of the judge")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="PyTorch threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="CSV of the table (default SAMPLES/cnn_judge.csv)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    files = sorted((float(m.group(1)), os.path.join(args.samples, f)) for f in os.listdir(args.samples)
                   if (m := re.fullmatch(r"samples_w(-?[0-9.eE+-]+)\.csv", f)))
    if not files:
        sys.exit(f"no samples_w<w>.csv in {args.samples}: run fashion with --samples-out {args.samples}")
    train_x, train_y = load_fashion(args.data, True)
    test_x, test_y = load_fashion(args.data, False)

    judge_file = args.judge or os.path.join(args.samples, "cnn_judge.pt")
    model = Judge()
    start = time.time()
    if os.path.exists(judge_file):
        model.load_state_dict(torch.load(judge_file))
        print(f"judge: CNN loaded from {judge_file}")
    else:
        print(f"judge: training the CNN on the {len(train_x)} real training images, {args.epochs} epochs, "
              f"{args.threads} threads")
        train_judge(model, train_x, train_y, args.epochs, args.seed)
        torch.save(model.state_dict(), judge_file)
        print(f"judge: saved to {judge_file} (reruns load it)")
    print(f"judge: {sum(p.numel() for p in model.parameters())} parameters, {time.time() - start:.0f} s")

    test_f, test_pred = predict(model, test_x)
    print(f"judge: accuracy {100 * (test_pred == test_y).mean():.2f}% on the 10000 test images; reference: "
          f"their features")
    rows = []
    idx = balanced(train_y, 200, args.seed + 1)
    f, pred = predict(model, train_x[idx])
    rows.append(("real_train_floor", "-", (pred == train_y[idx]).mean(), frechet(test_f, f), len(idx)))
    for w, path in files:
        x, y = read_samples(path)
        f, pred = predict(model, x)
        rows.append(("generated", f"{w:g}", (pred == y).mean(), frechet(test_f, f), len(y)))

    print("\n| images | guidance w | CNN accuracy (generated: conditional) | Frechet distance (CNN features) |")
    print("|---|---:|---:|---:|")
    for what, w, acc, fd, n in rows:
        print(f"| {what} ({n}) | {w} | {100 * acc:.2f}% | {fd:.3f} |")
    out = args.out or os.path.join(args.samples, "cnn_judge.csv")
    with open(out, "w") as fh:
        fh.write("what,guidance,accuracy,frechet_distance,images\n")
        for what, w, acc, fd, n in rows:
            fh.write(f"{what},{'' if w == '-' else w},{acc:.6f},{fd:.6f},{n}\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
