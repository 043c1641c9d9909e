// MLPVectorField with an input dimension different from its output dimension (the trunk of
// fields that see more than x: Fourier time features, one-hot labels). Checks the forward pass
// against the plain reference network, the blocked inference pass against the training pass, the
// gradient against finite differences, and the dimension errors.

#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <vector>

#include <flowmatch/nn/mlp_vector_field.hpp>
#include <flowmatch/ode/learned_vector_field_ode.hpp>

#include "support/compare.hpp"
#include "support/gradient_check.hpp"
#include "support/reference_mlp.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

struct Case {
  Index in, out;
  std::vector<Index> hidden;
};

}  // namespace

TEST_CASE("MLPVectorField with separate input and output dimensions: shapes and reference forward", "[nn]") {
  // Fan-ins 4 and 6 use the fused small-fan-in first layer, 13 the matrix-product path.
  const std::vector<Case> cases = {{3, 2, {16, 8}}, {5, 1, {40}}, {12, 3, {33, 7}}, {2, 6, {9}}};
  for (const Case& c : cases) {
    INFO("input " << c.in << ", output " << c.out);
    MLPVectorField<double> model(c.in, c.out, c.hidden, std::uint64_t{7});
    CHECK(model.input_dim() == c.in);
    CHECK(model.dim() == c.out);
    CHECK(model.layer_widths().front() == c.in + 1);
    CHECK(model.layer_widths().back() == c.out);
    Rng rng(3);
    const Index n = 70;  // three blocks, the last one partial
    Matrix<double> x(c.in, n);
    RowVector<double> t(n);
    rng.fill_normal(x);
    rng.fill_uniform(t);
    const Matrix<double> ref = test::reference_forward(model, x, t).out;
    REQUIRE(ref.rows() == c.out);
    MLPVectorField<double>::Workspace ws;
    const Matrix<double> trained = model.forward_train(x, t, ws);
    CHECK(test::max_abs(trained - ref) < 1e-12 * (1.0 + test::max_abs(ref)));
    Matrix<double> inferred(c.out, n);
    MLPVectorField<double>::Workspace wi;
    model.forward(x, t, inferred, wi);
    CHECK(test::max_abs(inferred - ref) < 1e-12 * (1.0 + test::max_abs(ref)));
  }
}

TEST_CASE("MLPVectorField with separate input and output dimensions: backward matches finite differences", "[nn][gradient]") {
  for (const Case& c : std::vector<Case>{{4, 2, {6, 5}}, {11, 3, {7}}}) {
    INFO("input " << c.in << ", output " << c.out);
    MLPVectorField<double, Tanh> model(c.in, c.out, c.hidden, std::uint64_t{5});
    Rng rng(9);
    const Index n = 6;
    Matrix<double> x(c.in, n), w(c.out, n);
    RowVector<double> t(n);
    rng.fill_normal(x);
    rng.fill_normal(w);
    rng.fill_uniform(t);
    MLPVectorField<double, Tanh>::Workspace ws;
    model.forward_train(x, t, ws);
    model.backward(w, ws);
    const Vector<double> analytic = model.gradients();
    auto loss = [&] { return (model(x, t).array() * w.array()).sum(); };
    double worst = 0.0;
    Index nonzero = 0;
    for (Index i = 0; i < model.num_parameters(); ++i) {
      const double numeric = test::five_point_difference(loss, model.parameters()(i), 1e-3);
      worst = test::worse(worst, test::relative_error(analytic(i), numeric, 1e-4));
      if (std::abs(numeric) > 1e-4) ++nonzero;
    }
    INFO("worst relative error " << worst);
    CHECK(worst < 1e-6);
    CHECK(nonzero * 3 >= model.num_parameters());
  }
}

TEST_CASE("MLPVectorField with separate dimensions: wrong shapes throw, naming the argument", "[nn][errors]") {
  MLPVectorField<float> model(5, 2, {8}, std::uint64_t{1});
  MLPVectorField<float>::Workspace ws;
  const Matrix<float> x2 = Matrix<float>::Zero(2, 4), x5 = Matrix<float>::Zero(5, 4);
  Matrix<float> out2(2, 4), out5(5, 4);
  CHECK_THROWS_WITH(model.forward(x2, 0.5, out2, ws), Catch::Contains("'x'") && Catch::Contains("5"));
  CHECK_THROWS_AS(model.forward(x5, 0.5, out5, ws), DimensionMismatch);
  CHECK_NOTHROW(model.forward(x5, 0.5, out2, ws));
  CHECK_THROWS_AS(model.forward_train(x2, 0.5, ws), DimensionMismatch);
  CHECK_THROWS_WITH((MLPVectorField<float>(0, 2, {8}, std::uint64_t{1})), Catch::Contains("input_dim"));
  CHECK_THROWS_WITH((MLPVectorField<float>(3, -1, {8}, std::uint64_t{1})), Catch::Contains("output_dim"));
  // A flow ODE needs a field from R^d to R^d.
  CHECK_THROWS_AS(LearnedVectorFieldODE<MLPVectorField<float>>(model), DimensionMismatch);
  const MLPVectorField<float> square(2, 2, {8}, std::uint64_t{1});
  CHECK_NOTHROW(LearnedVectorFieldODE<MLPVectorField<float>>(square));
}

}  // namespace FLOWMATCH_TEST_FILE_ID
