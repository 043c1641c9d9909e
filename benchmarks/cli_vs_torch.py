#!/usr/bin/python3
"""`flowmatch train` + `flowmatch sample` with default settings against the reference PyTorch recipe
(torch_csv_reference.py) on the same 50,000-point 2-D CSVs (moons, checkerboard; fixed seeds).

Both sample 2000 points; each is scored by the exact W2 distance (`flowmatch eval`, an optimal
assignment) to 2000 held-out data points, next to the data-vs-data baseline (two held-out sets of
2000). Prints a Markdown table.

  cli_vs_torch.py --flowmatch build/examples/cli/flowmatch [--work /tmp/cli_vs_torch] [--threads 1]
                  [--data-seed 1000]
Needs numpy; the torch column needs torch (/usr/bin/python3 has both), else it is skipped.
"""
import argparse
import os
import re
import subprocess
import sys
import time

import numpy as np


def moons(n, rng, noise=0.05):
    t = rng.uniform(0, np.pi, n)
    lab = rng.integers(0, 2, n)
    x = np.where(lab == 0, np.cos(t), 1 - np.cos(t))
    y = np.where(lab == 0, np.sin(t), 0.5 - np.sin(t))
    return np.stack([x, y], 1) + noise * rng.standard_normal((n, 2))


def checkerboard(n, rng):
    # FFJORD's toy: 8 squares of side 1 on [-2, 2]^2, alternating.
    x1 = rng.uniform(-2, 2, n)
    x2 = rng.uniform(0, 1, n) - rng.integers(0, 2, n) * 2.0
    x2 = x2 + np.floor(x1) % 2
    return np.stack([x1, x2], 1)


def write_csv(path, x):
    np.savetxt(path, x, delimiter=",", fmt="%.7g", header="x,y", comments="")


def run(cmd, **kw):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r.stdout, time.perf_counter() - t0


def w2(flowmatch, a, b, threads):
    out, _ = run([flowmatch, "eval", a, b, "--n", "2000", "--threads", str(threads)])
    return float(re.search(r"^w2 ([0-9.eE+-]+)", out, re.M).group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flowmatch", required=True)
    ap.add_argument("--work", default="/tmp/cli_vs_torch")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--datasets", default="moons,checkerboard")
    ap.add_argument("--data-seed", type=int, default=1000,
                    help="data set k (0, 1, ...) is drawn with numpy's default_rng(data_seed + k)")
    ap.add_argument("--train-args", default="", help="extra flags for flowmatch train (default: none)")
    ap.add_argument("--reuse-torch", action="store_true",
                    help="reuse <work>/<data>_torch_samples.csv of an earlier run of the torch reference on the "
                         "same CSV (the data are regenerated with the same seeds) instead of training it again")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
        print("torch is not installed: the torch column is skipped", file=sys.stderr)

    rows = []
    for k, name in enumerate(args.datasets.split(",")):
        gen = {"moons": moons, "checkerboard": checkerboard}[name]
        rng = np.random.default_rng(args.data_seed + k)
        train, held, held2 = gen(50000, rng), gen(2000, rng), gen(2000, rng)
        f = lambda s: os.path.join(args.work, f"{name}_{s}")
        write_csv(f("train.csv"), train)
        write_csv(f("heldout.csv"), held)
        write_csv(f("heldout2.csv"), held2)
        _, t_train = run([args.flowmatch, "train", "--data", f("train.csv"), "--out", f("model.safetensors"),
                          "--threads", str(args.threads), "--quiet"] + args.train_args.split())
        _, t_sample = run([args.flowmatch, "sample", f("model.safetensors"), "--out", f("cli_samples.csv"),
                           "--n", "2000", "--seed", "7", "--threads", str(args.threads)])
        w_cli = w2(args.flowmatch, f("cli_samples.csv"), f("heldout.csv"), args.threads)
        w_torch, t_torch = float("nan"), float("nan")
        if args.reuse_torch and os.path.exists(f("torch_samples.csv")):
            w_torch = w2(args.flowmatch, f("torch_samples.csv"), f("heldout.csv"), args.threads)
        elif have_torch:
            _, t_torch = run([sys.executable, os.path.join(here, "torch_csv_reference.py"), "--data", f("train.csv"),
                              "--out", f("torch_samples.csv"), "--nsamples", "2000", "--threads", str(args.threads)])
            w_torch = w2(args.flowmatch, f("torch_samples.csv"), f("heldout.csv"), args.threads)
        w_data = w2(args.flowmatch, f("heldout2.csv"), f("heldout.csv"), args.threads)
        rows.append((name, w_cli, w_torch, w_data, t_train, t_sample, t_torch))
        print(f"{name}: flowmatch W2 {w_cli:.4f} ({t_train:.0f} s train, {t_sample:.1f} s sample), "
              f"torch W2 {w_torch:.4f} ({t_torch:.0f} s), data-vs-data {w_data:.4f}", flush=True)

    print(f"\n| data (50,000 points) | flowmatch defaults W2 | torch reference W2 | data vs data W2 | "
          f"flowmatch train s | torch train+sample s |\n|---|---:|---:|---:|---:|---:|")
    for name, wc, wt, wd, tt, ts, tto in rows:
        print(f"| {name} | {wc:.4f} | {wt:.4f} | {wd:.4f} | {tt:.0f} | {tto:.0f} |")
    print(f"\nexact W2 on 2000 samples vs 2000 held-out points; {args.threads} thread(s)")
    return 0 if all(r[1] <= r[2] or r[2] != r[2] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
