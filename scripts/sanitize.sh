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
# and cannot run under ASan; the plot tests test example code, not the library).
start=$SECONDS
"$build_dir/tests/flowmatch_tests" --order lex
echo "sanitize: unit tests under ASan+UBSan took $((SECONDS - start)) s"

# ---------------------------------------------------------------- fuzzing
for f in "${fuzzers[@]}"; do
  work="$build_dir/fuzz-work/$f"
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts"
  log="$work/fuzz.log"
  echo "sanitize: fuzzing $f for ${fuzz_runs} executions or ${fuzz_seconds} s (seed corpus tests/fuzz/corpus/$f)"
  fuzz_start=$SECONDS
  # New inputs go to the scratch corpus (first folder); the seed corpus in the repo is read only.
  if ! "$build_dir/tests/fuzz/flowmatch_${f}_fuzzer" -runs="$fuzz_runs" -max_total_time="$fuzz_seconds" -timeout=10 \
      -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
      "$work/corpus" "tests/fuzz/corpus/$f" >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "sanitize: the $f fuzzer failed (crash input in $work/artifacts/)" >&2
    exit 1
  fi
  runs="$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo '?')"
  corpus="$(find "$work/corpus" -type f | wc -l)"
  echo "sanitize: fuzzer $f: $runs executions in $((SECONDS - fuzz_start)) s, no crash, leak or sanitizer report ($corpus new corpus inputs)"
done
echo "sanitize: all passed"
