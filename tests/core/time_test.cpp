// linspace, the time-argument checks through their public users, and set_num_threads.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <type_traits>

#include <flowmatch/core/error.hpp>
#include <flowmatch/core/threads.hpp>
#include <flowmatch/core/time.hpp>

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

static_assert(TimeArgument<double>);
static_assert(TimeArgument<float>);
static_assert(TimeArgument<Vector<double>>);
static_assert(TimeArgument<RowVector<float>>);
static_assert(!TimeArgument<const char*>);

TEST_CASE("linspace matches numpy.linspace", "[core][time]") {
  const Vector<double> ts = linspace(0.0, 1.0, 5);
  REQUIRE(ts.size() == 5);
  CHECK(ts(0) == 0.0);
  CHECK(ts(1) == 0.25);
  CHECK(ts(2) == 0.5);
  CHECK(ts(3) == 0.75);
  CHECK(ts(4) == 1.0);

  // The last point is exactly `stop` even where the arithmetic would round.
  const Vector<double> odd = linspace(0.1, 0.7, 301);
  CHECK(odd(0) == 0.1);
  CHECK(odd(300) == 0.7);
  for (Index i = 1; i < odd.size(); ++i) {
    CHECK(odd(i) > odd(i - 1));
    CHECK(odd(i) - odd(i - 1) == Approx(0.002).epsilon(1e-9));
  }
  // Decreasing grids are allowed by linspace (a simulator refuses them, not linspace).
  const Vector<double> down = linspace(1.0, -1.0, 3);
  CHECK(down(0) == 1.0);
  CHECK(down(1) == 0.0);
  CHECK(down(2) == -1.0);
  // One point: start.
  const Vector<double> one = linspace(0.3, 0.9, 1);
  REQUIRE(one.size() == 1);
  CHECK(one(0) == 0.3);
}

TEST_CASE("linspace refuses bad arguments, naming them", "[core][time][errors]") {
  CHECK_THROWS_AS(linspace(0.0, 1.0, 0), InvalidArgument);
  CHECK_THROWS_WITH(linspace(0.0, 1.0, 0), Catch::Contains("argument 'n'"));
  CHECK_THROWS_WITH(linspace(0.0, 1.0, -3), Catch::Contains("argument 'n'"));
  CHECK_THROWS_WITH(linspace(std::nan(""), 1.0, 5), Catch::Contains("argument 'start'"));
  CHECK_THROWS_WITH(linspace(0.0, std::numeric_limits<double>::infinity(), 5), Catch::Contains("argument 'stop'"));
}

TEST_CASE("set_num_threads refuses fewer than one thread", "[core][threads]") {
  CHECK_THROWS_AS(set_num_threads(0), InvalidArgument);
  CHECK_THROWS_WITH(set_num_threads(-2), Catch::Contains("argument 'threads'"));
  set_num_threads(1);
  CHECK(num_threads() == 1);
}

TEST_CASE("The error hierarchy: every error is a flowmatch::Error", "[core][errors]") {
  CHECK_THROWS_AS(linspace(0.0, 1.0, 0), Error);
  CHECK_THROWS_AS(linspace(0.0, 1.0, 0), std::runtime_error);
  STATIC_REQUIRE(std::is_base_of_v<InvalidArgument, DimensionMismatch>);
  STATIC_REQUIRE(std::is_base_of_v<Error, NumericalError>);
  STATIC_REQUIRE_FALSE(std::is_base_of_v<InvalidArgument, NumericalError>);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
