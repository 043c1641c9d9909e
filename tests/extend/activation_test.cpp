// docs/extending.md, "An activation": a user's own activation policy, written outside the library
// (between the [extending.md] markers; the page quotes parts of this file, and
// tests/extend/docs_sync_test.cpp fails if a quote no longer matches). Softplus with a hand-written
// derivative, saved by the forward pass (sigmoid(z) in the auxiliary array), plugged into
// MLPVectorField<S, Softplus>.
//
// What the tests prove: value, forward, derivative and backward agree with each other and with
// central differences, forward works in place and does not overflow; the backward pass of a whole
// MLPVectorField<double, Softplus> (three layers) matches five-point differences of its forward
// pass for every parameter, and so does the fused loss-and-gradient call the trainer uses; a float
// network with it trains under CFMTrainer.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include <flowmatch/distribution/gaussian.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>
#include <flowmatch/optim/adam.hpp>
#include <flowmatch/path/gaussian_conditional_path.hpp>
#include <flowmatch/schedule/linear_alpha.hpp>
#include <flowmatch/schedule/linear_beta.hpp>
#include <flowmatch/train/cfm_trainer.hpp>

#include "support/gradient_check.hpp"

// [extending.md: activation]
#include <algorithm>
#include <cmath>
#include <string_view>

#include <flowmatch/nn/activation.hpp>

namespace user {

// Softplus: f(z) = log(1 + e^z), f'(z) = sigmoid(z). forward() keeps sigmoid(z) in `aux`, so
// backward() multiplies by it and computes no exponential.
struct Softplus {
  static constexpr bool uses_aux = true;
  static constexpr std::string_view name() { return "softplus"; }
  template <flowmatch::Real S>
  static void forward(const S* z, S* a, S* aux, flowmatch::Index n) {
    for (flowmatch::Index i = 0; i < n; ++i) {
      const S zi = z[i];  // a may alias z
      aux[i] = derivative(zi);
      a[i] = value(zi);
    }
  }
  template <flowmatch::Real S>
  static void backward(const S* /*a*/, const S* aux, S* g, flowmatch::Index n) {
    for (flowmatch::Index i = 0; i < n; ++i) g[i] *= aux[i];
  }
  template <flowmatch::Real S>
  static S value(S z) { return std::max(z, S(0)) + std::log1p(std::exp(-std::abs(z))); }  // never overflows
  template <flowmatch::Real S>
  static S derivative(S z) { return S(1) / (S(1) + std::exp(-z)); }
};

static_assert(flowmatch::Activation<Softplus>);

}  // namespace user
// [end]

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;
using user::Softplus;

namespace {

Gaussian toy_data() { return Gaussian(Vector<double>{{3.0, -2.0}}, Vector<double>{{0.5, 0.5}}); }

}  // namespace

TEST_CASE("extend/activation: Softplus value, forward, derivative and backward agree", "[extend][activation]") {
  const std::vector<double> zs = {-30.0, -4.0, -1.0, -0.25, 0.0, 0.3, 1.0, 2.5, 7.0, 30.0};
  for (double z : zs) {
    INFO("z = " << z);
    CHECK(Softplus::value(z) == Approx(std::log1p(std::exp(z))).epsilon(1e-14));
    const double h = 1e-5;
    CHECK(Softplus::derivative(z) ==
          Approx((Softplus::value(z + h) - Softplus::value(z - h)) / (2.0 * h)).epsilon(1e-8).margin(1e-10));
  }
  // forward in place (a aliases z), then backward multiplies a gradient by f'(z).
  const auto n = static_cast<Index>(zs.size());
  std::vector<double> a = zs, aux(zs.size()), g(zs.size(), 2.0);
  Softplus::forward(a.data(), a.data(), aux.data(), n);
  Softplus::backward(a.data(), aux.data(), g.data(), n);
  for (std::size_t i = 0; i < zs.size(); ++i) {
    CHECK(a[i] == Softplus::value(zs[i]));
    CHECK(g[i] == 2.0 * Softplus::derivative(zs[i]));
  }
  // No overflow where log(1 + e^z) would: e^100 is infinite in float.
  CHECK(Softplus::value(100.0f) == 100.0f);
  CHECK(Softplus::value(-100.0f) >= 0.0f);
  CHECK(std::isfinite(Softplus::value(-100.0f)));
}

TEST_CASE("extend/activation: MLPVectorField<double, Softplus> backward matches finite differences",
          "[extend][activation][gradient]") {
  // L = sum(C .* u_theta(x, t)) for a fixed random C, so dL/dout = C checks every output at once.
  const Index dim = 3, n = 5;
  MLPVectorField<double, Softplus> model(dim, {6, 4}, 7);
  Rng rng(11);
  Matrix<double> x(dim, n), c(dim, n);
  RowVector<double> t(n);
  rng.fill_normal(x);
  rng.fill_normal(c);
  rng.fill_uniform(t);

  typename MLPVectorField<double, Softplus>::Workspace ws;
  model.forward_train(x, t, ws);
  model.gradients().setConstant(std::numeric_limits<double>::quiet_NaN());  // backward must overwrite all
  model.backward(c, ws);
  const Vector<double> analytic = model.gradients();

  // Five-point differences with h = 1e-3: truncation and rounding both about 1e-13 here.
  const auto loss = [&] { return (model(x, t).array() * c.array()).sum(); };
  double worst = 0.0;
  Index above_floor = 0;
  for (Index i = 0; i < model.num_parameters(); ++i) {
    const double numeric = test::five_point_difference(loss, model.parameters()(i), 1e-3);
    worst = test::worse(worst, test::relative_error(analytic(i), numeric, 1e-4));
    if (std::max(std::abs(analytic(i)), std::abs(numeric)) > 1e-4) ++above_floor;
  }
  INFO("worst relative error " << worst << " over " << model.num_parameters() << " parameters");
  CHECK(worst < 1e-6);
  CHECK(above_floor * 3 >= model.num_parameters());  // the check is not vacuous

  // The fused call CFMTrainer uses gives the same gradient as forward_train + backward of the MSE.
  Matrix<double> target(dim, n);
  rng.fill_normal(target);
  const Matrix<double> out = model.forward_train(x, t, ws);
  const Matrix<double> grad_out = 2.0 * (out - target) / static_cast<double>(dim * n);
  model.backward(grad_out, ws);
  const Vector<double> separate = model.gradients();
  const double mse = model.mse_loss_and_gradient(x, t, target, ws);
  CHECK(mse == Approx((out - target).squaredNorm() / static_cast<double>(dim * n)).epsilon(1e-12));
  CHECK((model.gradients() - separate).cwiseAbs().maxCoeff() < 1e-12);
}

TEST_CASE("extend/activation: a float MLPVectorField<float, Softplus> trains with CFMTrainer", "[extend][activation]") {
  GaussianConditionalPath path(toy_data(), LinearAlpha{}, LinearBeta{});
  MLPVectorField<float, user::Softplus> model(2, {32, 32}, 3);
  Adam<float> adam(1e-2);
  CFMTrainer trainer(path, model, adam, 4);
  const std::vector<double> losses = trainer.train(300, 32);
  double first = 0.0, last = 0.0;
  for (std::size_t k = 0; k < 20; ++k) {
    REQUIRE(std::isfinite(losses[k]));
    first += losses[k] / 20.0;
    last += losses[losses.size() - 1 - k] / 20.0;
  }
  INFO("mean loss of the first 20 steps " << first << ", of the last 20 " << last);
  CHECK(last < 0.5 * first);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
