#!/usr/bin/python3
"""Plots flowmatch_bench's sweeps (training-step time against batch size, hidden width and data
dimension, one curve per thread count) from Google Benchmark's JSON output, into a PNG.

    build/benchmarks/flowmatch_bench --benchmark_filter=sweep --benchmark_format=json > sweeps.json
    benchmarks/plot_sweeps.py sweeps.json --out sweeps.png

Needs Debian's python3-matplotlib (apt-get install python3-matplotlib). With repetitions
(--benchmark_repetitions=N) it plots the medians.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict

TO_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
SWEEPS = {"batch": "batch size (samples)", "width": "hidden width (first layer)", "dim": "data dimension d"}


def load(path: str) -> dict:
    with (sys.stdin if path == "-" else open(path)) as f:
        return json.load(f)


def sweep_points(report: dict) -> dict:
    """{sweep: {threads: [(x, ms, gflops)]}} from the report's sweep/* rows."""
    rows = report.get("benchmarks", [])
    has_medians = any(r.get("aggregate_name") == "median" for r in rows)
    out: dict = defaultdict(lambda: defaultdict(list))
    for r in rows:
        name = r.get("run_name", r.get("name", ""))
        m = re.match(r"sweep/(\w+)/(.*)", name)
        if not m or r.get("error_occurred"):
            continue
        if has_medians and r.get("aggregate_name") != "median":
            continue
        if not has_medians and r.get("run_type", "iteration") != "iteration":
            continue
        sweep = m.group(1)
        args = dict(kv.split(":", 1) for kv in m.group(2).split("/") if ":" in kv)
        if sweep not in args or "threads" not in args:
            continue
        ms = float(r["real_time"]) * TO_MS.get(r.get("time_unit", "ns"), 1e-6)
        out[sweep][int(args["threads"])].append((int(args[sweep]), ms, float(r.get("GFLOP/s", 0.0))))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("json", help="flowmatch_bench --benchmark_format=json output ('-' for stdin)")
    ap.add_argument("--out", default="sweeps.png", help="PNG to write (default: %(default)s)")
    ap.add_argument("--title", default=None, help="figure title (default: the report's host and CPU)")
    args = ap.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot_sweeps.py: needs matplotlib: apt-get install -y python3-matplotlib", file=sys.stderr)
        return 2

    report = load(args.json)
    points = sweep_points(report)
    if not points:
        print("plot_sweeps.py: no sweep/* benchmarks in the input (run flowmatch_bench --benchmark_filter=sweep)",
              file=sys.stderr)
        return 1
    sweeps = [s for s in SWEEPS if s in points] + [s for s in points if s not in SWEEPS]
    fig, axes = plt.subplots(2, len(sweeps), figsize=(4.6 * len(sweeps), 7.2), squeeze=False)
    for col, sweep in enumerate(sweeps):
        for threads in sorted(points[sweep]):
            pts = sorted(points[sweep][threads])
            xs = [p[0] for p in pts]
            axes[0][col].plot(xs, [p[1] for p in pts], marker="o", label=f"{threads} thread(s)")
            axes[1][col].plot(xs, [p[2] for p in pts], marker="o", label=f"{threads} thread(s)")
        for row, ylabel in ((0, "ms per training step"), (1, "GFLOP/s (matrix products)")):
            ax = axes[row][col]
            ax.set_xscale("log", base=2)
            if row == 0:
                ax.set_yscale("log")
            ax.set_xlabel(SWEEPS.get(sweep, sweep))
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        axes[0][col].set_title(f"sweep/{sweep}")
    ctx = report.get("context", {})
    title = args.title or (f"flowmatch_bench sweeps: {ctx.get('host_name', '?')}, {ctx.get('num_cpus', '?')} CPUs "
                           f"at {ctx.get('mhz_per_cpu', '?')} MHz, {ctx.get('date', '')}")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
