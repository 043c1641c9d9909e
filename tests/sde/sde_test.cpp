// SDE sampling: Euler-Maruyama draws its noise once per step; the score recovered from a vector
// field equals the conditional score (point-mass data) and the closed-form Gaussian score; the
// Langevin flow SDE with sigma = 0 is the flow ODE; with sigma > 0 it still reaches a known
// Gaussian target (mean and covariance within sampling error); bad sigma throws.

#include <catch2/catch.hpp>

#include <cmath>

#include <flowmatch/core/random.hpp>
#include <flowmatch/core/time.hpp>
#include <flowmatch/distribution/gaussian.hpp>
#include <flowmatch/ode/euler_simulator.hpp>
#include <flowmatch/ode/learned_vector_field_ode.hpp>
#include <flowmatch/path/gaussian_conditional_path.hpp>
#include <flowmatch/path/gaussian_marginal_field.hpp>
#include <flowmatch/schedule/linear_alpha.hpp>
#include <flowmatch/schedule/linear_beta.hpp>
#include <flowmatch/schedule/square_root_beta.hpp>
#include <flowmatch/sde/concepts.hpp>
#include <flowmatch/sde/euler_maruyama_simulator.hpp>
#include <flowmatch/sde/langevin_flow_sde.hpp>

#include "support/compare.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

// Data = a single point: the marginal path is the conditional path, so the marginal score is the
// conditional score and the marginal field the conditional field.
struct PointMass {
  Vector<double> z;
  Index dim() const { return z.size(); }
  template <class D>
  void sample(Rng&, const Eigen::MatrixBase<D>& out) const {
    auto& o = detail::writable(out);
    for (Index j = 0; j < o.cols(); ++j) o.col(j) = z.cast<typename D::Scalar>();
  }
};

// dX = dW (drift 0, diffusion 1): Brownian motion.
struct Brownian {
  using Scalar = double;
  Index dim() const { return 2; }
  template <class DX, class DO>
  void drift(const Eigen::MatrixBase<DX>&, double, const Eigen::MatrixBase<DO>& out) {
    detail::writable(out).setZero();
  }
  template <class DX, class DO>
  void diffusion(const Eigen::MatrixBase<DX>&, double, const Eigen::MatrixBase<DO>& out) {
    detail::writable(out).setOnes();
  }
};

Gaussian target() {
  Vector<double> m(2), s(2);
  m << 2.0, -1.0;
  s << 0.5, 1.5;
  return Gaussian(m, s);
}

}  // namespace

TEST_CASE("Euler-Maruyama draws one normal per entry per step", "[sde]") {
  static_assert(SDE<Brownian>);
  Brownian bm;
  EulerMaruyamaSimulator sim(bm);
  Matrix<double> x = Matrix<double>::Zero(2, 3);
  Rng rng(42), copy(42);
  sim.step(x, 0.0, 0.25, rng);
  Matrix<double> z(2, 3);
  copy.fill_normal(z);
  CHECK(test::max_abs(x - 0.5 * z) < 1e-15);  // sqrt(0.25) z with the same draws
  CHECK(rng == copy);                          // and no other draw was made
  // Var X_1 = 1 after 50 steps.
  Matrix<double> y = Matrix<double>::Zero(2, 20000);
  sim.simulate_inplace(y, 0.0, 1.0, 50, rng);
  const double var = y.squaredNorm() / static_cast<double>(y.size());
  CHECK(var == Approx(1.0).margin(5.0 * std::sqrt(2.0 / 40000.0)));
}

TEST_CASE("The score recovered from the vector field equals the conditional score for point-mass data", "[sde][score]") {
  Vector<double> z0(2);
  z0 << 1.5, -0.5;
  const GaussianConditionalPath<LinearAlpha, SquareRootBeta, PointMass> path(PointMass{z0});
  Rng rng(3);
  Matrix<double> x(2, 5), z(2, 5), u(2, 5), s(2, 5), ref(2, 5);
  for (const double t : {0.0, 0.1, 0.5, 0.9, 0.999}) {
    rng.fill_normal(x);
    path.p_data().sample(rng, z);
    path.conditional_vector_field(x, z, t, u);
    score_from_vector_field(path.alpha(), path.beta(), t, x, u, s);
    path.conditional_score(x, z, t, ref);
    INFO("t = " << t);
    CHECK(test::max_abs(s - ref) < 1e-9 * (1.0 + test::max_abs(ref)));
  }
  CHECK_THROWS_WITH(score_from_vector_field(path.alpha(), path.beta(), 1.0, x, u, s), Catch::Contains("argument 't'"));
}

TEST_CASE("The score recovered from the Gaussian marginal field equals its closed-form score", "[sde][score]") {
  const GaussianMarginalField<double, LinearAlpha, LinearBeta> field(target());
  Rng rng(8);
  Matrix<double> x(2, 7), u(2, 7), s(2, 7), ref(2, 7);
  for (const double t : {0.05, 0.3, 0.7, 0.95}) {
    rng.fill_normal(x);
    field.forward(x, t, u);
    score_from_vector_field(LinearAlpha{}, LinearBeta{}, t, x, u, s);
    field.score(x, t, ref);
    CHECK(test::max_abs(s - ref) < 1e-10);
  }
}

TEST_CASE("The Langevin flow SDE with sigma = 0 is the flow ODE", "[sde]") {
  using Field = GaussianMarginalField<double, LinearAlpha, LinearBeta>;
  const Field field(target());
  LangevinFlowSDE<Field, LinearAlpha, LinearBeta> sde(field, 0.0);
  EulerMaruyamaSimulator em(sde);
  LearnedVectorFieldODE ode(field);
  EulerSimulator euler(ode);
  Rng rng(1);
  Matrix<double> x0(2, 50);
  rng.fill_normal(x0);
  const Vector<double> ts = linspace(0.0, 1.0, 41);
  CHECK(test::max_abs(em.simulate(x0, ts, rng) - euler.simulate(x0, ts)) < 1e-14);
}

TEST_CASE("The Langevin flow SDE reaches a known Gaussian target for several sigma", "[sde]") {
  using Field = GaussianMarginalField<double, LinearAlpha, LinearBeta>;
  const Gaussian p1 = target();
  const Field field(p1);
  const Index n = 20000;
  for (const double sigma : {0.5, 1.0, 2.0}) {
    LangevinFlowSDE<Field, LinearAlpha, LinearBeta> sde(field, sigma);
    EulerMaruyamaSimulator em(sde);
    Rng rng(17);
    Matrix<double> x(2, n);
    rng.fill_normal(x);  // X_0 ~ N(0, I) = p_0
    em.simulate_inplace(x, 0.0, 1.0, 400, rng);
    const Vector<double> mean = x.rowwise().mean();
    const Matrix<double> c = x.colwise() - mean;
    const Matrix<double> cov = c * c.transpose() / static_cast<double>(n - 1);
    INFO("sigma " << sigma << ": mean " << mean.transpose() << ", cov " << cov.reshaped().transpose());
    for (Index i = 0; i < 2; ++i) {
      const double sd = p1.std()(i), var = sd * sd;
      // 5 standard errors of the sample mean and variance, plus 2% for the O(h) bias of 400 steps.
      CHECK(std::abs(mean(i) - p1.mean()(i)) < 5.0 * sd / std::sqrt(double(n)) + 0.02 * sd);
      CHECK(std::abs(cov(i, i) - var) < 5.0 * var * std::sqrt(2.0 / double(n)) + 0.02 * var);
    }
    CHECK(std::abs(cov(0, 1)) < 5.0 * p1.std()(0) * p1.std()(1) / std::sqrt(double(n)) + 0.01);
  }
}

TEST_CASE("LangevinFlowSDE refuses a negative sigma and simulators check shapes", "[sde][errors]") {
  using Field = GaussianMarginalField<double, LinearAlpha, LinearBeta>;
  const Field field(target());
  using Sde = LangevinFlowSDE<Field, LinearAlpha, LinearBeta>;
  CHECK_THROWS_AS(Sde(field, -0.1), InvalidArgument);
  CHECK_THROWS_WITH(Sde(field, -0.1), Catch::Contains("argument 'sigma'"));
  Sde sde(field, 1.0);
  EulerMaruyamaSimulator em(sde);
  Rng rng(1);
  CHECK_THROWS_AS(em.simulate(Matrix<double>::Zero(3, 4), 0.0, 1.0, 10, rng), DimensionMismatch);
  CHECK_THROWS_WITH(em.simulate(Matrix<double>::Zero(2, 4), 0.0, 1.0, 0, rng), Catch::Contains("argument 'steps'"));
  Matrix<double> x = Matrix<double>::Zero(2, 3), out(2, 3);
  CHECK_THROWS_WITH(sde.drift(x, 1.0, out), Catch::Contains("beta_t > 0"));
}

}  // namespace FLOWMATCH_TEST_FILE_ID
