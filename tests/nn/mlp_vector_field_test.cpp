// MLPVectorField: parameter layout, PyTorch initialisation, determinism, the forward pass against
// an independent reference, time arguments, workspace reuse and argument checks.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <flowmatch/nn/builtin_activations.hpp>
#include <flowmatch/nn/concepts.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>

#include "support/compare.hpp"
#include "support/reference_mlp.hpp"
#include "support/stats.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;
using test::kSigmas;

static_assert(VectorField<MLPVectorField<float>>);
static_assert(TrainableVectorField<MLPVectorField<float>>);
static_assert(TrainableVectorField<MLPVectorField<double, ReLU>>);
static_assert(TrainableVectorField<MLPVectorField<double, Tanh>>);
static_assert(TrainableVectorField<MLPVectorField<float, GELU>> && TrainableVectorField<MLPVectorField<double, Softplus>>);

TEST_CASE("MLPVectorField layout: widths, offsets, row-major weights then bias, layer by layer", "[nn][mlp]") {
  MLPVectorField<double> m(3, {5, 4}, 1);
  CHECK(m.dim() == 3);
  CHECK(m.layer_widths() == std::vector<Index>{4, 5, 4, 3});
  CHECK(m.hidden_widths() == std::vector<Index>{5, 4});
  CHECK(m.num_layers() == 3);
  CHECK(m.fan_in(0) == 4);
  CHECK(m.fan_out(0) == 5);
  CHECK(m.fan_in(2) == 4);
  CHECK(m.fan_out(2) == 3);
  CHECK(m.num_parameters() == 5 * 4 + 5 + 4 * 5 + 4 + 3 * 4 + 3);
  CHECK(m.gradients().size() == m.num_parameters());
  const Vector<double>& p = m.parameters();
  // Layer 0: W (5 x 4, row-major) at 0, b at 20; layer 1: W (4 x 5) at 25, b at 45; layer 2: W at 49, b at 61.
  CHECK(m.weight(0)(0, 0) == p(0));
  CHECK(m.weight(0)(0, 3) == p(3));
  CHECK(m.weight(0)(1, 0) == p(4));
  CHECK(m.weight(0)(4, 3) == p(19));
  CHECK(m.bias(0)(0) == p(20));
  CHECK(m.bias(0)(4) == p(24));
  CHECK(m.weight(1)(0, 0) == p(25));
  CHECK(m.weight(1)(3, 4) == p(44));
  CHECK(m.bias(1)(3) == p(48));
  CHECK(m.weight(2)(2, 3) == p(60));
  CHECK(m.bias(2)(2) == p(63));
  // The views write through to the flat vector, and the gradient views use the same offsets.
  m.weight(1)(2, 3) = 42.0;
  CHECK(m.parameters()(25 + 2 * 5 + 3) == 42.0);
  m.gradients().setLinSpaced(m.num_parameters(), 0.0, double(m.num_parameters() - 1));
  CHECK(m.weight_gradient(1)(2, 3) == 25.0 + 2 * 5 + 3);
  CHECK(m.bias_gradient(2)(1) == 62.0);
  // No hidden layer: one affine map from d + 1 to d.
  const MLPVectorField<float> affine(2, {}, 0);
  CHECK(affine.num_layers() == 1);
  CHECK(affine.num_parameters() == 2 * 3 + 2);
}

TEST_CASE("MLPVectorField initialises as PyTorch's nn.Linear: uniform in +-1/sqrt(fan_in)", "[nn][mlp][statistical]") {
  // The reference workload's network: 2 -> [1024, 16] -> 2.
  const MLPVectorField<double> m(2, {1024, 16}, 7);
  for (Index l = 0; l < m.num_layers(); ++l) {
    INFO("layer " << l);
    const double bound = 1.0 / std::sqrt(static_cast<double>(m.fan_in(l)));
    CHECK(test::max_abs(m.weight(l)) <= bound);
    CHECK(test::max_abs(m.bias(l)) <= bound);
    // Roughly uniform: the largest |w| is close to the bound (for the big layers).
    if (m.weight(l).size() >= 1000) CHECK(test::max_abs(m.weight(l)) > 0.99 * bound);
  }
  // The 1024-wide layers: mean 0 and variance bound^2 / 3. With n draws of U(-b, b):
  // sd(mean) = b / sqrt(3n); sd(mean of w^2) = b^2 sqrt(4 / 45 / n) (Var w^2 = b^4/5 - b^4/9);
  // P(|w| < b/2) = 1/2.
  for (Index l : {0, 1}) {
    INFO("layer " << l);
    const double b = 1.0 / std::sqrt(static_cast<double>(m.fan_in(l)));
    const auto w = m.weight(l);
    const double n = static_cast<double>(w.size());
    CHECK(std::abs(w.mean()) < kSigmas * b / std::sqrt(3.0 * n));
    CHECK(std::abs(w.array().square().mean() - b * b / 3.0) < kSigmas * b * b * std::sqrt(4.0 / 45.0 / n));
    const double inner = static_cast<double>((w.array().abs() < 0.5 * b).count());
    CHECK(std::abs(inner - 0.5 * n) < kSigmas * test::binomial_sd(n, 0.5));
  }
  // Layer 0 (fan_in 3, 3072 weights): bound 1/sqrt(3) = 0.577, not 1/sqrt(fan_out).
  CHECK(test::max_abs(m.weight(0)) > 0.57);
  // Layer 1 (fan_in 1024): bound 1/32.
  CHECK(test::max_abs(m.weight(1)) <= 1.0 / 32.0);
  CHECK(test::max_abs(m.weight(1)) > 0.99 / 32.0);
  // The biases of the 1024-wide layer 0 too: mean 0, variance b^2 / 3.
  const double b0 = 1.0 / std::sqrt(3.0);
  CHECK(std::abs(m.bias(0).array().square().mean() - b0 * b0 / 3.0) < kSigmas * b0 * b0 * std::sqrt(4.0 / 45.0 / 1024.0));
}

TEST_CASE("MLPVectorField: the same seed gives the same parameters, a different one different parameters", "[nn][mlp]") {
  const MLPVectorField<float> a(2, {32, 16}, 5), b(2, {32, 16}, 5), c(2, {32, 16}, 6);
  CHECK(a.parameters() == b.parameters());
  CHECK(a.parameters() != c.parameters());
  // A seed and a generator with that seed are the same thing; a generator is advanced.
  Rng rng(5);
  const MLPVectorField<float> d(2, {32, 16}, rng);
  CHECK(d.parameters() == a.parameters());
  CHECK_FALSE(rng == Rng(5));
  const MLPVectorField<float> e(2, {32, 16}, rng);  // continues the stream: different
  CHECK(e.parameters() != a.parameters());
  // reset_parameters redraws from a generator.
  MLPVectorField<float> f(2, {32, 16}, 99);
  Rng again(5);
  f.reset_parameters(again);
  CHECK(f.parameters() == a.parameters());
  // float parameters are the rounded double ones: the same draws.
  const MLPVectorField<double> g(2, {32, 16}, 5);
  CHECK(a.parameters() == g.parameters().cast<float>());
}

TEMPLATE_LIST_TEST_CASE("MLPVectorField forward equals an independent reference implementation", "[nn][mlp]",
                        BuiltinActivations) {
  for (const std::vector<Index>& hidden : {std::vector<Index>{}, std::vector<Index>{9}, std::vector<Index>{17, 5},
                                           std::vector<Index>{8, 8, 3}}) {
    INFO(hidden.size() << " hidden layers");
    const MLPVectorField<double, TestType> m(3, hidden, 4);
    Rng rng(4);
    Matrix<double> x(3, 13);
    rng.fill_normal(x);
    RowVector<double> t(13);
    rng.fill_uniform(t);
    const test::ReferenceForward ref = test::reference_forward(m, x, t);
    const Matrix<double> out = m(x, t);
    CHECK(test::max_abs(out - ref.out) < 1e-13 * (1.0 + test::max_abs(ref.out)));
    // The time matters: t enters as an input.
    const RowVector<double> t2 = (t.array() * 0.5).matrix();
    CHECK(test::max_abs(m(x, t2) - out) > 1e-6);
  }
}

TEST_CASE("MLPVectorField float and double give close outputs", "[nn][mlp]") {
  const MLPVectorField<float> mf(2, {64, 64}, 3);
  const MLPVectorField<double> md(2, {64, 64}, 3);
  Rng rng(3);
  Matrix<double> x(2, 50);
  rng.fill_normal(x);
  x *= 5.0;
  RowVector<double> t(50);
  rng.fill_uniform(t);
  const Matrix<double> od = md(x, t);
  const Matrix<float> of = mf(x.cast<float>(), t.cast<float>());
  CHECK(test::max_abs(of.cast<double>() - od) < 1e-5 * (1.0 + test::max_abs(od)));
  // A float model also accepts a double batch (cast on input).
  const Matrix<float> of2 = mf(x, t);
  CHECK(test::max_abs(of2.cast<double>() - od) < 1e-5 * (1.0 + test::max_abs(od)));
}

TEMPLATE_TEST_CASE("MLPVectorField: a scalar t and a vector of equal t give the same output", "[nn][mlp]", float, double) {
  const MLPVectorField<TestType> m(2, {16, 16}, 8);
  Rng rng(8);
  Matrix<TestType> x(2, 21);
  rng.fill_normal(x);
  typename MLPVectorField<TestType>::Workspace ws;
  Matrix<TestType> out_s(2, 21), out_v(2, 21);
  for (double t : {0.0, 0.375, 1.0}) {  // exact in float, so a float time is the same time
    m.forward(x, t, out_s, ws);
    const RowVector<TestType> tv = RowVector<TestType>::Constant(21, static_cast<TestType>(t));
    m.forward(x, tv, out_v, ws);
    CHECK(out_s == out_v);
    const Vector<double> tcol = Vector<double>::Constant(21, t);  // a column vector of double works too
    m.forward(x, tcol, out_v, ws);
    CHECK(out_s == out_v);
    CHECK(m(x, static_cast<float>(t)) == out_s);  // float, double: any arithmetic time
  }
}

TEST_CASE("MLPVectorField: each column is computed independently of the rest of the batch", "[nn][mlp]") {
  const MLPVectorField<double> m(2, {32, 16}, 9);
  Rng rng(9);
  Matrix<double> x(2, 40);
  rng.fill_normal(x);
  RowVector<double> t(40);
  rng.fill_uniform(t);
  const Matrix<double> batch = m(x, t);
  for (Index j = 0; j < 40; j += 7) {
    const RowVector<double> tj = t.segment(j, 1);
    CHECK(test::max_abs(m(x.col(j), tj) - batch.col(j)) < 1e-13 * (1.0 + test::max_abs(batch)));
  }
}

TEMPLATE_LIST_TEST_CASE("MLPVectorField: a workspace reused at another batch size gives the same results as a fresh one",
                        "[nn][mlp]", BuiltinActivations) {
  using Model = MLPVectorField<double, TestType>;
  Model m(2, {12, 7}, 10);
  Rng rng(10);
  Matrix<double> x7(2, 7), x3(2, 3), c7(2, 7), c3(2, 3);
  rng.fill_normal(x7);
  rng.fill_normal(x3);
  rng.fill_normal(c7);
  rng.fill_normal(c3);
  RowVector<double> t7(7), t3(3);
  rng.fill_uniform(t7);
  rng.fill_uniform(t3);

  const auto fresh = [&](const Matrix<double>& x, const RowVector<double>& t, const Matrix<double>& c,
                         Matrix<double>& out, Vector<double>& grad) {
    typename Model::Workspace ws;
    out = m.forward_train(x, t, ws);
    m.backward(c, ws);
    grad = m.gradients();
  };
  Matrix<double> out7, out3;
  Vector<double> g7, g3;
  fresh(x7, t7, c7, out7, g7);
  fresh(x3, t3, c3, out3, g3);

  typename Model::Workspace ws;
  for (int round = 0; round < 2; ++round) {
    INFO("round " << round);
    CHECK(m.forward_train(x7, t7, ws) == out7);
    m.backward(c7, ws);
    CHECK(m.gradients() == g7);
    CHECK(ws.batch == 7);
    CHECK(m.forward_train(x3, t3, ws) == out3);
    m.backward(c3, ws);
    CHECK(m.gradients() == g3);
    CHECK(ws.batch == 3);
  }
  // A workspace used by a model of other widths is re-sized, not misused.
  const Model other(2, {5}, 11);
  typename Model::Workspace shared;
  other.forward_train(x3, t3, shared);
  CHECK(m.forward_train(x3, t3, shared) == out3);
  // forward() writes into a caller's matrix (here a block of a larger one).
  Matrix<double> big = Matrix<double>::Zero(2, 10);
  m.forward(x7, t7, big.middleCols(2, 7), ws);
  CHECK(big.middleCols(2, 7) == out7);
  CHECK(big.col(0).isZero(0.0));
  CHECK(big.col(9).isZero(0.0));
}

TEST_CASE("MLPVectorField refuses bad arguments, naming them", "[nn][mlp][errors]") {
  CHECK_THROWS_AS(MLPVectorField<float>(2, {16, 0}, 0), InvalidArgument);
  CHECK_THROWS_WITH(MLPVectorField<float>(2, {16, 0}, 0), Catch::Contains("argument 'hidden_widths[1]'"));
  CHECK_THROWS_WITH(MLPVectorField<float>(2, {-4}, 0), Catch::Contains("argument 'hidden_widths[0]'"));
  CHECK_THROWS_AS(MLPVectorField<float>(0, {16}, 0), InvalidArgument);
  CHECK_THROWS_WITH(MLPVectorField<float>(0, {16}, 0), Catch::Contains("argument 'dim'"));
  CHECK_THROWS_WITH(MLPVectorField<double>(-1, {}, 0), Catch::Contains("argument 'dim'"));

  MLPVectorField<double> m(2, {8}, 0);
  typename MLPVectorField<double>::Workspace ws;
  const Matrix<double> x3 = Matrix<double>::Zero(3, 4), x = Matrix<double>::Zero(2, 4), empty(2, 0);
  CHECK_THROWS_AS(m.forward_train(x3, 0.5, ws), DimensionMismatch);
  CHECK_THROWS_WITH(m.forward_train(x3, 0.5, ws), Catch::Contains("argument 'x'"));
  CHECK_THROWS_AS(m.forward_train(empty, 0.5, ws), InvalidArgument);
  CHECK_THROWS_WITH(m.forward_train(empty, 0.5, ws), Catch::Contains("argument 'x.cols() (batch size)'"));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (double t : {-0.01, 1.01, nan}) {
    INFO("t = " << t);
    CHECK_THROWS_AS(m.forward_train(x, t, ws), InvalidArgument);
    CHECK_THROWS_WITH(m.forward_train(x, t, ws), Catch::Contains("argument 't'"));
  }
  RowVector<double> tv(4);
  tv << 0.1, 2.0, 0.3, 0.4;
  CHECK_THROWS_WITH(m.forward_train(x, tv, ws), Catch::Contains("argument 't[1]'"));
  const RowVector<double> short_t = RowVector<double>::Constant(3, 0.5);
  CHECK_THROWS_AS(m.forward_train(x, short_t, ws), DimensionMismatch);
  CHECK_THROWS_WITH(m.forward_train(x, short_t, ws), Catch::Contains("argument 't'"));
  Matrix<double> out_wrong(2, 5), out_rows(3, 4);
  CHECK_THROWS_AS(m.forward(x, 0.5, out_wrong, ws), DimensionMismatch);
  CHECK_THROWS_WITH(m.forward(x, 0.5, out_wrong, ws), Catch::Contains("argument 'out'"));
  CHECK_THROWS_WITH(m.forward(x, 0.5, out_rows, ws), Catch::Contains("argument 'out'"));
  CHECK_THROWS_WITH(m(x3, 0.5), Catch::Contains("argument 'x'"));

  // backward needs a forward pass in the workspace, and a grad_out of its shape.
  typename MLPVectorField<double>::Workspace unused;
  CHECK_THROWS_AS(m.backward(x, unused), InvalidArgument);
  CHECK_THROWS_WITH(m.backward(x, unused), Catch::Contains("argument 'ws'"));
  m.forward_train(x, 0.5, ws);
  CHECK_THROWS_AS(m.backward(Matrix<double>::Zero(2, 3), ws), DimensionMismatch);
  CHECK_THROWS_WITH(m.backward(Matrix<double>::Zero(2, 3), ws), Catch::Contains("argument 'grad_out'"));
  CHECK_THROWS_WITH(m.backward(Matrix<double>::Zero(3, 4), ws), Catch::Contains("argument 'grad_out'"));
}

}  // namespace FLOWMATCH_TEST_FILE_ID
