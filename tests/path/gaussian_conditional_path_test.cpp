// GaussianConditionalPath: the conditional vector field against d/dt of the path, the two forms
// of the field against each other, the score against d/dx log N, sampling statistics, training
// batches, and argument checks.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include <flowmatch/distribution/gaussian.hpp>
#include <flowmatch/distribution/gaussian_mixture.hpp>
#include <flowmatch/path/concepts.hpp>
#include <flowmatch/path/gaussian_conditional_path.hpp>
#include <flowmatch/schedule/linear_alpha.hpp>
#include <flowmatch/schedule/linear_beta.hpp>
#include <flowmatch/schedule/square_root_beta.hpp>

#include "support/compare.hpp"
#include "support/gradient_check.hpp"
#include "support/stats.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;
using test::kSigmas;

using SqrtPath = GaussianConditionalPath<LinearAlpha, SquareRootBeta, GaussianMixture>;
using LinPath = GaussianConditionalPath<LinearAlpha, LinearBeta, GaussianMixture>;
static_assert(ConditionalPath<SqrtPath>);
static_assert(ConditionalPath<GaussianConditionalPath<LinearAlpha, LinearBeta, Gaussian>>);

namespace {

const GaussianMixture& seed_mixture() {
  static const GaussianMixture g = GaussianMixture::symmetric_2D(11, 1.0, 10.0);
  return g;
}

Matrix<double> fixed_z() {
  Matrix<double> z(2, 4);
  z << 10.0, -3.0, 0.5, 7.0,  //
      -1.0, 8.0, -9.5, 0.0;
  return z;
}

// x(t) from the path's own sampler, with a generator copied from `rng` so that every call uses
// the same eps.
template <class Path>
Matrix<double> path_at(const Path& path, const Matrix<double>& z, double t, const Rng& rng) {
  Rng copy = rng;
  Matrix<double> x(z.rows(), z.cols());
  path.sample_conditional_path(z, t, copy, x);
  return x;
}

}  // namespace

TEMPLATE_TEST_CASE("The conditional vector field is d/dt of the conditional path x_t = alpha_t z + beta_t eps",
                   "[path]", SquareRootBeta, LinearBeta) {
  using Path = GaussianConditionalPath<LinearAlpha, TestType, GaussianMixture>;
  const Path path(seed_mixture());
  const Matrix<double> z = fixed_z();
  const Rng rng(17);
  Matrix<double> eps(2, 4);
  Rng(rng).fill_normal(eps);  // the eps sample_conditional_path draws (column-major)
  Matrix<double> u_seed(2, 4), u_noise(2, 4);
  // Central difference with h = 1e-6. Truncation: h^2 / 6 |beta'''| |eps|, with
  // |beta'''| = 3/8 (1 - t)^-2.5 = 671 at t = 0.95 for SquareRootBeta: below 4e-10. Rounding:
  // |x| <= 15 gives 2e-15 per x, 2e-9 after dividing by 2h. Tolerance 2e-8.
  for (double t : {0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95}) {
    INFO("t = " << t);
    const double h = 1e-6;
    const Matrix<double> dxdt = (path_at(path, z, t + h, rng) - path_at(path, z, t - h, rng)) / (2.0 * h);
    const Matrix<double> x = path_at(path, z, t, rng);
    CHECK(test::max_abs(x - (t * z + path.beta().value(t) * eps)) < 1e-13);
    path.conditional_vector_field(x, z, t, u_seed);
    path.conditional_vector_field_from_noise(z, eps, t, u_noise);
    CHECK(test::max_abs(u_seed - dxdt) < 2e-8);
    CHECK(test::max_abs(u_noise - dxdt) < 2e-8);
  }
}

TEMPLATE_TEST_CASE("conditional_vector_field (reference form) equals conditional_vector_field_from_noise on the path",
                   "[path]", SquareRootBeta, LinearBeta) {
  using Path = GaussianConditionalPath<LinearAlpha, TestType, GaussianMixture>;
  const Path path(seed_mixture());
  Rng rng(5);
  constexpr Index n = 300;
  Matrix<double> z(2, n), eps(2, n), x(2, n), u_seed(2, n), u_noise(2, n);
  seed_mixture().sample(rng, z);
  RowVector<double> t(n);
  for (Index j = 0; j < n; ++j) t(j) = 0.999 * static_cast<double>(j) / static_cast<double>(n - 1);  // [0, 0.999]
  Rng copy = rng;
  path.sample_conditional_path(z, t, rng, x);
  copy.fill_normal(eps);
  path.conditional_vector_field(x, z, t, u_seed);
  path.conditional_vector_field_from_noise(z, eps, t, u_noise);
  for (Index j = 0; j < n; ++j) {
    INFO("t = " << t(j));
    // The reference form recovers eps = (x - alpha z) / beta: rounding of x (1e-16 * |x|) grows by
    // |beta'| / beta <= 0.5 / (1 - t) = 500.
    const double scale = 1.0 + std::abs(path.beta().derivative(t(j))) / path.beta().value(t(j)) * 20.0;
    CHECK(test::max_abs(u_seed.col(j) - u_noise.col(j)) < 1e-14 * scale);
    // The division-free form is alpha' z + beta' eps.
    CHECK(test::max_abs(u_noise.col(j) - (z.col(j) + path.beta().derivative(t(j)) * eps.col(j))) < 1e-13);
  }
  // A float u written from double inputs.
  Matrix<float> uf(2, n);
  path.conditional_vector_field_from_noise(z, eps, t, uf);
  CHECK(test::max_abs(uf.cast<double>() - u_noise) < 1e-6 * (1.0 + test::max_abs(u_noise)));
}

TEMPLATE_TEST_CASE("conditional_score is the gradient of log N(x; alpha z, beta^2 I)", "[path]", SquareRootBeta, LinearBeta) {
  using Path = GaussianConditionalPath<LinearAlpha, TestType, GaussianMixture>;
  const Path path(seed_mixture());
  const Matrix<double> z = fixed_z();
  Matrix<double> x(2, 4);
  Rng rng(8);
  rng.fill_normal(x);
  x += 0.5 * z;
  Matrix<double> score(2, 4);
  for (double t : {0.0, 0.3, 0.6, 0.9}) {
    INFO("t = " << t);
    const double a = path.alpha().value(t), b = path.beta().value(t);
    const auto log_n = [&](const Matrix<double>& xx, Index j) {
      const Gaussian g(a * z.col(j), Vector<double>::Constant(2, b));
      return g.log_density(xx.col(j))(0);
    };
    path.conditional_score(x, z, t, score);
    for (Index j = 0; j < 4; ++j)
      for (Index i = 0; i < 2; ++i) {
        Matrix<double> xp = x, xm = x;
        const double h = 1e-5;  // log N is quadratic in x: the central difference is exact up to rounding
        xp(i, j) += h;
        xm(i, j) -= h;
        const double numeric = (log_n(xp, j) - log_n(xm, j)) / (2.0 * h);
        CHECK(score(i, j) == Approx(numeric).epsilon(1e-6).margin(1e-6));
        CHECK(score(i, j) == Approx(-(x(i, j) - a * z(i, j)) / (b * b)).epsilon(1e-14));
      }
  }
}

TEST_CASE("sample_conditional_path: mean alpha_t z and std beta_t", "[path][statistical]") {
  const SqrtPath path(seed_mixture());
  constexpr Index n = 100'000;
  Vector<double> z0(2);
  z0 << 6.0, -4.0;
  const Matrix<double> z = z0.replicate(1, n);
  Rng rng(21);
  Matrix<double> x(2, n);
  for (double t : {0.0, 0.3, 0.8}) {
    INFO("t = " << t);
    path.sample_conditional_path(z, t, rng, x);
    const double a = t, b = std::sqrt(1.0 - t);
    for (Index i = 0; i < 2; ++i) {
      const test::Moments m = test::row_moments(x, i);
      CHECK(std::abs(m.mean - a * z0(i)) < kSigmas * b / std::sqrt(double(n)));
      CHECK(std::abs(std::sqrt(m.variance) - b) < kSigmas * b / std::sqrt(2.0 * n));
      CHECK(std::abs(m.skewness) < kSigmas * std::sqrt(6.0 / n));
    }
  }
  // One time per column: t = 1 gives exactly z, t = 0 gives exactly eps.
  Matrix<double> zz = fixed_z(), xx(2, 4), eps(2, 4);
  RowVector<double> tv(4);
  tv << 1.0, 0.0, 1.0, 0.0;
  Rng r1(3), r2(3);
  path.sample_conditional_path(zz, tv, r1, xx);
  r2.fill_normal(eps);
  CHECK(xx.col(0) == zz.col(0));
  CHECK(xx.col(2) == zz.col(2));
  CHECK(xx.col(1) == eps.col(1));
  CHECK(xx.col(3) == eps.col(3));
}

TEST_CASE("sample_marginal_path: N(0, I) at t = 0, p_data at t = 1, and the mixture in between", "[path][statistical]") {
  // p_data = N(m, diag(s^2)) makes every marginal Gaussian with known moments:
  // x_t = t z + (1 - t) eps (LinearBeta): mean t m, variance t^2 s^2 + (1 - t)^2.
  Vector<double> m(2), s(2);
  m << 3.0, -1.0;
  s << 0.5, 2.0;
  const GaussianConditionalPath<LinearAlpha, LinearBeta, Gaussian> path{Gaussian(m, s)};
  constexpr Index n = 100'000;
  Rng rng(22);
  Matrix<double> x(2, n);
  for (double t : {0.0, 0.5, 1.0}) {
    INFO("t = " << t);
    path.sample_marginal_path(t, rng, x);
    for (Index i = 0; i < 2; ++i) {
      const double mean = t * m(i);
      const double sd = std::sqrt(t * t * s(i) * s(i) + (1 - t) * (1 - t));
      const test::Moments mm = test::row_moments(x, i);
      CHECK(std::abs(mm.mean - mean) < kSigmas * sd / std::sqrt(double(n)));
      CHECK(std::abs(std::sqrt(mm.variance) - sd) < kSigmas * sd / std::sqrt(2.0 * n));
    }
  }
  // The reference workload's mixture at t = 1: mean 0, variance R^2 / 2 + s^2 = 51 per coordinate, and all
  // 11 modes with weight 1/11; at t = 0: N(0, I) moments.
  const SqrtPath seed(seed_mixture());
  Matrix<float> xf(2, n);
  seed.sample_marginal_path(1.0, rng, xf);
  for (Index i = 0; i < 2; ++i) {
    const test::Moments mm = test::row_moments(xf, i);
    CHECK(std::abs(mm.mean) < kSigmas * std::sqrt(51.0 / n));
    // x = 10 cos(theta) + n: E x^4 = 1e4 * 3/8 + 6 * 100 / 2 + 3 = 4053, so Var(x^2) = 4053 - 51^2
    // = 1452 and the sample variance has standard error sqrt(1452 / n).
    CHECK(std::abs(mm.variance - 51.0) < kSigmas * std::sqrt(1452.0 / n));
  }
  for (Index c : seed_mixture().mode_counts(xf, 7.0))
    CHECK(std::abs(double(c) - n / 11.0) < kSigmas * test::binomial_sd(double(n), 1.0 / 11.0));
  seed.sample_marginal_path(0.0, rng, xf);
  for (Index i = 0; i < 2; ++i) {
    const test::Moments mm = test::row_moments(xf, i);
    CHECK(std::abs(mm.mean) < kSigmas / std::sqrt(double(n)));
    CHECK(std::abs(mm.variance - 1.0) < kSigmas * std::sqrt(2.0 / n));
    CHECK(std::abs(mm.excess_kurtosis) < kSigmas * std::sqrt(24.0 / n));
  }
}

TEMPLATE_TEST_CASE("sample_training_batch: finite, t on the 2^-24 grid below 1, x and u consistent",
                   "[path][statistical]", float, double) {
  const SqrtPath path(seed_mixture());
  Rng rng(23);
  TrainingBatch<TestType> batch(2, 256);
  constexpr int batches = 200;
  double t_min = 1.0, t_max = 0.0, t_sum = 0.0;
  std::vector<double> recovered_eps;
  bool finite = true, on_grid = true;
  double worst_u = 0.0;
  const double ulp = std::numeric_limits<TestType>::epsilon();
  for (int k = 0; k < batches; ++k) {
    path.sample_training_batch(rng, batch);
    finite = finite && batch.z.allFinite() && batch.t.allFinite() && batch.x.allFinite() && batch.u.allFinite();
    for (Index j = 0; j < batch.size(); ++j) {
      const double t = static_cast<double>(batch.t(j));
      t_min = std::min(t_min, t);
      t_max = std::max(t_max, t);
      t_sum += t;
      on_grid = on_grid && t * 16777216.0 == std::floor(t * 16777216.0);
      const double a = t, b = std::sqrt(1.0 - t), da = 1.0, db = -0.5 / b;
      for (Index i = 0; i < 2; ++i) {
        const double z = batch.z(i, j), x = batch.x(i, j), u = batch.u(i, j);
        const double e = (x - a * z) / b;  // the eps behind x
        // u = alpha' z + beta' (x - alpha z) / beta. Rounding: x and u are stored in TestType
        // (relative ulp); the recovered eps carries |x| ulp / beta, multiplied by |beta'|.
        const double tol = 4.0 * ulp * (std::abs(u) + std::abs(db) / b * (std::abs(x) + std::abs(a * z)) + std::abs(z));
        worst_u = test::worse(worst_u, std::abs(u - (da * z + db * e)) / tol);
        if (t < 0.99) recovered_eps.push_back(e);
      }
    }
  }
  const double n = double(batches) * 256.0;
  CHECK(finite);
  CHECK(on_grid);
  CHECK(t_min >= 0.0);
  CHECK(t_max <= 1.0 - 0x1.0p-24);
  CHECK(t_min < 1e-3);
  CHECK(t_max > 1.0 - 1e-3);
  CHECK(std::abs(t_sum / n - 0.5) < kSigmas * std::sqrt(1.0 / 12.0 / n));
  CHECK(worst_u <= 1.0);
  // x really is alpha z + beta eps with eps ~ N(0, 1), independent of z and t.
  const test::Moments m = test::moments(recovered_eps);
  const double ne = double(recovered_eps.size());
  CHECK(std::abs(m.mean) < kSigmas / std::sqrt(ne));
  CHECK(std::abs(m.variance - 1.0) < kSigmas * std::sqrt(2.0 / ne));
  CHECK(std::abs(m.excess_kurtosis) < kSigmas * std::sqrt(24.0 / ne));
  // z follows p_data: 1/11 of the samples in each mode.
  Rng rz(24);
  TrainingBatch<TestType> big(2, 44'000);
  path.sample_training_batch(rz, big);
  for (Index c : seed_mixture().mode_counts(big.z, 7.0))
    CHECK(std::abs(double(c) - 4000.0) < kSigmas * test::binomial_sd(44'000.0, 1.0 / 11.0));
}

TEST_CASE("GaussianConditionalPath: sample_training_batch is reproducible and works for any batch size", "[path]") {
  const LinPath path(seed_mixture());
  TrainingBatch<float> a(2, 7), b(2, 7);
  Rng ra(1), rb(1);
  path.sample_training_batch(ra, a);
  path.sample_training_batch(rb, b);
  CHECK(a.z == b.z);
  CHECK(a.t == b.t);
  CHECK(a.x == b.x);
  CHECK(a.u == b.u);
  // LinearBeta: u = z - eps and x = t z + (1 - t) eps, so u = (z - x) / (1 - t) (float rounding
  // of x grows by 1 / (1 - t)).
  const double ulp = std::numeric_limits<float>::epsilon();
  for (Index j = 0; j < 7; ++j)
    for (Index i = 0; i < 2; ++i) {
      const double z = a.z(i, j), x = a.x(i, j), u = a.u(i, j), t = a.t(j);
      CHECK(std::abs(u - (z - x) / (1.0 - t)) <= 4.0 * ulp * (std::abs(u) + (std::abs(z) + std::abs(x)) / (1.0 - t)));
    }
  TrainingBatch<double> one(2, 1);
  path.sample_training_batch(ra, one);
  CHECK(one.u.allFinite());
  CHECK_THROWS_WITH(TrainingBatch<float>(2, 0), Catch::Contains("argument 'n (batch size)'"));
  CHECK_THROWS_WITH(TrainingBatch<float>(0, 3), Catch::Contains("argument 'dim'"));
}

TEST_CASE("GaussianConditionalPath refuses times outside the unit interval, naming t", "[path][errors]") {
  const SqrtPath path(seed_mixture());
  const Matrix<double> z = fixed_z();
  Matrix<double> x(2, 4), u(2, 4), eps = Matrix<double>::Zero(2, 4);
  Rng rng(0);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (double t : {-0.1, 1.5, nan}) {
    INFO("t = " << t);
    CHECK_THROWS_AS(path.sample_conditional_path(z, t, rng, x), InvalidArgument);
    CHECK_THROWS_WITH(path.sample_conditional_path(z, t, rng, x), Catch::Contains("argument 't'"));
    CHECK_THROWS_WITH(path.conditional_vector_field(z, z, t, u), Catch::Contains("argument 't'"));
    CHECK_THROWS_WITH(path.conditional_vector_field_from_noise(z, eps, t, u), Catch::Contains("argument 't'"));
    CHECK_THROWS_WITH(path.conditional_score(z, z, t, u), Catch::Contains("argument 't'"));
    CHECK_THROWS_WITH(path.sample_marginal_path(t, rng, x), Catch::Contains("argument 't'"));
  }
  RowVector<double> tv(4);
  tv << 0.1, 0.2, 1.2, 0.3;
  CHECK_THROWS_WITH(path.sample_conditional_path(z, tv, rng, x), Catch::Contains("argument 't[2]'"));
  CHECK_THROWS_WITH(path.conditional_vector_field(z, z, tv, u), Catch::Contains("argument 't[2]'"));
  RowVector<double> short_t(3);
  short_t << 0.1, 0.2, 0.3;
  CHECK_THROWS_AS(path.conditional_vector_field(z, z, short_t, u), DimensionMismatch);
  CHECK_THROWS_WITH(path.conditional_vector_field(z, z, short_t, u), Catch::Contains("argument 't'"));
}

TEST_CASE("GaussianConditionalPath at t = 1: the reference form and the score throw, from_noise only where beta' is infinite",
          "[path][errors]") {
  const SqrtPath sqrt_path(seed_mixture());
  const LinPath lin_path(seed_mixture());
  const Matrix<double> z = fixed_z();
  Matrix<double> eps(2, 4), u(2, 4);
  Rng(1).fill_normal(eps);
  CHECK_THROWS_AS(sqrt_path.conditional_vector_field(z, z, 1.0, u), InvalidArgument);
  CHECK_THROWS_WITH(sqrt_path.conditional_vector_field(z, z, 1.0, u), Catch::Contains("argument 't'"));
  CHECK_THROWS_WITH(lin_path.conditional_vector_field(z, z, 1.0, u), Catch::Contains("argument 't'"));
  CHECK_THROWS_WITH(sqrt_path.conditional_score(z, z, 1.0, u), Catch::Contains("argument 't'"));
  RowVector<double> tv(4);
  tv << 0.5, 0.5, 0.5, 1.0;
  CHECK_THROWS_WITH(lin_path.conditional_vector_field(z, z, tv, u), Catch::Contains("argument 't'"));
  CHECK_THROWS_AS(sqrt_path.conditional_vector_field_from_noise(z, eps, 1.0, u), InvalidArgument);
  CHECK_THROWS_WITH(sqrt_path.conditional_vector_field_from_noise(z, eps, 1.0, u), Catch::Contains("argument 't'"));
  CHECK_THROWS_WITH(sqrt_path.conditional_vector_field_from_noise(z, eps, tv, u), Catch::Contains("argument 't'"));
  // LinearBeta: beta' = -1 at t = 1 is finite: u = z - eps.
  lin_path.conditional_vector_field_from_noise(z, eps, 1.0, u);
  CHECK(test::max_abs(u - (z - eps)) == 0.0);
  // Just below 1, the reference form is finite and agrees with from_noise.
  const double t = 1.0 - 0x1.0p-24;
  Matrix<double> x(2, 4), u2(2, 4);
  x = t * z + std::sqrt(1.0 - t) * eps;
  sqrt_path.conditional_vector_field(x, z, t, u);
  sqrt_path.conditional_vector_field_from_noise(z, eps, t, u2);
  CHECK(u.allFinite());
  CHECK(test::max_abs(u - u2) < 1e-10 * test::max_abs(u2));  // rounding of x (1e-15) * |beta'| / beta = 8e6
}

TEST_CASE("GaussianConditionalPath refuses mismatched shapes with DimensionMismatch, naming the argument", "[path][errors]") {
  const SqrtPath path(seed_mixture());
  Rng rng(0);
  const Matrix<double> z = fixed_z();  // 2 x 4
  const Matrix<double> z3 = Matrix<double>::Zero(3, 4), z5 = Matrix<double>::Zero(2, 5);
  Matrix<double> x(2, 4), u(2, 4), x3(3, 4), u5(2, 5);
  CHECK_THROWS_AS(path.sample_conditional_path(z3, 0.5, rng, x3), DimensionMismatch);
  CHECK_THROWS_WITH(path.sample_conditional_path(z3, 0.5, rng, x3), Catch::Contains("argument 'z'"));
  CHECK_THROWS_WITH(path.sample_conditional_path(z, 0.5, rng, u5), Catch::Contains("argument 'x'"));
  CHECK_THROWS_AS(path.conditional_vector_field(x3, z3, 0.5, x3), DimensionMismatch);
  CHECK_THROWS_WITH(path.conditional_vector_field(x3, z3, 0.5, x3), Catch::Contains("argument 'x'"));
  CHECK_THROWS_WITH(path.conditional_vector_field(z, z5, 0.5, u), Catch::Contains("argument 'z'"));
  CHECK_THROWS_WITH(path.conditional_vector_field(z, z, 0.5, u5), Catch::Contains("argument 'u'"));
  CHECK_THROWS_WITH(path.conditional_vector_field_from_noise(z, z5, 0.5, u), Catch::Contains("argument 'eps'"));
  CHECK_THROWS_WITH(path.conditional_vector_field_from_noise(z, z, 0.5, u5), Catch::Contains("argument 'u'"));
  CHECK_THROWS_WITH(path.conditional_vector_field_from_noise(z3, z3, 0.5, x3), Catch::Contains("argument 'z'"));
  CHECK_THROWS_WITH(path.conditional_score(z, z, 0.5, u5), Catch::Contains("argument 'score'"));
  CHECK_THROWS_WITH(path.conditional_score(z, z5, 0.5, u), Catch::Contains("argument 'z'"));
  CHECK_THROWS_AS(path.sample_marginal_path(0.5, rng, x3), DimensionMismatch);
  CHECK_THROWS_WITH(path.sample_marginal_path(0.5, rng, x3), Catch::Contains("argument 'x'"));
  CHECK_THROWS_WITH(path.sample_conditioning_variable(rng, x3), Catch::Contains("argument 'z'"));
  TrainingBatch<float> wrong(3, 8);
  CHECK_THROWS_AS(path.sample_training_batch(rng, wrong), DimensionMismatch);
  CHECK_THROWS_WITH(path.sample_training_batch(rng, wrong), Catch::Contains("argument 'batch.z'"));
  // The conditioning variable is p_data.
  Matrix<double> zs(2, 11'000);
  path.sample_conditioning_variable(rng, zs);
  for (Index c : seed_mixture().mode_counts(zs, 7.0))
    CHECK(std::abs(double(c) - 1000.0) < kSigmas * test::binomial_sd(11'000.0, 1.0 / 11.0));
  CHECK(path.dim() == 2);
  CHECK(path.p_data().nmodes() == 11);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
