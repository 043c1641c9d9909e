// Sampling time grids (ode/time_grids.hpp): every grid has steps + 1 strictly increasing points from
// exactly 0 to exactly 1; the SD3 shift is monotone, fixes the end points, is the identity for
// s = 1, lies below the uniform grid for s > 1 (more steps near noise, t = 0) and above it for
// s < 1, multiplies the odds (1 - t) / t by s and is undone by 1/s; the EDM grid's inner points
// are Karras's rho-spaced noise levels through t = 1 / (1 + sigma); bad arguments throw.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include <flowmatch/core/error.hpp>
#include <flowmatch/ode/time_grids.hpp>

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

void check_grid(const Vector<double>& ts, Index steps) {
  REQUIRE(ts.size() == steps + 1);
  CHECK(ts(0) == 0.0);
  CHECK(ts(steps) == 1.0);
  for (Index k = 1; k <= steps; ++k) CHECK(ts(k) > ts(k - 1));
}

}  // namespace

TEST_CASE("uniform_time_grid: k / steps", "[ode][grids]") {
  for (Index n : {1, 2, 7, 64}) {
    const Vector<double> ts = uniform_time_grid(n);
    check_grid(ts, n);
    for (Index k = 0; k <= n; ++k) CHECK(ts(k) == Approx(static_cast<double>(k) / static_cast<double>(n)).margin(1e-15));
  }
}

TEST_CASE("shifted_time_grid: the SD3 shift t / (s (1 - t) + t) in our direction", "[ode][grids]") {
  for (Index n : {1, 3, 8, 50})
    for (double s : {0.2, 0.5, 1.0, 3.0, 10.0}) {
      INFO("steps " << n << ", shift " << s);
      check_grid(shifted_time_grid(n, s), n);
    }
  const Vector<double> u = uniform_time_grid(16);
  // s = 1: the uniform grid.
  const Vector<double> same = shifted_time_grid(16, 1.0);
  for (Index k = 0; k <= 16; ++k) CHECK(same(k) == Approx(u(k)).margin(1e-15));
  // s > 1: below the uniform grid inside (0, 1), so more of the steps lie near t = 0 (noise);
  // with h = 1/16 the first step is 1 / (s - (s - 1) h) of the uniform one (-> 1/s as h -> 0), the
  // last s / (1 + (s - 1) h) (-> s). s < 1: above it.
  const Vector<double> s3 = shifted_time_grid(16, 3.0), third = shifted_time_grid(16, 1.0 / 3.0);
  for (Index k = 1; k < 16; ++k) {
    CHECK(s3(k) < u(k));
    CHECK(third(k) > u(k));
  }
  CHECK(s3(8) == Approx(0.25));  // t = 1/2: 0.5 / (3 * 0.5 + 0.5)
  CHECK(s3(1) / u(1) == Approx(1.0 / (3.0 - 2.0 / 16.0)).epsilon(1e-14));
  CHECK((1.0 - s3(15)) / (1.0 - u(15)) == Approx(3.0 / (1.0 + 2.0 / 16.0)).epsilon(1e-13));
  // Against SD3's own formula on the noise level sigma = 1 - t: sigma' = s sigma / (1 + (s - 1) sigma).
  for (Index k = 0; k <= 16; ++k) {
    const double sigma = 1.0 - u(k);
    CHECK(s3(k) == Approx(1.0 - 3.0 * sigma / (1.0 + 2.0 * sigma)).margin(1e-15));
  }
  // The odds (1 - t) / t are multiplied by s; shifting by s then by 1/s gives the grid back.
  for (Index k = 1; k < 16; ++k) {
    CHECK((1.0 - s3(k)) / s3(k) == Approx(3.0 * (1.0 - u(k)) / u(k)).epsilon(1e-13));
    CHECK(shift_time(s3(k), 1.0 / 3.0) == Approx(u(k)).epsilon(1e-14));
  }
  // Monotone: a finer look at the map itself.
  double prev = 0.0;
  for (int i = 1; i <= 1000; ++i) {
    const double t = shift_time(i / 1000.0, 7.0);
    CHECK(t > prev);
    prev = t;
  }
  CHECK(shift_time(0.0, 7.0) == 0.0);
  CHECK(shift_time(1.0, 7.0) == 1.0);
}

TEST_CASE("edm_time_grid: Karras's rho spacing through t = 1 / (1 + sigma), ends at exactly 0 and 1", "[ode][grids]") {
  for (Index n : {1, 2, 4, 10, 100}) check_grid(edm_time_grid(n), n);
  CHECK(edm_time_grid(1) == uniform_time_grid(1));
  // The inner points: sigma_i = (1 - t_i) / t_i, and sigma_i^(1/rho) runs linearly in i / n from
  // sigma_max^(1/rho) (i = 0) to sigma_min^(1/rho) (i = n).
  const double rho = 7.0, smin = 0.002, smax = 80.0;
  const Index n = 6;
  const Vector<double> ts = edm_time_grid(n, rho, smin, smax);
  const double hi = std::pow(smax, 1.0 / rho), lo = std::pow(smin, 1.0 / rho);
  for (Index i = 1; i < n; ++i) {
    const double sigma = (1.0 - ts(i)) / ts(i);
    CHECK(std::pow(sigma, 1.0 / rho) == Approx(hi + (lo - hi) * static_cast<double>(i) / static_cast<double>(n)).epsilon(1e-12));
  }
  // 4 steps with EDM's defaults (computed separately): sigma = 17.53, 2.515, 0.1698.
  const Vector<double> four = edm_time_grid(4);
  CHECK(four(1) == Approx(0.053973).epsilon(1e-4));
  CHECK(four(2) == Approx(0.284477).epsilon(1e-4));
  CHECK(four(3) == Approx(0.854882).epsilon(1e-4));
  // Larger rho moves the inner points towards t = 1 (low noise) here.
  const Vector<double> r3 = edm_time_grid(8, 3.0), r7 = edm_time_grid(8, 7.0);
  CHECK(r7(7) > r3(7));
}

TEST_CASE("Time grids refuse bad arguments, naming them", "[ode][grids][errors]") {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(uniform_time_grid(0), Catch::Contains("uniform_time_grid") && Catch::Contains("'steps' = 0"));
  CHECK_THROWS_AS(shifted_time_grid(0, 3.0), InvalidArgument);
  CHECK_THROWS_WITH(shifted_time_grid(4, 0.0), Catch::Contains("shifted_time_grid") && Catch::Contains("'shift'"));
  CHECK_THROWS_AS(shifted_time_grid(4, -1.0), InvalidArgument);
  CHECK_THROWS_AS(shifted_time_grid(4, inf), InvalidArgument);
  CHECK_THROWS_AS(shifted_time_grid(4, nan), InvalidArgument);
  CHECK_THROWS_WITH(shifted_time_grid(4, 1e-300), Catch::Contains("coincide"));  // every inner point rounds to 1
  CHECK_THROWS_AS(shift_time(1.5, 2.0), InvalidArgument);
  CHECK_THROWS_AS(shift_time(0.5, 0.0), InvalidArgument);
  CHECK_THROWS_AS(edm_time_grid(0), InvalidArgument);
  CHECK_THROWS_WITH(edm_time_grid(4, 0.0), Catch::Contains("'rho'"));
  CHECK_THROWS_WITH(edm_time_grid(4, 7.0, 0.0), Catch::Contains("'sigma_min'"));
  CHECK_THROWS_WITH(edm_time_grid(4, 7.0, 1.0, 1.0), Catch::Contains("'sigma_max'"));
  CHECK_THROWS_AS(edm_time_grid(4, 7.0, 1.0, inf), InvalidArgument);
  CHECK_THROWS_WITH(edm_time_grid(4, 7.0, 1e-30, 2e-30), Catch::Contains("coincide"));
}

}  // namespace FLOWMATCH_TEST_FILE_ID
