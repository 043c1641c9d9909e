// C2ST (metrics/c2st.hpp) on cases with known answers: two equal Gaussians give about 0.5, a shift
// delta in one coordinate of N(0, I) gives about the Bayes-optimal accuracy Phi(delta / 2), disjoint
// sets give 1; the result depends on the seed only (same seed: same bits; any thread count: same
// bits), z-scoring makes it blind to a common rescaling, and every bad input throws.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include <flowmatch/core/error.hpp>
#include <flowmatch/core/random.hpp>
#include <flowmatch/metrics/c2st.hpp>

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

/// n samples of N(0, I_d) shifted by `delta` in the first coordinate, one per column.
Matrix<double> gaussian(Index d, Index n, double delta, std::uint64_t seed) {
  Rng rng(seed);
  Matrix<double> x(d, n);
  rng.fill_normal(x);
  x.row(0).array() += delta;
  return x;
}

double bayes_accuracy(double delta) { return 0.5 * std::erfc(-(delta / 2.0) / std::sqrt(2.0)); }

}  // namespace

TEST_CASE("C2ST of two samples of the same Gaussian is about 0.5", "[metrics][c2st]") {
  const Matrix<double> x = gaussian(2, 1000, 0.0, 11), y = gaussian(2, 1000, 0.0, 12);
  const C2STResult r = c2st_detailed(x, y);
  // 2000 test predictions: sampling sd about 0.011; an overfitted classifier may sit a little
  // below 0.5, never far above it.
  CHECK(r.accuracy == Approx(0.5).margin(0.05));
  REQUIRE(r.fold_accuracy.size() == 5);
  double mean = 0.0;
  for (double a : r.fold_accuracy) {
    CHECK(a >= 0.0);
    CHECK(a <= 1.0);
    mean += a / 5.0;
  }
  CHECK(r.accuracy == Approx(mean).epsilon(1e-12));
  CHECK(r.epochs_total >= 5 * 12);  // sklearn's rule cannot stop before epoch n_iter_no_change + 2
  CHECK(c2st(x, y) == r.accuracy);
}

TEST_CASE("C2ST of a shifted Gaussian is about the Bayes-optimal accuracy Phi(delta / 2)", "[metrics][c2st]") {
  const Matrix<double> x = gaussian(2, 1000, 0.0, 21);
  {
    const double delta = 1.0;  // Phi(0.5) = 0.691
    const double acc = c2st(x, gaussian(2, 1000, delta, 22));
    CHECK(bayes_accuracy(delta) == Approx(0.6915).margin(1e-4));
    CHECK(acc == Approx(bayes_accuracy(delta)).margin(0.05));
  }
  {
    const double delta = 4.0;  // Phi(2) = 0.977
    const double acc = c2st(x, gaussian(2, 1000, delta, 23));
    CHECK(bayes_accuracy(delta) == Approx(0.9772).margin(1e-4));
    CHECK(acc == Approx(bayes_accuracy(delta)).margin(0.02));
  }
}

TEST_CASE("C2ST of disjoint sets is about 1, in a higher dimension too", "[metrics][c2st]") {
  CHECK(c2st(gaussian(2, 500, 0.0, 31), gaussian(2, 500, 20.0, 32)) >= 0.995);
  CHECK(c2st(gaussian(5, 500, 0.0, 33), gaussian(5, 500, 20.0, 34)) >= 0.995);
}

TEST_CASE("C2ST depends on the seed only: same bits again, on any number of threads", "[metrics][c2st]") {
  const Matrix<double> x = gaussian(3, 400, 0.0, 41), y = gaussian(3, 400, 0.7, 42);
  C2STOptions o;
  o.seed = 7;
  o.max_epochs = 60;  // small training sets overfit slowly for hundreds of epochs: keep it quick
  const C2STResult a = c2st_detailed(x, y, o);
  const C2STResult b = c2st_detailed(x, y, o);
  CHECK(a.accuracy == b.accuracy);
  CHECK(a.fold_accuracy == b.fold_accuracy);
  CHECK(a.epochs_total == b.epochs_total);
  o.threads = 2;
  const C2STResult c = c2st_detailed(x, y, o);
  CHECK(c.fold_accuracy == a.fold_accuracy);
  CHECK(c.epochs_total == a.epochs_total);
  o.threads = 0;  // every core
  CHECK(c2st_detailed(x, y, o).fold_accuracy == a.fold_accuracy);
  // float input is converted exactly as double input is: the same values give the same bits.
  const Matrix<float> xf = x.cast<float>(), yf = y.cast<float>();
  const Matrix<double> xr = xf.cast<double>(), yr = yf.cast<double>();
  CHECK(c2st_detailed(xf, yf, o).fold_accuracy == c2st_detailed(xr, yr, o).fold_accuracy);
  // Another seed: other folds, another initialisation, other shuffles.
  o.seed = 8;
  const C2STResult d = c2st_detailed(x, y, o);
  CHECK(d.fold_accuracy != a.fold_accuracy);
}

TEST_CASE("C2ST z-scores with the reference's statistics", "[metrics][c2st]") {
  const Matrix<double> x = gaussian(2, 300, 0.0, 51), y = gaussian(2, 300, 1.0, 52);
  const C2STResult a = c2st_detailed(x, y);
  // Scaling both sets by 4 and shifting them by a power of two leaves the z-scored data the same
  // to the last bit, so the result is the same.
  const Matrix<double> xs = (4.0 * x.array() + 8.0).matrix(), ys = (4.0 * y.array() + 8.0).matrix();
  const C2STResult b = c2st_detailed(xs, ys);
  CHECK(b.fold_accuracy == a.fold_accuracy);
  CHECK(b.epochs_total == a.epochs_total);
  // Without z-scoring the rescaled data train differently (but still separate the sets).
  C2STOptions raw;
  raw.z_score = false;
  const C2STResult c = c2st_detailed(xs, ys, raw);
  CHECK(c.fold_accuracy != a.fold_accuracy);
  CHECK(c.accuracy > 0.55);
}

TEST_CASE("C2ST options change the training as documented", "[metrics][c2st]") {
  const Matrix<double> x = gaussian(2, 200, 0.0, 61), y = gaussian(2, 200, 3.0, 62);
  C2STOptions o;
  o.max_epochs = 1;
  const C2STResult one = c2st_detailed(x, y, o);
  CHECK(one.epochs_total == 5);
  o.max_epochs = 3;
  o.folds = 4;
  const C2STResult four = c2st_detailed(x, y, o);
  CHECK(four.epochs_total == 12);
  CHECK(four.fold_accuracy.size() == 4);
  // A huge tolerance: after the first epoch (which improves on +infinity) no epoch improves by more
  // than tol, and scikit-learn stops once more than n_iter_no_change epochs in a row have not:
  // after n_iter_no_change + 2 epochs.
  C2STOptions lazy;
  lazy.tol = 1e9;
  lazy.n_iter_no_change = 3;
  CHECK(c2st_detailed(x, y, lazy).epochs_total == 5 * 5);
  // 13 samples, 5 folds: folds of 3, 3, 3, 2, 2 test samples; each accuracy a multiple of 1/3 or 1/2.
  const C2STResult tiny = c2st_detailed(gaussian(2, 7, 0.0, 63), gaussian(2, 6, 0.0, 64));
  for (double a : tiny.fold_accuracy) {
    const bool thirds = std::abs(a * 3.0 - std::round(a * 3.0)) < 1e-12;
    const bool halves = std::abs(a * 2.0 - std::round(a * 2.0)) < 1e-12;
    CHECK((thirds || halves));
  }
}

TEST_CASE("C2ST refuses bad input", "[metrics][c2st]") {
  const Matrix<double> x = gaussian(2, 20, 0.0, 71), y = gaussian(2, 20, 0.0, 72);
  CHECK_THROWS_AS(c2st(x, gaussian(3, 20, 0.0, 73)), DimensionMismatch);
  CHECK_THROWS_WITH(c2st(x, gaussian(3, 20, 0.0, 73)), Catch::Contains("samples"));
  CHECK_THROWS_AS(c2st(Matrix<double>(0, 5), Matrix<double>(0, 5)), InvalidArgument);
  CHECK_THROWS_AS(c2st(Matrix<double>(2, 0), y), InvalidArgument);
  CHECK_THROWS_AS(c2st(x, Matrix<double>(2, 0)), InvalidArgument);
  // Fewer samples in all than folds.
  CHECK_THROWS_WITH(c2st(gaussian(2, 2, 0.0, 74), gaussian(2, 2, 0.0, 75)), Catch::Contains("options.folds = 5"));
  // A single reference sample cannot be z-scored (n - 1 = 0).
  C2STOptions three;
  three.folds = 3;
  CHECK_THROWS_AS(c2st(gaussian(2, 1, 0.0, 76), y, three), InvalidArgument);
  // Non-finite values, named with their position.
  Matrix<double> bad = x;
  bad(1, 4) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(c2st(bad, y), Catch::Contains("reference(1, 4)"));
  bad = y;
  bad(0, 3) = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH(c2st(x, bad), Catch::Contains("samples(0, 3)"));
  // A constant coordinate of the reference: z-scoring would divide by 0 ...
  Matrix<double> flat = x;
  flat.row(1).setConstant(2.5);
  CHECK_THROWS_AS(c2st(flat, y), InvalidArgument);
  CHECK_THROWS_WITH(c2st(flat, y), Catch::Contains("reference row 1"));
  // ... which is fine without z-scoring.
  C2STOptions raw;
  raw.z_score = false;
  raw.max_epochs = 2;
  const double acc = c2st(flat, y, raw);
  CHECK(acc >= 0.0);
  CHECK(acc <= 1.0);

  const auto refuses = [&](auto change, const char* name) {
    C2STOptions o;
    change(o);
    CHECK_THROWS_AS(c2st(x, y, o), InvalidArgument);
    CHECK_THROWS_WITH(c2st(x, y, o), Catch::Contains(name));
  };
  refuses([](C2STOptions& o) { o.folds = 1; }, "options.folds");
  refuses([](C2STOptions& o) { o.folds = 0; }, "options.folds");
  refuses([](C2STOptions& o) { o.threads = -1; }, "options.threads");
  refuses([](C2STOptions& o) { o.max_epochs = 0; }, "options.max_epochs");
  refuses([](C2STOptions& o) { o.tol = -1e-4; }, "options.tol");
  refuses([](C2STOptions& o) { o.tol = std::numeric_limits<double>::quiet_NaN(); }, "options.tol");
  refuses([](C2STOptions& o) { o.n_iter_no_change = 0; }, "options.n_iter_no_change");
  refuses([](C2STOptions& o) { o.batch_size = 0; }, "options.batch_size");
  refuses([](C2STOptions& o) { o.learning_rate = 0.0; }, "options.learning_rate");
  refuses([](C2STOptions& o) { o.alpha = -1.0; }, "options.alpha");
  refuses([](C2STOptions& o) { o.beta1 = 1.0; }, "options.beta1");
  refuses([](C2STOptions& o) { o.beta2 = -0.1; }, "options.beta2");
  refuses([](C2STOptions& o) { o.epsilon = 0.0; }, "options.epsilon");
  refuses([](C2STOptions& o) { o.hidden = -1; }, "options.hidden");
  // A diverging training (absurd learning rate) is reported, not trained on for 10,000 epochs.
  C2STOptions wild;
  wild.learning_rate = 1e30;
  CHECK_THROWS_AS(c2st(x, y, wild), NumericalError);
  CHECK_THROWS_WITH(c2st(x, y, wild), Catch::Contains("diverged"));
  // Every error shares the library's base type.
  C2STOptions o;
  o.folds = 1;
  CHECK_THROWS_AS(c2st(x, y, o), Error);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
