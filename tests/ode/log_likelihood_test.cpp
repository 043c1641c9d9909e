// Log-likelihood by the instantaneous change of variables: on the exact marginal flow from N(0, I)
// to N(m, diag(s^2)) (vector field and densities in closed form) the computed log-density matches
// the true one, with every fixed-step stepper converging at its order; Hutchinson's version is
// exact for a diagonal Jacobian with Rademacher probes and unbiased with Gaussian ones; a
// learned MLP's exact and Hutchinson log-likelihoods agree; bad arguments throw.

#include <catch2/catch.hpp>

#include <cmath>

#include <flowmatch/core/random.hpp>
#include <flowmatch/distribution/gaussian.hpp>
#include <flowmatch/nn/mlp_jacobian.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>
#include <flowmatch/ode/explicit_steppers.hpp>
#include <flowmatch/ode/log_likelihood.hpp>
#include <flowmatch/ode/multistep.hpp>
#include <flowmatch/path/gaussian_marginal_field.hpp>
#include <flowmatch/schedule/linear_alpha.hpp>
#include <flowmatch/schedule/linear_beta.hpp>

#include "support/compare.hpp"

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
