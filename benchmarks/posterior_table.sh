#!/usr/bin/env bash
# The sbibm table of the README: runs examples/posterior for every task and simulation budget and
# collects the RESULT lines into a Markdown table beside the published NPE numbers.
#
#   benchmarks/posterior_table.sh BUILD_DIR OUT_DIR [budgets...] [-- extra posterior options]
#
# BUILD_DIR holds the built `examples/posterior/posterior`; OUT_DIR gets one folder per cell
# (samples obs<k>.csv, the marginals figure, the log) and table.md. Default budgets: 1000 10000
# 100000. Every cell runs with --threads 2 (the 2-core machine of the table); expect about 80
# minutes. TASKS="slcp two_moons" runs only those tasks; TABLE_ONLY=1 runs nothing and rebuilds
# table.md from the logs already in OUT_DIR.
set -euo pipefail
build=${1:?usage: posterior_table.sh BUILD_DIR OUT_DIR [budgets...] [-- options]}
out=${2:?usage: posterior_table.sh BUILD_DIR OUT_DIR [budgets...] [-- options]}
shift 2
budgets=()
while [[ $# -gt 0 && $1 != -- ]]; do budgets+=("$1"); shift; done
[[ $# -gt 0 ]] && shift
extra=("$@")
[[ ${#budgets[@]} -gt 0 ]] || budgets=(1000 10000 100000)
bin=$build/examples/posterior/posterior
[[ -x $bin ]] || { echo "posterior_table.sh: $bin not found (build the examples first)" >&2; exit 1; }
mkdir -p "$out"
read -r -a tasks <<< "${TASKS:-gaussian_linear two_moons slcp gaussian_mixture bernoulli_glm}"
[[ ${TABLE_ONLY:-0} == 1 ]] && tasks=()
for n in "${budgets[@]}"; do
  for t in "${tasks[@]+"${tasks[@]}"}"; do
    cell=$out/$t-$n
    mkdir -p "$cell"
    echo "== $t $n" >&2
    "$bin" --task "$t" --simulations "$n" --out "$cell" --threads 2 "${extra[@]}" | tee "$cell/log.txt" | grep -E '^(RESULT|task=)' >&2
  done
done
# The table: ours (mean +- sd over the 10 observations, wall time of training and sampling) beside
# NPE's (sbibm's main_paper.csv, as in the sbibm README).
python3 - "$out" "${budgets[@]}" <<'PY' | tee "$out/table.md"
import re, sys, pathlib
out = pathlib.Path(sys.argv[1]); budgets = [int(b) for b in sys.argv[2:]]
npe = {"gaussian_linear": {1000: ".694 +- .044", 10000: ".552 +- .032", 100000: ".506 +- .004"},
       "two_moons": {1000: ".725 +- .045", 10000: ".606 +- .039", 100000: ".542 +- .024"},
       "slcp": {1000: ".975 +- .013", 10000: ".901 +- .047", 100000: ".831 +- .052"},
       "gaussian_mixture": {1000: ".716 +- .037", 10000: ".615 +- .043", 100000: ".548 +- .019"},
       "bernoulli_glm": {1000: ".863 +- .038", 10000: ".678 +- .042", 100000: ".559 +- .021"}}
head = "| task | " + " | ".join(f"{b:.0e} ours (s) | {b:.0e} NPE" for b in budgets) + " |"
print(head); print("|---" * (1 + 2 * len(budgets)) + "|")
for t in npe:
    row = [t]
    for b in budgets:
        log = out / f"{t}-{b}" / "log.txt"
        m = re.search(r"RESULT .*c2st=(\S+) c2st_sd=(\S+) train_s=(\S+) sample_s=(\S+)", log.read_text()) if log.exists() else None
        if m:
            c, sd, tr, sa = (float(v) for v in m.groups())
            row.append(f"{c:.3f} +- {sd:.3f} ({tr + sa:.0f} s)")
        else:
            row.append("not run")
        row.append(npe[t][b] if b in npe[t] else "")
    print("| " + " | ".join(row) + " |")
PY
