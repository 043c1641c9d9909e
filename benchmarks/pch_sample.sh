#!/usr/bin/env bash
# Would a precompiled header shorten the build of the tests? (issue 20) Builds a .gch of
# <flowmatch.hpp> + <Eigen/Dense> + <catch2/catch.hpp> with flowmatch_tests' Release flags, then
# compiles each given test file with and without it (-include; -Winvalid-pch -Werror: an unused
# PCH fails), one compile at a time, and prints the seconds.
#
#   benchmarks/pch_sample.sh tests/metrics/frechet_test.cpp tests/ode/euler_simulator_test.cpp
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf '#include <flowmatch.hpp>\n#include <Eigen/Dense>\n#include <catch2/catch.hpp>\n' > "$work/pch.hpp"
flags=(-std=gnu++20 -O3 -DNDEBUG -march=native -Wall -Wextra -Wpedantic -Werror -Wno-maybe-uninitialized
  -Wno-uninitialized -Iinclude -Itests -Iexamples/fashion -isystem /usr/include/eigen3
  "-DFLOWMATCH_SOURCE_DIR=\"$repo_root\"")
timed() { local s e; s=$(date +%s.%N); "$@"; e=$(date +%s.%N); echo "$e - $s" | bc; }
echo "gch: $(timed "${CXX:-g++}" "${flags[@]}" -x c++-header "$work/pch.hpp" -o "$work/pch.hpp.gch") s"
for f in "$@"; do
  plain=$(timed "${CXX:-g++}" "${flags[@]}" -c "$f" -o "$work/plain.o")
  pch=$(timed "${CXX:-g++}" "${flags[@]}" -Winvalid-pch -include "$work/pch.hpp" -c "$f" -o "$work/pch.o")
  echo "$f: plain $plain s, with PCH $pch s"
done
