#pragma once
// Files of the tests: the source tree's tests/ folder (for committed fixtures) and a file's bytes.

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

namespace flowmatch::test {

/// The source tree's tests/ folder (FLOWMATCH_SOURCE_DIR is defined by tests/CMakeLists.txt).
inline std::filesystem::path tests_dir() {
#ifdef FLOWMATCH_SOURCE_DIR
  return std::filesystem::path(FLOWMATCH_SOURCE_DIR) / "tests";
#else
  return std::filesystem::path(__FILE__).parent_path().parent_path();
#endif
}

/// Every byte of `file`; the test fails (REQUIRE) when it cannot be opened, so a missing file
/// never compares equal to another missing one.
inline std::vector<unsigned char> read_bytes(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  INFO("reading " << file);
  REQUIRE(in);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace flowmatch::test
