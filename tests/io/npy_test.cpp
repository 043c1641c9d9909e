// The .npy reader and writer: every supported layout (float32/float64, little/big endian, C and
// Fortran order, versions 1, 2 and 3, 1-D and 2-D) of fixtures written by numpy
// (tests/io/make_npy_fixtures.py), a write/read round trip, and an NpyError naming the file and
// the field for every kind of bad input.

#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <flowmatch/io/npy.hpp>

#include "support/memory_limit.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;
namespace fs = std::filesystem;

namespace {

fs::path fixture(const std::string& name) { return fs::path(FLOWMATCH_SOURCE_DIR) / "tests/io/data/npy" / name; }

std::string error_of(const std::string& name) {
  try {
    (void)read_npy<double>(fixture(name));
  } catch (const NpyError& e) {
    return e.what();
  }
  FAIL("no NpyError for " << name);
  return {};
}

}  // namespace

TEST_CASE("read_npy reads every supported layout numpy writes", "[io][npy]") {
  for (const char* name : {"f8_le_c.npy", "f4_le_c.npy", "f8_be_c.npy", "f4_be_fortran.npy", "f8_le_fortran.npy",
                           "f8_v2.npy", "f8_v3.npy"}) {
    INFO(name);
    const Matrix<double> m = read_npy<double>(fixture(name));
    REQUIRE(m.rows() == 2);  // shape (3, 2): 3 samples of dimension 2, one per column
    REQUIRE(m.cols() == 3);
    for (Index i = 0; i < 3; ++i)
      for (Index j = 0; j < 2; ++j) CHECK(m(j, i) == 10.0 * static_cast<double>(i) + static_cast<double>(j) + 0.5);
  }
  for (const char* name : {"f8_1d.npy", "f4_1d_be.npy"}) {
    INFO(name);
    const Matrix<float> m = read_npy<float>(fixture(name));
    REQUIRE(m.rows() == 1);
    REQUIRE(m.cols() == 4);
    for (Index i = 0; i < 4; ++i) CHECK(m(0, i) == static_cast<float>(i) + 0.25f);
  }
}

TEST_CASE("write_npy round-trips float and double matrices", "[io][npy]") {
  const fs::path dir = fs::temp_directory_path() / ("flowmatch_npy_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  Matrix<double> x(3, 5);
  for (Index j = 0; j < 5; ++j)
    for (Index i = 0; i < 3; ++i) x(i, j) = 0.1 * static_cast<double>(i) - 7.0 * static_cast<double>(j) + 1e-9;
  write_npy(dir / "d.npy", x);
  CHECK(read_npy<double>(dir / "d.npy") == x);
  const Matrix<float> xf = x.cast<float>();
  write_npy(dir / "f.npy", xf);
  CHECK(read_npy<float>(dir / "f.npy") == xf);
  const Matrix<double> row = x.topRows(1);
  write_npy(dir / "v.npy", row, true);
  CHECK(read_npy<double>(dir / "v.npy") == row);
  // The data start on a 64-byte boundary, as numpy writes them.
  const std::vector<unsigned char> bytes = encode_npy(x);
  CHECK((bytes.size() - static_cast<std::size_t>(x.size()) * 8) % 64 == 0);
  fs::remove_all(dir);
}

TEST_CASE("read_npy refuses bad files with a message naming the file and the field", "[io][npy]") {
  const auto check = [](const std::string& name, const std::string& field, const std::string& words) {
    INFO(name);
    const std::string what = error_of(name);
    CHECK_THAT(what, Catch::Contains(name));
    CHECK_THAT(what, Catch::Contains(": " + field + ": "));
    CHECK_THAT(what, Catch::Contains(words));
  };
  check("bad_int.npy", "descr", "'<i8' is not supported");
  check("bad_object.npy", "descr", "'|O' is not supported");
  check("bad_3d.npy", "shape", "3-D array");
  check("bad_0d.npy", "shape", "0-D array");
  check("bad_truncated.npy", "data", "the file holds 40");
  check("bad_trailing.npy", "data", "the file holds 56");
  check("bad_magic.npy", "magic", "not a .npy file");
  check("bad_version.npy", "version", "4.0 is not supported");
  check("bad_no_shape.npy", "shape", "missing");
  check("bad_header_len.npy", "header length", "runs past the end");
  check("bad_nan.npy", "data", "non-finite value at row 0, column 1");
  check("bad_order.npy", "fortran_order", "True or False");
  CHECK_THAT(error_of("no_such_file.npy"), Catch::Contains("cannot open"));
  NpyReadOptions allow;
  allow.require_finite = false;
  CHECK(std::isnan(read_npy<double>(fixture("bad_nan.npy"), allow)(1, 0)));
}

TEST_CASE("decode_npy survives every truncation of a good file", "[io][npy]") {
  const std::vector<unsigned char> good = encode_npy(Matrix<double>::Ones(2, 3));
  for (std::size_t n = 0; n < good.size(); ++n) CHECK_THROWS_AS(decode_npy<double>(good.data(), n, "cut.npy"), NpyError);
  CHECK(decode_npy<double>(good.data(), good.size(), "whole.npy").sum() == 6.0);
}

TEST_CASE("read_npy: a short file declaring a huge shape fails within 256 MB of address space", "[io][npy][memory]") {
#ifdef FLOWMATCH_TEST_UNDER_SANITIZER
  WARN("skipped under a sanitizer: its shadow memory needs more address space than the limit this test sets");
#else
  // Issue 19: a header claiming (2^20, 2^10) doubles (8 GiB) in front of 16 bytes of data. The
  // reader holds the file's bytes and checks the claim against them before allocating.
  std::vector<unsigned char> bytes = encode_npy(Matrix<double>::Ones(2, 1));
  const std::string good = "(1, 2)", huge = "(1048576, 1024)";
  std::string text(bytes.begin(), bytes.end());
  const std::size_t at = text.find(good);
  REQUIRE(at != std::string::npos);
  text.replace(at, good.size(), huge);
  // Keep the header length field and the 64-byte alignment: drop as many padding spaces as added.
  const std::size_t pad = text.find("} ");
  REQUIRE(pad != std::string::npos);
  text.erase(pad + 1, huge.size() - good.size());
  const fs::path file = fs::temp_directory_path() / ("flowmatch_npy_huge_" + std::to_string(getpid()) + ".npy");
  {
    std::ofstream os(file, std::ios::binary);
    os << text;
  }
  const test::ChildOutcome r = test::run_with_address_space_budget<NpyError>(256, [&] { read_npy<double>(file); });
  INFO(r.describe());
  CHECK((r.exited && r.code == 0));
  // And it is the size check that refused it (safe to run here once the child has shown it does
  // not allocate).
  if (r.exited && r.code == 0)
    CHECK_THROWS_WITH(read_npy<double>(file), Catch::Contains("need 8589934592 bytes of data, the file holds 16"));
  fs::remove(file);
#endif
}

}  // namespace FLOWMATCH_TEST_FILE_ID
