#!/usr/bin/env python3
"""What each public header costs to compile (issue 20, item 1).

Times `-fsyntax-only` (parse and instantiate, no code generation) of a translation unit that holds
one `#include` and nothing else: `<Eigen/Dense>` alone (the scale), every public header under
include/flowmatch (MPI's and zlib's only where those are installed), and the umbrella
`<flowmatch.hpp>`. Each is compiled --repeat times, one compile at a time, and the median kept
(of the compiler's user + system CPU seconds; --wall for wall-clock seconds); the
table is sorted by cost and gives each header's ratio to `<Eigen/Dense>` measured in the same run
(at its start and at its end, the median of both), so that the ratios do not depend on the
machine's speed. Run it on a quiet machine: other compiles running beside it move every number.

    benchmarks/header_cost.py                         # every header, -O0, median of 3
    benchmarks/header_cost.py --opt -O2 --csv out.csv
    benchmarks/header_cost.py --headers frechet mlp_classifier --repeat 5
    benchmarks/header_cost.py --umbrella-only --max-ratio 3   # exit 1 if the umbrella > 3x

The CTest test headers.umbrella_compile_cost (tests/headers/umbrella_cost.cmake, CMake only, no
Python) makes the umbrella's measurement in every build: wall-clock, fastest of 3, limit 3x.
"""
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EIGEN = "Eigen/Dense"
UMBRELLA = "flowmatch.hpp"
MPI_INCLUDE = Path("/usr/lib/x86_64-linux-gnu/openmpi/include")
WALL = False  # --wall: wall-clock seconds instead of the compiler's CPU seconds (user + system)


def public_headers(include_dir: Path):
    have_mpi = MPI_INCLUDE.is_dir()
    have_zlib = Path("/usr/include/zlib.h").exists()
    out = []
    for h in sorted(p.relative_to(include_dir).as_posix() for p in (include_dir / "flowmatch").rglob("*.hpp")):
        if h.startswith("flowmatch/distributed") and not have_mpi:
            continue
        if h == "flowmatch/io/idx.hpp" and not have_zlib:
            continue
        out.append(h)
    return out


def time_compile(cxx, flags, header, work: Path, repeat: int, pool=None):
    """Median and minimum seconds (CPU, or wall-clock with --wall) of `cxx flags -fsyntax-only` on
    `#include <header>`
    (over this call's times and those already in `pool`, which it extends, when given)."""
    src = work / (header.replace("/", "_").replace(".", "_") + ".cpp")
    src.write_text(f"#include <{header}>\n")
    times = []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run([cxx, *flags, "-fsyntax-only", str(src)], capture_output=True, text=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        times.append(wall if WALL else cpu)
        if proc.returncode != 0:
            sys.stderr.write(f"header_cost: <{header}> does not compile alone:\n{proc.stderr}")
            raise SystemExit(2)
    if pool is not None:
        pool.extend(times)
        times = pool
    return statistics.median(times), min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cxx", default=os.environ.get("CXX", "g++"), help="compiler (default $CXX or g++)")
    ap.add_argument("--opt", default="-O0", help="optimization flag (default -O0)")
    ap.add_argument("--std", default="-std=c++20")
    ap.add_argument("--include-dir", default=str(REPO / "include"), help="the library's include/")
    ap.add_argument("--isystem", action="append", default=None,
                    help="system include dir (repeatable; default /usr/include/eigen3)")
    ap.add_argument("--flag", action="append", default=[], help="extra compiler flag (repeatable)")
    ap.add_argument("--repeat", type=int, default=3, help="compiles per header; the median is kept (default 3)")
    ap.add_argument("--headers", nargs="*", default=None,
                    help="only headers whose path contains one of these substrings (Eigen/Dense and the "
                         "umbrella are always timed)")
    ap.add_argument("--umbrella-only", action="store_true", help="time only <Eigen/Dense> and the umbrella")
    ap.add_argument("--wall", action="store_true",
                    help="time wall-clock seconds (default: the compiler's user + system CPU seconds, "
                         "which other processes on a shared machine disturb less)")
    ap.add_argument("--csv", help="also write the table as CSV to this file")
    ap.add_argument("--max-ratio", type=float, default=None,
                    help="exit 1 when the umbrella costs more than this many times <Eigen/Dense>")
    args = ap.parse_args()
    global WALL
    WALL = args.wall

    include_dir = Path(args.include_dir)
    isystem = args.isystem if args.isystem is not None else ["/usr/include/eigen3"]
    flags = [args.std, args.opt, f"-I{include_dir}"]
    for d in isystem:
        flags += ["-isystem", d]
    if MPI_INCLUDE.is_dir():
        flags += ["-isystem", str(MPI_INCLUDE), "-DOMPI_SKIP_MPICXX=1"]
    flags += args.flag

    headers = [] if args.umbrella_only else public_headers(include_dir)
    if args.headers:
        headers = [h for h in headers if any(s in h for s in args.headers)]
    units = [EIGEN, UMBRELLA] + headers

    work = Path(tempfile.mkdtemp(prefix="header_cost_"))
    results = {}
    eigen_times = []
    try:
        for i, h in enumerate(units, 1):
            results[h] = time_compile(args.cxx, flags, h, work, args.repeat, eigen_times if h == EIGEN else None)
            print(f"[{i}/{len(units)}] {h}: {results[h][0]:.2f} s", file=sys.stderr, flush=True)
        # <Eigen/Dense> again at the end: the scale is the median of both rounds, so that a change
        # of the machine's load during the run moves it less.
        results[EIGEN] = time_compile(args.cxx, flags, EIGEN, work, args.repeat, eigen_times)
        print(f"[again] {EIGEN}: {results[EIGEN][0]:.2f} s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    eigen = results[EIGEN][0]
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"
    what = "wall-clock" if WALL else "CPU"
    print(f"# Header compile cost ({Path(args.cxx).name} {args.opt} -fsyntax-only, {what} seconds, median of "
          f"{args.repeat} (Eigen/Dense: {2 * args.repeat}), one at a time; {time.strftime('%Y-%m-%d', time.gmtime())}, "
          f"{os.cpu_count()} cores, load {load})")
    print()
    print("| header | seconds | x <Eigen/Dense> |")
    print("|---|---|---|")
    rows = sorted(results.items(), key=lambda kv: -kv[1][0])
    for h, (med, _) in rows:
        print(f"| `{h}` | {med:.2f} | {med / eigen:.2f} |")
    if args.csv:
        with open(args.csv, "w") as f:
            f.write("header,median_s,min_s,ratio_to_eigen_dense\n")
            for h, (med, mn) in rows:
                f.write(f"{h},{med:.3f},{mn:.3f},{med / eigen:.3f}\n")
    if args.max_ratio is not None:
        ratio = results[UMBRELLA][0] / eigen
        verdict = "OK" if ratio <= args.max_ratio else "FAIL"
        print(f"\n{verdict}: <{UMBRELLA}> {results[UMBRELLA][0]:.2f} s = {ratio:.2f} x <{EIGEN}> "
              f"{eigen:.2f} s (limit {args.max_ratio:g}x)")
        return 0 if ratio <= args.max_ratio else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
