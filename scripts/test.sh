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

cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build "$build_dir" --parallel "$jobs"
cd "$build_dir"
ctest --output-on-failure --parallel "$jobs"
