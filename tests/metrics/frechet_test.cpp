// frechet_distance and gaussian_moments: a set against itself is 0; closed forms (1-D, diagonal
// covariances, the 2-D formula tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)) for non-commuting pairs);
// d-dimensional non-commuting pairs against a second route (the eigenvalues of C_a C_b, whose
// square roots sum to the same trace); sample estimates converging to the closed form; symmetry;
// precise moments with a large offset; batched accumulation; errors.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>
#include <Eigen/QR>

#include <flowmatch/core/random.hpp>
#include <flowmatch/metrics/frechet.hpp>

#include "support/errors.hpp"
#include "support/compare.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

GaussianMoments given(const Eigen::VectorXd& mean, const Eigen::MatrixXd& cov) {
  GaussianMoments g;
  g.mean = mean;
  g.covariance = cov;
  return g;
}

// A random symmetric positive definite d x d matrix with eigenvalues spread over [0.1, 4].
Eigen::MatrixXd random_spd(Index d, Rng& rng) {
  Eigen::MatrixXd g(d, d);
  rng.fill_normal(g);
  const Eigen::HouseholderQR<Eigen::MatrixXd> qr(g);
  const Eigen::MatrixXd q = qr.householderQ();
  Eigen::VectorXd l(d);
  for (Index i = 0; i < d; ++i) l(i) = 0.1 + 3.9 * rng.uniform();
  Eigen::MatrixXd a = q * l.asDiagonal() * q.transpose();
  return 0.5 * (a + a.transpose());
}

// tr((A^1/2 B A^1/2)^1/2) a second way: A^1/2 B A^1/2 is similar to A B (conjugate by A^1/2),
// so their eigenvalues agree; computed with the general (non-symmetric) eigen-solver on A B.
double trace_sqrt_via_product(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b) {
  const Eigen::EigenSolver<Eigen::MatrixXd> es(a * b, false);
  double s = 0.0;
  for (Index i = 0; i < a.rows(); ++i) s += std::sqrt(std::max(0.0, es.eigenvalues()(i).real()));
  return s;
}

// n draws of N(mean, cov), one per column.
Eigen::MatrixXd draws(const Eigen::VectorXd& mean, const Eigen::MatrixXd& cov, Index n, Rng& rng) {
  const Eigen::MatrixXd l = cov.llt().matrixL();
  Eigen::MatrixXd z(mean.size(), n);
  rng.fill_normal(z);
  Eigen::MatrixXd x = l * z;
  x.colwise() += mean;
  return x;
}

}  // namespace

TEST_CASE("frechet_distance of a set with itself is 0", "[metrics][frechet]") {
  Rng rng(3);
  for (Index d : {1, 5, 64}) {
    Eigen::MatrixXf f(d, 400);
    rng.fill_normal(f);
    f.row(0).array() += 50.0f;  // an offset must not matter
    const GaussianMoments g = gaussian_moments(f);
    const double scale = g.covariance.trace();
    INFO("d = " << d << ", tr C = " << scale);
    CHECK(frechet_distance(f, f) <= 1e-9 * scale);
    CHECK(frechet_distance(g, g) <= 1e-9 * scale);
    // A rank-deficient covariance (fewer vectors than dimensions): still 0, never a NaN.
    const Eigen::MatrixXf few = f.leftCols(std::max<Index>(2, d / 4));
    const double d_few = frechet_distance(few, few);
    CHECK(std::isfinite(d_few));
    CHECK(d_few <= 1e-7 * gaussian_moments(few).covariance.trace());
  }
}

TEST_CASE("frechet_distance matches closed forms", "[metrics][frechet]") {
  SECTION("1-D: (mu_a - mu_b)^2 + (sigma_a - sigma_b)^2") {
    Eigen::VectorXd ma(1), mb(1);
    ma << 1.5;
    mb << -0.5;
    Eigen::MatrixXd ca(1, 1), cb(1, 1);
    ca << 4.0;
    cb << 0.25;
    CHECK(frechet_distance(given(ma, ca), given(mb, cb)) == Approx(4.0 + 1.5 * 1.5).epsilon(1e-14));
  }
  SECTION("diagonal covariances: |dmu|^2 + sum (sqrt a_i - sqrt b_i)^2") {
    Rng rng(5);
    const Index d = 12;
    Eigen::VectorXd ma(d), mb(d), a(d), b(d);
    rng.fill_normal(ma);
    rng.fill_normal(mb);
    for (Index i = 0; i < d; ++i) {
      a(i) = 0.01 + 5.0 * rng.uniform();
      b(i) = 0.01 + 5.0 * rng.uniform();
    }
    const double expected = (ma - mb).squaredNorm() + (a.cwiseSqrt() - b.cwiseSqrt()).squaredNorm();
    const Eigen::MatrixXd ca = a.asDiagonal(), cb = b.asDiagonal();
    CHECK(frechet_distance(given(ma, ca), given(mb, cb)) == Approx(expected).epsilon(1e-12));
    // Rotating both Gaussians by the same orthogonal matrix changes nothing.
    Eigen::MatrixXd g(d, d);
    rng.fill_normal(g);
    const Eigen::MatrixXd q = Eigen::HouseholderQR<Eigen::MatrixXd>(g).householderQ();
    CHECK(frechet_distance(given(q * ma, q * ca * q.transpose()), given(q * mb, q * cb * q.transpose())) ==
          Approx(expected).epsilon(1e-11));
  }
  SECTION("2-D non-commuting: tr sqrt(M) = sqrt(tr(C_a C_b) + 2 sqrt(det C_a det C_b))") {
    Eigen::MatrixXd ca(2, 2), cb(2, 2);
    ca << 2.0, 0.9, 0.9, 1.0;
    cb << 0.5, -0.3, -0.3, 3.0;
    REQUIRE((ca * cb - cb * ca).norm() > 0.5);  // they really do not commute
    Eigen::VectorXd ma(2), mb(2);
    ma << 1.0, -2.0;
    mb << 0.5, 0.5;
    const double tr_sqrt = std::sqrt((ca * cb).trace() + 2.0 * std::sqrt(ca.determinant() * cb.determinant()));
    const double expected = (ma - mb).squaredNorm() + ca.trace() + cb.trace() - 2.0 * tr_sqrt;
    CHECK(frechet_distance(given(ma, ca), given(mb, cb)) == Approx(expected).epsilon(1e-13));
  }
  SECTION("d-dimensional non-commuting pairs: the eigenvalues of C_a C_b") {
    Rng rng(9);
    for (Index d : {3, 10, 40}) {
      const Eigen::MatrixXd ca = random_spd(d, rng), cb = random_spd(d, rng);
      Eigen::VectorXd ma(d), mb(d);
      rng.fill_normal(ma);
      rng.fill_normal(mb);
      const double expected =
          (ma - mb).squaredNorm() + ca.trace() + cb.trace() - 2.0 * trace_sqrt_via_product(ca, cb);
      const double got = frechet_distance(given(ma, ca), given(mb, cb));
      INFO("d = " << d << ": " << got << " vs " << expected);
      CHECK(got == Approx(expected).epsilon(1e-9));
      // Symmetric in its arguments.
      CHECK(frechet_distance(given(mb, cb), given(ma, ca)) == Approx(got).epsilon(1e-10));
      // Identical covariances: only the means differ.
      CHECK(frechet_distance(given(ma, ca), given(mb, ca)) ==
            Approx((ma - mb).squaredNorm()).epsilon(1e-9 * (1.0 + ca.trace() / (ma - mb).squaredNorm())));
    }
  }
}

TEST_CASE("frechet_distance of samples converges to the closed form", "[metrics][frechet]") {
  Rng rng(17);
  const Index d = 4;
  const Eigen::MatrixXd ca = random_spd(d, rng), cb = random_spd(d, rng);
  Eigen::VectorXd ma(d), mb(d);
  rng.fill_normal(ma);
  rng.fill_normal(mb);
  const double exact = frechet_distance(given(ma, ca), given(mb, cb));
  REQUIRE(exact > 1.0);
  double err_small = 0.0, err_large = 0.0;
  for (int rep = 0; rep < 4; ++rep) {
    err_small += std::abs(frechet_distance(draws(ma, ca, 500, rng), draws(mb, cb, 500, rng)) - exact);
    err_large += std::abs(frechet_distance(draws(ma, ca, 50000, rng), draws(mb, cb, 50000, rng)) - exact);
  }
  err_small /= 4.0;
  err_large /= 4.0;
  INFO("exact " << exact << ", mean |error| at n = 500: " << err_small << ", at n = 50000: " << err_large);
  // Errors fall like 1/sqrt(n) (the mean term) or 1/n (the bias): 100x the samples, >= 5x smaller.
  CHECK(err_large < 0.02 * exact);
  CHECK(err_large < err_small / 5.0);
  // Two samples of the same Gaussian: the distance tends to 0.
  CHECK(frechet_distance(draws(ma, ca, 50000, rng), draws(ma, ca, 50000, rng)) < 0.01 * ca.trace());
}

TEST_CASE("gaussian_moments: precise and unbiased in batches or at once", "[metrics][frechet]") {
  // Two vectors 0 and 2: mean 1, unbiased variance 2.
  Eigen::MatrixXd two(1, 2);
  two << 0.0, 2.0;
  const GaussianMoments g2 = gaussian_moments(two);
  CHECK(g2.mean(0) == 1.0);
  CHECK(g2.covariance(0, 0) == 2.0);
  CHECK(g2.count == 2);
  // Float features with a large offset: the moments are accumulated in double and centred.
  Rng rng(2);
  const Index d = 3, n = 5000;
  Eigen::MatrixXf f(d, n);
  rng.fill_normal(f);
  f.row(1) *= 0.01f;
  f.array() += 1e4f;
  const Eigen::MatrixXd fd = f.cast<double>();
  const Eigen::VectorXd mean = fd.rowwise().mean();
  const Eigen::MatrixXd centred = fd.colwise() - mean;
  const Eigen::MatrixXd cov = centred * centred.transpose() / static_cast<double>(n - 1);
  const GaussianMoments g = gaussian_moments(f);
  CHECK(test::max_abs(g.mean - mean) < 1e-9);
  CHECK(test::max_abs(g.covariance - cov) < 1e-9 * test::max_abs(cov));
  CHECK(g.covariance(1, 1) > 0.0);
  CHECK(g.covariance == g.covariance.transpose());
  // The accumulator over uneven batches gives the same moments.
  MomentAccumulator acc(d);
  for (Index j0 = 0, step = 1; j0 < n; j0 += step, step = step * 3 + 1) acc.add(f.middleCols(j0, std::min(step, n - j0)));
  const GaussianMoments gb = acc.moments();
  CHECK(gb.count == n);
  CHECK(test::max_abs(gb.mean - mean) < 1e-9);
  CHECK(test::max_abs(gb.covariance - cov) < 1e-9 * test::max_abs(cov));
}

TEST_CASE("frechet_distance and gaussian_moments: errors", "[metrics][frechet][errors]") {
  Eigen::MatrixXd a = Eigen::MatrixXd::Random(3, 10), b = Eigen::MatrixXd::Random(4, 10);
  CHECK_THROWS_AS(frechet_distance(a, b), DimensionMismatch);
  CHECK_THROWS_AS(frechet_distance(gaussian_moments(a), gaussian_moments(b)), DimensionMismatch);
  CHECK_THROWS_AS(gaussian_moments(a.leftCols(1)), InvalidArgument);
  CHECK(test::error_message([&] { gaussian_moments(a.leftCols(1)); }).find("features.cols()") != std::string::npos);
  CHECK_THROWS_AS(gaussian_moments(Eigen::MatrixXd(0, 5)), InvalidArgument);
  Eigen::MatrixXd nan = a;
  nan(2, 7) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_AS(gaussian_moments(nan), NumericalError);
  CHECK_THROWS_AS(frechet_distance(nan, a), NumericalError);
  MomentAccumulator acc(3);
  CHECK_THROWS_AS(acc.add(nan), NumericalError);
  CHECK(acc.count() == 0);
  CHECK_THROWS_AS(acc.add(b), DimensionMismatch);
  CHECK_THROWS_AS(acc.moments(), InvalidArgument);

  const GaussianMoments ok = gaussian_moments(a);
  GaussianMoments bad = ok;
  bad.covariance(0, 1) += 0.5;  // not symmetric
  CHECK(test::error_message([&] { frechet_distance(ok, bad); }).find("symmetric") != std::string::npos);
  bad = ok;
  bad.covariance = -ok.covariance;  // negative definite
  CHECK(test::error_message([&] { frechet_distance(bad, ok); }).find("positive semi-definite") != std::string::npos);
  bad = ok;
  bad.covariance.resize(3, 2);
  CHECK_THROWS_AS(frechet_distance(ok, bad), DimensionMismatch);
  bad = ok;
  bad.mean(1) = std::numeric_limits<double>::infinity();
  CHECK_THROWS_AS(frechet_distance(ok, bad), NumericalError);
  CHECK_THROWS_AS(frechet_distance(GaussianMoments{}, ok), InvalidArgument);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
