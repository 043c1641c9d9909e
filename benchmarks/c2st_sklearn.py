#!/usr/bin/env python3
"""sbibm's C2ST (classifier two-sample test) computed with scikit-learn, to check
flowmatch::c2st (include/flowmatch/metrics/c2st.hpp) or any written samples independently.

    python3 benchmarks/c2st_sklearn.py REFERENCE SAMPLES [--seed 1] [--folds 5] [--no-z-score]

REFERENCE and SAMPLES are .npy files (2-D, one sample per row) or CSV files with one header row
and one sample per row (sbibm's reference_posterior_samples.csv, also .csv.bz2). Prints the mean
5-fold accuracy: 0.5 = indistinguishable, 1 = disjoint.

The protocol is sbibm's (sbibm/metrics/c2st.py, Lueckmann et al. 2021), written with NumPy
instead of PyTorch: float32 data, both sets z-scored with the reference's mean and unbiased
(n - 1) standard deviation, MLPClassifier(activation="relu", hidden_layer_sizes=(10 dim, 10 dim),
max_iter=10000, solver="adam", random_state=seed), KFold(n_splits=folds, shuffle=True,
random_state=seed), cross_val_score(scoring="accuracy"), mean over the folds. Needs numpy and
scikit-learn (Debian: apt-get install python3-sklearn), not PyTorch.
"""

import argparse
import bz2
import sys

import numpy as np
from sklearn.model_selection import KFold, cross_val_score
from sklearn.neural_network import MLPClassifier


def load(path):
    if path.endswith(".npy"):
        a = np.load(path)
    else:
        opener = bz2.open if path.endswith(".bz2") else open
        with opener(path, "rt") as f:
            a = np.loadtxt(f, delimiter=",", skiprows=1, ndmin=2)
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        sys.exit(f"{path}: expected a 2-D array (samples x dimension), got shape {a.shape}")
    return a


def c2st(X, Y, seed=1, n_folds=5, z_score=True):
    X = np.asarray(X, dtype=np.float32)
    Y = np.asarray(Y, dtype=np.float32)
    if z_score:
        mean = X.mean(axis=0)
        std = X.std(axis=0, ddof=1)  # torch.std is unbiased
        X = (X - mean) / std
        Y = (Y - mean) / std
    ndim = X.shape[1]
    clf = MLPClassifier(
        activation="relu",
        hidden_layer_sizes=(10 * ndim, 10 * ndim),
        max_iter=10000,
        solver="adam",
        random_state=seed,
    )
    data = np.concatenate((X, Y))
    target = np.concatenate((np.zeros((X.shape[0],)), np.ones((Y.shape[0],))))
    shuffle = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    scores = cross_val_score(clf, data, target, cv=shuffle, scoring="accuracy")
    return float(np.asarray(np.mean(scores)).astype(np.float32))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("reference")
    p.add_argument("samples")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--no-z-score", action="store_true")
    a = p.parse_args()
    X, Y = load(a.reference), load(a.samples)
    if X.shape[1] != Y.shape[1]:
        sys.exit(f"dimensions differ: reference {X.shape[1]}, samples {Y.shape[1]}")
    print(f"{c2st(X, Y, seed=a.seed, n_folds=a.folds, z_score=not a.no_z_score):.6f}")


if __name__ == "__main__":
    main()
