#!/usr/bin/env python3
"""Imported PyTorch MLP vector fields against PyTorch itself: accuracy and speed.

    /usr/bin/python3 benchmarks/torch_import_check.py path/to/flowmatch_torch_import_bench [WORKDIR]
        [--rounds 3] [--n 10000] [--steps 100] [--shapes all|name,name]

For each shape below (PyTorch's default initialisation after torch.manual_seed), the state_dict
is saved as safetensors (safetensors.torch.save_file's layout, tests/io/safetensors_by_hand.py)
with its key prefix, and
1. accuracy: 500 standard-normal start points (saved to a file) are integrated with Euler, 50 steps
   over t in [0, 1], by PyTorch with the model in float64, and by flowmatch after importing the
   file (float): the max |difference| of the end points must be below 1e-3;
2. speed: 10,000 points x 100 Euler steps, at 1 and 2 threads (torch.set_num_threads; flowmatch's
   set_num_threads), the PyTorch model in float32 under torch.no_grad() (x and t concatenated
   each step, as torchcfm and Meta's example do), flowmatch's imported float model with its
   EulerSimulator: median of --rounds rounds each, after a warm-up; ratio = PyTorch / flowmatch.
   Where PyTorch would take longer than --torch-budget seconds for the rounds, it is timed over
   fewer steps and scaled to --steps (each step is one forward pass of the same batch); the table
   says how many steps were timed.
Exits 1 if any accuracy check fails."""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "io"))
import safetensors_by_hand as st  # noqa: E402

ACT = {"silu": torch.nn.SiLU, "selu": torch.nn.SELU, "elu": torch.nn.ELU, "gelu": torch.nn.GELU,
       "relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}
# name: (widths, activation, key prefix, where the shape comes from)
SHAPES = {
    "notebook": ([3, 1024, 16, 2], "silu", "", "3-1024-16-2 SiLU (the reference notebook)"),
    "torchcfm": ([3, 64, 64, 64, 2], "selu", "net.", "3-64-64-64-2 SELU (torchcfm MLP)"),
    "meta2d": ([3, 512, 512, 512, 512, 2], "silu", "main.", "3-512x4-2 SiLU under main. (Meta 2-D)"),
    "elu6d": ([6, 96, 48, 5], "elu", "net.", "6-96-48-5 ELU under net."),
    "gelu4d": ([4, 128, 128, 3], "gelu", "", "4-128-128-3 GELU"),
}


class Holder(torch.nn.Module):  # so that the keys carry the prefix, as a model's attribute would
    def __init__(self, prefix, net):
        super().__init__()
        self.prefix = prefix
        if prefix:
            setattr(self, prefix[:-1], net)
        else:
            self.seq = net

    def keys_state(self):
        net = getattr(self, self.prefix[:-1]) if self.prefix else self.seq
        return {self.prefix + k: v for k, v in net.state_dict().items()}


def build(widths, act, seed):
    torch.manual_seed(seed)
    layers = []
    for i in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(ACT[act]())
    return torch.nn.Sequential(*layers)


def euler(net, x, steps):
    dt = 1.0 / steps
    with torch.no_grad():
        for k in range(steps):
            t = torch.full((x.shape[0], 1), k * dt, dtype=x.dtype)
            x = x + dt * net(torch.cat([x, t], 1))
    return x


def main():
    p = argparse.ArgumentParser()
    p.add_argument("bench")
    p.add_argument("work", nargs="?", default=None)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--shapes", default="all")
    p.add_argument("--torch-budget", type=float, default=30.0,
                   help="seconds of PyTorch timing per shape and thread count; beyond it fewer steps are "
                        "timed and scaled to --steps")
    args = p.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="flowmatch_torch_import_")
    os.makedirs(work, exist_ok=True)
    names = list(SHAPES) if args.shapes == "all" else args.shapes.split(",")
    failed = False
    rows = []
    print(f"PyTorch {torch.__version__}, work dir {work}")
    for name in names:
        s = list(SHAPES).index(name)  # seeds by shape, whichever shapes run
        widths, act, prefix, what = SHAPES[name]
        net = build(widths, act, seed=s + 1)
        model = os.path.join(work, name + ".safetensors")
        st.write(model, {k: v.detach() for k, v in Holder(prefix, net).keys_state().items()}, {"format": "pt"})
        # 1. accuracy
        d = widths[-1]
        torch.manual_seed(1000 + s)
        x0 = torch.randn(500, d)  # float32 values, exact in float64
        points = os.path.join(work, name + ".points.safetensors")
        st.write(points, {"x0": x0.numpy()})
        ref = euler(build(widths, act, seed=s + 1).double(), x0.double(), 50).numpy()
        out = os.path.join(work, name + ".flowmatch.safetensors")
        subprocess.run([args.bench, "integrate", model, act, points, "50", out], check=True)
        ours = st.read(out)[1]["x1"]
        err = float(np.abs(ours - ref).max())
        ok = err < 1e-3
        failed = failed or not ok
        print(f"{what:45s} Euler 50 steps, 500 points: max |flowmatch float - PyTorch float64| = {err:.2e} "
              f"{'ok' if ok else 'FAILED (>= 1e-3)'}  (end points' max |x| {np.abs(ref).max():.2f})")
        # 2. speed
        for threads in (1, 2):
            torch.set_num_threads(threads)
            torch.manual_seed(0)
            x = torch.randn(args.n, d)
            t0 = time.perf_counter()
            euler(net, x, 1)  # warm-up, and the time of one step
            step_s = time.perf_counter() - t0
            # PyTorch as installed may be slow (Debian's 1.13 uses a generic BLAS): past the budget,
            # time fewer steps and scale to args.steps (the steps cost the same: one forward each).
            torch_steps = max(1, min(args.steps, int(args.torch_budget / (args.rounds * step_s))))
            times = []
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                euler(net, x, torch_steps)
                times.append((time.perf_counter() - t0) * args.steps / torch_steps)
            torch_s = float(np.median(times))
            r = subprocess.run([args.bench, "speed", model, act, str(args.n), str(args.steps), str(threads),
                                str(args.rounds)], check=True, capture_output=True, text=True)
            fm_s = float(r.stdout.split()[1])
            rows.append((what, threads, torch_s, fm_s, torch_steps))
            print(f"  {threads} thread(s): PyTorch {torch_s:.3f} s (timed over {torch_steps} steps), flowmatch "
                  f"{fm_s:.3f} s, ratio {torch_s / fm_s:.2f}", flush=True)
    print(f"\n{args.n} points x {args.steps} Euler steps, median of {args.rounds} rounds (PyTorch {torch.__version__} "
          f"float32 no_grad vs flowmatch float)")
    print(f"| {'shape':45s} | threads | PyTorch s | (steps timed) | flowmatch s | PyTorch / flowmatch |")
    print(f"|{'-' * 47}|---------|-----------|---------------|-------------|---------------------|")
    for what, threads, torch_s, fm_s, torch_steps in rows:
        print(f"| {what:45s} | {threads:7d} | {torch_s:9.3f} | {torch_steps:13d} | {fm_s:11.3f} | "
              f"{torch_s / fm_s:19.2f} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
