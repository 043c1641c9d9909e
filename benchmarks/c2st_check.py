#!/usr/bin/env python3
"""flowmatch::c2st against scikit-learn (sbibm's protocol) on Gaussian cases with known answers.

    python3 benchmarks/c2st_check.py build/benchmarks/flowmatch_c2st_bench [--dims 2 5 10] [--n 10000]

For each dimension d: N(0, I) against N(0, I) (C2ST about 0.5), against N(0, I) shifted by 1.349
in the first coordinate (Bayes-optimal accuracy Phi(1.349 / 2) = 0.75) and shifted by 6 (0.9987).
Writes the samples as .npy files to a temporary folder, runs the C++ benchmark (accuracy, epochs,
seconds) and benchmarks/c2st_sklearn.py's c2st on the same files, and prints a Markdown table.
The two use different random streams, so they agree in distribution (about +-0.01 at 10,000
samples), not digit for digit. scikit-learn takes minutes at d = 10.
"""

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from c2st_sklearn import c2st  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("bench", help="path of the flowmatch_c2st_bench executable")
    p.add_argument("--dims", type=int, nargs="+", default=[2, 5, 10])
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data-seed", type=int, default=123)
    a = p.parse_args()
    rng = np.random.default_rng(a.data_seed)
    cases = [("equal", 0.0), ("shift 1.349", 1.349), ("shift 6", 6.0)]
    print("| d | case | Bayes | flowmatch | epochs | s | sklearn | s |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for d in a.dims:
            for name, delta in cases:
                X = rng.standard_normal((a.n, d)).astype(np.float32)
                Y = rng.standard_normal((a.n, d)).astype(np.float32)
                Y[:, 0] += delta
                fx, fy = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
                np.save(fx, X)
                np.save(fy, Y)
                out = subprocess.run([a.bench, fx, fy, str(a.seed)], check=True, capture_output=True, text=True)
                acc, epochs, secs = out.stdout.split()[:3]
                t0 = time.time()
                ref = c2st(X, Y, seed=a.seed)
                t_ref = time.time() - t0
                bayes = 0.5 * math.erfc(-(delta / 2) / math.sqrt(2))
                print(f"| {d} | {name} | {bayes:.4f} | {float(acc):.4f} | {epochs} | {float(secs):.1f} "
                      f"| {ref:.4f} | {t_ref:.1f} |", flush=True)


if __name__ == "__main__":
    main()
