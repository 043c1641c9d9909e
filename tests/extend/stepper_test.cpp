// docs/extending.md, "A stepper": a user's own fixed-step ODE method, written outside the library
// (between the [extending.md] markers; the page quotes parts of this file, and
// tests/extend/docs_sync_test.cpp fails if a quote no longer matches). Ralston's second-order
// method on the library's CRTP base: it satisfies FixedStepper and runs in ODESimulator like the
// built-in ones.
//
// What the tests prove: its observed order of convergence is 2 on dx/dt = -x and on a rotation
// whose speed depends on t (which also checks that its second stage is evaluated at the right
// time: a stage at the wrong time drops the order to 1, as Euler's measured order shows the
// measurement can tell); it makes 2 drift evaluations a step; it integrates backwards; it works
// in float.

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include <flowmatch/core/types.hpp>
#include <flowmatch/ode/concepts.hpp>
#include <flowmatch/ode/simulator.hpp>

// [extending.md: stepper]
#include <string_view>

#include <flowmatch/ode/explicit_steppers.hpp>

namespace user {

// Ralston's method: k1 = f(x, t0), k2 = f(x + 2h/3 k1, t0 + 2h/3), x <- x + h/4 (k1 + 3 k2).
// Second order with two drift evaluations, the smallest error bound of the two-stage methods.
template <flowmatch::Real S = float>
class RalstonStepper : public flowmatch::ExplicitStepperBase<RalstonStepper<S>, S> {
 public:
  static constexpr int order = 2;
  static constexpr int stages = 2;
  static constexpr std::string_view name = "ralston";

  void resize_buffers(flowmatch::Index rows, flowmatch::Index cols) {
    for (flowmatch::Matrix<S>* m : {&k1_, &k2_, &tmp_}) m->resize(rows, cols);
  }
  template <class O, class X>
  void do_step(O& ode, X& x, double t0, double t1) {
    const double h = t1 - t0;
    ode.drift(x, t0, k1_);
    tmp_.noalias() = x + this->scalar(2.0 * h / 3.0) * k1_;
    ode.drift(tmp_, t0 + 2.0 * h / 3.0, k2_);
    x.noalias() += this->scalar(0.25 * h) * (k1_ + this->scalar(3) * k2_);
  }

 private:
  flowmatch::Matrix<S> k1_, k2_, tmp_;
};

}  // namespace user
// [end]

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

// dx/dt = -x on R^2.
template <Real S>
struct Decay {
  using Scalar = S;
  Index dim() const { return 2; }
  template <class DX>
  void drift(const Eigen::MatrixBase<DX>& x, double /*t*/, Matrix<S>& out) {
    out.noalias() = -x;
  }
};

// dx/dt = (1 + t) J x with J the rotation generator: x(t) is x(0) rotated by t + t^2 / 2.
struct SpeedingRotation {
  using Scalar = double;
  Index dim() const { return 2; }
  template <class DX>
  void drift(const Eigen::MatrixBase<DX>& x, double t, Matrix<double>& out) {
    out.row(0) = -(1.0 + t) * x.row(1);
    out.row(1) = (1.0 + t) * x.row(0);
  }
};

static_assert(FixedStepper<user::RalstonStepper<double>, Decay<double>>);
static_assert(FixedStepper<user::RalstonStepper<float>, Decay<float>>);
static_assert(FixedStepper<user::RalstonStepper<double>, SpeedingRotation>);

Matrix<double> start() { return Matrix<double>{{1.0, 0.3, -0.5}, {0.0, -0.8, 2.0}}; }

Matrix<double> exact_decay(const Matrix<double>& x0) { return x0 * std::exp(-1.0); }

Matrix<double> exact_rotation(const Matrix<double>& x0) {
  const double th = 1.5;  // t + t^2 / 2 at t = 1
  Matrix<double> r(2, 2);
  r << std::cos(th), -std::sin(th), std::sin(th), std::cos(th);
  return r * x0;
}

// Max-norm error at t = 1 after `steps` uniform steps on [0, 1].
template <template <class> class Method, class O>
double error_after(O& ode, Index steps, const Matrix<double>& exact) {
  auto sim = make_simulator<Method>(ode);
  const Matrix<double> x1 = sim.simulate(start(), steps);
  return (x1 - exact).cwiseAbs().maxCoeff();
}

// Observed orders log2(e(N) / e(2N)) for N = 8, 16, 32.
template <template <class> class Method, class O>
std::vector<double> observed_orders(O& ode, const Matrix<double>& exact) {
  std::vector<double> p;
  for (Index n = 8; n <= 32; n *= 2)
    p.push_back(std::log2(error_after<Method>(ode, n, exact) / error_after<Method>(ode, 2 * n, exact)));
  return p;
}

}  // namespace

TEST_CASE("extend/stepper: Ralston converges with order 2 (halving h divides the error by 4)", "[extend][stepper]") {
  Decay<double> decay;
  SpeedingRotation rotation;
  // Errors run from about 1e-3 to 1e-6, far above rounding; the observed order of a second-order
  // method is 2 + O(h): measured 1.93 to 1.99 here (deterministic: no threads, double).
  for (double p : observed_orders<user::RalstonStepper>(decay, exact_decay(start()))) CHECK(std::abs(p - 2.0) < 0.1);
  for (double p : observed_orders<user::RalstonStepper>(rotation, exact_rotation(start())))
    CHECK(std::abs(p - 2.0) < 0.1);
  // The same measurement tells a first-order method apart (Euler: 1, not 2).
  for (double p : observed_orders<EulerStepper>(rotation, exact_rotation(start()))) CHECK(std::abs(p - 1.0) < 0.15);
}

TEST_CASE("extend/stepper: Ralston in ODESimulator: NFE, backwards, float", "[extend][stepper]") {
  Decay<double> decay;
  auto sim = make_simulator<user::RalstonStepper>(decay);
  Matrix<double> x = start();
  sim.simulate_inplace(x, 16);
  CHECK(sim.nfe() == 32);  // stages = 2 per step
  // Global error about T h^2 / 6 |x| = 5e-4 at h = 1/16 (Ralston's local error on x' = -x is h^3 / 6 x).
  CHECK((x - exact_decay(start())).cwiseAbs().maxCoeff() < 1e-3);
  // From t = 1 back to t = 0 (negative h) returns to the start up to the method's error.
  for (int k = 16; k > 0; --k) sim.advance(x, k / 16.0, (k - 1) / 16.0);
  CHECK((x - start()).cwiseAbs().maxCoeff() < 3e-3);

  Decay<float> decay_f;
  auto sim_f = make_simulator<user::RalstonStepper>(decay_f);
  const Matrix<float> xf = sim_f.simulate(start().cast<float>(), 64);
  CHECK((xf.cast<double>() - exact_decay(start())).cwiseAbs().maxCoeff() < 1e-4);  // 3e-5 at h = 1/64
}

}  // namespace FLOWMATCH_TEST_FILE_ID
