// Couplings: minibatch OT pairs without replacement, beats random pairing, equals brute force on
// small batches; the path applies a coupling and any source; bad batch shapes are refused.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <type_traits>
#include <vector>

#include <flowmatch/coupling/concepts.hpp>
#include <flowmatch/coupling/independent.hpp>
#include <flowmatch/coupling/minibatch_ot.hpp>
#include <flowmatch/distribution/gaussian.hpp>
#include <flowmatch/distribution/gaussian_mixture.hpp>
#include <flowmatch/distribution/standard_normal.hpp>
#include <flowmatch/ot/assignment.hpp>
#include <flowmatch/path/concepts.hpp>
#include <flowmatch/path/gaussian_conditional_path.hpp>
#include <flowmatch/schedule/linear_alpha.hpp>
#include <flowmatch/schedule/linear_beta.hpp>
#include <flowmatch/schedule/square_root_beta.hpp>

#include "support/compare.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

static_assert(Coupling<IndependentCoupling> && Coupling<MinibatchOTCoupling>);
static_assert(!Coupling<int>);
static_assert(ConditionalPath<GaussianConditionalPath<LinearAlpha, LinearBeta, Gaussian, GaussianMixture, MinibatchOTCoupling>>);

namespace {

template <class P>
concept HasScore = requires(const P& p, const Matrix<double>& x, Matrix<double>& s) { p.conditional_score(x, x, 0.5, s); };
static_assert(HasScore<GaussianConditionalPath<LinearAlpha, LinearBeta, Gaussian>>);
static_assert(!HasScore<GaussianConditionalPath<LinearAlpha, LinearBeta, Gaussian, GaussianMixture>>);

double mean_squared_distance(const Matrix<double>& a, const Matrix<double>& b) {
  return (a - b).colwise().squaredNorm().mean();
}

// Each column of `got` is a column of `ref`, and each column of `ref` is used exactly once.
bool same_columns(const Matrix<double>& got, const Matrix<double>& ref) {
  std::vector<char> used(static_cast<std::size_t>(ref.cols()), 0);
  for (Index j = 0; j < got.cols(); ++j) {
    bool found = false;
    for (Index k = 0; k < ref.cols() && !found; ++k)
      if (!used[static_cast<std::size_t>(k)] && got.col(j) == ref.col(k)) used[static_cast<std::size_t>(k)] = 1, found = true;
    if (!found) return false;
  }
  return std::all_of(used.begin(), used.end(), [](char c) { return c != 0; });
}

}  // namespace

TEST_CASE("Minibatch OT pairing is a permutation with lower cost than random pairing", "[coupling]") {
  Rng rng(21);
  constexpr Index n_max = 256;
  using M = MinibatchOTCoupling::Method;
  for (M method : {M::exact, M::sinkhorn, M::auction}) {
    const MinibatchOTCoupling ot(0.05, 1024, method);
    const bool optimal = ot.uses_exact(n_max) || method == M::auction;
    for (Index n : {1, 2, 17, 256}) {
      INFO("n = " << n << ", exact = " << ot.uses_exact(n));
      Matrix<double> x0(2, n), x1(2, n);
      rng.fill_normal(x0);
      rng.fill_normal(x1);  // two samples of N(0, I): random pairs are 4 apart in mean square
      const Matrix<double> original = x1;
      const double random_cost = mean_squared_distance(x0, x1);
      ot.pair(rng, x0, x1);
      CHECK(same_columns(x1, original));  // no duplicates, nothing dropped
      const double ot_cost = mean_squared_distance(x0, x1);
      CHECK(ot_cost <= random_cost + 1e-12);
      // Measured at n = 256 (seeds 21): exact 0.02-0.05 of the random cost; Sinkhorn with
      // reg = 0.05 x max cost blurs the plan: 0.39-0.54.
      if (n == 256) CHECK(ot_cost < (optimal ? 0.1 : 0.7) * random_cost);
    }
  }
}

TEST_CASE("Auction OT pairing is the exact pairing on continuous data", "[coupling][auction]") {
  Rng rng(31);
  const MinibatchOTCoupling exact(0.05, 1024, MinibatchOTCoupling::Method::exact);
  const MinibatchOTCoupling auction(0.05, 1024, MinibatchOTCoupling::Method::auction);
  CHECK_FALSE(auction.uses_exact(8));
  for (Index n : {1, 5, 200}) {
    Matrix<double> x0(2, n), x1(2, n);
    rng.fill_normal(x0);
    rng.fill_normal(x1);
    x1 *= 2.0;
    Matrix<double> a = x1, b = x1;
    exact.pair(rng, x0, a);
    auction.pair(rng, x0, b);
    CHECK(a == b);
  }
}

TEST_CASE("Exact OT pairing equals brute force on small batches and Sinkhorn is not cheaper", "[coupling]") {
  Rng rng(8);
  const MinibatchOTCoupling exact(0.05, 1024, MinibatchOTCoupling::Method::exact);
  const MinibatchOTCoupling entropic(0.01, 1024, MinibatchOTCoupling::Method::sinkhorn);
  for (int trial = 0; trial < 20; ++trial) {
    const Index n = 2 + trial % 6;
    Matrix<double> x0(3, n), x1(3, n);
    rng.fill_normal(x0);
    rng.fill_normal(x1);
    Matrix<double> best = x1;
    {
      std::vector<Index> p(static_cast<std::size_t>(n));
      std::iota(p.begin(), p.end(), Index{0});
      double best_cost = std::numeric_limits<double>::infinity();
      do {
        Matrix<double> y(3, n);
        for (Index i = 0; i < n; ++i) y.col(i) = x1.col(p[static_cast<std::size_t>(i)]);
        const double c = mean_squared_distance(x0, y);
        if (c < best_cost) best_cost = c, best = y;
      } while (std::next_permutation(p.begin(), p.end()));
    }
    Matrix<double> y = x1, ys = x1;
    exact.pair(rng, x0, y);
    entropic.pair(rng, x0, ys);
    CHECK(mean_squared_distance(x0, y) == Approx(mean_squared_distance(x0, best)).margin(1e-12));
    CHECK(mean_squared_distance(x0, y) <= mean_squared_distance(x0, ys) + 1e-12);
    CHECK(same_columns(ys, x1));
  }
}

TEST_CASE("Automatic method: exact up to exact_max_batch, Sinkhorn beyond", "[coupling]") {
  const MinibatchOTCoupling ot(0.05, 100);
  CHECK(ot.uses_exact(100));
  CHECK_FALSE(ot.uses_exact(101));
  CHECK(MinibatchOTCoupling().uses_exact(1024));
  CHECK_FALSE(MinibatchOTCoupling().uses_exact(1025));
  Rng rng(4);
  Matrix<float> x0(2, 300), x1(2, 300);
  rng.fill_normal(x0);
  rng.fill_normal(x1);
  x1.array() += 3.0f;
  const Matrix<double> original = x1.cast<double>();
  const double random_cost = mean_squared_distance(x0.cast<double>(), original);
  ot.pair(rng, x0, x1);  // Sinkhorn
  CHECK(same_columns(x1.cast<double>(), original));
  CHECK(mean_squared_distance(x0.cast<double>(), x1.cast<double>()) < random_cost);
}

TEST_CASE("Couplings refuse batches of different sizes or dimensions", "[coupling][errors]") {
  Rng rng(1);
  Matrix<double> x0(2, 5), x1(2, 6), x2(3, 5);
  x0.setZero();
  x1.setZero();
  x2.setZero();
  const MinibatchOTCoupling ot;
  CHECK_THROWS_AS(ot.pair(rng, x0, x1), DimensionMismatch);
  CHECK_THROWS_WITH(ot.pair(rng, x0, x1), Catch::Contains("'x1'") && Catch::Contains("equal size") &&
                                             Catch::Contains("6, expected 5"));
  CHECK_THROWS_AS(ot.pair(rng, x0, x2), DimensionMismatch);
  CHECK_THROWS_AS(IndependentCoupling{}.pair(rng, x0, x1), DimensionMismatch);
  CHECK_THROWS_AS(MinibatchOTCoupling(0.0), InvalidArgument);
  CHECK_THROWS_AS(MinibatchOTCoupling(0.05, 0), InvalidArgument);
}

TEST_CASE("With the default source and coupling the path draws the reference implementation's numbers in the reference implementation's order", "[coupling][path]") {
  const GaussianMixture data = GaussianMixture::symmetric_2D(5, 0.5, 3.0);
  const GaussianConditionalPath path(data, LinearAlpha{}, SquareRootBeta{});
  STATIC_REQUIRE(std::is_same_v<decltype(path)::source_type, StandardNormal>);
  STATIC_REQUIRE(std::is_same_v<decltype(path)::coupling_type, IndependentCoupling>);
  // The reference implementation's order: the whole z batch, then per column t, then eps entry by entry.
  const Index n = 16;
  Rng r1(12), r2(12);
  TrainingBatch<double> batch(2, n);
  path.sample_training_batch(r1, batch);
  Matrix<double> z(2, n);
  data.sample(r2, z);
  CHECK(batch.z == z);
  for (Index j = 0; j < n; ++j) {
    const double t = r2.uniform24();
    CHECK(batch.t(j) == t);
    for (Index i = 0; i < 2; ++i) {
      const double eps = r2.normal();
      CHECK(batch.x(i, j) == Approx(t * z(i, j) + std::sqrt(1.0 - t) * eps).epsilon(1e-14).margin(1e-14));  // FMA may differ
      CHECK(batch.u(i, j) == Approx(z(i, j) - 0.5 / std::sqrt(1.0 - t) * eps).epsilon(1e-14).margin(1e-14));
    }
  }
  CHECK(r1 == r2);  // no extra draws
}

TEST_CASE("The path draws from its source and applies its coupling in sample_training_batch", "[coupling][path]") {
  const GaussianMixture data = GaussianMixture::symmetric_2D(4, 0.2, 3.0);
  const Gaussian source(Vector<double>::Constant(2, -1.0), Vector<double>::Constant(2, 0.5));
  const GaussianConditionalPath path(data, LinearAlpha{}, LinearBeta{}, source);
  STATIC_REQUIRE(std::is_same_v<decltype(path)::source_type, Gaussian>);
  STATIC_REQUIRE(std::is_same_v<decltype(path)::coupling_type, IndependentCoupling>);
  // Order: z (whole batch), x0 (whole batch), then t per column.
  const Index n = 32;
  Rng r1(9), r2(9);
  TrainingBatch<double> batch(2, n);
  path.sample_training_batch(r1, batch);
  Matrix<double> z(2, n), x0(2, n);
  data.sample(r2, z);
  source.sample(r2, x0);
  for (Index j = 0; j < n; ++j) {
    const double t = r2.uniform24();
    CHECK(batch.t(j) == t);
    CHECK(test::max_abs(batch.x.col(j) - (t * z.col(j) + (1.0 - t) * x0.col(j))) < 1e-14);
    CHECK(test::max_abs(batch.u.col(j) - (z.col(j) - x0.col(j))) < 1e-14);
  }
  CHECK(test::max_abs(batch.z - z) == 0.0);
  // sample_conditional_path with this source: x = t z + (1 - t) x0, x0 drawn first.
  Rng r3(2), r4(2);
  Matrix<double> x(2, n);
  path.sample_conditional_path(z, 0.25, r3, x);
  source.sample(r4, x0);
  CHECK(test::max_abs(x - (0.25 * z + 0.75 * x0)) < 1e-14);
  // The marginal at t = 0 is the source: mean -1.
  Matrix<double> m(2, 4000);
  path.sample_marginal_path(0.0, r3, m);
  CHECK(std::abs(m.row(0).mean() + 1.0) < 5 * 0.5 / std::sqrt(4000.0));
  // A source of another dimension is refused.
  CHECK_THROWS_AS(GaussianConditionalPath(data, LinearAlpha{}, LinearBeta{}, Gaussian::standard(3)), DimensionMismatch);
}

TEST_CASE("An OT-coupled path gives pairs closer than the independent path", "[coupling][path]") {
  const GaussianMixture data = GaussianMixture::symmetric_2D(8, 0.3, 5.0);
  const GaussianConditionalPath independent(data, LinearAlpha{}, LinearBeta{});
  const GaussianConditionalPath coupled(data, LinearAlpha{}, LinearBeta{}, StandardNormal(2), MinibatchOTCoupling());
  TrainingBatch<float> bi(2, 256), bo(2, 256);
  Rng ri(3), ro(3);
  double di = 0.0, dot = 0.0;
  for (int k = 0; k < 4; ++k) {
    independent.sample_training_batch(ri, bi);
    coupled.sample_training_batch(ro, bo);
    // u = z - x0 for the linear path: |u|^2 is the squared distance of the pair.
    di += bi.u.cast<double>().colwise().squaredNorm().mean();
    dot += bo.u.cast<double>().colwise().squaredNorm().mean();
  }
  // N(0, I) to a ring of radius 5: random pairs are ~27 apart in mean square, OT pairs ~15
  // (about (5 - E|x0|)^2 + 1).
  CHECK(dot < 0.65 * di);
  CHECK(bo.u.allFinite());
  // x at t = 0 is the source sample, x at t = 1 the data sample: x = t z + (1 - t) x0 exactly.
  const Matrix<double> x0 = bo.z.cast<double>() - bo.u.cast<double>();
  const Matrix<double> expected = (bo.z.cast<double>().array().rowwise() * bo.t.cast<double>().array() +
                                   x0.array().rowwise() * (1.0 - bo.t.cast<double>().array()))
                                      .matrix();
  CHECK(test::max_abs(bo.x.cast<double>() - expected) < 1e-4);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
