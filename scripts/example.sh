#!/usr/bin/env bash
# Builds and runs the gmm2d example (flow matching on a 2-D Gaussian mixture): installs missing
# Debian packages (scripts/deps.sh), configures a Release build in build/ (or $FLOWMATCH_BUILD_DIR),
# builds the gmm2d target only, and runs it with its outputs in out/gmm2d. Arguments are passed on
# to gmm2d. Works from any directory.
#
#   scripts/example.sh [gmm2d options...]
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
flowmatch_install_deps

build_dir="${FLOWMATCH_BUILD_DIR:-build}"
case "$build_dir" in
  /*) ;;
  *) build_dir="$repo_root/$build_dir" ;;
esac

cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build_dir" --parallel "$(nproc)" --target gmm2d
mkdir -p out/gmm2d
"$build_dir/examples/gmm2d/gmm2d" --out out/gmm2d "$@"
