// Log-likelihood by the instantaneous change of variables: on the exact marginal flow from N(0, I)
// to N(m, diag(s^2)) (vector field and densities in closed form) the computed log-density matches
// the true one, with every fixed-step stepper converging at its order; Hutchinson's version is
// exact for a diagonal Jacobian with Rademacher probes and unbiased with Gaussian ones; a
// learned MLP's exact and Hutchinson log-likelihoods agree; bad arguments throw.
// sample_with_log_likelihood (forwards from x0 ~ p0): on the exact flow its samples are the closed
// form's, their log-densities the target's, and log_likelihood() at those samples gives them back.

#include <catch2/catch.hpp>

#include <cmath>

#include <flowmatch/core/random.hpp>
#include <flowmatch/distribution/gaussian.hpp>
#include <flowmatch/nn/mlp_jacobian.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>
#include <flowmatch/ode/dopri5.hpp>
#include <flowmatch/ode/explicit_steppers.hpp>
#include <flowmatch/ode/log_likelihood.hpp>
#include <flowmatch/ode/multistep.hpp>
#include <flowmatch/ode/time_grids.hpp>
#include <flowmatch/path/gaussian_marginal_field.hpp>
#include <flowmatch/schedule/linear_alpha.hpp>
#include <flowmatch/schedule/linear_beta.hpp>
#include <flowmatch/schedule/square_root_beta.hpp>

#include "support/compare.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

using Field = GaussianMarginalField<double, LinearAlpha, LinearBeta>;

Gaussian target() {
  Vector<double> m(3), s(3);
  m << 1.0, -2.0, 0.5;
  s << 0.5, 1.5, 0.2;
  return Gaussian(m, s);
}

template <class St>
double max_error(Index steps) {
  const Gaussian p1 = target();
  Field field(p1);
  ExactDivergence<Field> div(field);
  Rng rng(2);
  const Matrix<double> x1 = p1.sample<double>(50, rng);
  const LogLikelihoodResult<double> r = log_likelihood(div, Gaussian::standard(3), x1, steps, nullptr, St{});
  CHECK(r.nfe == steps * St::stages);
  return test::max_abs(r.log_density - p1.log_density(x1));
}

}  // namespace

TEST_CASE("The log-likelihood of the exact Gaussian flow matches the closed form", "[likelihood]") {
  const double err = max_error<RK4Stepper<double>>(100);
  INFO("RK4, 100 steps: max |log p - true| = " << err);
  CHECK(err < 1e-6);
}

TEST_CASE("The log-likelihood converges with the order of every fixed-step stepper", "[likelihood][order]") {
  const auto rate = [](double a, double b) { return std::log2(a / b); };
  CHECK(rate(max_error<EulerStepper<double>>(100), max_error<EulerStepper<double>>(200)) == Approx(1.0).margin(0.2));
  CHECK(rate(max_error<MidpointStepper<double>>(50), max_error<MidpointStepper<double>>(100)) == Approx(2.0).margin(0.3));
  CHECK(rate(max_error<HeunStepper<double>>(50), max_error<HeunStepper<double>>(100)) == Approx(2.0).margin(0.3));
  CHECK(rate(max_error<RK4Stepper<double>>(10), max_error<RK4Stepper<double>>(20)) == Approx(4.0).margin(0.5));
  CHECK(rate(max_error<AdamsBashforth2Stepper<double>>(50), max_error<AdamsBashforth2Stepper<double>>(100)) == Approx(2.0).margin(0.3));
  CHECK(rate(max_error<AdamsBashforth3Stepper<double>>(50), max_error<AdamsBashforth3Stepper<double>>(100)) == Approx(3.0).margin(0.3));
}

TEST_CASE("Hutchinson log-likelihood: exact with Rademacher probes on a diagonal Jacobian, unbiased with Gaussian ones",
          "[likelihood][hutchinson]") {
  const Gaussian p1 = target();
  Field field(p1);
  Rng rng(5);
  const Matrix<double> x1 = p1.sample<double>(400, rng);
  const Vector<double> truth = p1.log_density(x1);
  ExactDivergence<Field> exact(field);
  const Vector<double> lp_exact = log_likelihood(exact, Gaussian::standard(3), x1, 40).log_density;
  HutchinsonDivergence<Field> rad(field, 1, ProbeKind::rademacher);
  // v^T diag(c) v = sum_i c_i v_i^2 = trace for v_i = +-1: no variance at all.
  CHECK(test::max_abs(log_likelihood(rad, Gaussian::standard(3), x1, 40, &rng).log_density - lp_exact) < 1e-10);
  HutchinsonDivergence<Field> gauss(field, 4, ProbeKind::gaussian);
  const Vector<double> lp_g = log_likelihood(gauss, Gaussian::standard(3), x1, 40, &rng).log_density;
  const Vector<double> diff = lp_g - lp_exact;
  const double mean = diff.mean();
  const double se = std::sqrt((diff.array() - mean).square().sum() / (diff.size() - 1) / diff.size());
  INFO("Gaussian probes: mean error " << mean << ", standard error " << se);
  CHECK(test::max_abs(diff) > 1e-3);  // the estimate is noisy per point...
  CHECK(std::abs(mean) < 4.0 * se);   // ...but unbiased
  CHECK(test::max_abs(lp_exact - truth) < 1e-4);
}

TEST_CASE("A learned MLP's log-likelihood: steppers agree and Hutchinson is unbiased", "[likelihood][hutchinson]") {
  const MLPVectorField<double, SiLU> model(2, {32, 16}, 11);
  using Jac = MLPJacobian<double, SiLU>;
  Jac jac(model);
  Rng rng(6);
  Matrix<double> x1(2, 200);
  rng.fill_normal(x1);
  ExactDivergence<Jac> exact(jac);
  const LogLikelihoodResult<double> r4 = log_likelihood(exact, Gaussian::standard(2), x1, 32);
  const LogLikelihoodResult<double> r4f = log_likelihood(exact, Gaussian::standard(2), x1, 64);
  const LogLikelihoodResult<double> heun = log_likelihood(exact, Gaussian::standard(2), x1, 256, nullptr, HeunStepper<double>{});
  CHECK(test::max_abs(r4.log_density - r4f.log_density) < 1e-6);
  CHECK(test::max_abs(heun.log_density - r4f.log_density) < 1e-3);
  CHECK(r4.nfe == 128);
  HutchinsonDivergence<Jac> hutch(jac, 8, ProbeKind::rademacher);
  const Vector<double> diff = log_likelihood(hutch, Gaussian::standard(2), x1, 32, &rng).log_density - r4.log_density;
  const double mean = diff.mean();
  const double se = std::sqrt((diff.array() - mean).square().sum() / (diff.size() - 1) / diff.size());
  INFO("Hutchinson - exact: mean " << mean << ", standard error " << se);
  CHECK(std::abs(mean) < 4.0 * se + 1e-12);
}

TEST_CASE("log_likelihood refuses zero steps, missing probes' generator and wrong shapes", "[likelihood][errors]") {
  Field field(target());
  ExactDivergence<Field> exact(field);
  HutchinsonDivergence<Field> hutch(field, 2);
  const Matrix<double> x1 = Matrix<double>::Zero(3, 4);
  CHECK_THROWS_WITH(log_likelihood(exact, Gaussian::standard(3), x1, 0), Catch::Contains("argument 'steps'"));
  CHECK_THROWS_WITH(log_likelihood(hutch, Gaussian::standard(3), x1, 4), Catch::Contains("argument 'rng'"));
  CHECK_THROWS_AS(log_likelihood(exact, Gaussian::standard(2), x1, 4), DimensionMismatch);
  CHECK_THROWS_AS(log_likelihood(exact, Gaussian::standard(3), Matrix<double>::Zero(2, 4), 4), DimensionMismatch);
  CHECK_THROWS_WITH(HutchinsonDivergence<Field>(field, 0), Catch::Contains("argument 'probes'"));
}

namespace {

// x0 ~ N(0, I) in 3 dimensions, 200 points.
Matrix<double> noise() {
  Rng rng(21);
  return Gaussian::standard(3).sample<double>(200, rng);
}

// The exact flow from N(0, I) to N(m, diag(s^2)) carries x0 to m + s x0 (each coordinate keeps its
// standard score).
Matrix<double> exact_samples(const Gaussian& p1, const Matrix<double>& x0) {
  return (x0.array().colwise() * p1.std().array()).colwise() + p1.mean().array();
}

}  // namespace

TEST_CASE("sample_with_log_likelihood: the exact Gaussian flow's samples and densities, and log_likelihood agrees",
          "[likelihood][sampling]") {
  const Gaussian p1 = target();
  Field field(p1);
  ExactDivergence<Field> div(field);
  const Matrix<double> x0 = noise();
  const SampleLogLikelihoodResult<double> r = sample_with_log_likelihood(div, Gaussian::standard(3), x0, 64);
  CHECK(r.nfe == 256);  // RK4 by default
  CHECK(test::max_abs(r.x1 - exact_samples(p1, x0)) < 1e-7);
  CHECK(test::max_abs(r.log_density - p1.log_density(r.x1)) < 1e-6);
  CHECK(test::max_abs(r.prior_log_density - Gaussian::standard(3).log_density(x0)) < 1e-12);
  CHECK(test::max_abs(r.log_density - (r.prior_log_density - r.divergence_integral)) < 1e-12);
  CHECK(r.mean() == Approx(r.log_density.mean()));
  // Scoring the samples backwards gives the same densities and carries them back to x0.
  const LogLikelihoodResult<double> back = log_likelihood(div, Gaussian::standard(3), r.x1, 64);
  CHECK(test::max_abs(back.log_density - r.log_density) < 1e-7);
  CHECK(test::max_abs(back.x0 - x0) < 1e-7);
  // Any stepper, any grid: AB3 (1 NFE a step) on a grid shifted towards t = 1, where this target's
  // field varies fastest (its smallest standard deviation, 0.2, makes v_t small there); dopri5.
  const SampleLogLikelihoodResult<double> ab3 =
      sample_with_log_likelihood(div, Gaussian::standard(3), x0, shifted_time_grid(128, 0.5), nullptr, AdamsBashforth3Stepper<double>{});
  CHECK(ab3.nfe == 128);
  CHECK(test::max_abs(ab3.log_density - p1.log_density(ab3.x1)) < 2e-4);
  CHECK(test::max_abs(ab3.x1 - exact_samples(p1, x0)) < 1e-4);
  const SampleLogLikelihoodResult<double> dopri =
      sample_with_log_likelihood(div, Gaussian::standard(3), x0, uniform_time_grid(1), nullptr, Dopri5Stepper<double>(1e-9, 1e-9));
  INFO("dopri5: " << dopri.nfe << " NFE");
  CHECK(test::max_abs(dopri.log_density - p1.log_density(dopri.x1)) < 1e-6);
}

TEST_CASE("sample_with_log_likelihood under the reference schedule beta_t = sqrt(1 - t), with AB2 and Hutchinson",
          "[likelihood][sampling][hutchinson]") {
  // beta'_1 is -infinity: a stepper that evaluates the field at t = 1 (Heun, RK4) would get NaN from
  // this closed form. Adams-Bashforth evaluates only where its steps start.
  const Gaussian p1 = target();
  GaussianMarginalField<double, LinearAlpha, SquareRootBeta> field(p1);
  using F = decltype(field);
  const Matrix<double> x0 = noise();
  ExactDivergence<F> exact(field);
  const auto errors = [&](Index steps) {
    const SampleLogLikelihoodResult<double> r =
        sample_with_log_likelihood(exact, Gaussian::standard(3), x0, steps, nullptr, AdamsBashforth2Stepper<double>{});
    REQUIRE(r.log_density.allFinite());
    return std::pair{test::max_abs(r.x1 - exact_samples(p1, x0)), test::max_abs(r.log_density - p1.log_density(r.x1))};
  };
  const auto [x_coarse, lp_coarse] = errors(100);
  const auto [x_fine, lp_fine] = errors(200);
  INFO("AB2, 100 -> 200 steps: samples " << x_coarse << " -> " << x_fine << ", log-density " << lp_coarse << " -> " << lp_fine);
  CHECK(x_fine < 1e-3);
  CHECK(lp_fine < 1e-2);
  CHECK(std::log2(x_coarse / x_fine) > 1.8);  // second order
  CHECK(std::log2(lp_coarse / lp_fine) > 1.8);
  // Rademacher probes on this diagonal Jacobian give the exact trace: the same result.
  HutchinsonDivergence<F> hutch(field, 1, ProbeKind::rademacher);
  Rng rng(3);
  const SampleLogLikelihoodResult<double> h =
      sample_with_log_likelihood(hutch, Gaussian::standard(3), x0, 200, &rng, AdamsBashforth2Stepper<double>{});
  const SampleLogLikelihoodResult<double> e =
      sample_with_log_likelihood(exact, Gaussian::standard(3), x0, 200, nullptr, AdamsBashforth2Stepper<double>{});
  CHECK(test::max_abs(h.log_density - e.log_density) < 1e-10);
}

TEST_CASE("sample_with_log_likelihood refuses bad grids, missing probes' generator and wrong shapes",
          "[likelihood][sampling][errors]") {
  Field field(target());
  ExactDivergence<Field> exact(field);
  HutchinsonDivergence<Field> hutch(field, 2);
  const Matrix<double> x0 = Matrix<double>::Zero(3, 4);
  const Gaussian p0 = Gaussian::standard(3);
  CHECK_THROWS_WITH(sample_with_log_likelihood(exact, p0, x0, 0), Catch::Contains("argument 'steps'"));
  CHECK_THROWS_WITH(sample_with_log_likelihood(exact, p0, x0, Vector<double>::Zero(1)), Catch::Contains("at least 2 points"));
  Vector<double> backwards(3);
  backwards << 0.0, 0.6, 0.5;
  CHECK_THROWS_WITH(sample_with_log_likelihood(exact, p0, x0, backwards), Catch::Contains("strictly increasing"));
  CHECK_THROWS_WITH(sample_with_log_likelihood(hutch, p0, x0, 4), Catch::Contains("argument 'rng'"));
  CHECK_THROWS_AS(sample_with_log_likelihood(exact, Gaussian::standard(2), x0, 4), DimensionMismatch);
  CHECK_THROWS_AS(sample_with_log_likelihood(exact, p0, Matrix<double>::Zero(2, 4), 4), DimensionMismatch);
  CHECK_THROWS_AS(sample_with_log_likelihood(exact, p0, Matrix<double>::Zero(3, 0), 4), InvalidArgument);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
