# shellcheck shell=bash
# The Debian 12 packages flowmatch's build, tests and examples need, in one place. Sourced by
# scripts/test.sh, scripts/example.sh (and so .ci/run); not meant to be run on its own.
#
#   cmake g++ make      the toolchain
#   libeigen3-dev       Eigen 3.4, the library's linear algebra
#   nlohmann-json3-dev  nlohmann::json 3, which parses and writes the JSON header of checkpoint files
#                       (safetensors, io/safetensors.hpp): a well-kept parser, not one of our own
#   catch2              Catch2 2.13, the unit tests
#   libstb-dev fonts-dejavu-core libcli11-dev pkg-config   the examples (PNG figures, their text, CLI)
#   libbenchmark-dev    Google Benchmark, the benchmarks (built with the project, not run by the tests)
#   clang libclang-rt-14-dev   scripts/sanitize.sh: the ASan/UBSan test run and the libFuzzer harnesses
#   libopenmpi-dev openmpi-bin   Open MPI 4.1: the optional component flowmatch::mpi (data-parallel
#                       training over MPI ranks, <flowmatch/distributed.hpp>), its tests (run by mpiexec
#                       on 1-3 ranks) and the examples' mpirun support
#   zlib1g-dev          the IDX reader <flowmatch/io/idx.hpp> (gzip), its tests and examples/fashion
#   python3-numpy       tests/io/read_flowmatch.py: proves that numpy alone reads a checkpoint (the
#                       test skips, saying so loudly, without it)
#   dataset-fashion-mnist   Fashion-MNIST (about 30 MB) for examples/fashion and the real-data tests
#                       (without it those tests skip, saying so; scripts/test.sh prints a banner)
#   doxygen             the documentation site (`cmake --build build --target docs`: the API reference
#                       and docs/ as HTML; CI builds it and fails on any warning)
FLOWMATCH_APT_PACKAGES=(
  cmake
  g++
  make
  libeigen3-dev
  nlohmann-json3-dev
  catch2
  libstb-dev
  libcli11-dev
  fonts-dejavu-core
  pkg-config
  libbenchmark-dev
  clang
  libclang-rt-14-dev
  zlib1g-dev
  libopenmpi-dev
  openmpi-bin
  python3-numpy
  dataset-fashion-mnist
  doxygen
)

# Installs whichever of FLOWMATCH_APT_PACKAGES is missing, with apt-get (through sudo unless run as
# root); runs `apt-get update` only when something is missing. Does nothing when all are installed.
flowmatch_install_deps() {
  local missing=() package
  for package in "${FLOWMATCH_APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q '^install ok installed$'; then
      missing+=("$package")
    fi
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    return 0
  fi
  echo "flowmatch: installing missing packages: ${missing[*]}" >&2
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "flowmatch: not root and no sudo: install these packages first: ${missing[*]}" >&2
      return 1
    fi
    sudo=(sudo)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}
