// Reflow: PairedCoupling / PairedPath batches against their formulas (each column one of the
// pairs), ConstantTime distillation targets, path statistics on fields with known answers, and an
// end-to-end reflow on a two-mode mixture: straighter after reflow, and better at one Euler step.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include <flowmatch/core/error.hpp>
#include <flowmatch/distribution/gaussian_mixture.hpp>
#include <flowmatch/metrics/distances.hpp>
#include <flowmatch/metrics/straightness.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>
#include <flowmatch/optim/adam.hpp>
#include <flowmatch/path/gaussian_conditional_path.hpp>
#include <flowmatch/path/paired_path.hpp>
#include <flowmatch/schedule/linear_alpha.hpp>
#include <flowmatch/schedule/linear_beta.hpp>
#include <flowmatch/schedule/square_root_beta.hpp>
#include <flowmatch/train/cfm_trainer.hpp>
#include <flowmatch/train/reflow.hpp>

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

Matrix<double> normals(Index d, Index n, std::uint64_t seed) {
  Rng rng(seed);
  Matrix<double> m(d, n);
  for (Index j = 0; j < n; ++j)
    for (Index i = 0; i < d; ++i) m(i, j) = rng.normal();
  return m;
}

// A field of known trajectories for path_statistics: constant velocity c, or rotation.
struct ConstantField {
  using Scalar = double;
  struct Workspace {};
  Vector<double> c;
  Index dim() const { return c.size(); }
  template <class DX, class T, class DO>
  void forward(const Eigen::MatrixBase<DX>& x, const T&, const Eigen::MatrixBase<DO>& out, Workspace&) const {
    detail::writable(out) = c.replicate(1, x.cols());
  }
};
// alpha_t = t / 2 misses the data at t = 1.
struct HalfAlpha {
  double value(double t) const { return 0.5 * t; }
  double derivative(double) const { return 0.5; }
};
struct RotationField {
  using Scalar = double;
  struct Workspace {};
  Index dim() const { return 2; }
  template <class DX, class T, class DO>
  void forward(const Eigen::MatrixBase<DX>& x, const T&, const Eigen::MatrixBase<DO>& out_, Workspace&) const {
    auto& out = detail::writable(out_);
    out.row(0) = -x.row(1);
    out.row(1) = x.row(0);
  }
};

}  // namespace

TEST_CASE("PairedPath: every column is one of the pairs, on the straight path", "[reflow][path]") {
  const Matrix<double> x0 = normals(3, 5, 1), x1 = normals(3, 5, 2) * 4.0;
  const PairedPath<> path(PairedCoupling(x0, x1));
  TrainingBatch<double> b(3, 64);
  Rng rng(7);
  path.sample_training_batch(rng, b);
  CHECK(b.weight.size() == 0);
  for (Index j = 0; j < 64; ++j) {
    const double t = b.t(j);
    REQUIRE(t >= 0.0);
    REQUIRE(t < 1.0);
    // x = t x1 + (1 - t) x0 and u = x1 - x0 for the pair whose x1 is z.
    Index k = -1;
    for (Index c = 0; c < 5; ++c)
      if ((x1.col(c) - b.z.col(j)).norm() == 0.0) k = c;
    REQUIRE(k >= 0);
    CHECK((b.x.col(j) - (t * x1.col(k) + (1 - t) * x0.col(k))).norm() <= 1e-12);
    CHECK((b.u.col(j) - (x1.col(k) - x0.col(k))).norm() <= 1e-12);
  }
  // Distillation: t = 0 everywhere, x = x0, u = x1 - x0.
  const PairedPath<LinearAlpha, LinearBeta, ConstantTime> distil(PairedCoupling(x0, x1), {}, {}, ConstantTime(0.0));
  path.sample_training_batch(rng, b);
  distil.sample_training_batch(rng, b);
  CHECK((b.t.array() == 0.0).all());
  for (Index j = 0; j < 64; ++j) CHECK((b.x.col(j) + b.u.col(j) - b.z.col(j)).norm() <= 1e-12);
  CHECK(ConstantTime(0.25).describe() == "constant(t=0.25)");
  CHECK_THROWS_AS(ConstantTime(1.0), InvalidArgument);
  // Weighted densities fill the weights.
  const auto w = [](double t) { return 1.0 + t; };
  const PairedPath<LinearAlpha, LinearBeta, WeightedTime<UniformTime, decltype(w)>> weighted(
      PairedCoupling(x0, x1), {}, {}, WeightedTime<UniformTime, decltype(w)>(UniformTime{}, w, "1+t"));
  weighted.sample_training_batch(rng, b);
  REQUIRE(b.weight.size() == 64);
  for (Index j = 0; j < 64; ++j) CHECK(b.weight(j) == Approx(1.0 + b.t(j)));
}

TEST_CASE("PairedCoupling and PairedPath: bad arguments are named", "[reflow][path]") {
  Matrix<double> x0 = normals(2, 4, 1), x1 = normals(2, 4, 2);
  CHECK_THROWS_AS(PairedCoupling(x0, normals(2, 3, 3)), DimensionMismatch);
  CHECK_THROWS_AS(PairedCoupling(x0, normals(3, 4, 3)), DimensionMismatch);
  x1(1, 2) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(PairedCoupling(x0, x1), Catch::Contains("x1(1, 2)"));
  CHECK_THROWS_AS(PairedCoupling(Matrix<double>(2, 0), Matrix<double>(2, 0)), InvalidArgument);
  // A schedule that does not reach the data is refused.
  CHECK_THROWS_WITH((PairedPath<HalfAlpha, LinearBeta>(PairedCoupling(x0, normals(2, 4, 2)))),
                    Catch::Contains("alpha.value(1)") && Catch::Contains("0.5"));
  CHECK_NOTHROW((PairedPath<LinearAlpha, SquareRootBeta>(PairedCoupling(x0, normals(2, 4, 2)))));
}

TEST_CASE("path_statistics: constant fields are straight, rotations are not", "[reflow][metrics]") {
  ConstantField c{Vector<double>(2)};
  c.c << 3.0, -4.0;
  const Matrix<double> x0 = normals(2, 50, 4);
  const PathStatistics s = path_statistics(c, x0, 10);
  CHECK(s.path_energy == Approx(25.0));
  CHECK(s.displacement_energy == Approx(25.0));
  CHECK(std::abs(s.straightness) <= 1e-10);
  CHECK(s.nfe == 10);
  CHECK((s.x1 - (x0.colwise() + c.c)).norm() <= 1e-12);
  // Rotation by a quarter turn at unit speed: PE ~ mean |x|^2 (|v| = |x|, growing slowly under
  // Euler), displacement |x1 - x0|^2 ~ 2 (1 - cos 1) |x|^2 < PE.
  const PathStatistics r = path_statistics(RotationField{}, x0, 200);
  const double m2 = x0.squaredNorm() / 50.0;
  CHECK(r.path_energy == Approx(m2).epsilon(0.01));
  CHECK(r.displacement_energy == Approx(2 * (1 - std::cos(1.0)) * m2).epsilon(0.01));
  CHECK(r.straightness > 0.05 * m2);
  CHECK(normalized_path_energy(2.0, 1.0) == Approx(1.0));
  CHECK_THROWS_AS(normalized_path_energy(2.0, 0.0), InvalidArgument);
  CHECK_THROWS_AS(path_statistics(c, x0, 0), InvalidArgument);
}

TEST_CASE("Reflow end to end: straighter flow, better one-step samples; distillation", "[reflow][train]") {
  using Model = MLPVectorField<float>;
  using Path = GaussianConditionalPath<LinearAlpha, LinearBeta, GaussianMixture>;
  const GaussianMixture data = GaussianMixture::symmetric_2D(2, 0.25, 2.5);
  Model base(2, {64, 64}, 1);
  Adam<float> adam(2e-3);
  CFMTrainer trainer(Path(data), base, adam, 3);
  trainer.train(1500, 256);

  Rng rng(5);
  Matrix<double> target(2, 600);
  data.sample(rng, target);
  const Matrix<double> test_x0 = normals(2, 600, 11);
  const auto one_step_w2 = [&](const Model& m) {
    const PathStatistics s = path_statistics(m, test_x0, 1);
    return wasserstein2(s.x1, target);
  };
  const PathStatistics before = path_statistics(base, test_x0, 100);

  const PairedCoupling pairs = reflow_pairs(base, normals(2, 4000, 12), 50);
  CHECK(pairs.size() == 4000);
  Model rectified(2, {64, 64}, 2);
  Adam<float> adam2(2e-3);
  CFMTrainer retrain(PairedPath<>(pairs), rectified, adam2, 4);
  retrain.train(1500, 256);
  const PathStatistics after = path_statistics(rectified, test_x0, 100);

  Model distilled(2, {64, 64}, 3);
  Adam<float> adam3(2e-3);
  CFMTrainer distil(PairedPath<LinearAlpha, LinearBeta, ConstantTime>(pairs, {}, {}, ConstantTime(0.0)), distilled,
                    adam3, 5);
  distil.train(1500, 256);

  const double w_base = one_step_w2(base), w_reflow = one_step_w2(rectified), w_distil = one_step_w2(distilled);
  const double w_converged = wasserstein2(before.x1, target);
  INFO("straightness before " << before.straightness << " after " << after.straightness << "; one-step W2 base "
                              << w_base << " reflow " << w_reflow << " distilled " << w_distil
                              << "; base at 100 steps " << w_converged);
  CHECK(after.straightness < 0.3 * before.straightness);
  CHECK(w_reflow < 0.6 * w_base);
  CHECK(w_distil < 0.6 * w_base);
  CHECK(w_distil < 2.0 * w_converged);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
