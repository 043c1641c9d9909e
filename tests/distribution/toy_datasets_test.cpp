// The toy data sets: sample statistics against their definitions (points on their curves, equal
// class frequencies, uniform parameters), labelled sampling, the empirical distribution and its
// CSV reader, and bad parameters.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

#include <flowmatch/distribution/checkerboard.hpp>
#include <flowmatch/distribution/circles.hpp>
#include <flowmatch/distribution/concepts.hpp>
#include <flowmatch/distribution/eight_gaussians.hpp>
#include <flowmatch/distribution/empirical.hpp>
#include <flowmatch/distribution/moons.hpp>
#include <flowmatch/distribution/swiss_roll.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>
#include <flowmatch/optim/adam.hpp>
#include <flowmatch/path/gaussian_conditional_path.hpp>
#include <flowmatch/schedule/linear_alpha.hpp>
#include <flowmatch/schedule/linear_beta.hpp>
#include <flowmatch/train/cfm_trainer.hpp>

#include "support/stats.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;
using test::kSigmas;

static_assert(SampleableDistribution<Moons> && SampleableDistribution<Circles> &&
              SampleableDistribution<Checkerboard> && SampleableDistribution<SwissRoll> &&
              SampleableDistribution<Empirical> && SampleableDistribution<StandardNormal>);

namespace {

constexpr Index kN = 20000;

// Binomial count check: |count - n p| <= 5 sd.
void check_fraction(Index count, Index n, double p) {
  INFO("count " << count << " of " << n << ", expected fraction " << p);
  CHECK(std::abs(static_cast<double>(count) - static_cast<double>(n) * p) <=
        kSigmas * test::binomial_sd(static_cast<double>(n), p));
}

// Distance from q (in moon coordinates: before centring and scaling) to moon arc k.
double distance_to_arc(Index k, double qx, double qy) {
  const double cx = k == 0 ? 0.0 : 1.0, cy = k == 0 ? 0.0 : 0.5;
  double dx = qx - cx, dy = qy - cy;
  if (k == 1) dy = -dy;  // the lower arc is the upper one turned over
  const double angle = std::atan2(dy, dx);
  if (angle >= 0.0) return std::abs(std::hypot(dx, dy) - 1.0);
  return std::min(std::hypot(dx - 1.0, dy), std::hypot(dx + 1.0, dy));  // nearest end
}

std::filesystem::path temp_file(const std::string& name, const std::string& content) {
  const std::filesystem::path p = std::filesystem::temp_directory_path() / ("flowmatch_test_" + name);
  std::ofstream(p) << content;
  return p;
}

}  // namespace

TEST_CASE("Moons: points lie on the two arcs within the noise, half on each", "[distribution][toy]") {
  Rng rng(1);
  Matrix<double> x(2, kN);
  Vector<Index> labels;
  SECTION("noise-free points lie exactly on their arc") {
    const Moons moons(0.0, 2.0);
    moons.sample_labelled(rng, x, labels);
    Index upper = 0;
    for (Index j = 0; j < kN; ++j) {
      const double qx = x(0, j) / 2.0 + 0.5, qy = x(1, j) / 2.0 + 0.25;
      REQUIRE(distance_to_arc(labels(j), qx, qy) < 1e-12);
      upper += labels(j) == 0;
    }
    check_fraction(upper, kN, 0.5);
    // Centred: E x = 0 (the arcs' means are (0, 2 / pi) and (1, 1/2 - 2 / pi)); sd of x_0 is ~1.7.
    CHECK(std::abs(x.row(0).mean()) < kSigmas * 2.0 * 0.87 / std::sqrt(double(kN)));
    CHECK(std::abs(x.row(1).mean()) < kSigmas * 2.0 * 0.5 / std::sqrt(double(kN)));
  }
  SECTION("with noise sigma the mean squared distance to the arcs is about sigma^2") {
    const double sigma = 0.05;
    const Moons moons(sigma);
    moons.sample(rng, x);
    double d2 = 0.0;
    for (Index j = 0; j < kN; ++j) {
      const double qx = x(0, j) + 0.5, qy = x(1, j) + 0.25;
      const double d = std::min(distance_to_arc(0, qx, qy), distance_to_arc(1, qx, qy));
      d2 += d * d / static_cast<double>(kN);
    }
    // The normal component of the noise (variance sigma^2); the tangential one only counts
    // beyond the arcs' ends, and curvature changes it by O(sigma): within 10%.
    CHECK(d2 == Approx(sigma * sigma).epsilon(0.1));
  }
  SECTION("sample and sample_labelled draw the same points") {
    const Moons moons(0.1, 3.0);
    Rng a(7), b(7);
    Matrix<float> xa(2, 100), xb(2, 100);
    moons.sample(a, xa);
    moons.sample_labelled(b, xb, labels);
    CHECK(xa == xb);
  }
}

TEST_CASE("Circles: radii 1 and factor, half on each, uniform angle", "[distribution][toy]") {
  Rng rng(2);
  const Circles circles(0.3, 0.0, 2.0);
  Matrix<double> x(2, kN);
  Vector<Index> labels;
  circles.sample_labelled(rng, x, labels);
  Index outer = 0;
  double mean_cos = 0.0, mean_sin = 0.0;
  for (Index j = 0; j < kN; ++j) {
    const double r = std::hypot(x(0, j), x(1, j)) / 2.0;
    REQUIRE(r == Approx(labels(j) == 0 ? 1.0 : 0.3).epsilon(1e-12));
    outer += labels(j) == 0;
    mean_cos += x(0, j) / (2.0 * r) / double(kN);
    mean_sin += x(1, j) / (2.0 * r) / double(kN);
  }
  check_fraction(outer, kN, 0.5);
  // cos and sin of a uniform angle: mean 0, sd 1 / sqrt(2).
  CHECK(std::abs(mean_cos) < kSigmas * std::sqrt(0.5 / double(kN)));
  CHECK(std::abs(mean_sin) < kSigmas * std::sqrt(0.5 / double(kN)));
  // Noise: the radial spread of the outer circle is sigma.
  const Circles noisy(0.5, 0.04);
  noisy.sample_labelled(rng, x, labels);
  double s2 = 0.0;
  Index n0 = 0;
  for (Index j = 0; j < kN; ++j)
    if (labels(j) == 0) s2 += std::pow(std::hypot(x(0, j), x(1, j)) - 1.0, 2), ++n0;
  CHECK(std::sqrt(s2 / double(n0)) == Approx(0.04).epsilon(0.05));
}

TEST_CASE("Checkerboard: uniform on the dark squares", "[distribution][toy]") {
  Rng rng(3);
  const Checkerboard board;  // 4 x 4 squares of side 1 on [-2, 2]^2
  CHECK(board.num_classes() == 8);
  CHECK(board.half_width() == 2.0);
  Matrix<double> x(2, kN);
  Vector<Index> labels;
  board.sample_labelled(rng, x, labels);
  std::vector<Index> counts(8, 0);
  double offset_x = 0.0, offset_y = 0.0;
  for (Index j = 0; j < kN; ++j) {
    REQUIRE(board.is_dark(x(0, j), x(1, j)));
    ++counts[static_cast<std::size_t>(labels(j))];
    offset_x += (x(0, j) + 2.0 - std::floor(x(0, j) + 2.0)) / double(kN);
    offset_y += (x(1, j) + 2.0 - std::floor(x(1, j) + 2.0)) / double(kN);
  }
  for (Index c : counts) check_fraction(c, kN, 1.0 / 8.0);
  // Uniform within a square: the offset from its corner has mean 1/2 and sd 1 / sqrt(12).
  CHECK(std::abs(offset_x - 0.5) < kSigmas * std::sqrt(1.0 / 12.0 / double(kN)));
  CHECK(std::abs(offset_y - 0.5) < kSigmas * std::sqrt(1.0 / 12.0 / double(kN)));
  CHECK_FALSE(board.is_dark(-1.5, -0.5));
  CHECK(board.is_dark(-1.5, -1.5));
  CHECK_FALSE(board.is_dark(2.5, 0.0));
  // An odd board: ceil(9 / 2) = 5 dark squares.
  CHECK(Checkerboard(3, 2.0).num_classes() == 5);
}

TEST_CASE("8 gaussians: eight equal modes on the circle", "[distribution][toy]") {
  Rng rng(4);
  const GaussianMixture g = eight_gaussians(3.0, 0.1);
  CHECK(g.nmodes() == 8);
  CHECK(g.means()(0, 2) == Approx(0.0).margin(1e-15));
  CHECK(g.means()(1, 2) == Approx(3.0));
  CHECK(g.means()(0, 1) == Approx(3.0 / std::numbers::sqrt2));
  Matrix<double> x(2, kN);
  Vector<Index> labels;
  g.sample_labelled(rng, x, labels);
  const std::vector<Index> counts = g.mode_counts(x, 5.0);
  for (Index k = 0; k < 8; ++k) {
    check_fraction(counts[static_cast<std::size_t>(k)], kN, 1.0 / 8.0);
    Index labelled = 0;
    for (Index j = 0; j < kN; ++j) labelled += labels(j) == k;
    CHECK(labelled == counts[static_cast<std::size_t>(k)]);  // modes 6 sds apart: no confusion
  }
  CHECK(std::abs(x.row(0).mean()) < kSigmas * 3.0 / std::sqrt(2.0 * kN));
}

TEST_CASE("Swiss roll: noise-free points on the spiral r = s with s uniform", "[distribution][toy]") {
  Rng rng(5);
  const SwissRoll roll(0.0, 0.5);
  Matrix<double> x(2, kN);
  roll.sample(rng, x);
  std::vector<double> radii;
  for (Index j = 0; j < kN; ++j) {
    const double r = std::hypot(x(0, j), x(1, j)) / 0.5;
    REQUIRE(r >= SwissRoll::s_min() - 1e-9);
    REQUIRE(r < SwissRoll::s_max() + 1e-9);
    // The angle of the point is the parameter s = r (mod 2 pi).
    const double angle = std::atan2(x(1, j), x(0, j));
    REQUIRE(std::remainder(angle - r, 2.0 * std::numbers::pi) == Approx(0.0).margin(1e-9));
    radii.push_back(r);
  }
  const test::Moments m = test::moments(radii);
  const double width = SwissRoll::s_max() - SwissRoll::s_min();  // 3 pi
  CHECK(std::abs(m.mean - 3.0 * std::numbers::pi) < kSigmas * width / std::sqrt(12.0 * kN));
  CHECK(m.variance == Approx(width * width / 12.0).epsilon(0.03));
}

TEST_CASE("Toy data sets refuse bad parameters", "[distribution][toy][errors]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_AS(Moons(-0.1), InvalidArgument);
  CHECK_THROWS_WITH(Moons(0.1, 0.0), Catch::Contains("flowmatch::Moons") && Catch::Contains("'scale' = 0"));
  CHECK_THROWS_AS(Circles(1.0), InvalidArgument);
  CHECK_THROWS_AS(Circles(0.5, nan), InvalidArgument);
  CHECK_THROWS_AS(Checkerboard(0), InvalidArgument);
  CHECK_THROWS_AS(Checkerboard(4, -1.0), InvalidArgument);
  CHECK_THROWS_AS(SwissRoll(0.5, 0.0), InvalidArgument);
  CHECK_THROWS_AS(eight_gaussians(2.0, 0.0), InvalidArgument);
  Rng rng(0);
  Matrix<double> wrong(3, 4);
  CHECK_THROWS_AS(Moons().sample(rng, wrong), DimensionMismatch);
  CHECK_THROWS_AS(Checkerboard().sample(rng, wrong), DimensionMismatch);
}

TEST_CASE("Empirical: samples columns uniformly with replacement", "[distribution][empirical]") {
  Matrix<double> pts(2, 4);
  pts << 0, 1, 2, 3, 10, 11, 12, 13;
  const Empirical emp(pts);
  CHECK(emp.dim() == 2);
  CHECK(emp.size() == 4);
  Rng rng(6);
  Matrix<float> x(2, kN);
  emp.sample(rng, x);
  std::vector<Index> counts(4, 0);
  for (Index j = 0; j < kN; ++j) {
    const auto k = static_cast<Index>(x(0, j));
    REQUIRE(x(0, j) == static_cast<float>(k));
    REQUIRE(x(1, j) == static_cast<float>(10 + k));
    ++counts[static_cast<std::size_t>(k)];
  }
  for (Index c : counts) check_fraction(c, kN, 0.25);
  CHECK_THROWS_AS(Empirical(Matrix<double>(2, 0)), InvalidArgument);
  Matrix<double> bad = pts;
  bad(1, 2) = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH(Empirical(bad), Catch::Contains("'points(1, 2)'"));
}

TEST_CASE("Empirical::from_csv reads a data set, with or without a header", "[distribution][empirical]") {
  const auto with_header = temp_file("with_header.csv", "x,y\n1, 2\n3,4\r\n\n-5.5,6e1\n");
  const Empirical a = Empirical::from_csv(with_header.string(), 2);
  CHECK(a.dim() == 2);
  REQUIRE(a.size() == 3);
  CHECK(a.points()(0, 2) == -5.5);
  CHECK(a.points()(1, 2) == 60.0);
  CHECK(a.points()(1, 1) == 4.0);
  const auto no_header = temp_file("no_header.csv", "1,2,3\n4,5,6\n");
  const Empirical b = Empirical::from_csv(no_header.string());
  CHECK(b.dim() == 3);
  CHECK(b.size() == 2);
  std::filesystem::remove(with_header);
  std::filesystem::remove(no_header);
}

TEST_CASE("Empirical::from_csv refuses bad files with clear messages", "[distribution][empirical][errors]") {
  const auto ragged = temp_file("ragged.csv", "1,2\n3,4\n5\n");
  CHECK_THROWS_AS(Empirical::from_csv(ragged.string()), CsvError);
  CHECK_THROWS_WITH(Empirical::from_csv(ragged.string()), Catch::Contains("ragged.csv:3:"));
  const auto text = temp_file("text.csv", "a,b\n1,2\nx,3\n");
  CHECK_THROWS_WITH(Empirical::from_csv(text.string()), Catch::Contains("text.csv:3:"));
  const auto three = temp_file("three.csv", "1,2,3\n");
  CHECK_THROWS_AS(Empirical::from_csv(three.string(), 2), DimensionMismatch);
  CHECK_THROWS_WITH(Empirical::from_csv(three.string(), 2), Catch::Contains("has fields (dimension) 3, expected 2"));
  const auto empty = temp_file("empty.csv", "x,y\n");
  CHECK_THROWS_AS(Empirical::from_csv(empty.string()), Error);
  CHECK_THROWS_AS(Empirical::from_csv("/nonexistent/flowmatch.csv"), Error);
  // A CSV whose dimension does not match the model: the trainer refuses it.
  const Empirical data = Empirical::from_csv(three.string());
  MLPVectorField<float> model(2, {8}, 0);
  Adam<float> adam;
  const GaussianConditionalPath path(data, LinearAlpha{}, LinearBeta{});
  CHECK_THROWS_AS(CFMTrainer(path, model, adam), DimensionMismatch);
  for (const auto& p : {ragged, text, three, empty}) std::filesystem::remove(p);
}

static_assert(LabelledDistribution<Moons> && LabelledDistribution<Circles> && LabelledDistribution<Checkerboard> &&
              LabelledDistribution<GaussianMixture> && ConditionalDistribution<Empirical> &&
              ContextDistribution<Empirical>);
static_assert(!ConditionalDistribution<SwissRoll> && !ConditionalDistribution<StandardNormal>);

TEST_CASE("One sampling convention: sample, sample(n), sample_labelled and sample_with_condition draw alike",
          "[distribution]") {
  const auto same_draws = [](const auto& d, const char* name) {
    INFO(name);
    Rng a(3), b(3), c(3), e(3);
    Matrix<double> xa(2, 50), xb(2, 50), xc(2, 50);
    d.sample(a, xa);
    const Matrix<double> xn = d.template sample<double>(50, e);
    Vector<Index> labels;
    d.sample_labelled(b, xb, labels);
    ConditionBatch<float> cond;
    d.sample_with_condition(c, xc, cond);
    CHECK(xa == xb);
    CHECK(xa == xc);
    CHECK(xa == xn);
    CHECK(a == b);
    CHECK(a == c);
    CHECK(cond.kind == ConditionKind::Label);
    CHECK(cond.labels == labels);
    CHECK(cond.present == RowVector<float>::Ones(50));
    CHECK(labels.minCoeff() >= 0);
    CHECK(labels.maxCoeff() < d.num_classes());
    CHECK(d.condition_kind() == ConditionKind::Label);
  };
  same_draws(Moons(), "moons");
  same_draws(Circles(), "circles");
  same_draws(Checkerboard(), "checkerboard");
  same_draws(eight_gaussians(), "eight gaussians");
  Rng rng(1);
  CHECK(SwissRoll().sample<float>(7, rng).cols() == 7);
  CHECK_THROWS_AS(Moons().sample<float>(-1, rng), InvalidArgument);
}

TEST_CASE("Empirical with labels or context vectors samples each point with its own condition", "[distribution][empirical]") {
  Matrix<double> pts(2, 4);
  pts << 0, 1, 2, 3, 10, 11, 12, 13;
  Vector<Index> labels(4);
  labels << 2, 0, 1, 2;
  const Empirical labelled = Empirical::with_labels(pts, labels);
  CHECK(labelled.num_classes() == 3);
  CHECK(labelled.condition_kind() == ConditionKind::Label);
  CHECK(labelled.condition_dim() == 0);
  Matrix<double> context(3, 4);
  context << 0, 1, 2, 3, 0, -1, -2, -3, 5, 5, 5, 5;
  const Empirical paired = Empirical::with_context(pts, context);
  CHECK(paired.condition_kind() == ConditionKind::Vector);
  CHECK(paired.condition_dim() == 3);
  CHECK(paired.num_classes() == 0);
  Rng a(4), b(4), c(4);
  Matrix<float> x(2, 500), xl(2, 500), xc(2, 500);
  Empirical(pts).sample(a, x);
  ConditionBatch<float> lc, cc;
  labelled.sample_with_condition(b, xl, lc);
  paired.sample_with_condition(c, xc, cc);
  CHECK(x == xl);  // the same draws as without a condition
  CHECK(x == xc);
  REQUIRE(lc.kind == ConditionKind::Label);
  REQUIRE(cc.kind == ConditionKind::Vector);
  REQUIRE(cc.context.rows() == 3);
  for (Index j = 0; j < 500; ++j) {
    const auto k = static_cast<Index>(x(0, j));  // the point drawn
    CHECK(lc.labels(j) == labels(k));
    CHECK(cc.context.col(j) == context.col(k).cast<float>());
  }
  Matrix<double> ctx_out;
  Rng d(4);
  Matrix<double> xd(2, 500);
  paired.sample_with_context(d, xd, ctx_out);
  CHECK(ctx_out.cast<float>() == cc.context);
  // Sampled on its own, an Empirical without a condition says so.
  ConditionBatch<double> none;
  none.set_labels(3);
  Matrix<double> xn(2, 5);
  Empirical(pts).sample_with_condition(d, xn, none);
  CHECK(none.kind == ConditionKind::None);
  Vector<Index> l;
  CHECK_THROWS_WITH(paired.sample_labelled(d, xn, l), Catch::Contains("no class labels"));
  CHECK_THROWS_WITH(labelled.sample_with_context(d, xn, ctx_out), Catch::Contains("no context vectors"));
  // Bad conditions.
  Vector<Index> short_labels(3);
  short_labels << 0, 1, 2;
  CHECK_THROWS_AS(Empirical::with_labels(pts, short_labels), DimensionMismatch);
  labels(1) = -1;
  CHECK_THROWS_WITH(Empirical::with_labels(pts, labels, 3), Catch::Contains("'labels[1]' = -1"));
  labels(1) = 3;
  CHECK_THROWS_AS(Empirical::with_labels(pts, labels, 3), InvalidArgument);
  context(1, 2) = std::nan("");
  CHECK_THROWS_WITH(Empirical::with_context(pts, context), Catch::Contains("'context(1, 2)'"));
  CHECK_THROWS_AS(Empirical::with_context(pts, Matrix<double>::Zero(2, 3)), DimensionMismatch);
  // Copies share the data.
  const Empirical copy = paired;
  CHECK(&copy.points() == &paired.points());
}

TEST_CASE("Empirical::from_csv reads condition columns by position or by name", "[distribution][empirical]") {
  const auto file = temp_file("conditioned.csv", "x,label,y,c1,c2\n1,0,2,0.5,-1\n3,2,4,1.5,-2\n5,1,6,2.5,-3\n");
  const Empirical by_label = Empirical::from_csv(file.string(), 4, CsvCondition::label(1));
  CHECK(by_label.dim() == 4);
  CHECK(by_label.num_classes() == 3);
  CHECK(by_label.labels() == (Vector<Index>(3) << 0, 2, 1).finished());
  CHECK(by_label.points().col(1) == (Vector<double>(4) << 3, 4, 1.5, -2).finished());
  const Empirical by_name = Empirical::from_csv(file.string(), 2, CsvCondition::vector(std::vector<std::string>{"c2", "label", "c1"}));
  CHECK(by_name.dim() == 2);
  CHECK(by_name.condition_dim() == 3);
  CHECK(by_name.points() == (Matrix<double>(2, 3) << 1, 3, 5, 2, 4, 6).finished());
  CHECK(by_name.context().col(2) == (Vector<double>(3) << -3, 1, 2.5).finished());
  const Empirical by_position = Empirical::from_csv(file.string(), 0, CsvCondition::vector(std::vector<long long>{-2, -1}));
  CHECK(by_position.dim() == 3);
  CHECK(by_position.context() == (Matrix<double>(2, 3) << 0.5, 1.5, 2.5, -1, -2, -3).finished());
  const Empirical named_label = Empirical::from_csv(file.string(), 4, CsvCondition::label("label", 5));
  CHECK(named_label.num_classes() == 5);
  // Refused: a non-integer label, an unknown column, a field out of range, the wrong dimension.
  CHECK_THROWS_WITH(Empirical::from_csv(file.string(), 0, CsvCondition::label(3)),
                    Catch::Contains("conditioned.csv") && Catch::Contains("data row 1: the label 0.5"));
  CHECK_THROWS_WITH(Empirical::from_csv(file.string(), 0, CsvCondition::label("z")), Catch::Contains("no such column"));
  CHECK_THROWS_AS(Empirical::from_csv(file.string(), 0, CsvCondition::vector(std::vector<long long>{5})), InvalidArgument);
  CHECK_THROWS_AS(Empirical::from_csv(file.string(), 3, CsvCondition::label(1)), DimensionMismatch);
  CHECK_THROWS_AS(Empirical::from_csv(file.string(), 0, CsvCondition::vector(std::vector<long long>{1, -4})), InvalidArgument);
  // A labelled CSV trains a class-conditional path: the batch carries the labels.
  const GaussianConditionalPath path(by_label, LinearAlpha{}, LinearBeta{});
  TrainingBatch<float> batch(4, 16);
  Rng rng(2);
  path.sample_training_batch(rng, batch);
  CHECK(batch.condition.kind == ConditionKind::Label);
  CHECK(batch.condition.labels.size() == 16);
  std::filesystem::remove(file);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
