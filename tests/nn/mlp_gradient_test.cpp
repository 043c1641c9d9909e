// Gradient checks of MLPVectorField's hand-written backward pass against finite differences of
// its forward pass, in double: the whole flat gradient, each layer's weight_gradient(l) and
// bias_gradient(l), for 0 to 3 hidden layers and every built-in activation (builtin_activations.hpp).
//
// Loss: L = sum(C .* u_theta(x, t)) for a fixed random C, so dL/dout = C checks every output
// coordinate at once.
//
// Numerical derivatives: SiLU, Tanh, GELU, GELUTanh and Softplus are smooth (Softplus' switch at
// z = 20 is never reached here): five-point stencil, h = 1e-3 (error about 1e-13). ReLU: with the
// activation pattern fixed, L is linear in any single parameter (each parameter lives in one
// layer, and the layers are linear between fixed 0/1 masks), so a central difference with
// h = 1e-3 is exact up to rounding; a parameter whose +-h perturbation flips any hidden unit's
// sign (the difference would straddle a kink) is skipped, and the test requires that few are.
// LeakyReLU, ELU and SELU are smooth except at z = 0 (f' or f'' jumps there): five-point stencil
// with h = 2.5e-4 (error about 1e-12 |L|), skipping a parameter whose +-h or +-2h perturbation
// flips a hidden unit's sign.
//
// Relative error |a - n| / max(|a|, |n|, 1e-4), required below 1e-6: gradients smaller than 1e-4
// are held to an absolute 1e-10 instead (the differences' rounding, about 2e-16 |L| / h, is
// 2e-13 |L| here). A NaN counts as an infinite error.

#include <catch2/catch.hpp>

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <flowmatch/nn/builtin_activations.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>

#include "support/compare.hpp"
#include "support/gradient_check.hpp"
#include "support/reference_mlp.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

// Every test below iterates over all built-ins; kKinkAtZero must know the new ones.
static_assert(BuiltinActivations::size == 9, "a new built-in activation: check kKinkAtZero below");

namespace {

constexpr double kFloor = 1e-4;

struct Setup {
  Matrix<double> x, c;
  RowVector<double> t;
};

Setup make_setup(Index dim, Index n, std::uint64_t seed) {
  Setup s;
  Rng rng(seed + 100);
  s.x.resize(dim, n);
  s.c.resize(dim, n);
  s.t.resize(n);
  rng.fill_normal(s.x);
  rng.fill_normal(s.c);
  rng.fill_uniform(s.t);
  return s;
}

// Activations with a kink at z = 0 (f or one of its first two derivatives jumps).
template <class Act>
constexpr bool kKinkAtZero = std::is_same_v<Act, ReLU> || std::is_same_v<Act, LeakyReLU> || std::is_same_v<Act, ELU> ||
                             std::is_same_v<Act, SELU>;

// The sign pattern of every hidden pre-activation (for kink detection).
template <class Model>
std::vector<bool> relu_pattern(const Model& model, const Setup& s) {
  std::vector<bool> pattern;
  for (const auto& z : test::reference_forward(model, s.x, s.t).pre)
    for (Index k = 0; k < z.size(); ++k) pattern.push_back(z.data()[k] > 0.0);
  return pattern;
}

struct Report {
  double worst = 0.0;  // worst relative error (with the 1e-4 floor)
  Index checked = 0;
  Index skipped = 0;  // parameters whose difference would straddle a kink (ReLU, LeakyReLU, ELU, SELU)
  Index nonzero = 0;  // gradients above the floor (the check is not vacuous)
};

template <class Act>
double numeric_derivative(MLPVectorField<double, Act>& model, const Setup& s, double& theta, bool& straddles) {
  auto loss = [&] { return (model(s.x, s.t).array() * s.c.array()).sum(); };
  straddles = false;
  if constexpr (std::is_same_v<Act, ReLU>) {
    const double h = 1e-3;
    const std::vector<bool> base = relu_pattern(model, s);
    const double saved = theta;
    theta = saved + h;
    straddles = relu_pattern(model, s) != base;
    theta = saved - h;
    straddles = straddles || relu_pattern(model, s) != base;
    theta = saved;
    return test::central_difference(loss, theta, h);
  } else if constexpr (kKinkAtZero<Act>) {
    const double h = 2.5e-4;  // fewer kinks within +-2h; rounding 1.5 eps |L| / h is still 1e-12 |L|
    const std::vector<bool> base = relu_pattern(model, s);
    const double saved = theta;
    for (double step : {-2.0 * h, -h, h, 2.0 * h}) {
      theta = saved + step;
      straddles = straddles || relu_pattern(model, s) != base;
    }
    theta = saved;
    return test::five_point_difference(loss, theta, h);
  } else {
    return test::five_point_difference(loss, theta, 1e-3);
  }
}

template <class Act>
void accumulate(Report& r, double analytic, double numeric, bool straddles) {
  if (straddles) {
    ++r.skipped;
    return;
  }
  ++r.checked;
  if (std::max(std::abs(analytic), std::abs(numeric)) > kFloor) ++r.nonzero;
  r.worst = test::worse(r.worst, test::relative_error(analytic, numeric, kFloor));
}

// Every entry of the flat gradients() against a finite difference of the flat parameters().
template <class Act>
Report check_flat(Index dim, std::vector<Index> hidden, Index n, std::uint64_t seed, bool scalar_time = false,
                  const std::function<void(MLPVectorField<double, Act>&, const Setup&)>& adjust = {}) {
  MLPVectorField<double, Act> model(dim, hidden, seed);
  Setup s = make_setup(dim, n, seed);
  if (scalar_time) s.t.setConstant(s.t(0));
  if (adjust) adjust(model, s);
  typename MLPVectorField<double, Act>::Workspace ws;
  if (scalar_time)
    model.forward_train(s.x, s.t(0), ws);
  else
    model.forward_train(s.x, s.t, ws);
  model.gradients().setConstant(std::numeric_limits<double>::quiet_NaN());  // backward overwrites
  model.backward(s.c, ws);
  const Vector<double> analytic = model.gradients();
  Report r;
  for (Index i = 0; i < model.num_parameters(); ++i) {
    bool straddles = false;
    const double numeric = numeric_derivative(model, s, model.parameters()(i), straddles);
    accumulate<Act>(r, analytic(i), numeric, straddles);
  }
  return r;
}

void check_report(const Report& r, Index num_parameters) {
  INFO("checked " << r.checked << ", skipped (kink) " << r.skipped << ", above floor " << r.nonzero << " of "
                  << num_parameters << "; worst relative error " << r.worst);
  CHECK(r.worst < 1e-6);
  CHECK(r.checked + r.skipped == num_parameters);
  CHECK(r.skipped * 10 <= num_parameters);  // at most 10% near a kink
  CHECK(r.nonzero * 3 >= num_parameters);   // at least a third of the gradients are far from 0
}

}  // namespace

TEMPLATE_LIST_TEST_CASE("MLPVectorField backward matches finite differences (whole network)", "[nn][gradient]",
                        BuiltinActivations) {
  struct Arch {
    Index dim;
    std::vector<Index> hidden;
    Index n;
    std::uint64_t seed;
  };
  const std::vector<Arch> archs = {
      {1, {}, 4, 3},          // no hidden layer: affine
      {3, {5}, 5, 2},         // one hidden layer
      {2, {7, 3}, 6, 1},      // two
      {4, {6, 3, 5}, 3, 4},   // three, odd widths
      {2, {9, 9, 9}, 7, 5},   // three, equal widths
  };
  for (const Arch& a : archs) {
    INFO("dim " << a.dim << ", " << a.hidden.size() << " hidden layers, activation " << TestType::name());
    const MLPVectorField<double, TestType> shape(a.dim, a.hidden, a.seed);
    check_report(check_flat<TestType>(a.dim, a.hidden, a.n, a.seed), shape.num_parameters());
  }
  // One time for the whole batch (the scalar form of forward_train).
  const MLPVectorField<double, TestType> shape(2, {7, 3}, 6);
  check_report(check_flat<TestType>(2, {7, 3}, 5, 6, true), shape.num_parameters());
}

TEST_CASE("ReLU gradient check: a parameter whose difference straddles a kink is detected and skipped", "[nn][gradient]") {
  // Move hidden unit 0's pre-activation at sample 0 to +5e-4: perturbing its bias by +-1e-3 flips
  // it, so that parameter (at least) must be skipped, and every other one still checked.
  using Model = MLPVectorField<double, ReLU>;
  const auto near_kink = [](Model& m, const Setup& s) {
    const double pre = test::reference_forward(m, s.x, s.t).pre[0](0, 0);
    m.bias(0)(0) += 5e-4 - pre;
  };
  const Report r = check_flat<ReLU>(2, {7, 3}, 6, 1, false, near_kink);
  INFO("checked " << r.checked << ", skipped " << r.skipped << ", worst " << r.worst);
  CHECK(r.skipped >= 1);
  CHECK(r.worst < 1e-6);
  const Model shape(2, {7, 3}, 1);
  CHECK(r.checked + r.skipped == shape.num_parameters());
}

TEMPLATE_LIST_TEST_CASE("MLPVectorField backward matches finite differences layer by layer", "[nn][gradient]",
                        BuiltinActivations) {
  // weight_gradient(l)(i, k) against a perturbation of weight(l)(i, k), bias likewise: checks each
  // layer's share of the gradient, and that the views of parameters and gradients agree.
  using Model = MLPVectorField<double, TestType>;
  Model model(3, {6, 5, 4}, 11);
  const Setup s = make_setup(3, 5, 11);
  typename Model::Workspace ws;
  model.forward_train(s.x, s.t, ws);
  model.backward(s.c, ws);
  Index total = 0;
  for (Index l = 0; l < model.num_layers(); ++l) {
    INFO("layer " << l << ", activation " << TestType::name());
    Report r;
    const auto wg = model.weight_gradient(l);
    const auto bg = model.bias_gradient(l);
    REQUIRE(wg.rows() == model.fan_out(l));
    REQUIRE(wg.cols() == model.fan_in(l));
    REQUIRE(bg.size() == model.fan_out(l));
    for (Index i = 0; i < wg.rows(); ++i)
      for (Index k = 0; k < wg.cols(); ++k) {
        bool straddles = false;
        const double numeric = numeric_derivative(model, s, model.weight(l)(i, k), straddles);
        accumulate<TestType>(r, wg(i, k), numeric, straddles);
      }
    for (Index i = 0; i < bg.size(); ++i) {
      bool straddles = false;
      const double numeric = numeric_derivative(model, s, model.bias(l)(i), straddles);
      accumulate<TestType>(r, bg(i), numeric, straddles);
    }
    const Index layer_params = model.fan_out(l) * (model.fan_in(l) + 1);
    total += layer_params;
    INFO("checked " << r.checked << ", skipped " << r.skipped << ", worst " << r.worst);
    CHECK(r.worst < 1e-6);
    CHECK(r.checked + r.skipped == layer_params);
    CHECK(r.skipped * 5 <= layer_params);
    CHECK(r.nonzero > 0);
  }
  CHECK(total == model.num_parameters());
  // The gradient with respect to the input x is not part of the API (backward writes parameter
  // gradients only), so it is not checked here.
}

TEMPLATE_LIST_TEST_CASE("MLPVectorField backward is linear in grad_out and overwrites the gradients", "[nn][gradient]",
                        BuiltinActivations) {
  using Model = MLPVectorField<double, TestType>;
  Model model(2, {8, 8}, 21);
  const Setup s = make_setup(2, 9, 21);
  typename Model::Workspace ws;
  model.forward_train(s.x, s.t, ws);
  model.backward(s.c, ws);
  const Vector<double> g1 = model.gradients();
  model.backward(s.c, ws);  // again: the same, not twice as much
  CHECK(test::max_abs(model.gradients() - g1) == 0.0);
  model.backward(-2.5 * s.c, ws);
  CHECK(test::max_abs(model.gradients() + 2.5 * g1) < 1e-13 * (1.0 + test::max_abs(g1)));
  // Sum of two columns' losses = sum of their gradients: each sample contributes additively.
  Matrix<double> c0 = s.c, c1 = s.c;
  c0.rightCols(5).setZero();
  c1.leftCols(4).setZero();
  model.backward(c0, ws);
  const Vector<double> ga = model.gradients();
  model.backward(c1, ws);
  CHECK(test::max_abs(ga + model.gradients() - g1) < 1e-13 * (1.0 + test::max_abs(g1)));
}

TEMPLATE_LIST_TEST_CASE("MLPVectorField<float> gradients agree with the double ones", "[nn][gradient]",
                        BuiltinActivations) {
  MLPVectorField<double, TestType> md(2, {16, 16}, 31);
  MLPVectorField<float, TestType> mf(2, {16, 16}, 31);
  REQUIRE(mf.parameters() == md.parameters().template cast<float>());
  const Setup s = make_setup(2, 12, 31);
  typename MLPVectorField<double, TestType>::Workspace wd;
  typename MLPVectorField<float, TestType>::Workspace wf;
  md.forward_train(s.x, s.t, wd);
  md.backward(s.c, wd);
  const Matrix<float> xf = s.x.cast<float>(), cf = s.c.cast<float>();
  const RowVector<float> tf = s.t.cast<float>();
  mf.forward_train(xf, tf, wf);
  mf.backward(cf, wf);
  const double rel = (mf.gradients().template cast<double>() - md.gradients()).norm() / md.gradients().norm();
  INFO("relative difference " << rel);
  CHECK(rel < 1e-5);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
