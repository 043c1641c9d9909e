// Steppers: the convergence order of Euler, midpoint, Heun and RK4 (halving the step divides the
// error by 2^order), dopri5's tolerance and NFE against RK4, NFE counts, both directions, the
// simulator's overloads, and bad arguments.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <flowmatch/core/time.hpp>
#include <flowmatch/ode/dopri5.hpp>
#include <flowmatch/ode/euler_simulator.hpp>
#include <flowmatch/ode/explicit_steppers.hpp>
#include <flowmatch/ode/simulator.hpp>

#include "support/compare.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

// dx/dt = cos(t) x has the closed form x0 exp(sin t - sin t0).
// A time-dependent, coordinate-wise field, so that wrong stage times show up in the order.
struct CosODE {
  using Scalar = double;
  Index d = 2;
  long long calls = 0;
  Index dim() const { return d; }
  template <class DX, class DO>
  void drift(const Eigen::MatrixBase<DX>& x, double t, const Eigen::MatrixBase<DO>& out) {
    ++calls;
    detail::writable(out) = std::cos(t) * x;
  }
};

// Nonlinear with a closed form: dx/dt = t x^2 has x(t) = 1 / (1/x0 - (t^2 - t0^2)/2).
struct RiccatiODE {
  using Scalar = double;
  long long calls = 0;
  Index dim() const { return 1; }
  template <class DX, class DO>
  void drift(const Eigen::MatrixBase<DX>& x, double t, const Eigen::MatrixBase<DO>& out) {
    ++calls;
    detail::writable(out) = t * x.cwiseProduct(x);
  }
};
double riccati(double x0, double t0, double t) { return 1.0 / (1.0 / x0 - 0.5 * (t * t - t0 * t0)); }

// The harmonic oscillator x0' = x1, x1' = -x0: a rotation, x(t) = R(t) x(0).
struct Oscillator {
  using Scalar = double;
  long long calls = 0;
  Index dim() const { return 2; }
  template <class DX, class DO>
  void drift(const Eigen::MatrixBase<DX>& x, double /*t*/, const Eigen::MatrixBase<DO>& out_) {
    ++calls;
    auto& out = detail::writable(out_);
    out.row(0) = x.row(1);
    out.row(1) = -x.row(0);
  }
};

template <template <class> class Method>
double riccati_error(Index steps) {
  RiccatiODE ode;
  auto sim = make_simulator<Method>(ode);
  Matrix<double> x(1, 3);
  x << 0.5, 0.3, -0.7;
  const Matrix<double> x0 = x;
  sim.simulate_inplace(x, 0.0, 1.2, steps);
  double err = 0.0;
  for (Index j = 0; j < 3; ++j) err = std::max(err, std::abs(x(0, j) - riccati(x0(0, j), 0.0, 1.2)));
  return err;
}

template <template <class> class Method>
void check_order(int order) {
  std::vector<double> errs;
  for (Index n : {32, 64, 128, 256}) errs.push_back(riccati_error<Method>(n));
  for (std::size_t k = 0; k + 1 < errs.size(); ++k) {
    const double rate = std::log2(errs[k] / errs[k + 1]);
    INFO(Method<double>::name << ": error " << errs[k] << " -> " << errs[k + 1] << ", observed order " << rate);
    CHECK(rate > order - 0.2);
    CHECK(rate < order + 0.25);
  }
}

}  // namespace

TEST_CASE("Euler midpoint Heun and RK4 converge with their orders on a nonlinear time-dependent ODE", "[ode][order]") {
  check_order<EulerStepper>(1);
  check_order<MidpointStepper>(2);
  check_order<HeunStepper>(2);
  check_order<RK4Stepper>(4);
  CHECK(EulerStepper<double>::order == 1);
  CHECK(MidpointStepper<double>::order == 2);
  CHECK(HeunStepper<double>::order == 2);
  CHECK(RK4Stepper<double>::order == 4);
}

TEST_CASE("Order also holds on dx/dt = cos(t) x in every column of a batch", "[ode][order]") {
  const auto err = [](Index steps) {
    CosODE ode;
    ODESimulator<CosODE, RK4Stepper<double>> sim(ode);
    Matrix<double> x0(2, 2);
    x0 << 1.0, -2.0, 0.5, 3.0;
    const Matrix<double> x1 = sim.simulate(x0, 0.2, 2.0, steps);
    return test::max_abs(x1 - x0 * std::exp(std::sin(2.0) - std::sin(0.2)));
  };
  CHECK(std::log2(err(10) / err(20)) == Approx(4.0).margin(0.25));
  CHECK(std::log2(err(20) / err(40)) == Approx(4.0).margin(0.25));
}

TEST_CASE("Fixed steppers report NFE = steps x stages, and simulate overloads agree", "[ode]") {
  CosODE ode;
  auto heun = make_simulator<HeunStepper>(ode);
  Matrix<double> x0 = Matrix<double>::Ones(2, 4);
  const Matrix<double> by_steps = heun.simulate(x0, 0.0, 1.0, 7);
  CHECK(heun.nfe() == 14);
  CHECK(ode.calls == 14);
  const Matrix<double> by_grid = heun.simulate(x0, linspace(0.0, 1.0, 8));
  CHECK(heun.nfe() == 14);
  CHECK(test::max_abs(by_steps - by_grid) < 1e-15);
  const Matrix<double> unit = heun.simulate(x0, 7);  // [0, 1] by default
  CHECK(test::max_abs(unit - by_grid) < 1e-15);
  const std::vector<Matrix<double>> traj = heun.simulate_with_trajectory(x0, 7);
  REQUIRE(traj.size() == 8);
  CHECK(traj.front() == x0);
  CHECK(test::max_abs(traj.back() - by_grid) < 1e-15);
  auto rk4 = make_simulator<RK4Stepper>(ode);
  Matrix<double> y = x0;
  CHECK(rk4.simulate_inplace(y, 5) == 20);
}

TEST_CASE("Steppers integrate backwards: forward then backward returns to the start", "[ode]") {
  Oscillator ode;
  RK4Stepper<double> rk4;
  Matrix<double> x(2, 1);
  x << 1.0, 0.0;
  for (int k = 0; k < 100; ++k) rk4.advance(ode, x, 0.01 * k, 0.01 * (k + 1));
  CHECK(x(0, 0) == Approx(std::cos(1.0)).margin(1e-10));
  CHECK(x(1, 0) == Approx(-std::sin(1.0)).margin(1e-10));
  for (int k = 100; k > 0; --k) rk4.advance(ode, x, 0.01 * k, 0.01 * (k - 1));
  CHECK(x(0, 0) == Approx(1.0).margin(1e-10));
  CHECK(x(1, 0) == Approx(0.0).margin(1e-10));
  Dopri5Stepper<double> dopri(1e-10, 1e-10);
  dopri.advance(ode, x, 1.0, 0.0);  // backwards over [0, 1] from (1, 0): R(-1) (1, 0) = (cos 1, sin 1)
  CHECK(x(0, 0) == Approx(std::cos(1.0)).margin(1e-8));
  CHECK(x(1, 0) == Approx(std::sin(1.0)).margin(1e-8));
}

TEST_CASE("Dopri5 meets its tolerance and counts its drift evaluations", "[ode][dopri5]") {
  for (const double tol : {1e-4, 1e-7, 1e-10}) {
    RiccatiODE ode;
    auto sim = make_simulator<Dopri5Stepper>(ode, tol, tol);
    Matrix<double> x(1, 2);
    x << 0.5, -1.0;
    const Matrix<double> x0 = x;
    const Index nfe = sim.simulate_inplace(x, Vector<double>(linspace(0.0, 1.5, 2)));
    const double err = std::max(std::abs(x(0, 0) - riccati(0.5, 0.0, 1.5)), std::abs(x(0, 1) - riccati(-1.0, 0.0, 1.5)));
    const AdaptiveStats& st = sim.stepper().stats();
    INFO("tol " << tol << ": error " << err << ", nfe " << nfe << ", accepted " << st.accepted << ", rejected " << st.rejected);
    CHECK(err < 20 * tol);  // local error control: the global error is a small multiple of the tolerance
    CHECK(nfe == ode.calls);
    CHECK(nfe == sim.nfe());
    // 1 (first stage) + 1 (initial step estimate) + 6 per attempted step (FSAL).
    CHECK(nfe == 2 + 6 * (st.accepted + st.rejected));
  }
}

TEST_CASE("Dopri5 reaches an error with fewer NFE than RK4 on a smooth problem", "[ode][dopri5]") {
  // The oscillator over [0, 10]: rtol = atol = 1e-9.
  const auto rk4_error = [](Index steps) {
    Oscillator ode;
    auto sim = make_simulator<RK4Stepper>(ode);
    Matrix<double> x(2, 1);
    x << 1.0, 0.0;
    sim.simulate_inplace(x, 0.0, 10.0, steps);
    return std::hypot(x(0, 0) - std::cos(10.0), x(1, 0) + std::sin(10.0));
  };
  Oscillator ode;
  Dopri5Stepper<double> dopri(1e-9, 1e-9);
  Matrix<double> x(2, 1);
  x << 1.0, 0.0;
  const Index dopri_nfe = dopri.advance(ode, x, 0.0, 10.0);
  const double dopri_err = std::hypot(x(0, 0) - std::cos(10.0), x(1, 0) + std::sin(10.0));
  // Fewest RK4 steps that reach dopri5's error (RK4's error falls monotonically here).
  Index lo = 1, hi = 1;
  while (rk4_error(hi) > dopri_err) hi *= 2;
  while (lo < hi) {
    const Index mid = (lo + hi) / 2;
    if (rk4_error(mid) <= dopri_err) hi = mid;
    else lo = mid + 1;
  }
  INFO("dopri5: error " << dopri_err << " with " << dopri_nfe << " NFE; RK4 needs " << lo << " steps (" << 4 * lo << " NFE)");
  CHECK(dopri_err < 1e-6);
  CHECK(dopri_nfe < 4 * lo);
}

TEST_CASE("Dopri5 between grid points lands on each output time", "[ode][dopri5]") {
  CosODE ode;
  auto sim = make_simulator<Dopri5Stepper>(ode, Dopri5Options{1e-9, 1e-9, 10000, 0.0, 0.9});
  Matrix<double> x0(2, 1);
  x0 << 1.0, 2.0;
  const Vector<double> ts = linspace(0.0, 3.0, 7);
  const std::vector<Matrix<double>> traj = sim.simulate_with_trajectory(x0, ts);
  REQUIRE(traj.size() == 7);
  for (Index k = 0; k < 7; ++k)
    CHECK(test::max_abs(traj[static_cast<std::size_t>(k)] - x0 * std::exp(std::sin(ts(k)))) < 1e-7);
}

TEST_CASE("Dopri5 refuses bad tolerances and caps its steps", "[ode][dopri5][errors]") {
  CHECK_THROWS_AS(Dopri5Stepper<double>(-1e-3, 1e-3), InvalidArgument);
  CHECK_THROWS_WITH(Dopri5Stepper<double>(-1e-3, 1e-3), Catch::Contains("argument 'rtol'"));
  CHECK_THROWS_WITH(Dopri5Stepper<double>(1e-3, -1e-3), Catch::Contains("argument 'atol'"));
  CHECK_THROWS_WITH(Dopri5Stepper<double>(0.0, 0.0), Catch::Contains("not both be 0"));
  CHECK_THROWS_WITH(Dopri5Stepper<double>(1e-3, 1e-3, 0), Catch::Contains("argument 'max_steps'"));
  CHECK_THROWS_WITH(Dopri5Stepper<double>(std::numeric_limits<double>::quiet_NaN(), 1e-3), Catch::Contains("argument 'rtol'"));
  CHECK_NOTHROW(Dopri5Stepper<double>(0.0, 1e-6));
  Oscillator ode;
  Dopri5Stepper<double> capped(1e-12, 1e-12, 5);
  Matrix<double> x(2, 1);
  x << 1.0, 0.0;
  CHECK_THROWS_AS(capped.advance(ode, x, 0.0, 10.0), NumericalError);
  CHECK_THROWS_WITH(capped.advance(ode, x, 0.0, 10.0), Catch::Contains("max_steps = 5"));
}

TEST_CASE("Simulators refuse bad step counts and intervals", "[ode][errors]") {
  CosODE ode;
  auto sim = make_simulator<MidpointStepper>(ode);
  const Matrix<double> x0 = Matrix<double>::Ones(2, 2);
  CHECK_THROWS_WITH(sim.simulate(x0, 0), Catch::Contains("argument 'steps'"));
  CHECK_THROWS_WITH(sim.simulate(x0, 1.0, 0.5, 3), Catch::Contains("argument 't1'"));
  CHECK_THROWS_WITH(sim.simulate(Matrix<double>::Ones(3, 2), 4), Catch::Contains("argument 'x0'"));
  CHECK_THROWS_WITH(sim.simulate(x0, Vector<double>()), Catch::Contains("flowmatch::ODESimulator::simulate"));
}

}  // namespace FLOWMATCH_TEST_FILE_ID
