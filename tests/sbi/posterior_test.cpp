// Posterior estimation: the training-time density, the shared context, and FlowPosterior on a
// Gaussian linear model whose posterior is known in closed form.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/state_dict.hpp"
#include "flowmatch/nn/conditional_field.hpp"
#include "flowmatch/path/time_density.hpp"
#include "flowmatch/sbi/posterior.hpp"
#include "flowmatch/sbi/sbibm_data.hpp"
#include "flowmatch/sbi/tasks.hpp"
#include "support/files.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

// theta ~ N(0, 0.1 I_d), x ~ N(theta, 0.1 I_d): sbibm's gaussian_linear (d = 10 there). The
// posterior is N(x_o / 2, 0.05 I).
void simulate_gaussian_linear(Index d, Index n, Rng& rng, Matrix<double>& theta, Matrix<double>& x) {
  theta.resize(d, n);
  x.resize(d, n);
  const double s = std::sqrt(0.1);
  for (Index j = 0; j < n; ++j)
    for (Index i = 0; i < d; ++i) {
      theta(i, j) = s * rng.normal();
      x(i, j) = theta(i, j) + s * rng.normal();
    }
}

sbi::PosteriorOptions small_options() {
  sbi::PosteriorOptions o;
  o.hidden = {64, 64};
  o.batch_size = 128;
  o.max_epochs = 80;
  o.patience = 10;
  o.lr_patience = 5;
  o.ode_steps = 8;
  o.seed = 3;
  return o;
}

}  // namespace

TEST_CASE("PowerTime: draws in [0, 1) with density (1 + a) t^a", "[sbi][time]") {
  for (double a : {0.0, 1.0, 4.0}) {
    const PowerTime time(a);
    Rng rng(11);
    const int n = 200000;
    double sum = 0, above_half = 0, lo = 1, hi = 0;
    for (int k = 0; k < n; ++k) {
      const double t = time.sample(rng);
      lo = std::min(lo, t);
      hi = std::max(hi, t);
      sum += t;
      above_half += t > 0.5;
    }
    CHECK(lo >= 0.0);
    CHECK(hi < 1.0);
    // E[t] = (1 + a) / (2 + a); P(t > 1/2) = 1 - 2^-(1 + a). Standard errors are below 1e-3.
    CHECK(sum / n == Approx((1 + a) / (2 + a)).margin(4e-3));
    CHECK(above_half / n == Approx(1 - std::pow(2.0, -(1 + a))).margin(4e-3));
    CHECK(time.density(0.5) == Approx((1 + a) * std::pow(0.5, a)));
    CHECK(time.density(1.5) == 0.0);
  }
  // a = 0 draws exactly what UniformTime draws.
  Rng r1(5), r2(5);
  for (int k = 0; k < 100; ++k) CHECK(PowerTime(0.0).sample(r1) == UniformTime{}.sample(r2));
  CHECK_THROWS_AS(PowerTime(-0.5), InvalidArgument);
  CHECK_THROWS_AS(PowerTime(std::nan("")), InvalidArgument);
}

TEST_CASE("ConditionBatch: a shared context conditions every column without copies", "[sbi][condition]") {
  const Index d = 3, m = 4, n = 37;
  ConditionalVectorField<float> field(d, ConditionKind::Vector, m, {16, 16}, 7, 2);
  Rng rng(2);
  Matrix<float> x(d, n);
  for (Index j = 0; j < n; ++j)
    for (Index i = 0; i < d; ++i) x(i, j) = static_cast<float>(rng.normal());
  Vector<float> c(m);
  for (Index i = 0; i < m; ++i) c(i) = static_cast<float>(rng.normal());
  ConditionBatch<float> shared, copied;
  shared.set_shared_context(c, n);
  copied.set_context(m, n);
  copied.context = c.replicate(1, n);
  CHECK(shared.size() == n);
  CHECK(shared.context.cols() == 1);
  ConditionalVectorField<float>::Workspace ws;
  Matrix<float> a(d, n), b(d, n);
  field.forward(x, 0.3, shared, a, ws);
  field.forward(x, 0.3, copied, b, ws);
  CHECK(a == b);
  // A shared context must be one column; a wrong size is named.
  CHECK_THROWS_AS(shared.set_shared_context(Matrix<float>::Zero(m, 2), n), InvalidArgument);
  ConditionBatch<float> wrong;
  wrong.set_shared_context(Vector<float>::Zero(m + 1), n);
  CHECK_THROWS_AS(field.forward(x, 0.3, wrong, a, ws), DimensionMismatch);
}

TEST_CASE("FlowPosterior recovers the closed-form Gaussian linear posterior", "[sbi][posterior]") {
  const Index d = 3;
  Rng rng(1);
  Matrix<double> theta, x;
  simulate_gaussian_linear(d, 6000, rng, theta, x);
  sbi::FlowPosterior<float> post(d, d, small_options());
  const sbi::FitReport fit = post.fit(theta, x);
  INFO("epochs " << fit.epochs << ", best " << fit.best_epoch << ", validation loss " << fit.best_validation_loss);
  CHECK(fit.train_size + fit.validation_size == 6000);
  CHECK(fit.validation_size == 600);
  CHECK(fit.best_epoch >= 1);
  CHECK(std::isfinite(fit.best_validation_loss));
  CHECK(post.trained());

  Vector<double> x_o(d);
  x_o << 0.4, -0.2, 0.1;
  Matrix<double> s(d, 4000);
  post.sample(x_o, rng, s);
  REQUIRE(s.allFinite());
  const Vector<double> mean = s.rowwise().mean();
  const Matrix<double> c = s.colwise() - mean;
  const Matrix<double> cov = c * c.transpose() / static_cast<double>(s.cols() - 1);
  // Posterior N(x_o / 2, 0.05 I): sd 0.224, so the mean's standard error is 0.0035.
  for (Index i = 0; i < d; ++i) {
    CHECK(mean(i) == Approx(x_o(i) / 2).margin(0.03));
    CHECK(cov(i, i) == Approx(0.05).epsilon(0.2));
    for (Index k = 0; k < i; ++k) CHECK(std::abs(cov(i, k)) < 0.01);
  }

  // Rejection to a support: keep only theta_0 > 0 (about a third of the mass here).
  Matrix<double> kept;
  const sbi::SupportReport r =
      post.sample_in_support(x_o, 1000, rng, [](const Vector<double>& v) { return v(0) > 0.0; }, kept);
  CHECK(r.accepted == 1000);
  CHECK(r.rejected > 0);
  CHECK((kept.row(0).array() > 0.0).all());
  // A support the posterior never reaches: refused, with the counts.
  CHECK_THROWS_AS(post.sample_in_support(x_o, 100, rng, [](const Vector<double>& v) { return v(0) > 50.0; }, kept),
                  NumericalError);

  // The state round-trips: a loaded posterior samples exactly what the saved one samples.
  StateDict dict;
  save_state_parts(dict, state_part("posterior", post));
  sbi::FlowPosterior<float> loaded(d, d, small_options());
  load_state_parts(dict, "mem", state_part("posterior", loaded));
  CHECK(loaded.theta_mean() == post.theta_mean());
  CHECK(loaded.x_std() == post.x_std());
  Rng g1(9), g2(9);
  Matrix<double> a(d, 50), b(d, 50);
  post.sample(x_o, g1, a);
  loaded.sample(x_o, g2, b);
  CHECK(a == b);
  sbi::FlowPosterior<float> other(d + 1, d, small_options());
  CHECK_THROWS_AS(load_state_parts(dict, "mem", state_part("posterior", other)), CheckpointMismatchError);
}

TEST_CASE("FlowPosterior on sbibm's gaussian_linear (10-D): the closed-form posterior at observation 1",
          "[sbi][posterior]") {
  const sbi::GaussianLinear task;
  Rng rng(4);
  Matrix<double> theta(task.theta_dim(), 8000), x;
  task.sample_prior(rng, theta);
  task.simulate(rng, theta, x);
  sbi::PosteriorOptions o = small_options();
  o.hidden = {96, 96};
  sbi::FlowPosterior<float> post(task.theta_dim(), task.x_dim(), o);
  const sbi::FitReport fit = post.fit(theta, x);
  INFO("epochs " << fit.epochs << ", best " << fit.best_epoch);
  const std::string data = (test::tests_dir().parent_path() / "examples/posterior/sbibm").string();
  const Vector<double> x_o = sbi::load_observation(data, "gaussian_linear", 1);
  Matrix<double> s(task.theta_dim(), 4000);
  post.sample(x_o, rng, s);
  const Vector<double> want = task.posterior_mean(x_o);
  const Vector<double> mean = s.rowwise().mean();
  const Matrix<double> c = s.colwise() - mean;
  const Matrix<double> cov = c * c.transpose() / static_cast<double>(s.cols() - 1);
  // The posterior is N(x_o / 2, 0.05 I) (sd 0.224). Over the 10 coordinates: the rms error of
  // the mean below 0.25 posterior sd, the variances within 30%, the correlations below 0.15.
  const double rms = std::sqrt((mean - want).squaredNorm() / 10.0) / std::sqrt(0.05);
  INFO("rms mean error / sd " << rms << "; variances " << cov.diagonal().transpose());
  CHECK(rms < 0.25);
  for (Index i = 0; i < 10; ++i) {
    CHECK(cov(i, i) == Approx(0.05).epsilon(0.3));
    for (Index k = 0; k < i; ++k) CHECK(std::abs(cov(i, k)) / 0.05 < 0.15);
  }
}

TEST_CASE("FlowPosterior: bad inputs are named", "[sbi][posterior][errors]") {
  sbi::PosteriorOptions o = small_options();
  CHECK_THROWS_AS(sbi::FlowPosterior<float>(0, 2, o), InvalidArgument);
  CHECK_THROWS_AS(sbi::FlowPosterior<float>(2, 0, o), InvalidArgument);
  for (auto bad : {+[](sbi::PosteriorOptions& p) { p.hidden.clear(); },
                   +[](sbi::PosteriorOptions& p) { p.time_exponent = -1; },
                   +[](sbi::PosteriorOptions& p) { p.validation_fraction = 1.0; },
                   +[](sbi::PosteriorOptions& p) { p.batch_size = 0; },
                   +[](sbi::PosteriorOptions& p) { p.learning_rate = 0; },
                   +[](sbi::PosteriorOptions& p) { p.ode_steps = 0; },
                   +[](sbi::PosteriorOptions& p) { p.patience = 0; }}) {
    sbi::PosteriorOptions p = small_options();
    bad(p);
    CHECK_THROWS_AS(sbi::FlowPosterior<float>(2, 2, p), InvalidArgument);
  }
  sbi::FlowPosterior<float> post(2, 3, o);
  Matrix<double> theta = Matrix<double>::Zero(2, 10), x = Matrix<double>::Ones(3, 10);
  CHECK_THROWS_AS(post.fit(theta, Matrix<double>::Zero(2, 10)), DimensionMismatch);
  CHECK_THROWS_AS(post.fit(theta, Matrix<double>::Zero(3, 9)), DimensionMismatch);
  CHECK_THROWS_AS(post.fit(Matrix<double>::Zero(2, 1), Matrix<double>::Zero(3, 1)), InvalidArgument);
  x(1, 4) = std::nan("");
  try {
    post.fit(theta, x);
    FAIL("a NaN simulation was accepted");
  } catch (const InvalidArgument& e) {
    CHECK_THAT(e.what(), Catch::Contains("x(1, 4)"));
  }
  Rng rng(0);
  Matrix<double> s(2, 5);
  CHECK_THROWS_AS(post.sample(Vector<double>::Zero(2), rng, s), DimensionMismatch);
  CHECK_THROWS_AS(post.sample(Vector<double>::Constant(3, std::nan("")), rng, s), InvalidArgument);
  Matrix<double> wrong(3, 5);
  CHECK_THROWS_AS(post.sample(Vector<double>::Zero(3), rng, wrong), DimensionMismatch);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
