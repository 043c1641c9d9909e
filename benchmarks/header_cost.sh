#!/usr/bin/env bash
# What each public header costs to compile: `-fsyntax-only` (parse and instantiate, no code) of a
# file that includes only that header, for every header under include/ (MPI's and zlib's only where
# those are installed), of the umbrella <flowmatch.hpp>, and of <Eigen/Dense> alone for scale. Each
# is timed REPEAT times (default 3) and the median kept; the table is sorted by cost and gives each
# header's ratio to <Eigen/Dense>. Issue 20 (compile time as a measured property) starts here.
#
#   benchmarks/header_cost.sh [-O0|-O2] > header_cost.md
#   CXX=clang++ REPEAT=5 JOBS=2 benchmarks/header_cost.sh
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cxx="${CXX:-g++}"
opt="${1:--O0}"
repeat="${REPEAT:-3}"
jobs="${JOBS:-$(nproc)}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

flags=(-std=c++20 "$opt" -fsyntax-only -I"$repo_root/include" -isystem /usr/include/eigen3)
if [ -d /usr/lib/x86_64-linux-gnu/openmpi/include ]; then
  flags+=(-isystem /usr/lib/x86_64-linux-gnu/openmpi/include -DOMPI_SKIP_MPICXX=1)
  have_mpi=1
else
  have_mpi=0
fi

# name<TAB>include line, one per translation unit to time.
{
  printf 'Eigen/Dense\t#include <Eigen/Dense>\n'
  printf 'flowmatch.hpp\t#include <flowmatch.hpp>\n'
  (cd "$repo_root/include" && find flowmatch -name '*.hpp' | sort) | while read -r h; do
    case "$h" in
      flowmatch/distributed*) [ "$have_mpi" = 1 ] || continue ;;
      flowmatch/io/idx.hpp) [ -e /usr/include/zlib.h ] || continue ;;
    esac
    printf '%s\t#include <%s>\n' "$h" "$h"
  done
} > "$work/units.tsv"

time_one() {  # name, include line -> "median_seconds name" into its own file
  local name="$1" line="$2" key t times=()
  key="$(echo "$name" | tr '/.' '__')"
  printf '%s\n' "$line" > "$work/$key.cpp"
  for _ in $(seq "$repeat"); do
    if ! /usr/bin/time -f '%e' -o "$work/$key.t" "$cxx" "${flags[@]}" "$work/$key.cpp" >/dev/null 2>"$work/$key.err"; then
      echo "header_cost: $name does not compile alone:" >&2
      cat "$work/$key.err" >&2
      return 1
    fi
    t="$(tail -n 1 "$work/$key.t")"
    times+=("$t")
  done
  printf '%s %s\n' "$(printf '%s\n' "${times[@]}" | sort -g | sed -n "$(( (repeat + 1) / 2 ))p")" "$name" > "$work/$key.time"
}

while IFS=$'\t' read -r name line; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
  time_one "$name" "$line" &
done < "$work/units.tsv"
wait
results="$work/results.txt"
cat "$work"/*.time > "$results"
[ "$(wc -l < "$results")" -eq "$(wc -l < "$work/units.tsv")" ] || { echo "header_cost: some headers failed" >&2; exit 1; }

eigen="$(awk '$2 == "Eigen/Dense" {print $1}' "$results")"
echo "# Header compile cost ($cxx $opt -fsyntax-only, median of $repeat, $jobs in parallel; $(date -u +%Y-%m-%d), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| header | seconds | x <Eigen/Dense> |"
echo "|---|---|---|"
sort -gr "$results" | while read -r s name; do
  printf '| `%s` | %.2f | %.1f |\n' "$name" "$s" "$(echo "$s / $eigen" | bc -l)"
done
