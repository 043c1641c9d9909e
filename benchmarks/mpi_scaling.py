#!/usr/bin/python3
"""Scaling of flowmatch's data-parallel training over MPI: measured on this machine, and modelled for
clusters.

    mpirun ... build/benchmarks/flowmatch_mpi_scaling   # the binary this script drives (mpi_scaling.cpp)
    python3 benchmarks/mpi_scaling.py                   # measure (3 rounds), model, write the report
    python3 benchmarks/mpi_scaling.py --rounds 5 --json /tmp/mpi_scaling.json
    python3 benchmarks/mpi_scaling.py --from-json /tmp/mpi_scaling.json   # the analysis again, no runs

What it does:

1. Measures, for both models (the seed problem, global batch 1000; examples/fashion's model, batch
   128), alternating the configurations within each round and repeating --rounds times:
   - strong scaling at the fixed global batch: 1 rank x 1 thread, 1 rank x 2 threads, 2 ranks x 1
     thread, 3 ranks x 1 thread (3 ranks on a 2-core machine are oversubscribed);
   - one rank, one thread, at the per-rank batches the model needs (B/2, ceil(B/3), B/4, B/8 and the
     per-rank batches of the strong-scaling predictions): the compute time T_c(b) of a step;
   - the gradient's MPI_Allreduce alone (--allreduce-only) on 2 and 3 ranks;
   - (seed model) the binding: 2 x 1 and 1 x 2 with `--bind-to core` as well as `--bind-to none`,
     2 x 1 with `--mca mpi_yield_when_idle 1`, and 2 ranks x 2 threads (every rank at flowmatch's
     default thread count, all cores);
   - (seed model, after the rounds) --bar-pairs groups of back-to-back runs of --bar-steps steps:
     1 x 1 unbound, 2 x 1 unbound and --bind-to core, and 1 x 1 pinned to each core in turn
     (taskset): the issue's bar (2 x 1 at least 1.6x faster per step than 1 x 1), paired, and how
     fast each core is at the time (on a VM the two vCPUs need not be equally fast).
   Every rank count runs under `mpirun --bind-to none` unless said otherwise. Before each run it
   waits (up to --max-wait s) until no compiler (cc1plus) runs and the cores were at least 80% idle
   over one second (/proc/stat); it records /proc/loadavg around every run, and marks a run busy
   when the machine was not quiet before it or a compiler ran at its end: the tables use only the
   quiet runs of a cell when it has any, and say how many.
2. Prints the table of medians (over rounds, of each run's median ms/step) and speed-ups vs 1 x 1.
3. Fits the cost model  T(N) = T_c(b_N) + T_allreduce(N)  (b_N: the per-rank batch; T_c(b) = a + c b
   by least squares over the one-rank runs, its intercept a the per-step overhead every rank pays
   whatever its batch: the optimizer's update over all parameters, the loss's reduction, ...),
   validates it at 2 and 3 ranks against what was measured (with this machine's shared-memory
   allreduce times in place of a network's), and predicts strong- and weak-scaling efficiency at 8,
   64 and 512 ranks on two networks (see NETWORKS: assumptions, not measurements).
4. Writes the tables to --md (benchmarks/mpi_scaling_results.md), the plot to --svg
   (benchmarks/images/mpi_scaling.svg, drawn by hand: no matplotlib needed) and every run to --json.

Standard library only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parent.parent

MODELS = {
    # name: (global batch, timed steps, warm-up steps)
    "seed": (1000, 300, 30),
    "fashion": (128, 30, 5),
}
CONFIGS = [(1, 1), (1, 2), (2, 1), (3, 1)]  # (ranks, threads per rank)
# The seed model's binding and thread-count diagnostics: (ranks, threads, --bind-to, --mca settings).
YIELD = {"mpi_yield_when_idle": 1}
DIAGNOSTICS = [(2, 1, "core", None), (1, 2, "core", None), (2, 1, "none", YIELD), (2, 2, "none", None)]
PREDICT_RANKS = [8, 64, 512]

# Cluster networks: ASSUMPTIONS (typical figures, not measured here). Bandwidth is the nominal link
# rate (MPI reaches ~80-95% of it on large messages, so these are optimistic); latency is the
# one-way MPI small-message latency per hop.
#   - 25 Gb/s Ethernet with RDMA (RoCE v2): ~3 GB/s, ~5 us (plain TCP: 15-30 us);
#   - 100 Gb/s InfiniBand (EDR): 12.5 GB/s, ~2 us (vendor figures: ~1 us switch-to-switch, 1-2 us MPI).
NETWORKS = {
    "25GbE": {"label": "25 Gb/s Ethernet (RoCE), 5 us", "bandwidth": 25e9 / 8, "latency": 5e-6},
    "100G-IB": {"label": "100 Gb/s InfiniBand EDR, 2 us", "bandwidth": 100e9 / 8, "latency": 2e-6},
}

LINE = re.compile(r"^(MPI_SCALING|MPI_ALLREDUCE) (.*)$", re.M)


def log(msg: str = "") -> None:
    print(msg, flush=True)


def loadavg() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return float("nan")


def compilers_running() -> bool:
    return subprocess.run(["pgrep", "-x", "cc1plus"], stdout=subprocess.DEVNULL).returncode == 0


def cpu_busy(interval: float = 1.0) -> float:
    """The fraction of all cores' time spent busy over `interval` seconds (/proc/stat), while this
    script runs nothing: other people's work."""
    def snap():
        f = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = f[3] + (f[4] if len(f) > 4 else 0)
        return sum(f[:8]), idle
    try:
        t0, i0 = snap()
        time.sleep(interval)
        t1, i1 = snap()
        return 1.0 - (i1 - i0) / max(1, t1 - t0)
    except (OSError, ValueError, IndexError):
        return 0.0


def wait_quiet(max_wait: float, threshold: float = 0.2) -> float:
    """Waits (at most max_wait s) until no compiler runs and the cores are at least 1 - threshold idle;
    returns the last busy fraction seen."""
    t0 = time.time()
    announced = False
    while True:
        busy = cpu_busy()
        if (not compilers_running() and busy < threshold) or time.time() - t0 >= max_wait:
            return busy
        if not announced:
            log(f"  (the machine is busy ({100 * busy:.0f}% of the cores, compiler running: {compilers_running()}): "
                f"waiting up to {max_wait:.0f} s)")
            announced = True
        time.sleep(10)


def parse_fields(text: str) -> dict:
    out = {}
    for item in text.split():
        k, _, v = item.partition("=")
        try:
            out[k] = int(v)
        except ValueError:
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
    return out


# ------------------------------------------------------------------------------------------------
# Measuring
class Runner:
    def __init__(self, args):
        self.args = args
        self.binary = Path(args.bin).resolve()
        self.runs: list[dict] = []

    def mpirun(self, ranks: int, bind: str, mca: dict | None = None) -> list[str]:
        cmd = ["mpirun", "--oversubscribe", "--bind-to", bind, "-np", str(ranks)]
        for k, v in (mca or {}).items():
            cmd += ["--mca", k, str(v)]
        if os.geteuid() == 0:
            cmd.insert(1, "--allow-run-as-root")
        return cmd

    def run(self, kind: str, model: str, ranks: int, threads: int, batch: int, bind: str = "none",
            round_: int = 0, mca: dict | None = None, steps: int | None = None,
            core: int | None = None) -> dict | None:
        steps, warmup = steps or MODELS[model][1], MODELS[model][2]
        busy_other = wait_quiet(self.args.max_wait)
        pin = ["taskset", "-c", str(core)] if core is not None else []  # mpirun and its ranks on this core
        cmd = pin + self.mpirun(ranks, bind, mca) + [str(self.binary), "--model", model, "--threads", str(threads),
                                          "--batch", str(batch)]
        if kind == "allreduce":
            cmd += ["--allreduce-only", "--reps", str(self.args.reps), "--warmup", "20"]
        else:
            cmd += ["--steps", str(steps), "--warmup", str(warmup)]
        load0 = loadavg()
        busy0 = compilers_running()
        t0 = time.time()
        p = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.time() - t0
        # busy: a compiler was running when the run started or when it ended (the machine was not quiet).
        rec = {"kind": kind, "model": model, "ranks": ranks, "threads": threads, "batch": batch, "bind": bind,
               "mca": mca or {}, "core": core, "round": round_, "cmd": shlex.join(cmd), "wall_s": wall, "load_before": load0,
               "load_after": loadavg(), "cpu_busy_before": busy_other,
               "busy": busy0 or busy_other >= 0.2 or compilers_running(), "rc": p.returncode}
        m = LINE.search(p.stdout)
        if p.returncode != 0 or not m:
            rec["error"] = (p.stdout + p.stderr)[-2000:]
            log(f"  FAILED ({p.returncode}): {rec['cmd']}\n{rec['error']}")
        else:
            rec.update(parse_fields(m.group(2)))
        self.runs.append(rec)
        self.save()
        return rec

    def save(self) -> None:
        meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "argv": sys.argv,
                "machine": machine_info(), "git": git_commit()}
        Path(self.args.json).write_text(json.dumps({"meta": meta, "runs": self.runs}, indent=1))


def compute_batches(model: str) -> list[int]:
    """The one-rank batches timed for T_c(b): the per-rank batches of 2 and 3 ranks, a few more for the
    fit, and the per-rank batches of the strong-scaling predictions that are possible."""
    B = MODELS[model][0]
    bs = {B, math.ceil(B / 2), math.ceil(B / 3), math.ceil(B / 4), math.ceil(B / 8)}
    for n in PREDICT_RANKS:
        if n <= B:
            bs.add(math.ceil(B / n))
    return sorted(bs, reverse=True)


def measure(args) -> Runner:
    r = Runner(args)
    if not r.binary.is_file():
        sys.exit(f"mpi_scaling.py: no binary at {r.binary}: build it with\n"
                 f"  cmake --build build --target flowmatch_mpi_scaling   (or pass --bin PATH)")
    models = args.models.split(",")
    for rnd in range(args.rounds):
        log(f"round {rnd + 1} of {args.rounds} (load {loadavg():.2f})")
        for model in models:
            B = MODELS[model][0]
            for ranks, threads in CONFIGS:
                rec = r.run("train", model, ranks, threads, B, round_=rnd)
                if rec and "ms_step_median" in rec:
                    log(f"  {model:7s} {ranks} x {threads}: {rec['ms_step_median']:.3f} ms/step "
                        f"(allreduce {rec['allreduce_ms_median']:.3f} ms, load {rec['load_before']:.2f})")
            for b in compute_batches(model):
                if b == B:
                    continue
                rec = r.run("compute", model, 1, 1, b, round_=rnd)
                if rec and "ms_step_median" in rec:
                    log(f"  {model:7s} 1 x 1 at batch {b}: {rec['ms_step_median']:.3f} ms/step")
            # The 2-rank per-rank batch on each core alone (taskset): a 2-rank step waits for the slower core.
            for c in range(min(os.cpu_count() or 1, 2)):
                rec = r.run("compute", model, 1, 1, math.ceil(B / 2), round_=rnd, core=c)
                if rec and "ms_step_median" in rec:
                    log(f"  {model:7s} 1 x 1 at batch {math.ceil(B / 2)} on core {c}: {rec['ms_step_median']:.3f} ms/step")
            for ranks in (2, 3):
                rec = r.run("allreduce", model, ranks, 1, B, round_=rnd)
                if rec and "allreduce_ms_median" in rec:
                    log(f"  {model:7s} allreduce alone, {ranks} ranks: {rec['allreduce_ms_median']:.3f} ms "
                        f"(1 double: {rec['allreduce1_us_median']:.1f} us)")
            if model == "seed" and not args.no_bind_study:
                # --bind-to core for 2 x 1 and 1 x 2 (Open MPI's default for 2 ranks binds each to a core);
                # 2 x 1 unbound with mpi_yield_when_idle (a waiting rank yields its core); and 2 x 2:
                # flowmatch's default thread count (every core) on every rank, unbound.
                for ranks, threads, bind, mca in DIAGNOSTICS:
                    rec = r.run("bind", model, ranks, threads, B, bind=bind, round_=rnd, mca=mca)
                    if rec and "ms_step_median" in rec:
                        log(f"  {model:7s} {ranks} x {threads} --bind-to {bind} {mca or ''}: "
                            f"{rec['ms_step_median']:.3f} ms/step (allreduce {rec['allreduce_ms_median']:.3f} ms)")
    # The bar, paired: seed 1 x 1 (unbound, and pinned to each core in turn) and 2 x 1 (unbound, and
    # --bind-to core) at batch 1000, back to back, --bar-pairs times.
    if "seed" in models:
        B = MODELS["seed"][0]
        for k in range(args.bar_pairs):
            g = {"1": r.run("bar", "seed", 1, 1, B, round_=k, steps=args.bar_steps),
                 "2": r.run("bar", "seed", 2, 1, B, round_=k, steps=args.bar_steps),
                 "2c": r.run("bar", "seed", 2, 1, B, bind="core", round_=k, steps=args.bar_steps)}
            for c in range(min(os.cpu_count() or 1, 2)):
                g[f"1@{c}"] = r.run("bar", "seed", 1, 1, B, round_=k, steps=args.bar_steps, core=c)
            if all(x and "ms_step_median" in x for x in g.values()):
                t = {key: x["ms_step_median"] for key, x in g.items()}
                log(f"  bar {k + 1}: 1 x 1 {t['1']:.3f} ms (on core 0: {t.get('1@0', float('nan')):.3f}, core 1: "
                    f"{t.get('1@1', float('nan')):.3f}), 2 x 1 {t['2']:.3f} ms ({t['1'] / t['2']:.2f}x), "
                    f"2 x 1 --bind-to core {t['2c']:.3f} ms ({t['1'] / t['2c']:.2f}x)")
    return r


# ------------------------------------------------------------------------------------------------
# Analysis
def med(xs):
    return statistics.median(xs) if xs else float("nan")


def matching(runs, key="ms_step_median", **match):
    """The runs with `key` that match every field of `match` (mca: a dict, {} for none); only those of a
    quiet machine (no compiler seen at the start or the end of the run) when there are any."""
    sel = [x for x in runs if key in x and all((x.get(k) or {}) == v if k == "mca" else x.get(k) == v
                                               for k, v in match.items())]
    quiet = [x for x in sel if not x.get("busy")]
    return (quiet or sel), len(sel)


def cell(runs, key="ms_step_median", **match):
    return [x[key] for x in matching(runs, key, **match)[0]]


def fmt_range(xs, digits=3):
    if not xs:
        return "-"
    return f"{med(xs):.{digits}f} [{min(xs):.{digits}f}-{max(xs):.{digits}f}]"


def fit_line(points):
    """Least squares y = a + c x; returns (a, c)."""
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    sxy = sum((p[0] - mx) * (p[1] - my) for p in points)
    c = sxy / sxx
    return my - c * mx, c


def ring_allreduce(n: int, nbytes: float, bw: float, lat: float) -> float:
    """Ring allreduce (reduce-scatter + allgather): 2 (N-1)/N bytes / bandwidth + 2 (N-1) latency."""
    if n <= 1:
        return 0.0
    return 2 * (n - 1) / n * nbytes / bw + 2 * (n - 1) * lat


def rabenseifner_allreduce(n: int, nbytes: float, bw: float, lat: float) -> float:
    """Recursive halving + doubling (Rabenseifner): the ring's bandwidth term, 2 log2 N latencies."""
    if n <= 1:
        return 0.0
    return 2 * (n - 1) / n * nbytes / bw + 2 * math.ceil(math.log2(n)) * lat


def small_allreduce(n: int, lat: float) -> float:
    """The 1-element loss allreduce: recursive doubling, log2 N latencies (what MPI does for tiny messages)."""
    return 0.0 if n <= 1 else math.ceil(math.log2(n)) * lat


class Model:
    """T_c(b) for one model from the one-rank, one-thread runs; the measured medians where there are."""

    def __init__(self, runs, model):
        self.model = model
        self.B = MODELS[model][0]
        batches = {x["batch"] for x in runs if x.get("model") == model and x.get("kind") in ("train", "compute")}
        self.measured = {}
        for b in batches:
            xs = [t / 1e3 for kind in ("train", "compute")
                  for t in cell(runs, model=model, kind=kind, ranks=1, threads=1, batch=b, core=None)]
            if xs:
                self.measured[b] = med(xs)
        fit_pts = [(b, t) for b, t in self.measured.items() if b >= math.ceil(self.B / 8)]
        self.a, self.c = fit_line(fit_pts) if len(fit_pts) >= 2 else (float("nan"), float("nan"))
        params = [x["params"] for x in runs if x.get("model") == model and "params" in x]
        self.params = params[0] if params else 0
        self.bytes = 4 * self.params

    def compute(self, b: int) -> float:
        return self.measured.get(b, self.a + self.c * b)

    def t1(self) -> float:
        return self.compute(self.B)

    def predict(self, n: int, scaling: str, net: dict, algo=ring_allreduce) -> dict | None:
        if scaling == "strong":
            if n > self.B:
                return None
            b = math.ceil(self.B / n)
        else:
            b = self.B
        tc = self.compute(b)
        tar = algo(n, self.bytes, net["bandwidth"], net["latency"]) + small_allreduce(n, net["latency"])
        t = tc + tar
        eff = self.t1() / (n * t) if scaling == "strong" else self.t1() / t
        return {"b": b, "tc": tc, "tar": tar, "t": t, "eff": eff, "speedup": self.t1() / t * (1 if scaling == "strong" else n)}


def analyse(data: dict, args) -> tuple[str, dict]:
    runs = [x for x in data["runs"] if x.get("rc") == 0]
    meta = data["meta"]
    models = [m for m in MODELS if any(x.get("model") == m for x in runs)]
    out: list[str] = []
    w = out.append
    loads = [x[k] for x in data["runs"] for k in ("load_before", "load_after") if k in x]
    rounds = 1 + max((x.get("round", 0) for x in runs if x.get("kind") != "bar"), default=0)
    cores = meta["machine"].get("cores", os.cpu_count())

    w(f"Measured {meta['date']} at commit {meta['git']} on {meta['machine']['cpu']} "
      f"({cores} cores), Open MPI {meta['machine'].get('mpi', '?')}; {rounds} round(s), configurations "
      f"alternated within each round; load average (1 min) during the runs: "
      f"{min(loads):.2f}-{max(loads):.2f}." if loads else "")
    w("")
    w("Command: `" + " ".join(shlex.quote(a) for a in meta["argv"]) + "`; every run is "
      "`mpirun --oversubscribe --bind-to none -np R flowmatch_mpi_scaling --model M --threads K --batch B` "
      "(steps/warm-up: seed 300/30, fashion 30/5) unless marked.")
    w("")

    # ---- measured strong scaling
    w("### Measured: strong scaling on this machine (global batch fixed)")
    w("")
    w(f"ms/step: median over rounds of each run's median step time on rank 0 [min-max over rounds]. "
      f"allreduce: the gradient's MPI_Allreduce per step (the trainer's allreduce_seconds(), rank 0). "
      f"3 ranks on {cores} cores are oversubscribed.")
    w("")
    w("| model | params | global batch | ranks x threads | mpirun | ms/step | speed-up vs 1x1 | allreduce ms/step | allreduce share | loss first -> last | runs used |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    summary = {}
    for model in models:
        B = MODELS[model][0]
        base = med(cell(runs, model=model, kind="train", ranks=1, threads=1, batch=B))
        rows = [(r, t, "none", None, "train") for r, t in CONFIGS] + [(r, t, b, m, "bind") for r, t, b, m in DIAGNOSTICS]
        for ranks, threads, bind, mca, kind in rows:
            sel = dict(model=model, kind=kind, ranks=ranks, threads=threads, batch=B, bind=bind, mca=mca or {})
            xs = cell(runs, **sel)
            if not xs:
                continue
            used, total = matching(runs, **sel)
            ar = cell(runs, "allreduce_ms_median", **sel)
            lf = cell(runs, "loss_first", **sel)
            ll = cell(runs, "loss_last", **sel)
            params = cell(runs, "params", model=model)[0]
            note = " (oversubscribed)" if ranks * threads > cores else ""
            how = f"--bind-to {bind}" + "".join(f" --mca {k} {v}" for k, v in (mca or {}).items())
            summary[(model, ranks, threads, how)] = med(xs)
            w(f"| {model} | {params} | {B} | {ranks} x {threads}{note} | {how} | {fmt_range(xs)} | "
              f"{base / med(xs):.2f}x | {med(ar):.3f} | {100 * med(ar) / med(xs):.0f}% | {med(lf):.2f} -> {med(ll):.2f} | "
              f"{len(used)} of {total} |")
    w("")
    if "seed" in models:
        s = summary.get(("seed", 1, 1, "--bind-to none")), summary.get(("seed", 2, 1, "--bind-to none"))
        if all(s):
            ratio = s[0] / s[1]
            w(f"**The bar (seed problem, global batch 1000: 2 ranks x 1 thread at least 1.6x faster per step than "
              f"1 rank x 1 thread), from the table: {ratio:.2f}x (ratio of the medians) — "
              f"{'met' if ratio >= 1.6 else 'NOT met'}.**")
            w("")
        groups = {}
        for x in runs:
            if x.get("kind") == "bar" and "ms_step_median" in x:
                key = f"{x['ranks']}" + ("c" if x.get("bind") == "core" else "") + \
                      (f"@{x['core']}" if x.get("core") is not None else "")
                groups.setdefault(x["round"], {})[key] = x
        quiet = [g for _, g in sorted(groups.items()) if all(k in g for k in ("1", "2"))
                 and not any(x.get("busy") for x in g.values())]
        if quiet:
            steps = quiet[0]["1"].get("steps", "?")
            w(f"Paired check: {len(quiet)} quiet groups of back-to-back runs of {steps} timed steps (ms/step, median "
              f"[min-max] over the groups; speed-up: per group, then the median [min-max]):")
            w("")
            w("| run | ms/step | speed-up of 2 x 1 (unbound) over it | speed-up of 2 x 1 --bind-to core over it | groups >= 1.6x (unbound / core) |")
            w("|---|---|---|---|---|")
            labels = {"1": "1 x 1, unbound", "1@0": "1 x 1, pinned to core 0 (taskset)",
                      "1@1": "1 x 1, pinned to core 1 (taskset)", "2": "2 x 1, --bind-to none",
                      "2c": "2 x 1, --bind-to core"}
            for key, label in labels.items():
                gs = [g for g in quiet if key in g]
                if not gs:
                    continue
                ts = [g[key]["ms_step_median"] for g in gs]
                if key.startswith("1"):
                    r2 = [g[key]["ms_step_median"] / g["2"]["ms_step_median"] for g in gs]
                    r2c = [g[key]["ms_step_median"] / g["2c"]["ms_step_median"] for g in gs if "2c" in g]
                    w(f"| {label} | {fmt_range(ts)} | {fmt_range(r2, 2)} | {fmt_range(r2c, 2)} | "
                      f"{sum(x >= 1.6 for x in r2)} / {sum(x >= 1.6 for x in r2c)} of {len(gs)} |")
                    if key == "1":
                        summary["bar"] = r2
                else:
                    w(f"| {label} | {fmt_range(ts)} | | | |")
            w("")

    # ---- the compute model
    w("### The cost model")
    w("")
    w("Per step, every rank computes the loss and gradient of its b_N samples and takes the same optimizer step, then the "
      "ranks sum the gradient (one MPI_Allreduce of P floats) and the loss (one of 1 double):")
    w("")
    w("    T(N) = T_c(b_N) + T_allreduce(N, 4P bytes) + T_allreduce(N, 8 bytes)")
    w("    T_c(b) = a + c b                      (a: per-step overhead paid by every rank whatever b: the optimizer's update over all P parameters, ...)")
    w("    ring:         T_allreduce(N, m) = 2 (N-1)/N m / BW + 2 (N-1) L")
    w("    Rabenseifner: T_allreduce(N, m) = 2 (N-1)/N m / BW + 2 log2(N) L")
    w("    1 double:     T_allreduce(N, 8) = log2(N) L   (recursive doubling)")
    w("    strong scaling: b_N = ceil(B/N), efficiency = T(1) / (N T(N));  weak scaling: b_N = B, efficiency = T(1) / T(N)")
    w("")
    w("T_c(b) is measured: one rank, one thread, at each per-rank batch b the tables use (the median over rounds); "
      "a and c are the least-squares line through the batches B, B/2, B/3, B/4, B/8, used only where no batch was measured "
      "(the plot's intermediate rank counts). The per-step floor that no number of ranks removes is T_c at the smallest "
      "batch (b = 2): each rank still runs the optimizer over all P parameters and streams the weights through "
      "forward and backward; for the fashion model it lies above the line's intercept (at tiny batches the products "
      "are bound by reading the 10.7 MB of weights, not by arithmetic).")
    w("")
    w("| model | P (params) | gradient bytes | a: intercept ms/step | c: us/sample | T_c measured (ms) at batch b |")
    w("|---|---|---|---|---|---|")
    mods = {m: Model(runs, m) for m in models}
    for m, mo in mods.items():
        meas = ", ".join(f"{b}: {1e3 * t:.3f}" for b, t in sorted(mo.measured.items(), reverse=True))
        w(f"| {m} | {mo.params} | {mo.bytes} | {1e3 * mo.a:.3f} | {1e6 * mo.c:.3f} | {meas} |")
    w("")

    # ---- shared-memory allreduce and validation
    w("### Validation at 2 and 3 ranks (this machine: shared memory in place of a network)")
    w("")
    w("The allreduce terms are this machine's, measured alone (`--allreduce-only`: MPI_Allreduce of the gradient's "
      "size, and of 1 double, median of 200 calls after a barrier). Prediction = T_c(b_N) + allreduce(P floats) + "
      f"allreduce(1 double); 'core-aware' multiplies T_c by N x threads / cores when the ranks outnumber the {cores} cores "
      "(3 ranks share 2 cores: each computes at 2/3 speed).")
    w("")
    w("| model | ranks | b_N | T_c(b_N) ms | allreduce alone ms | 1-double allreduce us | allreduce in training ms | predicted ms | core-aware ms | measured ms | error (core-aware) |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    slow_rows = []
    validation = {}
    shm = {}
    for m, mo in mods.items():
        for n in (2, 3):
            ar = med(cell(runs, "allreduce_ms_median", model=m, kind="allreduce", ranks=n)) / 1e3
            ar1 = med(cell(runs, "allreduce1_us_median", model=m, kind="allreduce", ranks=n)) / 1e6
            shm[(m, n)] = ar
            meas = summary.get((m, n, 1, "--bind-to none"))
            if meas is None:
                continue
            meas /= 1e3
            ar_train = med(cell(runs, "allreduce_ms_median", model=m, kind="train", ranks=n, threads=1)) / 1e3
            b = math.ceil(mo.B / n)
            tc = mo.compute(b)
            pred = tc + ar + ar1
            over = max(1.0, n / cores)
            pred_c = tc * over + ar + ar1
            validation[(m, n)] = (pred_c, meas)
            per_core = [med(cell(runs, model=m, kind="compute", ranks=1, threads=1, batch=b, core=c)) / 1e3
                        for c in range(2)]
            if n == 2 and all(t == t for t in per_core):  # not NaN
                slow = max(per_core) + ar + ar1
                slow_rows.append(f"| {m} | {n} | {b} | {1e3 * per_core[0]:.3f} | {1e3 * per_core[1]:.3f} | "
                                 f"{1e3 * slow:.3f} | {1e3 * meas:.3f} | {100 * (slow - meas) / meas:+.0f}% |")
            w(f"| {m} | {n}{' (oversubscribed)' if n > cores else ''} | {b} | {1e3 * tc:.3f} | {1e3 * ar:.3f} | "
              f"{1e6 * ar1:.1f} | {1e3 * ar_train:.3f} | {1e3 * pred:.3f} | {1e3 * pred_c:.3f} | {1e3 * meas:.3f} | "
              f"{100 * (pred_c - meas) / meas:+.0f}% |")
    w("")
    if slow_rows:
        w("Two ranks wait for the slower core every step, and this machine's two vCPUs are not equally fast (a VM: "
          "the host's load on each varies by 10-20% from minute to minute; see the paired check above). The same "
          "prediction with T_c(b_N) measured on each core alone (taskset, same rounds) and the slower one taken:")
        w("")
        w("| model | ranks | b_N | T_c on core 0 ms | T_c on core 1 ms | predicted (slower core) ms | measured ms | error |")
        w("|---|---|---|---|---|---|---|---|")
        for row in slow_rows:
            w(row)
        w("")
    # This machine's shared-memory 'network' in the ring model's terms, at 2 ranks: L from the
    # 1-double allreduce (log2 2 = 1 latency), BW from the largest gradient (T = m / BW + 2 L).
    big = max(mods.values(), key=lambda mo: mo.bytes) if mods else None
    if big is not None and (big.model, 2) in shm:
        small = min(mods.values(), key=lambda mo: mo.bytes)  # its runs time the 1-double call between small ones
        lat = med(cell(runs, "allreduce1_us_median", model=small.model, kind="allreduce", ranks=2)) / 1e6
        t = shm[(big.model, 2)]
        bw = big.bytes / max(t - 2 * lat, 1e-12)
        w(f"This machine's shared-memory allreduce in the ring model's terms (2 ranks): L = {1e6 * lat:.1f} us (the "
          f"1-double allreduce), BW = {bw / 1e9:.2f} GB/s ({big.model}'s {big.bytes / 1e6:.1f} MB gradient in "
          f"{1e3 * t:.2f} ms), i.e. {bw / NETWORKS['25GbE']['bandwidth']:.2f}x the bandwidth assumed below for 25 Gb/s "
          f"Ethernet.")
        w("")

    # ---- predictions
    w("### Predictions for a cluster (one rank per node, one thread per rank, this CPU's per-rank compute)")
    w("")
    w("Network parameters are ASSUMPTIONS (typical published figures, not measured here; nominal link rates, so optimistic "
      "by 5-20% for large messages): " + "; ".join(f"**{k}**: {v['label']} (BW = {v['bandwidth'] / 1e9:.3g} GB/s, "
                                                       f"L = {1e6 * v['latency']:.0f} us)" for k, v in NETWORKS.items()) + ".")
    w("Efficiency with the ring allreduce (the formula above), and in brackets with Rabenseifner's "
      "(logarithmic in the latency term, as MPI libraries use for small and mid-sized messages; the bandwidth term is the same). "
      "Strong scaling: global batch fixed (seed 1000, fashion 128); weak: B per rank.")
    w("")
    w("| model | scaling | network | " + " | ".join(f"N = {n}: b_N, T ms (allreduce ms), efficiency" for n in PREDICT_RANKS) + " |")
    w("|---|---|---|" + "---|" * len(PREDICT_RANKS))
    preds = {}
    for m, mo in mods.items():
        for scaling in ("strong", "weak"):
            for key, net in NETWORKS.items():
                cells = []
                for n in PREDICT_RANKS:
                    p = mo.predict(n, scaling, net)
                    q = mo.predict(n, scaling, net, rabenseifner_allreduce)
                    preds[(m, scaling, key, n)] = (p, q)
                    if p is None:
                        cells.append(f"n/a (batch {mo.B} < {n} ranks)")
                    else:
                        cells.append(f"{p['b']}, {1e3 * p['t']:.3f} ({1e3 * p['tar']:.3f}), **{100 * p['eff']:.0f}%** "
                                     f"[{100 * q['eff']:.0f}%]")
                w(f"| {m} | {scaling} | {key} | " + " | ".join(cells) + " |")
    w("")
    w(f"T(1) (one rank, one thread, batch B): " + ", ".join(f"{m} {1e3 * mo.t1():.3f} ms" for m, mo in mods.items()) + ".")
    w("")
    return "\n".join(out), {"mods": mods, "summary": summary, "validation": validation, "cores": cores}


# ------------------------------------------------------------------------------------------------
# The plot, as SVG written by hand
def svg_plot(res: dict, path: Path) -> None:
    mods = res["mods"]
    W, H = 980, 430
    panels = [("strong", "Strong scaling (global batch fixed)"), ("weak", "Weak scaling (batch per rank fixed)")]
    colors = {"seed": "#1f77b4", "fashion": "#d62728"}
    dashes = {"25GbE": "6,4", "100G-IB": ""}
    ns = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    pw, ph, left, top = 380, 300, 70, 50
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
             f'font-family="DejaVu Sans, Arial, sans-serif" font-size="12">',
             f'<rect width="{W}" height="{H}" fill="white"/>']

    def xmap(n, x0):
        return x0 + pw * math.log2(n) / math.log2(512)

    def ymap(e, y0):
        return y0 + ph * (1 - max(0.0, min(1.05, e)) / 1.05)

    for i, (scaling, title) in enumerate(panels):
        x0, y0 = left + i * (pw + 110), top
        parts.append(f'<text x="{x0 + pw / 2}" y="{y0 - 18}" text-anchor="middle" font-size="14">{title}</text>')
        parts.append(f'<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
        for e in (0, 0.2, 0.4, 0.6, 0.8, 1.0):
            y = ymap(e, y0)
            parts.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + pw}" y2="{y:.1f}" stroke="#ddd"/>')
            parts.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{int(100 * e)}%</text>')
        for n in ns:
            x = xmap(n, x0)
            parts.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y0 + ph}" stroke="#eee"/>')
            parts.append(f'<text x="{x:.1f}" y="{y0 + ph + 16}" text-anchor="middle">{n}</text>')
        parts.append(f'<text x="{x0 + pw / 2}" y="{y0 + ph + 34}" text-anchor="middle">ranks N (log scale)</text>')
        parts.append(f'<text x="{x0 - 48}" y="{y0 + ph / 2}" text-anchor="middle" '
                     f'transform="rotate(-90 {x0 - 48} {y0 + ph / 2})">parallel efficiency</text>')
        for m, mo in mods.items():
            for key, net in NETWORKS.items():
                pts = []
                for n in ns:
                    p = mo.predict(n, scaling, net)
                    if p is not None:
                        pts.append((xmap(n, x0), ymap(p["eff"], y0)))
                d = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
                parts.append(f'<polyline points="{d}" fill="none" stroke="{colors[m]}" stroke-width="2" '
                             f'stroke-dasharray="{dashes[key]}"/>')
            if scaling == "strong":  # measured on this machine (shared memory), 2 and 3 ranks
                base = res["summary"].get((m, 1, 1, "--bind-to none"))
                for n in (2, 3):
                    t = res["summary"].get((m, n, 1, "--bind-to none"))
                    if base and t:
                        x, y = xmap(n, x0), ymap(base / (n * t), y0)
                        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="{colors[m]}" stroke="black"/>')
    # legend
    lx, ly = left, top + ph + 52
    items = [(f"{m}, {NETWORKS[k]['label']}", colors[m], dashes[k]) for m in mods for k in NETWORKS]
    for j, (label, col, dash) in enumerate(items):
        x = lx + (j % 2) * 440
        y = ly + (j // 2) * 16
        parts.append(f'<line x1="{x}" y1="{y}" x2="{x + 30}" y2="{y}" stroke="{col}" stroke-width="2" stroke-dasharray="{dash}"/>')
        parts.append(f'<text x="{x + 36}" y="{y + 4}">{label} (model, ring allreduce)</text>')
    y = ly + ((len(items) + 1) // 2) * 16
    parts.append(f'<circle cx="{lx + 15}" cy="{y}" r="4.5" fill="#888" stroke="black"/>')
    parts.append(f'<text x="{lx + 36}" y="{y + 4}">measured on this machine ({res["cores"]} cores, shared memory; '
                 f'3 ranks oversubscribed)</text>')
    parts.append("</svg>")
    svg = "\n".join(parts) + "\n"
    H2 = y + 16
    svg = svg.replace(f'height="{H}" viewBox="0 0 {W} {H}"', f'height="{H2}" viewBox="0 0 {W} {H2}"', 1)
    svg = svg.replace(f'<rect width="{W}" height="{H}"', f'<rect width="{W}" height="{H2}"', 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(svg)


# ------------------------------------------------------------------------------------------------
def machine_info() -> dict:
    info = {"cores": os.cpu_count(), "cpu": platform.processor() or "?"}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        v = subprocess.run(["mpirun", "--version"], capture_output=True, text=True).stdout
        m = re.search(r"\(Open MPI\) (\S+)", v)
        info["mpi"] = m.group(1) if m else v.splitlines()[0]
    except OSError:
        pass
    return info


def git_commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(REPO / "build" / "benchmarks" / "flowmatch_mpi_scaling"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", default="seed,fashion")
    ap.add_argument("--reps", type=int, default=200, help="allreduce-only repetitions per run")
    ap.add_argument("--no-bind-study", action="store_true", help="leave out the seed model's binding/thread diagnostics")
    ap.add_argument("--bar-pairs", type=int, default=10, help="paired seed runs 1 x 1 / 2 x 1 for the 1.6x bar")
    ap.add_argument("--bar-steps", type=int, default=1000, help="timed steps of each paired run")
    ap.add_argument("--max-wait", type=float, default=1800, help="seconds to wait for running compilers per round")
    ap.add_argument("--json", default="/tmp/flowmatch-mpi-scaling.json")
    ap.add_argument("--from-json", help="analyse this JSON of an earlier run instead of measuring")
    ap.add_argument("--md", default=str(REPO / "benchmarks" / "mpi_scaling_results.md"))
    ap.add_argument("--svg", default=str(REPO / "benchmarks" / "images" / "mpi_scaling.svg"))
    args = ap.parse_args()

    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
    else:
        runner = measure(args)
        data = json.loads(Path(args.json).read_text())
        failed = [x for x in runner.runs if x.get("rc") != 0]
        if failed:
            log(f"{len(failed)} run(s) failed; see {args.json}")
    text, res = analyse(data, args)
    log("")
    log(text)
    Path(args.md).write_text("# MPI scaling: measured and modelled\n\n"
                             "Written by `benchmarks/mpi_scaling.py` (see benchmarks/README.md, "
                             "section \"MPI scaling\").\n\n" + text + "\n\n![efficiency](images/mpi_scaling.svg)\n")
    svg_plot(res, Path(args.svg))
    log(f"wrote {args.md}, {args.svg}, {args.json if not args.from_json else args.from_json}")
    return 0 if all(x.get("rc") == 0 for x in data["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
