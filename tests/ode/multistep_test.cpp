// Adams-Bashforth steppers (ode/multistep.hpp): global order 2 and 3 on a nonlinear time-dependent
// ODE, on uniform and non-uniform grids, forwards and backwards; exactness on polynomial drifts
// (which checks the variable-step weights and the corrected start); one drift evaluation a step;
// the history is used only when a step continues the last one and a fresh simulate starts clean.

#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include <flowmatch/ode/multistep.hpp>
#include <flowmatch/ode/simulator.hpp>
#include <flowmatch/ode/time_grids.hpp>

#include "support/compare.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

// dx/dt = t x^2 has x(t) = 1 / (1/x0 - (t^2 - t0^2)/2): nonlinear and time-dependent.
struct Riccati {
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

// dx/dt = p(t), a polynomial that ignores x: the method is a quadrature rule.
struct Polynomial {
  using Scalar = double;
  std::vector<double> c;  // p(t) = sum_k c[k] t^k
  Index dim() const { return 1; }
  double operator()(double t) const {
    double v = 0.0;
    for (std::size_t k = c.size(); k-- > 0;) v = v * t + c[k];
    return v;
  }
  double integral(double a, double b) const {  // int_a^b p
    double v = 0.0;
    for (std::size_t k = 0; k < c.size(); ++k)
      v += c[k] * (std::pow(b, static_cast<double>(k + 1)) - std::pow(a, static_cast<double>(k + 1))) / static_cast<double>(k + 1);
    return v;
  }
  template <class DX, class DO>
  void drift(const Eigen::MatrixBase<DX>& x, double t, const Eigen::MatrixBase<DO>& out) {
    (void)x;
    detail::writable(out).setConstant((*this)(t));
  }
};

// A rotation at angular speed 1 + t, in float: x(t) = R(t + t^2/2) x(0).
struct RotationF {
  using Scalar = float;
  Index dim() const { return 2; }
  template <class DX, class DO>
  void drift(const Eigen::MatrixBase<DX>& x, double t, const Eigen::MatrixBase<DO>& out_) {
    auto& out = detail::writable(out_);
    const float w = static_cast<float>(1.0 + t);
    out.row(0) = w * x.row(1);
    out.row(1) = -w * x.row(0);
  }
};

const Matrix<double>& start() {
  static const Matrix<double> x = (Matrix<double>(1, 3) << 0.5, 0.3, -0.7).finished();
  return x;
}

// A grid on [0, 1.2] with n steps: uniform, the SD3 shift with s = 3 (steps growing 9-fold from
// t = 0 to the end), or alternating steps of 2 and 1 (step ratios 1/2 and 2 throughout).
enum class Grid { uniform, shifted, alternating };
Vector<double> grid(Index n, Grid kind) {
  if (kind == Grid::uniform) return 1.2 * uniform_time_grid(n);
  if (kind == Grid::shifted) return 1.2 * shifted_time_grid(n, 3.0);
  Vector<double> ts(n + 1);
  ts(0) = 0.0;
  for (Index k = 0; k < n; ++k) ts(k + 1) = ts(k) + (k % 2 == 0 ? 2.0 : 1.0);
  ts *= 1.2 / ts(n);
  ts(n) = 1.2;
  return ts;
}

// Max error at the end of the grid (forwards from x(0) = start), or at 0 (backwards from x(1.2)).
template <class St>
double error(Index n, Grid kind, bool backwards) {
  Riccati ode;
  const Vector<double> ts = grid(n, kind);
  const Matrix<double>& x0 = start();
  Matrix<double> x(1, 3), exact(1, 3);
  for (Index j = 0; j < 3; ++j) exact(0, j) = riccati(x0(0, j), 0.0, 1.2);
  if (!backwards) {
    x = x0;
    ODESimulator<Riccati, St>(ode).simulate_inplace(x, ts);
    return test::max_abs(x - exact);
  }
  x = exact;
  St stepper;
  for (Index k = n; k > 0; --k) stepper.advance(ode, x, ts(k), ts(k - 1));
  return test::max_abs(x - x0);
}

template <class St>
void check_order(Grid kind, bool backwards, std::vector<Index> steps) {
  std::vector<double> errs;
  for (Index n : steps) errs.push_back(error<St>(n, kind, backwards));
  for (std::size_t k = 0; k + 1 < errs.size(); ++k) {
    const double rate = std::log2(errs[k] / errs[k + 1]);
    INFO(St::name << (backwards ? " backwards" : " forwards") << ", grid " << static_cast<int>(kind) << ": error "
                  << errs[k] << " -> " << errs[k + 1] << " (" << steps[k] << " -> " << steps[k + 1]
                  << " steps), observed order " << rate);
    CHECK(rate > St::order - 0.15);
    CHECK(rate < St::order + 0.3);
  }
}

}  // namespace

TEST_CASE("AB2 and AB3 converge with orders 2 and 3 on uniform and non-uniform grids, both directions",
          "[ode][multistep][order]") {
  STATIC_REQUIRE(FixedStepper<AdamsBashforth2Stepper<double>, Riccati>);
  STATIC_REQUIRE(FixedStepper<AdamsBashforth3Stepper<double>, Riccati>);
  STATIC_REQUIRE(AdamsBashforth2Stepper<double>::order == 2);
  STATIC_REQUIRE(AdamsBashforth3Stepper<double>::order == 3);
  STATIC_REQUIRE(AdamsBashforth3Stepper<double>::stages == 1);
  STATIC_REQUIRE(!AdamsBashforth3Stepper<double>::adaptive);
  for (const bool backwards : {false, true}) {
    check_order<AdamsBashforth2Stepper<double>>(Grid::uniform, backwards, {64, 128, 256});
    check_order<AdamsBashforth3Stepper<double>>(Grid::uniform, backwards, {64, 128, 256});
    check_order<AdamsBashforth2Stepper<double>>(Grid::alternating, backwards, {64, 128, 256});
    check_order<AdamsBashforth3Stepper<double>>(Grid::alternating, backwards, {64, 128, 256});
    check_order<AdamsBashforth2Stepper<double>>(Grid::shifted, backwards, {128, 256, 512});
    check_order<AdamsBashforth3Stepper<double>>(Grid::shifted, backwards, {128, 256, 512});
  }
}

TEST_CASE("AB2 is exact for linear drifts and AB3 for quadratic ones after its start, on an irregular grid",
          "[ode][multistep]") {
  Vector<double> ts(8);
  ts << 0.0, 0.05, 0.2, 0.25, 0.5, 0.55, 0.9, 1.0;  // step ratios from 1/7 to 5
  const auto run = [&]<class St>(Polynomial p, std::type_identity<St>) {
    Matrix<double> x = Matrix<double>::Constant(1, 2, 0.25);
    ODESimulator<Polynomial, St>(p).simulate_inplace(x, ts);
    return x(0, 1);
  };
  // Linear: the corrected start (the trapezoid rule on [t0, t1]) and every AB2 step are exact.
  const Polynomial line{{0.7, -1.3}};
  CHECK(run(line, std::type_identity<AdamsBashforth2Stepper<double>>{}) == Approx(0.25 + line.integral(0.0, 1.0)).epsilon(1e-14));
  // Quadratic: AB3's steps from the third on are exact; the first two are the trapezoid rule on
  // [t0, t1] and AB2 on [t1, t2] with nodes t0, t1, whose results are written out here.
  const Polynomial quad{{0.4, -2.0, 3.0}};
  const double h0 = ts(1) - ts(0), h1 = ts(2) - ts(1), r = h1 / h0;
  const double start = 0.5 * h0 * (quad(ts(0)) + quad(ts(1))) + h1 * ((1.0 + 0.5 * r) * quad(ts(1)) - 0.5 * r * quad(ts(0)));
  const double expected = 0.25 + start + quad.integral(ts(2), 1.0);
  CHECK(run(quad, std::type_identity<AdamsBashforth3Stepper<double>>{}) == Approx(expected).epsilon(1e-14));
  CHECK(std::abs(expected - (0.25 + quad.integral(0.0, 1.0))) > 1e-4);  // the start is not exact: the check has teeth
}

TEST_CASE("Adams-Bashforth makes one drift evaluation a step; with 2 NFE, AB2 is the midpoint rule", "[ode][multistep]") {
  Riccati ode;
  auto ab3 = make_simulator<AdamsBashforth3Stepper>(ode);
  const Matrix<double> x = ab3.simulate(start(), 0.0, 1.2, 7);
  CHECK(ab3.nfe() == 7);
  CHECK(ode.calls == 7);
  auto ab2 = make_simulator<AdamsBashforth2Stepper>(ode);
  Matrix<double> y = start();
  CHECK(ab2.simulate_inplace(y, grid(5, Grid::shifted)) == 5);
  // Euler, then AB2 after correcting Euler to Heun: x0 + (t2 - t0) f(x0 + h f0, t1) on a uniform grid.
  const Matrix<double> two = ab2.simulate(start(), 0.0, 1.2, 2);
  Matrix<double> mid = start(), k(1, 3);
  ode.drift(start(), 0.0, k);
  const Matrix<double> half = start() + 0.6 * k;
  ode.drift(half, 0.6, k);
  mid += 1.2 * k;
  CHECK(test::max_abs(two - mid) < 1e-15);
  CHECK(x.allFinite());
}

TEST_CASE("Adams-Bashforth history: continued steps reuse it, a new simulate or a discontinuous step starts clean",
          "[ode][multistep]") {
  Riccati ode;
  const Vector<double> ts = grid(10, Grid::shifted);
  ODESimulator<Riccati, AdamsBashforth3Stepper<double>> sim(ode);
  const Matrix<double> first = sim.simulate(start(), ts);
  CHECK(sim.stepper().history() == 2);
  const Matrix<double> second = sim.simulate(start(), ts);
  CHECK(first == second);  // bit for bit: the second run did not use the first run's drifts

  // Steps by hand that continue each other give the simulation's result.
  AdamsBashforth3Stepper<double> st;
  Matrix<double> x = start();
  for (Index k = 0; k + 1 < ts.size(); ++k) st.advance(ode, x, ts(k), ts(k + 1));
  CHECK(x == first);

  // A step that does not start where the last ended is a fresh start (an Euler step) ...
  const auto fresh_step = [&](const Matrix<double>& from, double t0, double t1) {
    AdamsBashforth3Stepper<double> clean;
    Matrix<double> y = from;
    clean.advance(ode, y, t0, t1);
    return y;
  };
  Matrix<double> y = start();
  st.advance(ode, y, 0.3, 0.4);
  CHECK(st.history() == 1);
  CHECK(y == fresh_step(start(), 0.3, 0.4));
  // ... and so is one in the other direction from the same time, or at another batch shape,
  Matrix<double> z = y;
  st.advance(ode, z, 0.4, 0.3);
  CHECK(z == fresh_step(y, 0.4, 0.3));
  Matrix<double> wide = Matrix<double>::Constant(1, 4, 0.2);
  st.advance(ode, wide, 0.3, 0.2);
  CHECK(wide == fresh_step(Matrix<double>::Constant(1, 4, 0.2), 0.3, 0.2));
  // ... or after reset().
  st.advance(ode, wide, 0.2, 0.1);
  CHECK(st.history() == 2);
  st.reset();
  CHECK(st.history() == 0);
  Matrix<double> w2 = wide;
  st.advance(ode, w2, 0.1, 0.0);
  CHECK(w2 == fresh_step(wide, 0.1, 0.0));
  // A continued step does use the history: it differs from a fresh one.
  Matrix<double> a = start(), b = start();
  AdamsBashforth2Stepper<double> ab2;
  ab2.advance(ode, a, 0.0, 0.5);
  b = a;
  ab2.advance(ode, a, 0.5, 1.0);
  CHECK(test::max_abs(a - fresh_step(b, 0.5, 1.0)) > 1e-3);

  // A new simulation that starts where the last ended, from another batch, is not polluted.
  ODESimulator<Riccati, AdamsBashforth2Stepper<double>> sim2(ode);
  Matrix<double> p = start(), q = -start();
  sim2.simulate_inplace(p, 0.0, 0.6, 4);
  sim2.simulate_inplace(q, 0.6, 1.2, 4);
  Matrix<double> q_fresh = -start();
  ODESimulator<Riccati, AdamsBashforth2Stepper<double>>(ode).simulate_inplace(q_fresh, 0.6, 1.2, 4);
  CHECK(q == q_fresh);
}

TEST_CASE("Adams-Bashforth in float: forwards then backwards returns to the start", "[ode][multistep]") {
  RotationF ode;
  const Vector<double> ts = shifted_time_grid(200, 2.0);
  Matrix<float> x(2, 2);
  x << 1.0f, 0.0f, 0.0f, 2.0f;
  const Matrix<float> x0 = x;
  AdamsBashforth3Stepper<float> st;
  for (Index k = 0; k + 1 < ts.size(); ++k) st.advance(ode, x, ts(k), ts(k + 1));
  // The exact solution rotates by the angle int_0^1 (1 + t) dt = 1.5.
  CHECK(x(0, 0) == Approx(std::cos(1.5)).margin(1e-4));
  CHECK(x(1, 0) == Approx(-std::sin(1.5)).margin(1e-4));
  for (Index k = ts.size() - 1; k > 0; --k) st.advance(ode, x, ts(k), ts(k - 1));
  CHECK(test::max_abs((x - x0).cast<double>()) < 2e-4);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
