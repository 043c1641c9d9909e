#!/usr/bin/python3
"""Side-by-side benchmark of flowmatch against the PyTorch and LibTorch peers of the reference workload.

Runs flowmatch's examples/gmm2d, the PyTorch peer (torch_seed.py, under Debian's /usr/bin/python3)
and the LibTorch peer (libtorch_seed) one after the other -- A B C A B C ... -- on the same machine
and thread count, in two environments: "default" (the plain environment) and "tuned" (the peers
README's MALLOC_* / ATEN_CPU_CAPABILITY variables, given to every program, flowmatch included).

Two configurations:
  train   the reference workload: --steps N (default 1000) training steps at batch 1000, then sampling
          1000 samples x 299 Euler steps;
  sample  sampling only matters: 100,000 samples x 100 Euler steps after a few training steps.

For every run it records the program's RESULT line, its peak RSS (wait4's ru_maxrss) and its wall
time; it prints medians [min-max] per program, variant and thread count, the ratios
peer / flowmatch of the medians, and writes every raw run to a JSON file.

A benchmark, not a test: nothing in CI runs it. It takes minutes (the sampling configuration alone
runs each program for 10-30 s); run it alone on a quiet machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parent.parent

# What the peers need (their README), and what building gmm2d needs (scripts/deps.sh).
PEER_PACKAGES = ["python3-torch", "python3-numpy", "libtorch-dev", "libopenblas0-openmp", "cmake", "g++"]
FLOWMATCH_PACKAGES_FALLBACK = ["cmake", "g++", "make", "libeigen3-dev", "catch2", "libstb-dev", "libcli11-dev",
                               "fonts-dejavu-core", "pkg-config", "libbenchmark-dev"]

# The "tuned" environment of the peers README (read from it when it lists them; these otherwise).
TUNED_FALLBACK = {"MALLOC_MMAP_THRESHOLD_": "67108864", "MALLOC_TRIM_THRESHOLD_": "268435456",
                  "ATEN_CPU_CAPABILITY": "avx512"}

PROGRAMS = ("flowmatch", "torch", "libtorch")
LABELS = {"flowmatch": "flowmatch", "torch": "PyTorch", "libtorch": "LibTorch"}
EXIT_SETUP = 2


def log(msg: str = "") -> None:
    print(msg, flush=True)


def fail_setup(msg: str) -> NoReturn:
    print(f"compare.py: {msg}", file=sys.stderr, flush=True)
    sys.exit(EXIT_SETUP)


# ------------------------------------------------------------------------------------------------
# Setup: peers, packages, builds
def find_peers(args) -> Path:
    peers = Path(args.peers).resolve() if args.peers else (REPO.parent / "shared" / "peers").resolve()
    needed = ["torch_seed.py", "libtorch_seed.cpp", "CMakeLists.txt"]
    missing = [name for name in needed if not (peers / name).is_file()]
    if missing:
        fail_setup(f"the peer implementations are not there: {peers} lacks {', '.join(missing)}.\n"
                   f"  Expected torch_seed.py, libtorch_seed.cpp and CMakeLists.txt in <repo>/../shared/peers;\n"
                   f"  pass --peers DIR to use another folder.")
    return peers


def flowmatch_packages() -> list[str]:
    deps = REPO / "scripts" / "deps.sh"
    try:
        text = deps.read_text()
        m = re.search(r"FLOWMATCH_APT_PACKAGES=\((.*?)\)", text, re.S)
        if m:
            names = [line.split("#")[0].strip() for line in m.group(1).splitlines()]
            names = [n for n in names if n]
            if names:
                return names
    except OSError:
        pass
    return list(FLOWMATCH_PACKAGES_FALLBACK)


def installed(package: str) -> bool:
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return r.returncode == 0 and r.stdout.strip() == "install ok installed"


def package_version(package: str) -> str | None:
    r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    return (r.stdout.strip() or None) if r.returncode == 0 else None


def ensure_packages(packages: list[str]) -> None:
    if shutil.which("dpkg-query") is None:
        log("compare.py: no dpkg-query (not Debian?): not checking packages")
        return
    missing = [p for p in dict.fromkeys(packages) if not installed(p)]
    if not missing:
        return
    command = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if os.geteuid() != 0:
        fail_setup("missing Debian packages: " + " ".join(missing) + "\n  install them as root with:\n    "
                   + shlex.join(command))
    log(f"compare.py: installing missing packages: {' '.join(missing)} (large: torch, libtorch)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(command, env=env).returncode != 0:
        log("compare.py: apt-get install failed; running apt-get update and trying again")
        subprocess.run(["apt-get", "update"], env=env, check=False)
        if subprocess.run(command, env=env).returncode != 0:
            fail_setup("apt-get could not install: " + " ".join(missing))


def run_build_step(cmd: list[str], what: str) -> None:
    log("$ " + shlex.join(cmd))
    r = subprocess.run(cmd)
    if r.returncode != 0:
        fail_setup(f"building {what} failed (exit {r.returncode}): {shlex.join(cmd)}")


def build_peer(peers: Path, build_dir: Path, jobs: int) -> Path:
    if build_dir.resolve().is_relative_to(peers.resolve()):
        fail_setup(f"--peer-build {build_dir} is inside the peers' source tree {peers}: build out of it")
    run_build_step(["cmake", "-S", str(peers), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release"], "the LibTorch peer")
    run_build_step(["cmake", "--build", str(build_dir), "--parallel", str(jobs), "--target", "libtorch_seed"],
                   "the LibTorch peer")
    exe = build_dir / "libtorch_seed"
    if not exe.is_file():
        fail_setup(f"the LibTorch peer built, but {exe} is not there")
    return exe


def cmake_cache_value(build_dir: Path, key: str) -> str | None:
    cache = build_dir / "CMakeCache.txt"
    if not cache.is_file():
        return None
    for line in cache.read_text(errors="replace").splitlines():
        if line.startswith(key + ":"):
            return line.split("=", 1)[1] if "=" in line else ""
    return None


def build_gmm2d(build_dir: Path, jobs: int) -> Path:
    build_type = cmake_cache_value(build_dir, "CMAKE_BUILD_TYPE")
    if build_type not in (None, "Release"):
        fail_setup(f"{build_dir} is configured as CMAKE_BUILD_TYPE={build_type}; the comparison needs a Release "
                   f"build: pass --build-dir DIR (a new folder) or --gmm2d PATH")
    # The same configure line as scripts/example.sh: a Release build of the whole project.
    run_build_step(["cmake", "-S", str(REPO), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release"], "gmm2d")
    run_build_step(["cmake", "--build", str(build_dir), "--parallel", str(jobs), "--target", "gmm2d"], "gmm2d")
    exe = build_dir / "examples" / "gmm2d" / "gmm2d"
    if not exe.is_file():
        fail_setup(f"gmm2d built, but {exe} is not there")
    return exe


# ------------------------------------------------------------------------------------------------
# Environments and commands
def tuned_variables(peers: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    try:
        text = (peers / "README.md").read_text(errors="replace")
        for name, value in re.findall(r"\b(MALLOC_[A-Z_]+_|ATEN_CPU_CAPABILITY)=([A-Za-z0-9_]+)", text):
            found.setdefault(name, value)
    except OSError:
        pass
    tuned = found if found else dict(TUNED_FALLBACK)
    # ATen refuses a capability the CPU lacks: fall back to AVX2 without AVX-512.
    if tuned.get("ATEN_CPU_CAPABILITY", "").startswith("avx512") and "avx512f" not in cpu_flags():
        tuned["ATEN_CPU_CAPABILITY"] = "avx2"
    return tuned


def environments(tuned: dict[str, str], wanted: list[str]) -> dict[str, dict[str, str]]:
    plain = {k: v for k, v in os.environ.items() if k not in tuned and k not in TUNED_FALLBACK}
    envs = {"default": plain, "tuned": dict(plain, **tuned)}
    return {name: envs[name] for name in wanted}


def commands(args, exe: dict[str, Path], peers: Path, config: str, threads: int, outdir: Path) -> dict[str, list[str]]:
    common_seed = ["--seed", str(args.seed)]
    if config == "train":
        steps = args.steps
        fm_sampling: list[str] = []
        peer_sampling: list[str] = []
    else:
        steps = args.sample_train_steps
        fm_sampling = ["--samples", str(args.sample_n), "--time-points", str(args.sample_time_points),
                       "--trajectories", "0"]
        peer_sampling = ["--nsamples", str(args.sample_n), "--nts", str(args.sample_time_points)]
    shared = ["--steps", str(steps), "--threads", str(threads), *common_seed, "--batch", str(args.batch),
              "--lr", repr(args.lr)]
    return {
        "flowmatch": [str(exe["flowmatch"]), *shared, *fm_sampling, "--out", str(outdir / f"gmm2d-{config}")],
        "torch": [args.python, str(peers / "torch_seed.py"), *shared, *peer_sampling,
                  "--out", str(outdir / f"torch-{config}.csv")],
        "libtorch": [str(exe["libtorch"]), *shared, *peer_sampling, "--out", str(outdir / f"libtorch-{config}.csv")],
    }


# ------------------------------------------------------------------------------------------------
# Running one program
def parse_result(text: str) -> dict | None:
    lines = [line for line in text.splitlines() if line.startswith("RESULT ")]
    if not lines:
        return None
    result: dict = {}
    for field in lines[-1].split()[1:]:
        if "=" not in field:
            continue
        key, value = field.split("=", 1)
        try:
            result[key] = int(value) if re.fullmatch(r"-?\d+", value) else float(value)
        except ValueError:
            result[key] = value
    return result


def run_once(cmd: list[str], env: dict[str, str], timeout: float) -> dict:
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        timed_out = False
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            if time.perf_counter() - start > timeout:
                proc.kill()
                timed_out = True
                pid, status, rusage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
        out.seek(0)
        text = out.read().decode(errors="replace")
    return {"returncode": proc.returncode, "timed_out": timed_out, "wall_s": round(wall, 3),
            "maxrss_kib": rusage.ru_maxrss, "result": parse_result(text),
            "output_tail": "\n".join(text.splitlines()[-15:])}


# ------------------------------------------------------------------------------------------------
# Statistics and tables
def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def machine() -> dict:
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = cpu_flags()
    return {"cpu": model, "logical_cpus": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(),
            "simd": sorted(f for f in flags if f.startswith(("avx", "fma", "amx"))),
            "loadavg_at_start": os.getloadavg()}


def values(runs: list[dict], program: str, config: str, variant: str, threads: int, key: str) -> list[float]:
    out = []
    for r in runs:
        if (r["program"], r["config"], r["variant"], r["threads"]) != (program, config, variant, threads):
            continue
        if r["returncode"] != 0:
            continue
        if key == "peak_rss_mb":
            out.append(r["maxrss_kib"] / 1024.0)
        elif key == "wall_s":
            out.append(r["wall_s"])
        elif r["result"] and isinstance(r["result"].get(key), (int, float)):
            out.append(float(r["result"][key]))
    return out


def median(v: list[float]) -> float | None:
    return statistics.median(v) if v else None


def fmt(v: list[float], digits: int, spread: bool = True) -> str:
    if not v:
        return "-"
    m = statistics.median(v)
    if not spread or len(v) == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} [{min(v):.{digits}f}-{max(v):.{digits}f}]"


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def summarize(runs: list[dict], args, threads: list[int], variants: list[str]) -> tuple[str, str, dict]:
    sampling = args.sample_n > 0
    big = f"{args.sample_n}x{args.sample_time_points - 1}"
    header = ["program", "variant", "threads", "train ms/step", "sample s 1000x299"]
    if sampling:
        header.append(f"sample s {big}")
    header += ["peak RSS MB (train)"]
    if sampling:
        header.append("peak RSS MB (sample)")
    header += ["final loss", "runs"]
    rows = []
    summary: dict = {}
    for program in PROGRAMS:
        for variant in variants:
            for t in threads:
                ms = values(runs, program, "train", variant, t, "ms_step")
                s_small = values(runs, program, "train", variant, t, "sample_s")
                rss = values(runs, program, "train", variant, t, "peak_rss_mb")
                loss = values(runs, program, "train", variant, t, "final_loss")
                s_big = values(runs, program, "sample", variant, t, "sample_s") if sampling else []
                rss_big = values(runs, program, "sample", variant, t, "peak_rss_mb") if sampling else []
                row = [LABELS[program], variant, str(t), fmt(ms, 3), fmt(s_small, 3)]
                if sampling:
                    row.append(fmt(s_big, 2))
                row.append(fmt(rss, 1))
                if sampling:
                    row.append(fmt(rss_big, 0))
                row += [fmt(loss, 2, spread=False), str(len(ms))]
                rows.append(row)
                summary[f"{program}/{variant}/{t}"] = {
                    "ms_step": median(ms), "sample_s_1000x299": median(s_small), f"sample_s_{big}": median(s_big),
                    "peak_rss_mb_train": median(rss), "peak_rss_mb_sample": median(rss_big),
                    "final_loss": median(loss), "n": len(ms)}
    main_table = table(rows, header)

    def ratio(peer: str, variant: str, t: int, config: str, key: str) -> float | None:
        a = median(values(runs, peer, config, variant, t, key))
        b = median(values(runs, "flowmatch", config, variant, t, key))
        return a / b if a is not None and b else None

    rheader = ["peer / flowmatch", "variant", "threads", "train ms/step", "sample 1000x299"]
    if sampling:
        rheader.append(f"sample {big}")
    rheader.append("goal")
    rrows = []
    for peer in ("torch", "libtorch"):
        for variant in variants:
            # The goals: 5x PyTorch as installed (default), 3x tuned LibTorch.
            goal = 5.0 if (peer, variant) == ("torch", "default") else 3.0 if (peer, variant) == ("libtorch", "tuned") else None
            for t in threads:
                rs = [ratio(peer, variant, t, "train", "ms_step"), ratio(peer, variant, t, "train", "sample_s")]
                if sampling:
                    rs.append(ratio(peer, variant, t, "sample", "sample_s"))
                cells = [f"{r:.2f}x" if r is not None else "-" for r in rs]
                if goal is None:
                    verdict = ""
                elif any(r is None for r in rs):
                    verdict = f">= {goal:g}x: ?"
                else:
                    verdict = f">= {goal:g}x: " + ("met" if min(rs) >= goal else "NOT met")
                rrows.append([LABELS[peer], variant, str(t), *cells, verdict])
                summary[f"ratio/{peer}/{variant}/{t}"] = rs
    ratio_table = table(rrows, rheader)
    return main_table, ratio_table, summary


# ------------------------------------------------------------------------------------------------
def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="compare.py",
        description="Benchmark flowmatch's gmm2d against the PyTorch and LibTorch peers of the reference workload, "
                    "side by side (A B C A B C ...), and print medians and ratios.",
        epilog="Example: benchmarks/compare.py --steps 5000 --rounds 5 --threads 1,2 --json /tmp/compare.json\n"
               "Exit status: 0 all runs succeeded, 1 some run failed, 2 setup problem (peers or packages missing, "
               "build failed).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", metavar="DIR", help="folder with torch_seed.py, libtorch_seed.cpp, CMakeLists.txt "
                    "(default: <repo>/../shared/peers)")
    ap.add_argument("--peer-build", metavar="DIR", default="/tmp/flowmatch-peers-build",
                    help="build folder for the LibTorch peer, outside its sources (default: %(default)s)")
    ap.add_argument("--gmm2d", metavar="PATH", help="use this gmm2d binary instead of building one")
    ap.add_argument("--build-dir", metavar="DIR", default=str(REPO / "build"),
                    help="Release build folder in which to build gmm2d when --gmm2d is not given (default: %(default)s)")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default: %(default)s)")
    ap.add_argument("--variants", default="default,tuned",
                    help="comma-separated environments: default, tuned (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each program per cell, alternated (default: %(default)s)")
    ap.add_argument("--steps", type=int, default=1000, help="training steps of the train configuration (default: %(default)s)")
    ap.add_argument("--batch", type=int, default=1000, help="training batch size (default: %(default)s, the reference workload's)")
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: %(default)s, the reference workload's)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    ap.add_argument("--sample-n", type=int, default=100000,
                    help="samples of the sampling configuration; 0 skips it (default: %(default)s)")
    ap.add_argument("--sample-time-points", type=int, default=101,
                    help="time points of the sampling configuration, Euler steps + 1 (default: %(default)s)")
    ap.add_argument("--sample-train-steps", type=int, default=20,
                    help="training steps before sampling in the sampling configuration (default: %(default)s)")
    ap.add_argument("--python", default="/usr/bin/python3", help="the Python that runs torch_seed.py (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds before a run is killed (default: %(default)s)")
    ap.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 1)), help="parallel build jobs (default: %(default)s)")
    ap.add_argument("--json", metavar="PATH", default="/tmp/flowmatch-compare.json",
                    help="where to write every raw run (default: %(default)s)")
    ap.add_argument("--dry-run", action="store_true", help="check and build, print the commands, run nothing")
    args = ap.parse_args()
    try:
        args.threads = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        ap.error(f"--threads: expected a comma-separated list of integers, got {args.threads!r}")
    if not args.threads or min(args.threads) < 1:
        ap.error("--threads: thread counts must be >= 1")
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if not args.variants or any(v not in ("default", "tuned") for v in args.variants):
        ap.error("--variants: choose from default, tuned")
    for name in ("rounds", "steps", "batch"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be at least 1")
    if args.sample_n < 0 or args.sample_time_points < 2 or args.sample_train_steps < 1:
        ap.error("--sample-n >= 0, --sample-time-points >= 2 and --sample-train-steps >= 1")
    return args


def main() -> int:
    args = parse_args()
    command_line = shlex.join([str(SCRIPT), *sys.argv[1:]])
    log(f"command: {command_line}")
    peers = find_peers(args)
    packages = list(PEER_PACKAGES) + ([] if args.gmm2d else flowmatch_packages())
    ensure_packages(packages)
    if not Path(args.python).is_file():
        fail_setup(f"{args.python} not found (Debian's python3 runs the PyTorch peer)")

    exe = {"libtorch": build_peer(peers, Path(args.peer_build), args.jobs)}
    if args.gmm2d:
        exe["flowmatch"] = Path(args.gmm2d).resolve()
        if not exe["flowmatch"].is_file():
            fail_setup(f"--gmm2d {args.gmm2d}: no such file")
    else:
        exe["flowmatch"] = build_gmm2d(Path(args.build_dir).resolve(), args.jobs)

    tuned = tuned_variables(peers)
    envs = environments(tuned, args.variants)
    configs = ["train"] + (["sample"] if args.sample_n > 0 else [])
    outdir = Path(tempfile.mkdtemp(prefix="flowmatch-compare-"))
    plan = []
    for config in configs:
        for t in args.threads:
            for rnd in range(1, args.rounds + 1):
                for variant in args.variants:
                    cmds = commands(args, exe, peers, config, t, outdir)
                    for program in PROGRAMS:
                        plan.append((config, t, rnd, variant, program, cmds[program]))

    log(f"tuned environment: {' '.join(f'{k}={v}' for k, v in tuned.items())}")
    log(f"{len(plan)} runs: configurations {', '.join(configs)}; threads {args.threads}; variants {args.variants}; "
        f"{args.rounds} round(s) of {' '.join(PROGRAMS)}")
    for config in configs:
        for program, cmd in commands(args, exe, peers, config, args.threads[0], outdir).items():
            log(f"  {config:6} {program:9} {shlex.join(cmd)}")
    if args.dry_run:
        shutil.rmtree(outdir, ignore_errors=True)
        return 0

    info = {"command": command_line, "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": machine(), "packages": {p: package_version(p) for p in PEER_PACKAGES},
            "settings": {k: v for k, v in vars(args).items()}, "tuned_environment": tuned,
            "executables": {k: str(v) for k, v in exe.items()}}
    runs: list[dict] = []
    failures = 0
    for i, (config, t, rnd, variant, program, cmd) in enumerate(plan, 1):
        env = envs[variant]
        record = {"config": config, "threads": t, "round": rnd, "variant": variant, "program": program, "cmd": cmd,
                  "env_extra": tuned if variant == "tuned" else {}, "loadavg_before": os.getloadavg()[0]}
        record.update(run_once(cmd, env, args.timeout))
        runs.append(record)
        res = record["result"] or {}
        status = "ok" if record["returncode"] == 0 and record["result"] else f"FAILED (exit {record['returncode']})"
        if status != "ok":
            failures += 1
        log(f"[{i:3}/{len(plan)}] {config:6} threads={t} {variant:7} round {rnd} {program:9} "
            f"ms/step {res.get('ms_step', float('nan')):7.3f}  sample {res.get('sample_s', float('nan')):7.3f} s  "
            f"RSS {record['maxrss_kib'] / 1024:7.1f} MB  wall {record['wall_s']:6.1f} s  "
            f"load {record['loadavg_before']:4.1f}  {status}")
        if status != "ok":
            log("      " + record["output_tail"].replace("\n", "\n      "))
        info["runs"] = runs
        Path(args.json).write_text(json.dumps(info, indent=1))  # after every run: a partial file survives ^C

    main_table, ratio_table, summary = summarize(runs, args, args.threads, args.variants)
    info["summary"] = summary
    info["finished"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    Path(args.json).write_text(json.dumps(info, indent=1))
    shutil.rmtree(outdir, ignore_errors=True)

    log()
    log(f"Medians [min-max] over {args.rounds} run(s) per cell; train = {args.steps} steps at batch {args.batch} "
        f"then 1000 samples x 299 Euler steps; sample = {args.sample_n} samples x {args.sample_time_points - 1} "
        f"Euler steps. Peak RSS from wait4 (ru_maxrss).")
    log(main_table)
    log()
    log("Ratios peer / flowmatch of the medians (above 1: flowmatch is faster). Goals: PyTorch as installed "
        "(default) >= 5x, tuned LibTorch >= 3x, on every time column.")
    log(ratio_table)
    log()
    log(f"raw runs: {args.json}")
    log(f"command: {command_line}")
    if failures:
        log(f"{failures} run(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
