// Gradient checks of MLPVectorField's hand-written backward pass against central differences.

#include <catch2/catch.hpp>

#include <flowmatch/nn/mlp_vector_field.hpp>

#include "support/gradient_check.hpp"

using namespace flowmatch;

namespace {

// L = sum(C .* u_theta(x, t)) for a fixed random C: dL/dout = C, a "one-hot"-free check of every
// output coordinate at once; then every parameter is compared with its central difference.
template <class Act>
double max_relative_error(Index dim, std::vector<Index> hidden, Index n, std::uint64_t seed) {
  MLPVectorField<double, Act> model(dim, hidden, seed);
  Rng rng(seed + 100);
  Matrix<double> x(dim, n), c(dim, n);
  rng.fill_normal(x);
  rng.fill_normal(c);
  RowVector<double> t(n);
  rng.fill_uniform(t);
  typename MLPVectorField<double, Act>::Workspace ws;
  model.forward_train(x, t, ws);
  model.backward(c, ws);
  const Vector<double> analytic = model.gradients();
  auto loss = [&] { return (model(x, t).array() * c.array()).sum(); };
  double worst = 0.0;
  for (Index i = 0; i < model.num_parameters(); ++i) {
    const double numeric = test::central_difference(loss, model.parameters()(i), 1e-6);
    // Differences are only meaningful above the finite-difference noise (about 1e-9 here).
    if (std::abs(analytic(i)) < 1e-7 && std::abs(numeric) < 1e-7) continue;
    worst = std::max(worst, test::relative_error(analytic(i), numeric));
  }
  return worst;
}

}  // namespace

TEMPLATE_TEST_CASE("MLPVectorField backward matches central differences", "[nn][gradient]", SiLU, Tanh) {
  CHECK(max_relative_error<TestType>(2, {7, 5}, 6, 1) < 1e-6);
  CHECK(max_relative_error<TestType>(3, {4}, 5, 2) < 1e-6);
  CHECK(max_relative_error<TestType>(1, {}, 4, 3) < 1e-6);
  CHECK(max_relative_error<TestType>(4, {6, 3, 5}, 3, 4) < 1e-6);
}
