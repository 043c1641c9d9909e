// Sample metrics on cases with known answers: identical sets give 0, single points give closed
// forms, shifted copies give |m| (W2) and |m| / sqrt(d) (sliced W2), two Gaussians give the
// closed-form W2 within sampling error, exact W2 equals brute force, mean log-density and mode
// coverage agree with the distributions, bad input throws.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <numeric>
#include <vector>

#include <flowmatch/core/random.hpp>
#include <flowmatch/distribution/gaussian.hpp>
#include <flowmatch/distribution/gaussian_mixture.hpp>
#include <flowmatch/metrics/density.hpp>
#include <flowmatch/metrics/distances.hpp>

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

TEST_CASE("Every distance is 0 between identical sets", "[metrics]") {
  Rng rng(1);
  Matrix<double> x(3, 50);
  rng.fill_normal(x);
  CHECK(mmd_rbf(x, x, {0.5, 1.0, 2.0}) == Approx(0.0).margin(1e-12));
  CHECK(energy_distance(x, x) == Approx(0.0).margin(1e-12));
  CHECK(sliced_wasserstein(x, x, 20, rng) == Approx(0.0).margin(1e-12));
  CHECK(wasserstein2(x, x) == Approx(0.0).margin(1e-12));
  // Order does not matter: a permuted copy is the same empirical measure.
  Matrix<double> y = x.rowwise().reverse();
  CHECK(wasserstein2(x, y) == Approx(0.0).margin(1e-12));
  CHECK(energy_distance(x, y) == Approx(0.0).margin(1e-12));
  CHECK(mmd_rbf(x, y, {1.0}) == Approx(0.0).margin(1e-12));
}

TEST_CASE("MMD and energy distance of two single points have closed forms", "[metrics]") {
  Matrix<double> a(2, 1), b(2, 1);
  a << 0.0, 0.0;
  b << 3.0, 4.0;  // |a - b| = 5
  const double h1 = 2.0, h2 = 5.0;
  const double k = std::exp(-25.0 / (2 * h1 * h1)) + std::exp(-25.0 / (2 * h2 * h2));
  CHECK(mmd_rbf(a, b, {h1, h2}) == Approx(2.0 * 2.0 - 2.0 * k).epsilon(1e-12));  // k(a, a) = 2 (two kernels)
  CHECK(energy_distance(a, b) == Approx(10.0).epsilon(1e-12));
  // Two 1-D sets {0, 1} and {2}: 2 * mean(2, 1) - mean(0, 1, 1, 0) - 0 = 3 - 0.5.
  Matrix<float> x(1, 2), y(1, 1);
  x << 0.0f, 1.0f;
  y << 2.0f;
  CHECK(energy_distance(x, y) == Approx(2.5).epsilon(1e-12));
}

TEST_CASE("MMD and energy distance separate different distributions and not equal ones", "[metrics]") {
  Rng rng(5);
  const Gaussian p = Gaussian::standard(2), q(Vector<double>::Constant(2, 1.0), Vector<double>::Ones(2));
  const Matrix<double> x1 = p.sample<double>(400, rng), x2 = p.sample<double>(400, rng), y = q.sample<double>(400, rng);
  const double same = mmd_rbf(x1, x2, {0.5, 1.0, 2.0}), diff = mmd_rbf(x1, y, {0.5, 1.0, 2.0});
  INFO("MMD^2 same " << same << ", different " << diff);
  CHECK(diff > 10 * same);
  CHECK(energy_distance(x1, y) > 10 * energy_distance(x1, x2));
}

TEST_CASE("W2 of a shifted copy is the shift and sliced W2 is the shift over sqrt(d)", "[metrics]") {
  Rng rng(2);
  Matrix<double> x(3, 200);
  rng.fill_normal(x);
  Vector<double> m(3);
  m << 1.0, -2.0, 0.5;
  const Matrix<double> y = x.colwise() + m;
  std::vector<Index> pi;
  CHECK(wasserstein2(x, y, &pi) == Approx(m.norm()).epsilon(1e-10));
  for (Index i = 0; i < 200; ++i) CHECK(pi[static_cast<std::size_t>(i)] == i);  // translation: identity matching
  // E_theta[(theta . m)^2] = |m|^2 / d; 4000 projections: relative standard error below 2%.
  const double sw = sliced_wasserstein(x, y, 4000, rng);
  CHECK(sw * sw == Approx(m.squaredNorm() / 3.0).epsilon(0.06));
}

TEST_CASE("Exact W2 equals brute force over permutations and sorting in 1-D", "[metrics]") {
  Rng rng(9);
  for (int trial = 0; trial < 10; ++trial) {
    Matrix<double> x(2, 6), y(2, 6);
    rng.fill_normal(x);
    rng.fill_normal(y);
    std::vector<Index> p(6);
    std::iota(p.begin(), p.end(), 0);
    double best = std::numeric_limits<double>::infinity();
    do {
      double s = 0.0;
      for (Index i = 0; i < 6; ++i) s += (x.col(i) - y.col(p[static_cast<std::size_t>(i)])).squaredNorm();
      best = std::min(best, s);
    } while (std::next_permutation(p.begin(), p.end()));
    CHECK(wasserstein2(x, y) == Approx(std::sqrt(best / 6.0)).epsilon(1e-12));
  }
  // In 1-D the optimal matching is monotone: W2^2 = mean (sorted x - sorted y)^2.
  Matrix<double> a(1, 300), b(1, 300);
  rng.fill_normal(a);
  rng.fill_uniform(b);
  std::vector<double> sa(a.data(), a.data() + 300), sb(b.data(), b.data() + 300);
  std::sort(sa.begin(), sa.end());
  std::sort(sb.begin(), sb.end());
  double s = 0.0;
  for (std::size_t i = 0; i < 300; ++i) s += (sa[i] - sb[i]) * (sa[i] - sb[i]);
  CHECK(wasserstein2(a, b) == Approx(std::sqrt(s / 300)).epsilon(1e-10));
  // Sliced W2 in 1-D has a single direction (+-1): it is W2 itself.
  CHECK(sliced_wasserstein(a, b, 3, rng) == Approx(std::sqrt(s / 300)).epsilon(1e-10));
}

TEST_CASE("W2 between samples of two Gaussians matches the closed form within sampling error", "[metrics]") {
  // N(0, I) and N((3, 0), diag(2^2, 1)): W2^2 = |mu1 - mu2|^2 + sum (s1 - s2)^2 = 9 + 1 = 10.
  Rng rng(4);
  Vector<double> mu(2), sd(2);
  mu << 3.0, 0.0;
  sd << 2.0, 1.0;
  const Matrix<double> x = Gaussian::standard(2).sample<double>(1000, rng), y = Gaussian(mu, sd).sample<double>(1000, rng);
  const double w2 = wasserstein2(x, y);
  INFO("W2^2 = " << w2 * w2 << " (closed form 10)");
  CHECK(w2 * w2 == Approx(10.0).epsilon(0.05));
}

TEST_CASE("mean_log_density and mode_coverage agree with the distributions", "[metrics]") {
  Rng rng(6);
  const Gaussian g = Gaussian::standard(2);
  const Matrix<double> x = g.sample<double>(20000, rng);
  // E[log N(x; 0, I)] = -log(2 pi) - 1 in 2-D; the sample mean's sd is 1 / sqrt(20000).
  CHECK(mean_log_density(g, x) == Approx(-std::log(2 * std::numbers::pi) - 1.0).margin(5.0 / std::sqrt(20000.0)));
  const GaussianMixture gmm = GaussianMixture::symmetric_2D(5, 0.5, 10.0);
  const Matrix<float> s = gmm.sample<float>(1000, rng);
  const ModeCoverage all = mode_coverage(gmm, s);
  CHECK(all.modes == 5);
  CHECK(all.covered == 5);
  CHECK(all.covered == gmm.modes_covered(s));
  CHECK(all.counts == gmm.mode_counts(s));
  CHECK(all.fraction_in_modes > 0.98);  // 3 stds in 2-D hold 98.9% of the mass
  // Samples from a single mode cover one.
  const GaussianMixture one(gmm.means().col(0), gmm.stds().col(0), Vector<double>::Ones(1));
  const ModeCoverage single = mode_coverage(gmm, one.sample<double>(500, rng));
  CHECK(single.covered == 1);
  CHECK(mean_log_density(gmm, s) > mean_log_density(gmm, one.sample<double>(500, rng)) - 2.0);
}

TEST_CASE("Metrics refuse mismatched and empty sets, zero projections and bad bandwidths", "[metrics][errors]") {
  Rng rng(1);
  const Matrix<double> a = Matrix<double>::Zero(2, 4), b3 = Matrix<double>::Zero(3, 4), b5 = Matrix<double>::Zero(2, 5);
  CHECK_THROWS_AS(mmd_rbf(a, b3, {1.0}), DimensionMismatch);
  CHECK_THROWS_AS(energy_distance(a, b3), DimensionMismatch);
  CHECK_THROWS_AS(wasserstein2(a, b3), DimensionMismatch);
  CHECK_THROWS_AS(sliced_wasserstein(a, b3, 5, rng), DimensionMismatch);
  CHECK_THROWS_WITH(wasserstein2(a, b5), Catch::Contains("argument 'y' has columns"));
  CHECK_THROWS_WITH(sliced_wasserstein(a, b5, 5, rng), Catch::Contains("argument 'y' has columns"));
  CHECK_NOTHROW(mmd_rbf(a, b5, {1.0}));  // MMD and energy distance accept different sizes
  CHECK_NOTHROW(energy_distance(a, b5));
  CHECK_THROWS_WITH(sliced_wasserstein(a, a, 0, rng), Catch::Contains("argument 'projections'"));
  CHECK_THROWS_WITH(mmd_rbf(a, a, {}), Catch::Contains("argument 'bandwidths.size()'"));
  CHECK_THROWS_WITH(mmd_rbf(a, a, {1.0, -1.0}), Catch::Contains("argument 'bandwidths[1]'"));
  CHECK_THROWS_WITH(wasserstein2(Matrix<double>(2, 0), Matrix<double>(2, 0)), Catch::Contains("x.cols()"));
  CHECK_THROWS_AS(mean_log_density(Gaussian::standard(2), b3), DimensionMismatch);
  CHECK_THROWS_WITH(mode_coverage(GaussianMixture::symmetric_2D(3, 1.0), a, 1.5), Catch::Contains("min_fraction"));
}

}  // namespace FLOWMATCH_TEST_FILE_ID
