// The five sbibm tasks (flowmatch::sbi): simulators and priors against the statistics their
// definitions (sbibm's task.py) imply, the analytic reference posteriors, bernoulli_glm's design
// matrix and summary statistics against sbibm's stored values, the data readers, and bad inputs.

#include <catch2/catch.hpp>

#include <cmath>
#include <numbers>
#include <string>
#include <vector>

#include <Eigen/LU>

#include <flowmatch/io/csv.hpp>
#include <flowmatch/io/npy.hpp>
#include <flowmatch/sbi/sbibm_data.hpp>
#include <flowmatch/sbi/task.hpp>
#include <flowmatch/sbi/tasks.hpp>

#include "support/errors.hpp"
#include "support/files.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

namespace fm = flowmatch;
namespace sbi = flowmatch::sbi;
using fm::Index;
using fm::Matrix;
using fm::Vector;

static_assert(sbi::Task<sbi::GaussianLinear>);
static_assert(sbi::Task<sbi::TwoMoons>);
static_assert(sbi::Task<sbi::GaussianMixture>);
static_assert(sbi::Task<sbi::SLCP>);
static_assert(sbi::Task<sbi::BernoulliGLM>);
static_assert(sbi::GaussianLinear::has_analytic_reference && sbi::TwoMoons::has_analytic_reference &&
              sbi::GaussianMixture::has_analytic_reference);
static_assert(!sbi::SLCP::has_analytic_reference && !sbi::BernoulliGLM::has_analytic_reference);

namespace {

std::string data_dir() { return (fm::test::tests_dir().parent_path() / "examples" / "posterior" / "sbibm").string(); }

Vector<double> mean_of(const Matrix<double>& x) { return x.rowwise().mean(); }

/// The sample covariance (divisor n) of the columns of x.
Matrix<double> cov_of(const Matrix<double>& x) {
  const Matrix<double> c = x.colwise() - mean_of(x);
  return c * c.transpose() / static_cast<double>(x.cols());
}

Vector<double> vec(std::initializer_list<double> v) {
  Vector<double> out(static_cast<Index>(v.size()));
  Index i = 0;
  for (double e : v) out(i++) = e;
  return out;
}

}  // namespace

TEST_CASE("sbi: task_names and visit_task dispatch on the five sbibm names", "[sbi]") {
  const std::vector<std::string_view> names = sbi::task_names();
  REQUIRE(names.size() == 5);
  const std::vector<Index> theta_dims = {10, 2, 2, 5, 10}, x_dims = {10, 2, 2, 8, 10};
  for (std::size_t i = 0; i < names.size(); ++i) {
    INFO(names[i]);
    CHECK(sbi::visit_task(names[i], [](const auto& t) { return std::string(t.name()); }) == std::string(names[i]));
    CHECK(sbi::visit_task(names[i], [](const auto& t) { return t.theta_dim(); }) == theta_dims[i]);
    CHECK(sbi::visit_task(names[i], [](const auto& t) { return t.x_dim(); }) == x_dims[i]);
  }
  const std::string msg = fm::test::error_message<fm::InvalidArgument>([] {
    sbi::visit_task("two_moon", [](const auto& t) { return t.theta_dim(); });
  });
  CHECK_THAT(msg, Catch::Contains("'two_moon'"));
  CHECK_THAT(msg, Catch::Contains("gaussian_linear, two_moons, gaussian_mixture, slcp, bernoulli_glm"));
}

TEST_CASE("sbi: gaussian_linear's prior is N(0, 0.1 I) and its simulator N(theta, 0.1 I)", "[sbi]") {
  const sbi::GaussianLinear task;
  fm::Rng rng(1);
  const Index n = 20000;
  const Matrix<double> prior = task.sample_prior(rng, n);
  CHECK(mean_of(prior).cwiseAbs().maxCoeff() < 4.0 * std::sqrt(0.1 / n));
  const Matrix<double> pc = cov_of(prior);
  CHECK((pc.diagonal().array() / 0.1 - 1.0).abs().maxCoeff() < 0.05);
  CHECK((pc - Matrix<double>(pc.diagonal().asDiagonal())).cwiseAbs().maxCoeff() < 0.006);

  const Vector<double> theta = vec({0.3, -0.2, 0.1, 0.0, 0.5, -0.5, 0.05, 0.2, -0.1, 0.4});
  Matrix<double> x;
  task.simulate(rng, theta.replicate(1, n), x);
  REQUIRE(x.rows() == 10);
  REQUIRE(x.cols() == n);
  CHECK((mean_of(x) - theta).cwiseAbs().maxCoeff() < 4.0 * std::sqrt(0.1 / n));
  const Matrix<double> xc = cov_of(x);
  CHECK((xc.diagonal().array() / 0.1 - 1.0).abs().maxCoeff() < 0.05);
  CHECK((xc - Matrix<double>(xc.diagonal().asDiagonal())).cwiseAbs().maxCoeff() < 0.006);
  CHECK(task.in_support(Vector<double>::Constant(10, 100.0)));
}

TEST_CASE("sbi: gaussian_linear's reference posterior is N(x_o / 2, 0.05 I)", "[sbi]") {
  const sbi::GaussianLinear task;
  fm::Rng rng(2);
  const Vector<double> x_o = sbi::load_observation(data_dir(), "gaussian_linear", 3);
  const Index n = 20000;
  const Matrix<double> post = task.reference_posterior(rng, x_o, n);
  REQUIRE(post.rows() == 10);
  REQUIRE(post.cols() == n);
  CHECK((mean_of(post) - 0.5 * x_o).cwiseAbs().maxCoeff() < 4.0 * std::sqrt(0.05 / n));
  const Matrix<double> c = cov_of(post);
  CHECK((c.diagonal().array() / 0.05 - 1.0).abs().maxCoeff() < 0.05);
  CHECK((c - Matrix<double>(c.diagonal().asDiagonal())).cwiseAbs().maxCoeff() < 0.003);
  // reference_samples draws the same law for the analytic tasks.
  const Matrix<double> via_data = sbi::reference_samples(data_dir(), "gaussian_linear", 3, rng, 5000);
  REQUIRE(via_data.cols() == 5000);
  CHECK((mean_of(via_data) - 0.5 * x_o).cwiseAbs().maxCoeff() < 4.0 * std::sqrt(0.05 / 5000));
}

TEST_CASE("sbi: uniform priors fill their half-open boxes with the right moments", "[sbi]") {
  fm::Rng rng(3);
  const Index n = 20000;
  auto check_box = [&](const auto& task, double low, double high) {
    INFO(task.name());
    const Matrix<double> theta = task.sample_prior(rng, n);
    REQUIRE(theta.rows() == task.theta_dim());
    CHECK(theta.minCoeff() >= low);
    CHECK(theta.maxCoeff() < high);
    const double width = high - low, var = width * width / 12.0;
    CHECK((mean_of(theta).array() - 0.5 * (low + high)).abs().maxCoeff() < 4.0 * std::sqrt(var / n));
    CHECK((cov_of(theta).diagonal().array() / var - 1.0).abs().maxCoeff() < 0.05);
    for (Index j = 0; j < 100; ++j) CHECK(task.in_support(theta.col(j)));
    Vector<double> v = Vector<double>::Zero(task.theta_dim());
    CHECK(task.in_support(v));
    v(0) = low;
    CHECK(task.in_support(v));   // PyTorch's Uniform(low, high) includes low ...
    v(0) = high;
    CHECK_FALSE(task.in_support(v));  // ... and excludes high
    v(0) = std::nextafter(low, -1e300);
    CHECK_FALSE(task.in_support(v));
    v(0) = std::nan("");
    CHECK_FALSE(task.in_support(v));
  };
  check_box(sbi::TwoMoons{}, -1.0, 1.0);
  check_box(sbi::GaussianMixture{}, -10.0, 10.0);
  check_box(sbi::SLCP{}, -3.0, 3.0);
}

TEST_CASE("sbi: two_moons puts x on a crescent of radius 0.1 around the theta-shifted centre", "[sbi]") {
  const sbi::TwoMoons task;
  fm::Rng rng(4);
  const Index n = 5000;
  const Vector<double> theta = vec({0.3, -0.6});
  Matrix<double> x;
  task.simulate(rng, theta.replicate(1, n), x);
  REQUIRE(x.rows() == 2);
  const double z0 = (theta(0) + theta(1)) / std::numbers::sqrt2, z1 = (theta(1) - theta(0)) / std::numbers::sqrt2;
  Vector<double> r(n), u(n);
  for (Index j = 0; j < n; ++j) {
    u(j) = x(0, j) + std::abs(z0) - 0.25;  // x = (0.25 + r cos a - |z0|, r sin a + z1)
    const double v = x(1, j) - z1;
    r(j) = std::hypot(u(j), v);
  }
  const double rm = r.mean(), rs = std::sqrt((r.array() - rm).square().mean());
  CHECK(rm == Approx(0.1).margin(4.0 * 0.01 / std::sqrt(static_cast<double>(n))));
  CHECK(rs == Approx(0.01).epsilon(0.05));
  CHECK(u.minCoeff() >= 0.0);  // a in (-pi/2, pi/2): the right half of the circle
  // E x = (0.25 + 0.1 E cos a - |z0|, z1) with E cos a = 2 / pi (standard errors 0.00045, 0.001).
  CHECK(mean_of(x)(0) == Approx(0.25 + 0.2 / std::numbers::pi - std::abs(z0)).margin(0.002));
  CHECK(mean_of(x)(1) == Approx(z1).margin(0.004));
  // The fold: the mirror (theta1, theta0) flips z1 and keeps |z0|, so the same law of x0.
  Matrix<double> xm;
  task.simulate(rng, vec({-0.6, 0.3}).replicate(1, n), xm);
  CHECK(mean_of(xm)(0) == Approx(mean_of(x)(0)).margin(0.003));
  CHECK(mean_of(xm)(1) == Approx(-mean_of(x)(1)).margin(0.006));
}

TEST_CASE("sbi: two_moons' reference posterior maps back onto the crescent", "[sbi]") {
  const sbi::TwoMoons task;
  fm::Rng rng(5);
  const Vector<double> x_o = sbi::load_observation(data_dir(), "two_moons", 1);
  const Matrix<double> post = task.reference_posterior(rng, x_o, 4000);
  REQUIRE(post.rows() == 2);
  REQUIRE(post.cols() == 4000);
  Index positive_z0 = 0;
  for (Index j = 0; j < post.cols(); ++j) {
    REQUIRE(task.in_support(post.col(j)));
    const double z0 = (post(0, j) + post(1, j)) / std::numbers::sqrt2;
    const double z1 = (post(1, j) - post(0, j)) / std::numbers::sqrt2;
    const double u = x_o(0) + std::abs(z0) - 0.25, v = x_o(1) - z1;
    CHECK(u >= -1e-12);
    CHECK(std::abs(std::hypot(u, v) - 0.1) < 0.06);  // 6 radius standard deviations
    if (z0 > 0) ++positive_z0;
  }
  CHECK(positive_z0 > 0);  // both moons
  CHECK(positive_z0 < post.cols());
}

TEST_CASE("sbi: gaussian_mixture's simulator mixes scales 1 and 0.1 per simulation", "[sbi]") {
  const sbi::GaussianMixture task;
  fm::Rng rng(6);
  const Index n = 20000;
  const Vector<double> theta = vec({2.5, -4.0});
  Matrix<double> x;
  task.simulate(rng, theta.replicate(1, n), x);
  const Matrix<double> d = x.colwise() - theta;
  // Per coordinate: variance 0.5 * 1 + 0.5 * 0.01 = 0.505 (relative standard error 1.6%: the
  // mixture's fourth moment is 1.5).
  const Vector<double> var = d.array().square().rowwise().mean();
  CHECK((var.array() / 0.505 - 1.0).abs().maxCoeff() < 0.075);
  // Both coordinates within 0.4 of theta: narrow component ~1, broad P(|z| < 0.4)^2 = 0.0966, so
  // 0.548 in all; with a component per coordinate it would be 0.430.
  Index close = 0;
  for (Index j = 0; j < n; ++j)
    if (d.col(j).cwiseAbs().maxCoeff() < 0.4) ++close;
  CHECK(static_cast<double>(close) / n == Approx(0.548).margin(0.015));

  const Vector<double> x_o = sbi::load_observation(data_dir(), "gaussian_mixture", 1);  // near the edge -10
  const Matrix<double> post = task.reference_posterior(rng, x_o, 5000);
  for (Index j = 0; j < post.cols(); ++j) REQUIRE(task.in_support(post.col(j)));
  Index near = 0;
  for (Index j = 0; j < post.cols(); ++j)
    if ((post.col(j) - x_o).cwiseAbs().maxCoeff() < 0.4) ++near;
  CHECK(static_cast<double>(near) / post.cols() > 0.55);  // truncation removes broad mass only
}

TEST_CASE("sbi: slcp's x is four iid draws of N(m, S(theta))", "[sbi]") {
  const sbi::SLCP task;
  fm::Rng rng(7);
  const Index n = 20000;
  const Vector<double> theta = vec({0.7, -1.2, 1.1, -0.9, 0.8});
  Matrix<double> x;
  task.simulate(rng, theta.replicate(1, n), x);
  REQUIRE(x.rows() == 8);
  const double s1 = theta(2) * theta(2), s2 = theta(3) * theta(3), rho = std::tanh(theta(4));
  const double v0 = s1 * s1 + 1e-6, v1 = s2 * s2 + 1e-6, c01 = rho * s1 * s2;
  const Vector<double> m = mean_of(x);
  const Matrix<double> c = cov_of(x);
  for (Index d = 0; d < 4; ++d) {
    INFO("draw " << d);
    CHECK(m(2 * d) == Approx(theta(0)).margin(4.0 * std::sqrt(v0 / n)));
    CHECK(m(2 * d + 1) == Approx(theta(1)).margin(4.0 * std::sqrt(v1 / n)));
    CHECK(c(2 * d, 2 * d) == Approx(v0).epsilon(0.05));
    CHECK(c(2 * d + 1, 2 * d + 1) == Approx(v1).epsilon(0.05));
    // The sample correlation (standard error (1 - r^2) / sqrt(n) = 0.004) against c01 / sqrt(v0 v1) ~ rho.
    CHECK(c(2 * d, 2 * d + 1) / std::sqrt(c(2 * d, 2 * d) * c(2 * d + 1, 2 * d + 1)) ==
          Approx(c01 / std::sqrt(v0 * v1)).margin(0.02));
    for (Index e = d + 1; e < 4; ++e)  // independent draws
      CHECK(std::abs(c(2 * d, 2 * e)) / std::sqrt(v0 * v0) < 0.04);
  }
  // rho -> +-1 and tiny scales stay finite (the 1e-6 jitter keeps S positive definite).
  Matrix<double> extreme(5, 3);
  extreme << 0, 0, 2, 0, 0, 0, 0, 2, 0, 3, 0, 1e-9, 40, -40, 0;
  task.simulate(rng, extreme, x);
  CHECK(x.allFinite());
}

TEST_CASE("sbi: bernoulli_glm's stimulus and design matrix are NumPy's RandomState(42).randn(100) as float32", "[sbi]") {
  // The generator itself, bit for bit (np.random.RandomState(s).randn(k), printed by repr).
  const Vector<double> r42 = sbi::detail::numpy_legacy_randn(42, 6);
  CHECK(r42(0) == 0.4967141530112327);
  CHECK(r42(1) == -0.13826430117118466);
  CHECK(r42(2) == 0.6476885381006925);
  CHECK(r42(3) == 1.5230298564080254);
  CHECK(r42(4) == -0.23415337472333597);
  CHECK(r42(5) == -0.23413695694918055);
  const Vector<double> r0 = sbi::detail::numpy_legacy_randn(0, 3);
  CHECK(r0(0) == 1.764052345967664);
  CHECK(r0(2) == 0.9787379841057392);

  const sbi::BernoulliGLM task;
  const Matrix<double>& X = task.design_matrix();
  REQUIRE(X.rows() == 100);
  REQUIRE(X.cols() == 10);
  CHECK((X.col(0).array() == 1.0).all());
  CHECK(X(0, 1) == static_cast<double>(0.4967141530112327f));
  CHECK(X(1, 1) == static_cast<double>(-0.13826430117118466f));
  CHECK(X(1, 2) == static_cast<double>(0.4967141530112327f));
  CHECK(X(2, 3) == static_cast<double>(0.4967141530112327f));
  CHECK(X(0, 2) == 0.0);
  CHECK(X(7, 9) == 0.0);
  CHECK(X(8, 9) == X(0, 1));
  CHECK(X(99, 1) == static_cast<double>(static_cast<float>(-0.23458713)));  // stimulus_I.pt[99] (float32 repr)
  CHECK(X(98, 1) == static_cast<double>(0.005113457f));  // stimulus_I.pt[98]
  CHECK(task.stimulus().cwiseAbs().sum() == Approx(72.2802089820616).epsilon(1e-12));

  // Prior: precision diag(0.5, F^T F); draws have covariance P^{-1}.
  const Matrix<double>& P = task.prior_precision();
  CHECK(P(0, 0) == 0.5);
  CHECK(P.row(0).tail(9).cwiseAbs().maxCoeff() == 0.0);
  CHECK(P(1, 1) == Approx(6.0));  // F's first column: (1, -2, 1, 0...): 1 + 4 + 1
  CHECK(task.in_support(Vector<double>::Constant(10, 1e3)));
  fm::Rng rng(8);
  const Matrix<double> theta = task.sample_prior(rng, 20000);
  const Matrix<double> cov = cov_of(theta), target = P.inverse();
  for (Index i = 0; i < 10; ++i)
    for (Index j = 0; j < 10; ++j)
      CHECK(std::abs(cov(i, j) - target(i, j)) < 0.05 * std::sqrt(target(i, i) * target(j, j)));
}

TEST_CASE("sbi: bernoulli_glm's statistics: sbibm's stored observations from its spike trains, and their ranges", "[sbi]") {
  const sbi::BernoulliGLM task;
  const Matrix<double> raw = fm::read_csv(data_dir() + "/bernoulli_glm/observations_raw.csv");
  REQUIRE(raw.rows() == 100);
  REQUIRE(raw.cols() == 10);
  Vector<double> stats(10);
  for (int k = 1; k <= 10; ++k) {
    INFO("observation " << k);
    task.summarise(raw.col(k - 1), stats);
    const Vector<double> x_o = sbi::load_observation(data_dir(), "bernoulli_glm", k);
    CHECK(stats(0) == x_o(0));
    CHECK((stats - x_o).cwiseAbs().maxCoeff() < 1e-5);  // sbibm summed in float32
  }
  // Simulations at observation 1's true parameters: integer counts in [0, 100], bounded stas,
  // and on average near the observation's count.
  fm::Rng rng(9);
  const Vector<double> theta = sbi::load_true_parameters(data_dir(), "bernoulli_glm", 1);
  Matrix<double> x;
  task.simulate(rng, theta.replicate(1, 2000), x);
  REQUIRE(x.rows() == 10);
  const double bound = task.stimulus().cwiseAbs().sum();
  for (Index j = 0; j < x.cols(); ++j) {
    REQUIRE(x(0, j) == std::round(x(0, j)));
    REQUIRE(x(0, j) >= 0.0);
    REQUIRE(x(0, j) <= 100.0);
    REQUIRE(x.col(j).tail(9).cwiseAbs().maxCoeff() <= bound);
  }
  // Expected count: sum_t sigmoid((X theta)_t).
  const Vector<double> psi = task.design_matrix() * theta;
  const double expected = (1.0 / (1.0 + (-psi.array()).exp())).sum();
  CHECK(x.row(0).mean() == Approx(expected).margin(0.5));
  CHECK(std::abs(expected - 56.0) < 10.0);  // observation 1 counted 56 spikes
}

TEST_CASE("sbi: the project's sbibm data load", "[sbi]") {
  const Vector<double> tm = sbi::load_observation(data_dir(), "two_moons", 1);
  REQUIRE(tm.size() == 2);
  CHECK(tm(0) == -0.6396706);
  CHECK(tm(1) == 0.16234657);
  for (std::string_view name : sbi::task_names()) {
    INFO(name);
    const Index xd = sbi::visit_task(name, [](const auto& t) { return t.x_dim(); });
    const Index td = sbi::visit_task(name, [](const auto& t) { return t.theta_dim(); });
    CHECK(sbi::load_observation(data_dir(), name, 10).size() == xd);
    const Vector<double> truth = sbi::load_true_parameters(data_dir(), name, 10);
    CHECK(truth.size() == td);
    CHECK(sbi::visit_task(name, [&](const auto& t) { return t.in_support(truth); }));
  }
  const Matrix<double> slcp = sbi::load_reference_samples(data_dir(), "slcp", 1);
  REQUIRE(slcp.rows() == 5);
  REQUIRE(slcp.cols() == 10000);
  CHECK(slcp(0, 0) == static_cast<double>(-1.7249198f));  // the first line of sbibm's csv
  CHECK(slcp(4, 1) == static_cast<double>(1.1285689f));
  const sbi::SLCP task;
  for (Index j = 0; j < slcp.cols(); ++j) REQUIRE(task.in_support(slcp.col(j)));
  const Matrix<double> glm = sbi::load_reference_samples(data_dir(), "bernoulli_glm", 1);
  REQUIRE(glm.rows() == 10);
  REQUIRE(glm.cols() == 10000);
  CHECK(glm(0, 0) == static_cast<double>(0.79581773f));
  fm::Rng rng(10);
  const Matrix<double> first = sbi::reference_samples(data_dir(), "bernoulli_glm", 1, rng, 100);
  REQUIRE(first.cols() == 100);
  CHECK(first == glm.leftCols(100));
  CHECK(sbi::reference_samples(data_dir(), "two_moons", 2, rng, 10).cols() == 10);
}

TEST_CASE("sbi: bad inputs throw the library's errors", "[sbi]") {
  fm::Rng rng(11);
  const std::string dir = data_dir();
  CHECK_THAT(fm::test::error_message<fm::InvalidArgument>([&] { sbi::load_observation(dir, "slcp_distractors", 1); }),
             Catch::Contains("'slcp_distractors'") && Catch::Contains("bernoulli_glm"));
  CHECK_THAT(fm::test::error_message<fm::InvalidArgument>([&] { sbi::load_observation(dir, "slcp", 0); }),
             Catch::Contains("'k' = 0"));
  CHECK_THAT(fm::test::error_message<fm::InvalidArgument>([&] { sbi::load_observation(dir, "slcp", 11); }),
             Catch::Contains("'k' = 11"));
  CHECK_THROWS_AS(sbi::load_true_parameters(dir, "slcp", 11), fm::InvalidArgument);
  CHECK_THROWS_AS(sbi::load_reference_samples(dir, "slcp", 0), fm::InvalidArgument);
  CHECK_THROWS_AS(sbi::reference_samples(dir, "two_moons", 11, rng), fm::InvalidArgument);
  CHECK_THROWS_AS(sbi::reference_samples(dir, "nope", 1, rng), fm::InvalidArgument);
  CHECK_THROWS_AS(sbi::reference_samples(dir, "slcp", 1, rng, 10001), fm::InvalidArgument);
  CHECK_THAT(fm::test::error_message<fm::InvalidArgument>([&] { sbi::load_reference_samples(dir, "two_moons", 1); }),
             Catch::Contains("reference_samples()"));
  CHECK_THAT(fm::test::error_message<fm::CsvError>([&] { sbi::load_observation(dir + "/missing", "two_moons", 1); }),
             Catch::Contains("missing/two_moons/observations.csv"));
  CHECK_THAT(fm::test::error_message<fm::NpyError>([&] { sbi::load_reference_samples(dir + "/missing", "slcp", 2); }),
             Catch::Contains("missing/slcp/reference_2.npy"));

  Matrix<double> theta(3, 4), x;
  CHECK_THAT(fm::test::error_message<fm::DimensionMismatch>([&] { sbi::SLCP{}.sample_prior(rng, theta); }),
             Catch::Contains("'theta' has rows (dimension) 3, expected 5"));
  CHECK_THROWS_AS(sbi::GaussianLinear{}.sample_prior(rng, theta), fm::DimensionMismatch);
  CHECK_THROWS_AS(sbi::TwoMoons{}.simulate(rng, theta, x), fm::DimensionMismatch);
  CHECK_THROWS_AS(sbi::GaussianMixture{}.simulate(rng, theta, x), fm::DimensionMismatch);
  CHECK_THROWS_AS(sbi::BernoulliGLM{}.simulate(rng, theta, x), fm::DimensionMismatch);
  CHECK_THROWS_AS(sbi::SLCP{}.in_support(Vector<double>::Zero(4)), fm::DimensionMismatch);
  CHECK_THROWS_AS(sbi::GaussianLinear{}.reference_posterior(rng, Vector<double>::Zero(2), 5), fm::DimensionMismatch);
  CHECK_THROWS_AS(sbi::TwoMoons{}.reference_posterior(rng, Vector<double>::Zero(2), -1), fm::InvalidArgument);
  // An observation no prior parameter can produce: the rejection samplers give up, they do not hang.
  CHECK_THROWS_AS(sbi::TwoMoons{}.reference_posterior(rng, vec({50.0, 50.0}), 1), fm::NumericalError);
  CHECK_THROWS_AS(sbi::GaussianMixture{}.reference_posterior(rng, vec({500.0, 0.0}), 1), fm::NumericalError);
  // Zero columns is a valid (empty) batch.
  Matrix<double> empty(5, 0);
  sbi::SLCP{}.sample_prior(rng, empty);
  sbi::SLCP{}.simulate(rng, empty, x);
  CHECK(x.rows() == 8);
  CHECK(x.cols() == 0);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
