// EulerSimulator: first-order convergence on ODEs with known solutions, trajectories, batches
// (each column independent: the reference implementation looped over the batch axis), argument checks, and the
// learned-vector-field ODE.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include <flowmatch/core/time.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>
#include <flowmatch/ode/concepts.hpp>
#include <flowmatch/ode/euler_simulator.hpp>
#include <flowmatch/ode/learned_vector_field_ode.hpp>

#include "support/compare.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

// dx/dt = a x (per coordinate rate a_i): x(t) = x0 exp(a (t - t0)).
struct LinearODE {
  using Scalar = double;
  Vector<double> rate;
  int calls = 0;
  Index dim() const { return rate.size(); }
  template <class DX, class DO>
  void drift(const Eigen::MatrixBase<DX>& x, double /*t*/, const Eigen::MatrixBase<DO>& out) {
    ++calls;
    detail::writable(out) = rate.asDiagonal() * x;
  }
};

// dx/dt = cos(t) x: x(t) = x0 exp(sin t - sin t0).
struct CosODE {
  using Scalar = double;
  Index d = 1;
  Index dim() const { return d; }
  template <class DX, class DO>
  void drift(const Eigen::MatrixBase<DX>& x, double t, const Eigen::MatrixBase<DO>& out) {
    detail::writable(out) = std::cos(t) * x;
  }
};

// A nonlinear field that mixes coordinates: dx0/dt = -x1 + sin(x0 t), dx1/dt = x0 - x1^3 / 3.
struct NonlinearODE {
  using Scalar = double;
  Index dim() const { return 2; }
  template <class DX, class DO>
  void drift(const Eigen::MatrixBase<DX>& x, double t, const Eigen::MatrixBase<DO>& out_) {
    auto& out = detail::writable(out_);
    for (Index j = 0; j < x.cols(); ++j) {
      out(0, j) = -x(1, j) + std::sin(x(0, j) * t);
      out(1, j) = x(0, j) - x(1, j) * x(1, j) * x(1, j) / 3.0;
    }
  }
};

static_assert(ODE<LinearODE>);
static_assert(ODE<LearnedVectorFieldODE<MLPVectorField<float>>>);

template <class O>
double euler_error(O& ode, const Matrix<double>& x0, double t0, double t1, Index steps, const Matrix<double>& exact) {
  EulerSimulator<O> sim(ode);
  const Matrix<double> x = sim.simulate(x0, linspace(t0, t1, steps + 1));
  return test::max_abs(x - exact);
}

}  // namespace

TEST_CASE("Euler on dx/dt = a x converges with order 1", "[ode]") {
  LinearODE ode{Vector<double>(2)};
  ode.rate << 1.5, -2.0;
  Matrix<double> x0(2, 3);
  x0 << 1.0, -0.5, 2.0,  //
      0.3, 1.0, -1.0;
  const Matrix<double> exact = ode.rate.array().exp().matrix().asDiagonal() * x0;  // t from 0 to 1
  std::vector<double> errors;
  for (Index steps : {50, 100, 200, 400}) errors.push_back(euler_error(ode, x0, 0.0, 1.0, steps, exact));
  for (std::size_t k = 1; k < errors.size(); ++k) {
    const double ratio = errors[k - 1] / errors[k];
    INFO("h = 1/" << (50 << (k - 1)) << " -> 1/" << (50 << k) << ": errors " << errors[k - 1] << " -> " << errors[k]
                  << ", ratio " << ratio);
    CHECK(ratio >= 1.8);
    CHECK(ratio <= 2.2);
  }
  // The leading error term: (1 + a h)^N = exp(a - a^2 h / 2 + O(h^2)), so the error is about
  // |x(1)| a^2 h / 2 (0.0252 here, for the x0 = 2, a = 1.5 entry).
  double predicted = 0.0;
  for (Index j = 0; j < 3; ++j)
    for (Index i = 0; i < 2; ++i)
      predicted = std::max(predicted, std::abs(exact(i, j)) * ode.rate(i) * ode.rate(i) / 400.0 / 2.0);
  CHECK(errors.back() == Approx(predicted).epsilon(0.02));
  // One step is exactly x0 + h a x0.
  EulerSimulator<LinearODE> sim(ode);
  Vector<double> two(2);
  two << 0.0, 0.25;
  const Matrix<double> one_step = sim.simulate(x0, two);
  const Matrix<double> expected = x0 + 0.25 * (ode.rate.asDiagonal() * x0);
  CHECK(test::max_abs(one_step - expected) < 1e-15);
}

TEST_CASE("Euler on the time-dependent dx/dt = cos(t) x converges with order 1", "[ode]") {
  CosODE ode;
  Matrix<double> x0(1, 2);
  x0 << 1.0, -3.0;
  const double t0 = 0.2, t1 = 2.5;  // any interval: the simulator is not tied to [0, 1]
  const Matrix<double> exact = x0 * std::exp(std::sin(t1) - std::sin(t0));
  std::vector<double> errors;
  for (Index steps : {100, 200, 400, 800}) errors.push_back(euler_error(ode, x0, t0, t1, steps, exact));
  for (std::size_t k = 1; k < errors.size(); ++k) {
    const double ratio = errors[k - 1] / errors[k];
    INFO("errors " << errors[k - 1] << " -> " << errors[k] << ", ratio " << ratio);
    CHECK(ratio >= 1.8);
    CHECK(ratio <= 2.2);
  }
  // The drift is evaluated at the left end of each step: on a non-uniform grid too.
  Vector<double> grid(3);
  grid << 0.0, 0.5, 2.0;
  EulerSimulator<CosODE> sim(ode);
  const Matrix<double> x = sim.simulate(x0, grid);
  const Matrix<double> x_half = x0 * (1.0 + 0.5 * std::cos(0.0));
  const Matrix<double> expected = x_half * (1.0 + 1.5 * std::cos(0.5));
  CHECK(test::max_abs(x - expected) < 1e-15);
  CHECK(EulerSimulator<CosODE>::order == 1);
}

TEST_CASE("simulate is the last state of simulate_with_trajectory, which starts at x0", "[ode]") {
  NonlinearODE ode;
  EulerSimulator<NonlinearODE> sim(ode);
  Matrix<double> x0(2, 4);
  x0 << 1.0, -1.0, 0.5, 2.0,  //
      0.0, 0.5, -2.0, 1.0;
  const Vector<double> ts = linspace(0.0, 1.0, 11);
  const std::vector<Matrix<double>> traj = sim.simulate_with_trajectory(x0, ts);
  REQUIRE(traj.size() == 11);
  CHECK(traj.front() == x0);
  CHECK(sim.simulate(x0, ts) == traj.back());
  // Every element is one Euler step from the previous one.
  for (std::size_t k = 1; k < traj.size(); ++k) {
    Matrix<double> u(2, 4);
    ode.drift(traj[k - 1], ts(Index(k - 1)), u);
    const double h = ts(Index(k)) - ts(Index(k - 1));
    CHECK(test::max_abs(traj[k] - (traj[k - 1] + h * u)) < 1e-15);
  }
  // In place, and with a single point (no step).
  Matrix<double> y = x0;
  sim.simulate_inplace(y, ts);
  CHECK(y == traj.back());
  const Vector<double> single = Vector<double>::Constant(1, 0.3);
  CHECK(sim.simulate(x0, single) == x0);
  const auto one = sim.simulate_with_trajectory(x0, single);
  REQUIRE(one.size() == 1);
  CHECK(one[0] == x0);
  // The grid may be a row vector or a float vector.
  const RowVector<double> row = ts.transpose();
  CHECK(sim.simulate(x0, row) == traj.back());
}

TEST_CASE("Euler: simulating a batch equals simulating each column alone", "[ode]") {
  // The reference implementation's simulate looped over the batch axis: with 5 columns and a 13-point grid, any mix
  // of the two would show up here.
  NonlinearODE ode;
  EulerSimulator<NonlinearODE> sim(ode);
  Matrix<double> x0(2, 5);
  x0 << 1.0, -1.0, 0.5, 2.0, 0.0,  //
      0.0, 0.5, -2.0, 1.0, 3.0;
  const Vector<double> ts = linspace(0.0, 1.0, 13);
  const Matrix<double> batch = sim.simulate(x0, ts);
  for (Index j = 0; j < 5; ++j) {
    const Matrix<double> alone = sim.simulate(x0.col(j), ts);
    CHECK(test::max_abs(alone - batch.col(j)) == 0.0);
  }
  // A linear ODE counts its drift calls: one per step, whatever the batch size.
  LinearODE lin{Vector<double>::Constant(3, -1.0)};
  EulerSimulator<LinearODE> lsim(lin);
  lsim.simulate(Matrix<double>::Ones(3, 7), linspace(0.0, 1.0, 4));
  CHECK(lin.calls == 3);

  // With a learned vector field (an MLP), in float.
  const MLPVectorField<float> model(2, {16, 16}, 3);
  LearnedVectorFieldODE ode2(model);
  EulerSimulator sim2(ode2);
  Rng rng(3);
  Matrix<float> z0(2, 6);
  rng.fill_normal(z0);
  const Vector<double> grid = linspace(0.0, 1.0, 9);
  const Matrix<float> zb = sim2.simulate(z0, grid);
  for (Index j = 0; j < 6; ++j) {
    const Matrix<float> alone = sim2.simulate(z0.col(j), grid);
    CHECK(test::max_abs(alone - zb.col(j)) < 1e-5f);
  }
}

TEST_CASE("LearnedVectorFieldODE's drift is the model's output", "[ode]") {
  const MLPVectorField<double> model(2, {8}, 4);
  LearnedVectorFieldODE ode(model);
  CHECK(ode.dim() == 2);
  CHECK(&ode.model() == &model);
  Matrix<double> x(2, 3), out(2, 3);
  x << 0.1, 0.2, 0.3, -1.0, 0.0, 1.0;
  ode.drift(x, 0.4, out);
  CHECK(out == model(x, 0.4));
  // Euler with the learned field: x1 = x0 + h u(x0, 0).
  EulerSimulator sim(ode);
  Vector<double> ts(2);
  ts << 0.0, 0.1;
  CHECK(test::max_abs(sim.simulate(x, ts) - (x + 0.1 * model(x, 0.0))) < 1e-15);
  // Times outside [0, 1] reach the model, which refuses them.
  Vector<double> beyond(2);
  beyond << 0.0, 1.5;
  Vector<double> late(2);
  late << 1.2, 1.5;
  CHECK_NOTHROW(sim.simulate(x, beyond));  // the drift is evaluated at t = 0 only
  CHECK_THROWS_WITH(sim.simulate(x, late), Catch::Contains("argument 't'"));
}

TEST_CASE("EulerSimulator refuses bad grids and shapes, naming them", "[ode][errors]") {
  LinearODE ode{Vector<double>::Ones(2)};
  EulerSimulator<LinearODE> sim(ode);
  const Matrix<double> x0 = Matrix<double>::Ones(2, 3);
  Vector<double> down(3), flat(3), with_nan(3), with_inf(3);
  down << 0.0, 0.5, 0.4;
  flat << 0.0, 0.5, 0.5;
  with_nan << 0.0, std::numeric_limits<double>::quiet_NaN(), 1.0;
  with_inf << 0.0, 0.5, std::numeric_limits<double>::infinity();
  CHECK_THROWS_AS(sim.simulate(x0, down), InvalidArgument);
  CHECK_THROWS_WITH(sim.simulate(x0, down), Catch::Contains("argument 'ts[2]'"));
  CHECK_THROWS_WITH(sim.simulate(x0, flat), Catch::Contains("argument 'ts[2]'"));
  CHECK_THROWS_WITH(sim.simulate(x0, with_nan), Catch::Contains("argument 'ts[1]'"));
  CHECK_THROWS_WITH(sim.simulate(x0, with_inf), Catch::Contains("argument 'ts[2]'"));
  CHECK_THROWS_WITH(sim.simulate_with_trajectory(x0, down), Catch::Contains("argument 'ts[2]'"));
  CHECK_THROWS_WITH(sim.simulate(x0, Vector<double>()), Catch::Contains("argument 'ts.size()'"));
  const Vector<double> ok = linspace(0.0, 1.0, 3);
  CHECK_THROWS_AS(sim.simulate(Matrix<double>::Ones(3, 3), ok), DimensionMismatch);
  CHECK_THROWS_WITH(sim.simulate(Matrix<double>::Ones(3, 3), ok), Catch::Contains("argument 'x0'"));
  CHECK_THROWS_WITH(sim.simulate_with_trajectory(Matrix<double>::Ones(1, 3), ok), Catch::Contains("argument 'x0'"));
  CHECK_THROWS_WITH(sim.simulate(Matrix<double>(2, 0), ok), Catch::Contains("argument 'x0.cols() (batch size)'"));
  Matrix<double> y = x0;
  CHECK_THROWS_WITH(sim.simulate_inplace(y, down), Catch::Contains("argument 'ts[2]'"));
  CHECK(y == x0);  // refused before any step
}

}  // namespace FLOWMATCH_TEST_FILE_ID
