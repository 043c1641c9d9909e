#!/usr/bin/env bash
# The second test pass: builds the unit tests with clang++ under AddressSanitizer and
# UndefinedBehaviorSanitizer (RelWithDebInfo, in build-sanitize/ or $FLOWMATCH_SANITIZE_BUILD_DIR)
# and runs them, then builds the libFuzzer harnesses of tests/fuzz/ (checkpoint loader, CSV reader,
# PyTorch importer, NPY reader, IDX reader plain and gzip'd) and runs each from a scratch copy of its
# seed corpus in tests/fuzz/corpus/<name>/ until it reaches $FLOWMATCH_FUZZ_RUNS executions
# (default 1,000,000) or $FLOWMATCH_FUZZ_SECONDS seconds (default 60), whichever comes first, and
# prints its execution count. This pass builds without -march=native (FLOWMATCH_NATIVE=OFF),
# so that the MLP's portable float path runs here even on a CPU with AVX-512; the Release pass
# (scripts/test.sh, -march=native) runs the AVX-512 kernels. Any failing test, crash, leak, timeout or sanitizer report
# fails the script. Installs missing Debian packages first (scripts/deps.sh). Works from any
# directory; .ci/run calls it after scripts/test.sh.
#
#   scripts/sanitize.sh
#   FLOWMATCH_FUZZ_SECONDS=10 scripts/sanitize.sh      # a shorter fuzzing run (each harness: 10 s at most)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
flowmatch_install_deps

build_dir="${FLOWMATCH_SANITIZE_BUILD_DIR:-build-sanitize}"
case "$build_dir" in
  /*) ;;
  *) build_dir="$repo_root/$build_dir" ;;
esac
fuzz_seconds="${FLOWMATCH_FUZZ_SECONDS:-60}"
fuzz_runs="${FLOWMATCH_FUZZ_RUNS:-1000000}"
jobs="$(nproc)"
sanitize="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
fuzzers=(checkpoint csv torch_import npy idx)

start=$SECONDS
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_CXX_FLAGS="$sanitize" -DCMAKE_EXE_LINKER_FLAGS="$sanitize" \
  -DFLOWMATCH_BUILD_EXAMPLES=OFF -DFLOWMATCH_BUILD_BENCHMARKS=OFF -DFLOWMATCH_BUILD_FUZZERS=ON \
  -DFLOWMATCH_NATIVE=OFF -DFLOWMATCH_UNITY_TESTS=ON
targets=(flowmatch_tests)
for f in "${fuzzers[@]}"; do targets+=("flowmatch_${f}_fuzzer"); done
cmake --build "$build_dir" --parallel "$jobs" --target "${targets[@]}"
echo "sanitize: build took $((SECONDS - start)) s"

# halt_on_error / -fno-sanitize-recover: the first report ends the run with a non-zero status.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

# ---------------------------------------------------------------- the unit tests, sanitized
# The whole flowmatch_tests binary (every unit test; the allocation-counting binary replaces malloc
# and cannot run under ASan; the plot tests test example code, not the library), in one shard per
# core run side by side (CI: 2 shards on 2 cores, half the wall time of one process): shard k runs
# every test case whose place in the name list is k modulo the shard count, named in a Catch2
# input file (-f; commas, brackets and backslashes escaped). Each shard's list is checked to select
# exactly its names, so that no test case is silently left out.
start=$SECONDS
tests_bin="$build_dir/tests/flowmatch_tests"
shard_dir="$build_dir/test-shards"
rm -rf "$shard_dir"
mkdir -p "$shard_dir"
# (Catch2 2's --list-* options exit with the number of names listed, capped at 255: not an error.)
list_names() { "$tests_bin" "$@" --list-test-names-only || true; }
list_names | awk 'NF' >"$shard_dir/names.txt"
total="$(wc -l <"$shard_dir/names.txt")"
if (( total < 1 )); then
  echo "sanitize: $tests_bin lists no test case" >&2
  exit 1
fi
shards=$(( jobs < 4 ? jobs : 4 ))
(( shards >= 1 )) || shards=1
pids=()
for ((k = 0; k < shards; ++k)); do
  awk -v k="$k" -v n="$shards" '(NR - 1) % n == k' "$shard_dir/names.txt" >"$shard_dir/names_$k.txt"
  sed -e 's/\\/\\\\/g' -e 's/,/\\,/g' -e 's/\[/\\[/g' -e 's/\]/\\]/g' "$shard_dir/names_$k.txt" >"$shard_dir/spec_$k.txt"
  selected="$(list_names -f "$shard_dir/spec_$k.txt" | awk 'NF' | sort | cmp -s - <(sort "$shard_dir/names_$k.txt") && echo ok || echo mismatch)"
  if [ "$selected" != ok ]; then
    echo "sanitize: shard $k's input file does not select exactly its $(wc -l <"$shard_dir/names_$k.txt") test cases" >&2
    exit 1
  fi
  "$tests_bin" -f "$shard_dir/spec_$k.txt" --order lex >"$shard_dir/log_$k.txt" 2>&1 &
  pids+=($!)
done
failed=0
for ((k = 0; k < shards; ++k)); do
  if wait "${pids[$k]}"; then
    echo "sanitize: shard $k/$shards: $(tail -n 2 "$shard_dir/log_$k.txt" | tr -s '\n' ' ')"
  else
    failed=1
    tail -n 200 "$shard_dir/log_$k.txt"
    echo "sanitize: shard $k/$shards of the unit tests failed under ASan+UBSan (log: $shard_dir/log_$k.txt)" >&2
  fi
done
(( failed == 0 )) || exit 1
echo "sanitize: unit tests under ASan+UBSan ($total test cases, $shards shards) took $((SECONDS - start)) s"

# ---------------------------------------------------------------- fuzzing
# One harness per core at a time (each libFuzzer process is single-threaded).
fuzz_one() {
  local f="$1"
  local work="$build_dir/fuzz-work/$f"
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts"
  local log="$work/fuzz.log"
  local fuzz_start=$SECONDS
  # New inputs go to the scratch corpus (first folder); the seed corpus in the repo is read only.
  if ! "$build_dir/tests/fuzz/flowmatch_${f}_fuzzer" -runs="$fuzz_runs" -max_total_time="$fuzz_seconds" -timeout=10 \
      -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
      "$work/corpus" "tests/fuzz/corpus/$f" >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "sanitize: the $f fuzzer failed (crash input in $work/artifacts/)" >&2
    return 1
  fi
  local runs corpus
  runs="$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo '?')"
  corpus="$(find "$work/corpus" -type f | wc -l)"
  echo "sanitize: fuzzer $f: $runs executions in $((SECONDS - fuzz_start)) s, no crash, leak or sanitizer report ($corpus new corpus inputs)"
}
pids=()
failed=0
for f in "${fuzzers[@]}"; do
  echo "sanitize: fuzzing $f for ${fuzz_runs} executions or ${fuzz_seconds} s (seed corpus tests/fuzz/corpus/$f)"
  fuzz_one "$f" &
  pids+=($!)
  if (( ${#pids[@]} >= jobs )); then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
(( failed == 0 )) || exit 1
echo "sanitize: all passed"
