// MeanFlow: the field's derivative along the flow (the training target's JVP) against central
// differences in double, the trainer's gradient against central differences of its loss with the
// target held fixed, the one-step sampler's exactness for an affine field, an end-to-end run on a
// two-mode mixture where one MeanFlow step separates the modes and one Euler step cannot, and the
// checkpoint and argument checks.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <vector>

#include <flowmatch/core/error.hpp>
#include <flowmatch/distribution/gaussian_mixture.hpp>
#include <flowmatch/io/checkpoint.hpp>
#include <flowmatch/nn/activation_extra.hpp>
#include <flowmatch/nn/mean_flow_field.hpp>
#include <flowmatch/optim/adam.hpp>
#include <flowmatch/optim/sgd.hpp>
#include <flowmatch/train/mean_flow_trainer.hpp>

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

template <class Act>
void check_time_derivative() {
  MeanFlowField<double, Act> model(3, {16, 12}, 5);
  Rng rng(3);
  const Index n = 7;
  Matrix<double> x(3, n), v(3, n);
  for (Index j = 0; j < n; ++j)
    for (Index i = 0; i < 3; ++i) {
      x(i, j) = rng.normal();
      v(i, j) = rng.normal();
    }
  RowVector<double> t(n), r(n);
  for (Index j = 0; j < n; ++j) {
    t(j) = 0.1 + 0.5 * rng.uniform();
    r(j) = t(j) + 0.3 * rng.uniform();
  }
  typename MeanFlowField<double, Act>::Workspace ws;
  const Matrix<double> u = model.forward_train(x, t, r, ws);
  Matrix<double> du(3, n);
  model.time_derivative(v, du, ws);
  const double h = 1e-5;
  const Matrix<double> up = model(x + h * v, t.array() + h, r), down = model(x - h * v, t.array() - h, r);
  const Matrix<double> fd = (up - down) / (2 * h);
  INFO(Act::name());
  CHECK((du - fd).norm() <= 1e-7 * (1.0 + fd.norm()));
  // forward() is U(x, t, t), the instantaneous velocity.
  Matrix<double> f(3, n);
  model.forward(x, t, f, ws);
  CHECK((f - model(x, t, t)).norm() == 0.0);
  CHECK((u - model(x, t, r)).norm() == 0.0);
}

}  // namespace

TEST_CASE("MeanFlowField: d/dt U along (v, 1, 0) matches central differences", "[meanflow][gradient]") {
  check_time_derivative<SiLU>();
  check_time_derivative<SELU>();
  check_time_derivative<Tanh>();
}

TEST_CASE("MeanFlowTrainer: the step's gradient is that of the loss with the target held fixed", "[meanflow][gradient]") {
  using Model = MeanFlowField<double, SiLU>;
  const GaussianMixture data = GaussianMixture::symmetric_2D(4, 0.3, 2.0);
  for (double power : {0.0, 1.0}) {
    Model model(2, {16, 16}, 7);
    const Vector<double> before = model.parameters();
    SGD<double> sgd(1.0);
    MeanFlowOptions opt;
    opt.adaptive_power = power;
    opt.interval_fraction = 0.5;
    MeanFlowTrainer trainer(data, model, sgd, 11, opt);
    trainer.step(24);
    const Vector<double> grad = before - model.parameters();  // SGD with lr 1: p <- p - g
    // Rebuild the loss at the old parameters on the step's batch.
    Model probe = model;
    probe.parameters() = before;
    const Matrix<double> x = trainer.last_x(), v = trainer.last_v();
    const RowVector<double> t = trainer.last_t(), r = trainer.last_r();
    CHECK((r.array() >= t.array()).all());
    CHECK((r.array() > t.array()).any());
    CHECK((r.array() == t.array()).any());
    Model::Workspace ws;
    probe.forward_train(x, t, r, ws);
    Matrix<double> du(2, x.cols());
    probe.time_derivative(v, du, ws);
    Matrix<double> target = v;
    for (Index j = 0; j < x.cols(); ++j) target.col(j) += (r(j) - t(j)) * du.col(j);
    const Matrix<double> u0 = probe(x, t, r);
    std::vector<double> w(static_cast<std::size_t>(x.cols()));
    for (Index j = 0; j < x.cols(); ++j)
      w[static_cast<std::size_t>(j)] = power == 0.0 ? 1.0 : 1.0 / ((u0.col(j) - target.col(j)).squaredNorm() + 1e-3);
    const auto loss = [&](const Model& m) {
      const Matrix<double> u = m(x, t, r);
      double s = 0.0;
      for (Index j = 0; j < u.cols(); ++j) s += w[static_cast<std::size_t>(j)] * (u.col(j) - target.col(j)).squaredNorm();
      return s / static_cast<double>(u.cols());
    };
    CHECK(trainer.last_weighted_loss() == Approx(loss(probe)).epsilon(1e-10));
    for (Index k : {Index(0), Index(5), Index(40), Index(100), probe.parameters().size() - 1}) {
      const double hh = 1e-6, p0 = probe.parameters()(k);
      probe.parameters()(k) = p0 + hh;
      const double a = loss(probe);
      probe.parameters()(k) = p0 - hh;
      const double b = loss(probe);
      probe.parameters()(k) = p0;
      INFO("power " << power << " parameter " << k);
      CHECK(grad(k) == Approx((a - b) / (2 * hh)).epsilon(1e-6).margin(1e-9));
    }
  }
}

TEST_CASE("mean_flow_sample: x <- x + (r - t) U(x, t, r) on the grid, one evaluation per interval", "[meanflow]") {
  // A model with one hidden layer of SiLU: compare the sampler against the model applied by hand.
  MeanFlowField<double, SiLU> model(2, {8}, 3);
  Matrix<double> x0(2, 5);
  x0.setRandom();
  Matrix<double> x = x0;
  Vector<double> ts(3);
  ts << 0.0, 0.25, 1.0;
  CHECK(mean_flow_sample(model, x, ts) == 2);
  Matrix<double> y = x0 + 0.25 * model(x0, 0.0, 0.25);
  y += 0.75 * model(y, 0.25, 1.0);
  CHECK((x - y).norm() <= 1e-14);
  Matrix<double> z = x0;
  CHECK(mean_flow_sample(model, z, 1) == 1);
  CHECK((z - (x0 + model(x0, 0.0, 1.0))).norm() <= 1e-14);
  CHECK_THROWS_AS(mean_flow_sample(model, z, 0), InvalidArgument);
  Vector<double> bad(2);
  bad << 0.5, 0.2;
  CHECK_THROWS_WITH(mean_flow_sample(model, z, bad), Catch::Contains("ts"));
}

TEST_CASE("MeanFlow end to end: one step sends the source to two separated modes", "[meanflow]") {
  // Two modes at (+-2.5, 0), std 0.25. The exact flow-matching velocity at t = 0 is
  // E[x1] - x0 = -x0, so one Euler step of it puts every sample at the origin, between the
  // modes; the average velocity over [0, 1] sends each half of the source to one mode.
  const GaussianMixture data = GaussianMixture::symmetric_2D(2, 0.25, 2.5);
  MeanFlowField<float, SiLU> model(2, {64, 64}, 1);
  Adam<float> adam(2e-3);
  MeanFlowOptions opt;
  opt.interval_fraction = 0.5;
  MeanFlowTrainer trainer(data, model, adam, 4, opt);
  const std::vector<double> losses = trainer.train(2500, 256);
  CHECK(std::isfinite(losses.back()));
  Rng rng(9);
  Matrix<float> x0(2, 2000);
  for (Index j = 0; j < x0.cols(); ++j) x0(0, j) = static_cast<float>(rng.normal()), x0(1, j) = static_cast<float>(rng.normal());
  for (Index steps : {Index(1), Index(2)}) {
    Matrix<float> x = x0;
    CHECK(mean_flow_sample(model, x, steps) == steps);
    double near = 0, right = 0;
    for (Index j = 0; j < x.cols(); ++j) {
      near += std::abs(std::abs(x(0, j)) - 2.5) < 0.75 && std::abs(x(1, j)) < 0.75;
      right += x(0, j) > 0;
    }
    near /= static_cast<double>(x.cols());
    right /= static_cast<double>(x.cols());
    INFO(steps << " step(s): near a mode " << near << ", right mode " << right);
    CHECK(near > 0.75);
    CHECK(right > 0.35);
    CHECK(right < 0.65);
  }
}

TEST_CASE("MeanFlowTrainer: checkpoints resume exactly; bad arguments are named", "[meanflow][io]") {
  const GaussianMixture data = GaussianMixture::symmetric_2D(3, 0.3, 2.0);
  const std::filesystem::path file = std::filesystem::temp_directory_path() / "flowmatch_mean_flow_test.fmck";
  MeanFlowField<float, SiLU> a(2, {16}, 1);
  Adam<float> adam_a(1e-3);
  MeanFlowTrainer ta(data, a, adam_a, 5);
  ta.train(5, 32);
  std::apply([&](const auto&... parts) { save_checkpoint(file, parts...); }, ta.state_parts());
  ta.train(3, 32);
  MeanFlowField<float, SiLU> b(2, {16}, 99);
  Adam<float> adam_b(1e-3);
  MeanFlowTrainer tb(data, b, adam_b, 0);
  std::apply([&](auto&&... parts) { load_checkpoint(file, parts...); }, tb.state_parts());
  CHECK(tb.steps_done() == 5);
  tb.train(3, 32);
  CHECK((a.parameters() - b.parameters()).norm() == 0.0f);
  // A plain MLP vector field's checkpoint is not a MeanFlow model.
  MeanFlowField<float, SiLU> c(2, {8}, 1);
  CHECK_THROWS_AS(std::apply([&](auto&&... parts) { load_checkpoint(file, parts...); },
                             std::make_tuple(state_part("model", c))),
                  CheckpointMismatchError);
  std::filesystem::remove(file);

  MeanFlowOptions bad;
  bad.interval_fraction = 1.5;
  CHECK_THROWS_WITH(MeanFlowTrainer(data, a, adam_a, 0, bad), Catch::Contains("interval_fraction") && Catch::Contains("1.5"));
  MeanFlowField<float, SiLU> three(3, {8}, 1);
  CHECK_THROWS_AS(MeanFlowTrainer(data, three, adam_a, 0), DimensionMismatch);
  CHECK_THROWS_AS(MeanFlowField<float>(2, {}, 1), InvalidArgument);
  Matrix<float> x(2, 3);
  x.setZero();
  CHECK_THROWS_WITH(a(x, 0.5, 1.5), Catch::Contains("r"));
}

}  // namespace FLOWMATCH_TEST_FILE_ID
