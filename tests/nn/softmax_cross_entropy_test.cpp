// softmax_cross_entropy: the value against a direct computation in long double, the gradient
// against central differences of the value (double), stability at logits of 1e4 where a naive
// exp overflows, in-place use, and the errors (bad labels name their position and value).

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>

#include <flowmatch/core/random.hpp>
#include <flowmatch/nn/softmax_cross_entropy.hpp>

#include "support/errors.hpp"
#include "support/compare.hpp"
#include "support/gradient_check.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

// mean_j [ log sum_i exp(z_ij) - z_{y_j j} ] without max subtraction, in long double: an
// independent reference for moderate logits.
double naive_loss(const Matrix<double>& z, const Eigen::VectorXi& y) {
  long double sum = 0.0L;
  for (Index j = 0; j < z.cols(); ++j) {
    long double s = 0.0L;
    for (Index i = 0; i < z.rows(); ++i) s += std::exp(static_cast<long double>(z(i, j)));
    sum += std::log(s) - static_cast<long double>(z(y(j), j));
  }
  return static_cast<double>(sum / static_cast<long double>(z.cols()));
}

}  // namespace

TEST_CASE("softmax_cross_entropy: value matches a direct computation", "[softmax]") {
  // Hand-checked case: two classes, logits (0, 0) -> loss log 2 whatever the label.
  Matrix<double> z2 = Matrix<double>::Zero(2, 3);
  Eigen::VectorXi y2(3);
  y2 << 0, 1, 1;
  CHECK(softmax_cross_entropy(z2, y2) == Approx(std::log(2.0)).epsilon(1e-15));
  // One column, logits (1, 2, 3), label 2: log(e + e^2 + e^3) - 3.
  Matrix<double> z1(3, 1);
  z1 << 1.0, 2.0, 3.0;
  Eigen::VectorXi y1(1);
  y1 << 2;
  const double expected = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 3.0;
  CHECK(softmax_cross_entropy(z1, y1) == Approx(expected).epsilon(1e-14));

  Rng rng(7);
  Matrix<double> z(10, 37);
  rng.fill_normal(z);
  z *= 3.0;
  Eigen::VectorXi y(37);
  for (Index j = 0; j < 37; ++j) y(j) = static_cast<int>(rng.below(10));
  Matrix<double> g(10, 37);
  const double loss = softmax_cross_entropy(z, y, g);
  CHECK(loss == Approx(naive_loss(z, y)).epsilon(1e-13));
  CHECK(softmax_cross_entropy(z, y) == loss);
  // Each column of the gradient sums to 0 (softmax sums to 1, the one-hot too), the label's
  // entry is negative and the others positive.
  for (Index j = 0; j < 37; ++j) {
    CHECK(std::abs(g.col(j).sum()) < 1e-15);
    for (Index i = 0; i < 10; ++i) CHECK((i == y(j) ? g(i, j) < 0.0 : g(i, j) > 0.0));
  }
  // Float logits and a row vector of long labels give the same numbers (computed in double).
  const Matrix<float> zf = z.cast<float>();
  const Eigen::Matrix<long, 1, Eigen::Dynamic> yl = y.cast<long>().transpose();
  CHECK(softmax_cross_entropy(zf, yl) == Approx(naive_loss(zf.cast<double>(), y)).epsilon(1e-12));
}

TEST_CASE("softmax_cross_entropy: gradient matches central differences", "[softmax][gradient]") {
  Rng rng(11);
  const Index C = 7, n = 9;
  Matrix<double> z(C, n);
  rng.fill_normal(z);
  z *= 2.0;
  Eigen::VectorXi y(n);
  for (Index j = 0; j < n; ++j) y(j) = static_cast<int>(rng.below(C));
  Matrix<double> g(C, n);
  softmax_cross_entropy(z, y, g);
  double worst = 0.0;
  for (Index j = 0; j < n; ++j)
    for (Index i = 0; i < C; ++i) {
      const double numeric = test::central_difference([&] { return softmax_cross_entropy(z, y); }, z(i, j), 1e-5);
      // Entries are O(1 / n); central-difference error ~ h^2 + eps / h ~ 1e-10.
      worst = test::worse(worst, std::abs(g(i, j) - numeric));
    }
  INFO("largest |analytic - numeric| = " << worst);
  CHECK(worst < 1e-9);
  // And the gradient is not trivially small (a zero gradient would pass an absolute check).
  CHECK(test::max_abs(g) > 1e-2);
}

TEST_CASE("softmax_cross_entropy: stable at huge logits and usable in place", "[softmax]") {
  // exp(1e4) overflows double: without the max subtraction this is inf - inf = NaN.
  Matrix<double> z(3, 2);
  z << 1e4, -1e4, 1e4 - 1.0, 0.0, 1e4 - 2.0, 1e4;
  Eigen::VectorXi y(2);
  y << 1, 2;
  Matrix<double> g(3, 2);
  const double loss = softmax_cross_entropy(z, y, g);
  // Column 0: logits shifted by -1e4 are (0, -1, -2), label 1. Column 1: (-2e4, -1e4, 0), label 2.
  const double c0 = std::log(1.0 + std::exp(-1.0) + std::exp(-2.0)) + 1.0;
  const double c1 = std::log1p(std::exp(-2e4) + std::exp(-1e4));
  REQUIRE(std::isfinite(loss));
  CHECK(loss == Approx(0.5 * (c0 + c1)).epsilon(1e-12));
  CHECK(g.allFinite());
  CHECK(g(2, 1) == Approx(0.0).margin(1e-300));
  // Float logits of 1e4 as well.
  const Matrix<float> zf = z.cast<float>();
  Matrix<float> gf(3, 2);
  CHECK(std::isfinite(softmax_cross_entropy(zf, y, gf)));
  CHECK(gf.allFinite());
  // In place: grad_logits may be the logits themselves.
  Matrix<double> inplace = z;
  CHECK(softmax_cross_entropy(inplace, y, inplace) == loss);
  CHECK(test::max_abs(inplace - g) == 0.0);
}

TEST_CASE("softmax_cross_entropy: bad labels and shapes throw naming what is wrong", "[softmax][errors]") {
  Matrix<double> z = Matrix<double>::Zero(4, 3);
  Matrix<double> g = Matrix<double>::Constant(4, 3, 42.0);
  Eigen::VectorXi y(3);
  y << 0, 4, 1;
  const std::string m = test::error_message<InvalidArgument>([&] { softmax_cross_entropy(z, y, g); });
  CHECK(m.find("softmax_cross_entropy") != std::string::npos);
  CHECK(m.find("labels[1]") != std::string::npos);
  CHECK(m.find("= 4") != std::string::npos);
  CHECK(m.find("[0, 3]") != std::string::npos);
  CHECK((g.array() == 42.0).all());  // nothing written
  y << 0, 1, -1;
  const std::string neg = test::error_message<InvalidArgument>([&] { softmax_cross_entropy(z, y); });
  CHECK(neg.find("labels[2]") != std::string::npos);
  CHECK(neg.find("= -1") != std::string::npos);
  // Floating-point labels must hold integers.
  Eigen::VectorXd yd(3);
  yd << 0.0, 1.5, 2.0;
  CHECK(test::error_message<InvalidArgument>([&] { softmax_cross_entropy(z, yd); }).find("labels[1]") != std::string::npos);
  yd << 0.0, 1.0, 3.0;
  CHECK_NOTHROW(softmax_cross_entropy(z, yd));
  // Shapes.
  Eigen::VectorXi y2(2);
  y2 << 0, 1;
  CHECK_THROWS_AS(softmax_cross_entropy(z, y2), DimensionMismatch);
  y << 0, 1, 2;
  Matrix<double> g_wrong(3, 3);
  CHECK_THROWS_AS(softmax_cross_entropy(z, y, g_wrong), DimensionMismatch);
  Matrix<int> y_matrix = Matrix<int>::Zero(3, 3);
  CHECK_THROWS_AS(softmax_cross_entropy(Matrix<double>::Zero(4, 9), y_matrix), DimensionMismatch);
  CHECK_THROWS_AS(softmax_cross_entropy(Matrix<double>(4, 0), Eigen::VectorXi(0)), InvalidArgument);
  // Non-finite logits: NumericalError naming the column.
  z(2, 1) = std::numeric_limits<double>::quiet_NaN();
  try {
    softmax_cross_entropy(z, y);
    FAIL("no exception");
  } catch (const NumericalError& e) {
    CHECK(std::string(e.what()).find("column 1") != std::string::npos);
  }
}

}  // namespace FLOWMATCH_TEST_FILE_ID
