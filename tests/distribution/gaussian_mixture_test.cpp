// flowmatch::GaussianMixture: construction helpers, the log-density (against a direct sum and
// by integrating it), sampling frequencies, mode counting and argument checks.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include <flowmatch/distribution/concepts.hpp>
#include <flowmatch/distribution/gaussian.hpp>
#include <flowmatch/distribution/gaussian_mixture.hpp>

#include "support/stats.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;
using test::kSigmas;

static_assert(SampleableDistribution<GaussianMixture>);
static_assert(DensityDistribution<GaussianMixture>);

namespace {

// A 3-D mixture with unequal weights and anisotropic, per-component stds.
GaussianMixture general_mixture() {
  Matrix<double> means(3, 3), stds(3, 3);
  means << 0.0, 2.0, -1.0,  //
      1.0, -1.0, 0.5,       //
      -0.5, 0.0, 2.5;
  stds << 1.0, 0.5, 2.0,  //
      0.7, 1.5, 1.0,      //
      1.2, 0.8, 0.6;
  Vector<double> w(3);
  w << 2.0, 1.0, 3.0;  // normalised to 1/3, 1/6, 1/2
  return GaussianMixture(means, stds, w);
}

// log sum_k w_k prod_i N(x_i; mu_ik, s_ik^2), summed directly (no log-sum-exp).
double direct_log_density(const GaussianMixture& g, const Vector<double>& x) {
  double p = 0.0;
  for (Index k = 0; k < g.nmodes(); ++k) {
    double pk = g.weights()(k);
    for (Index i = 0; i < g.dim(); ++i) {
      const double s = g.stds()(i, k);
      const double u = (x(i) - g.means()(i, k)) / s;
      pk *= std::exp(-0.5 * u * u) / (s * std::sqrt(2.0 * std::numbers::pi));
    }
    p += pk;
  }
  return std::log(p);
}

// Integral of exp(log_density) over [-L, L]^2 by the midpoint rule with step h.
double integrate_2d(const GaussianMixture& g, double L, double h) {
  const Index m = static_cast<Index>(std::lround(2.0 * L / h));
  Matrix<double> row(2, m);
  Vector<double> lp(m);
  double total = 0.0;
  for (Index a = 0; a < m; ++a) {
    const double y = -L + (static_cast<double>(a) + 0.5) * h;
    for (Index b = 0; b < m; ++b) {
      row(0, b) = -L + (static_cast<double>(b) + 0.5) * h;
      row(1, b) = y;
    }
    g.log_density(row, lp);
    total += lp.array().exp().sum();
  }
  return total * h * h;
}

Matrix<double> points(std::initializer_list<std::pair<double, double>> pts) {
  Matrix<double> x(2, static_cast<Index>(pts.size()));
  Index j = 0;
  for (auto [a, b] : pts) {
    x(0, j) = a;
    x(1, j) = b;
    ++j;
  }
  return x;
}

}  // namespace

TEST_CASE("GaussianMixture::symmetric_2D puts the means on a circle at angles 2 pi k / K", "[distribution][mixture]") {
  for (Index K : {1, 2, 5, 11}) {
    const auto g = GaussianMixture::symmetric_2D(K, 0.7, 3.0, 1.5);
    REQUIRE(g.nmodes() == K);
    REQUIRE(g.dim() == 2);
    for (Index k = 0; k < K; ++k) {
      const double angle = 2.0 * std::numbers::pi * static_cast<double>(k) / static_cast<double>(K);
      CHECK(g.means()(0, k) == Approx(3.0 * std::cos(angle) + 1.5).margin(1e-14));
      CHECK(g.means()(1, k) == Approx(3.0 * std::sin(angle)).margin(1e-14));
      CHECK(g.stds()(0, k) == 0.7);
      CHECK(g.stds()(1, k) == 0.7);
      CHECK(g.weights()(k) == Approx(1.0 / static_cast<double>(K)).epsilon(1e-15));
    }
  }
  // The reference implementation's default: radius 10 around the origin, first mode on the positive x axis.
  const auto seed = GaussianMixture::symmetric_2D(11, 1.0);
  CHECK(seed.means()(0, 0) == 10.0);
  CHECK(seed.means()(1, 0) == 0.0);
  CHECK(seed.means().colwise().norm().minCoeff() == Approx(10.0).epsilon(1e-14));
  CHECK(seed.means().colwise().norm().maxCoeff() == Approx(10.0).epsilon(1e-14));
}

TEST_CASE("GaussianMixture normalises its weights", "[distribution][mixture]") {
  const GaussianMixture g = general_mixture();
  CHECK(g.weights()(0) == Approx(1.0 / 3.0).epsilon(1e-15));
  CHECK(g.weights()(1) == Approx(1.0 / 6.0).epsilon(1e-15));
  CHECK(g.weights()(2) == Approx(0.5).epsilon(1e-15));
  // A zero weight is allowed.
  Vector<double> w(2);
  w << 0.0, 5.0;
  const GaussianMixture z(Matrix<double>::Zero(1, 2), Matrix<double>::Ones(1, 2), w);
  CHECK(z.weights()(0) == 0.0);
  CHECK(z.weights()(1) == 1.0);
}

TEST_CASE("GaussianMixture::log_density equals a direct sum of component densities", "[distribution][mixture]") {
  const GaussianMixture g = general_mixture();
  Rng rng(3);
  Matrix<double> x(3, 200);
  rng.fill_normal(x);
  x *= 2.5;
  const Vector<double> lp = g.log_density(x);
  for (Index j = 0; j < x.cols(); ++j) {
    INFO("column " << j);
    CHECK(lp(j) == Approx(direct_log_density(g, x.col(j))).epsilon(1e-12));
  }
  // Float input, float output vector.
  const Matrix<float> xf = x.cast<float>();
  Vector<float> lf(200);
  g.log_density(xf, lf);
  for (Index j = 0; j < x.cols(); ++j)
    CHECK(lf(j) == Approx(direct_log_density(g, xf.col(j).cast<double>())).epsilon(1e-6));

  // One component: the mixture is that Gaussian, also far away where a direct sum underflows.
  Vector<double> m1(2), s1(2);
  m1 << 1.0, -1.0;
  s1 << 0.5, 2.0;
  const GaussianMixture single(m1, s1, Vector<double>::Ones(1));
  const Gaussian gauss(m1, s1);
  Matrix<double> far(2, 3);
  far << 0.0, 100.0, -300.0,  //
      0.0, 50.0, 400.0;
  const Vector<double> lm = single.log_density(far), lg = gauss.log_density(far);
  for (Index j = 0; j < 3; ++j) CHECK(lm(j) == Approx(lg(j)).epsilon(1e-13));
  CHECK(std::isfinite(lm(2)));  // about -1.8e5: exp() of it is 0, the log-sum-exp is not

  // Two equal components at the same place: log of the common density.
  const GaussianMixture twice(Matrix<double>::Zero(2, 2), Matrix<double>::Ones(2, 2), Vector<double>::Ones(2));
  Matrix<double> p(2, 1);
  p << 40.0, 0.0;  // density exp(-800): underflows, the log does not
  CHECK(twice.log_density(p)(0) == Approx(-800.0 - std::log(2.0 * std::numbers::pi)).epsilon(1e-14));
}

TEST_CASE("GaussianMixture density integrates to 1 over the square of half-side 15", "[distribution][mixture]") {
  // Midpoint rule, h = 0.1: for Gaussians with std >= 0.5 its error is below 1e-12 (Poisson
  // summation); the mass outside [-15, 15]^2 is below 1e-6 for these mixtures (5 std beyond the
  // outermost means of the reference workload's mixture).
  const double seed_mass = integrate_2d(GaussianMixture::symmetric_2D(11, 1.0, 10.0), 15.0, 0.1);
  CHECK(seed_mass == Approx(1.0).margin(2e-6));
  Matrix<double> means(2, 3), stds(2, 3);
  means << -3.0, 4.0, 0.0,  //
      2.0, 1.0, -5.0;
  stds << 0.5, 2.0, 1.0,  //
      1.5, 0.6, 1.0;
  Vector<double> w(3);
  w << 0.2, 0.5, 0.3;
  const double mass = integrate_2d(GaussianMixture(means, stds, w), 15.0, 0.1);
  CHECK(mass == Approx(1.0).margin(2e-6));
}

TEST_CASE("GaussianMixture samples visit the modes with frequencies equal to the weights", "[distribution][mixture][statistical]") {
  constexpr Index n = 88'000;
  Rng rng(4);
  SECTION("symmetric_2D: 1/K each") {
    const auto g = GaussianMixture::symmetric_2D(8, 0.5, 10.0);
    const Matrix<double> x = g.sample<double>(n, rng);
    // Neighbouring means are 7.65 apart (15.3 std): a sample lies beyond 7 std of its own mode
    // with probability exp(-24.5) = 2e-11, so every sample counts, for its own mode.
    const std::vector<Index> counts = g.mode_counts(x, 7.0);
    for (Index c : counts)
      CHECK(std::abs(double(c) - n / 8.0) < kSigmas * test::binomial_sd(double(n), 1.0 / 8.0));
    Index total = 0;
    for (Index c : counts) total += c;
    CHECK(total == n);
  }
  SECTION("unequal weights, float output") {
    Matrix<double> means(2, 4);
    means << 0.0, 20.0, 0.0, 20.0,  //
        0.0, 0.0, 20.0, 20.0;
    Vector<double> w(4);
    w << 1.0, 2.0, 3.0, 4.0;
    const GaussianMixture g(means, Matrix<double>::Ones(2, 4), w);
    const Matrix<float> x = g.sample<float>(n, rng);
    const std::vector<Index> counts = g.mode_counts(x, 7.0);
    for (Index k = 0; k < 4; ++k) {
      const double p = double(k + 1) / 10.0;
      CHECK(std::abs(double(counts[std::size_t(k)]) - n * p) < kSigmas * test::binomial_sd(double(n), p));
    }
    // Samples of the first component (near the origin) have mean 0 and std 1 per coordinate.
    std::vector<double> xs;
    for (Index j = 0; j < n; ++j)
      if (x(0, j) < 10.0f && x(1, j) < 10.0f) xs.push_back(double(x(0, j)));
    const test::Moments m = test::moments(xs);
    CHECK(std::abs(m.mean) < kSigmas / std::sqrt(double(xs.size())));
    CHECK(std::abs(std::sqrt(m.variance) - 1.0) < kSigmas / std::sqrt(2.0 * double(xs.size())));
  }
}

TEST_CASE("GaussianMixture::random_2D is reproducible by seed and within its bounds", "[distribution][mixture]") {
  const auto a = GaussianMixture::random_2D(20, 0.3, 8.0, 7, 2.0);
  const auto b = GaussianMixture::random_2D(20, 0.3, 8.0, 7, 2.0);
  const auto c = GaussianMixture::random_2D(20, 0.3, 8.0, 8, 2.0);
  CHECK(a.means() == b.means());
  CHECK(a.means() != c.means());
  CHECK(a.nmodes() == 20);
  CHECK((a.stds().array() == 0.3).all());
  for (const auto* g : {&a, &c}) {
    CHECK(g->means().row(0).minCoeff() >= -4.0 + 2.0);
    CHECK(g->means().row(0).maxCoeff() < 4.0 + 2.0);
    CHECK(g->means().row(1).minCoeff() >= -4.0);
    CHECK(g->means().row(1).maxCoeff() < 4.0);
  }
  // The means spread over the square (not all in one corner).
  const auto many = GaussianMixture::random_2D(400, 1.0, 10.0, 1);
  CHECK(std::abs(many.means().row(0).mean()) < kSigmas * 10.0 / std::sqrt(12.0 * 400.0));
  CHECK(std::abs(many.means().row(1).mean()) < kSigmas * 10.0 / std::sqrt(12.0 * 400.0));
  CHECK(many.means().row(0).maxCoeff() > 4.5);
  CHECK(many.means().row(1).minCoeff() < -4.5);
  // scale 0: every mean at (x_offset, 0).
  const auto point = GaussianMixture::random_2D(3, 1.0, 0.0, 5, -1.0);
  CHECK((point.means().row(0).array() == -1.0).all());
  CHECK((point.means().row(1).array() == 0.0).all());
}

TEST_CASE("GaussianMixture::mode_counts and modes_covered on constructed points", "[distribution][mixture]") {
  // Modes at (10, 0), (0, 10), (-10, 0), (0, -10), std 1.
  const auto g = GaussianMixture::symmetric_2D(4, 1.0, 10.0);
  const Matrix<double> x = points({{10.5, 0.0},
                                   {9.0, 1.0},
                                   {10.0, -2.0},
                                   {0.0, 12.9},    // 2.9 std from mode 1: counted
                                   {0.0, -13.1},   // 3.1 std from mode 3: not counted at radius 3
                                   {0.0, 0.0},     // 10 std from every mode
                                   {6.0, 3.0}});   // 5 std from mode 0, nearest
  std::vector<Index> counts = g.mode_counts(x);
  CHECK(counts == std::vector<Index>{3, 1, 0, 0});
  counts = g.mode_counts(x, 3.5);
  CHECK(counts == std::vector<Index>{3, 1, 0, 1});
  counts = g.mode_counts(x, 5.5);  // (6, 3) joins its nearest mode, mode 0, not mode 1
  CHECK(counts == std::vector<Index>{4, 1, 0, 1});

  // 7 points: min_fraction 0.1 needs 0.7 points, 0.2 needs 1.4, 0.5 needs 3.5.
  CHECK(g.modes_covered(x, 0.1) == 2);
  CHECK(g.modes_covered(x, 0.2) == 1);
  CHECK(g.modes_covered(x, 0.5) == 0);
  CHECK(g.modes_covered(x, 0.1, 3.5) == 3);
  CHECK(g.modes_covered(x, 0.0) == 4);  // every count >= 0
  // Anisotropic stds: the distance is Mahalanobis.
  Matrix<double> m(2, 1), s(2, 1);
  m << 0.0, 0.0;
  s << 1.0, 10.0;
  const GaussianMixture aniso(m, s, Vector<double>::Ones(1));
  // Mahalanobis distances 2.5, 2.5, 3.5 and sqrt(8) = 2.83.
  CHECK(aniso.mode_counts(points({{0.0, 25.0}, {2.5, 0.0}, {3.5, 0.0}, {2.0, 20.0}})) == std::vector<Index>{3});
  // Float points.
  const Matrix<float> xf = x.cast<float>();
  CHECK(g.mode_counts(xf) == std::vector<Index>{3, 1, 0, 0});
}

TEST_CASE("GaussianMixture refuses bad arguments, naming them", "[distribution][mixture][errors]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  CHECK_THROWS_AS(GaussianMixture::symmetric_2D(0, 1.0), InvalidArgument);
  CHECK_THROWS_WITH(GaussianMixture::symmetric_2D(0, 1.0), Catch::Contains("argument 'nmodes'"));
  CHECK_THROWS_WITH(GaussianMixture::symmetric_2D(-3, 1.0), Catch::Contains("argument 'nmodes'"));
  CHECK_THROWS_WITH(GaussianMixture::symmetric_2D(3, 0.0), Catch::Contains("argument 'std'"));
  CHECK_THROWS_WITH(GaussianMixture::symmetric_2D(3, -1.0), Catch::Contains("argument 'std'"));
  CHECK_THROWS_WITH(GaussianMixture::symmetric_2D(3, nan), Catch::Contains("argument 'std'"));
  CHECK_THROWS_WITH(GaussianMixture::symmetric_2D(3, inf), Catch::Contains("argument 'std'"));
  CHECK_THROWS_WITH(GaussianMixture::symmetric_2D(3, 1.0, nan), Catch::Contains("argument 'scale'"));
  CHECK_THROWS_WITH(GaussianMixture::random_2D(0, 1.0), Catch::Contains("argument 'nmodes'"));
  CHECK_THROWS_WITH(GaussianMixture::random_2D(3, 0.0), Catch::Contains("argument 'std'"));
  CHECK_THROWS_WITH(GaussianMixture::random_2D(3, 1.0, -1.0), Catch::Contains("argument 'scale'"));
  CHECK_THROWS_WITH(GaussianMixture::random_2D(3, 1.0, nan), Catch::Contains("argument 'scale'"));

  const Matrix<double> means = Matrix<double>::Zero(2, 3), stds = Matrix<double>::Ones(2, 3);
  const Vector<double> w = Vector<double>::Ones(3);
  CHECK_NOTHROW(GaussianMixture(means, stds, w));
  Vector<double> neg = w;
  neg(1) = -0.5;
  CHECK_THROWS_AS(GaussianMixture(means, stds, neg), InvalidArgument);
  CHECK_THROWS_WITH(GaussianMixture(means, stds, neg), Catch::Contains("argument 'weights'"));
  Vector<double> wnan = w;
  wnan(2) = nan;
  CHECK_THROWS_WITH(GaussianMixture(means, stds, wnan), Catch::Contains("argument 'weights'"));
  CHECK_THROWS_WITH(GaussianMixture(means, stds, Vector<double>::Zero(3)), Catch::Contains("argument 'weights'"));
  CHECK_THROWS_AS(GaussianMixture(means, stds, Vector<double>::Ones(2)), DimensionMismatch);
  CHECK_THROWS_WITH(GaussianMixture(means, stds, Vector<double>::Ones(2)), Catch::Contains("argument 'weights'"));
  CHECK_THROWS_AS(GaussianMixture(means, Matrix<double>::Ones(3, 3), w), DimensionMismatch);
  CHECK_THROWS_WITH(GaussianMixture(means, Matrix<double>::Ones(3, 3), w), Catch::Contains("argument 'stds'"));
  CHECK_THROWS_WITH(GaussianMixture(means, Matrix<double>::Ones(2, 2), w), Catch::Contains("argument 'stds'"));
  Matrix<double> sbad = stds;
  sbad(1, 2) = 0.0;
  CHECK_THROWS_WITH(GaussianMixture(means, sbad, w), Catch::Contains("argument 'stds'"));
  sbad(1, 2) = nan;
  CHECK_THROWS_WITH(GaussianMixture(means, sbad, w), Catch::Contains("argument 'stds'"));
  Matrix<double> mbad = means;
  mbad(0, 1) = inf;
  CHECK_THROWS_WITH(GaussianMixture(mbad, stds, w), Catch::Contains("argument 'means'"));
  CHECK_THROWS_WITH(GaussianMixture(Matrix<double>(0, 3), Matrix<double>(0, 3), w), Catch::Contains("argument 'means.rows()"));
  CHECK_THROWS_WITH(GaussianMixture(Matrix<double>(2, 0), Matrix<double>(2, 0), Vector<double>()),
                    Catch::Contains("argument 'means.cols()"));

  const auto g = GaussianMixture::symmetric_2D(3, 1.0);
  Rng rng(0);
  Matrix<double> wrong(3, 5);
  wrong.setZero();
  CHECK_THROWS_AS(g.sample(rng, wrong), DimensionMismatch);
  CHECK_THROWS_WITH(g.sample(rng, wrong), Catch::Contains("argument 'out'"));
  CHECK_THROWS_WITH(g.sample<double>(-1, rng), Catch::Contains("argument 'n'"));
  CHECK_THROWS_AS(g.log_density(wrong), DimensionMismatch);
  CHECK_THROWS_WITH(g.log_density(wrong), Catch::Contains("argument 'x'"));
  Matrix<double> x = Matrix<double>::Zero(2, 5);
  Vector<double> out(4);
  CHECK_THROWS_WITH(g.log_density(x, out), Catch::Contains("argument 'out'"));
  CHECK_THROWS_AS(g.mode_counts(wrong), DimensionMismatch);
  CHECK_THROWS_WITH(g.modes_covered(wrong), Catch::Contains("argument 'x'"));
}

}  // namespace FLOWMATCH_TEST_FILE_ID
