#!/usr/bin/env bash
# Builds flowmatch and runs its whole test suite: installs missing Debian packages (scripts/deps.sh),
# configures a Release build in build/ (or $FLOWMATCH_BUILD_DIR), builds it on every core and runs
# ctest. Exits non-zero on any failure. Works from any directory.
#
#   scripts/test.sh [extra cmake configure arguments...]
#   CXX=clang++ FLOWMATCH_BUILD_DIR=build-clang scripts/test.sh
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
flowmatch_install_deps

build_dir="${FLOWMATCH_BUILD_DIR:-build}"
jobs="$(nproc)"

# FLOWMATCH_UNITY_TESTS: the unit tests compile in batches of 8 files per translation unit (on 2 cores
# 7.4 min instead of 11.4; docs/tests.md).
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DFLOWMATCH_UNITY_TESTS=ON "$@"
cmake --build "$build_dir" --parallel "$jobs"
cd "$build_dir"
ctest --output-on-failure --parallel "$jobs"

# The Fashion-MNIST tests skip (passing) when the data set is missing: say so where it is seen.
fashion_dir="${FLOWMATCH_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
if [ ! -e "$fashion_dir/train-images-idx3-ubyte.gz" ] && [ ! -e "$fashion_dir/train-images-idx3-ubyte" ]; then
  echo "################################################################################" >&2
  echo "# WARNING: Fashion-MNIST not found in $fashion_dir" >&2
  echo "# The tests that need it were SKIPPED (the smoke test used synthetic data)." >&2
  echo "# Install the Debian package dataset-fashion-mnist (or set FLOWMATCH_FASHION_MNIST_DIR)." >&2
  echo "################################################################################" >&2
fi
