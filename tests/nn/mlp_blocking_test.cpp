// MLPVectorField processes a batch in column blocks, possibly on several threads, and has a fused
// first-layer kernel for small input dimensions. These tests pin down that none of that changes the
// result: any batch size (across block boundaries), any thread count, both first-layer paths.

#include <catch2/catch.hpp>

#include <flowmatch/core/threads.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>

#include "support/compare.hpp"
#include "support/reference_mlp.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

struct ThreadsGuard {
  int saved = num_threads();
  ~ThreadsGuard() { set_num_threads(saved); }
};

// Gradient of sum_j <c_j, u(x_j, t_j)> computed one column at a time (batch size 1, one block):
// the reference for the blocked, threaded backward over the whole batch.
template <class Model>
Vector<double> per_column_gradient(Model& model, const Matrix<double>& x, const RowVector<double>& t,
                                   const Matrix<double>& c) {
  Vector<double> sum = Vector<double>::Zero(model.num_parameters());
  typename Model::Workspace ws;
  for (Index j = 0; j < x.cols(); ++j) {
    model.forward_train(x.col(j), t.segment(j, 1), ws);
    model.backward(c.col(j), ws);
    sum += model.gradients();
  }
  return sum;
}

}  // namespace

TEST_CASE("MLPVectorField: blocked and threaded passes equal the per-column reference at any batch size", "[nn][mlp][threads]") {
  ThreadsGuard guard;
  for (const Index dim : {Index{2}, Index{9}}) {  // fan-in 3 (fused first layer) and 10 (matrix product)
    MLPVectorField<double, SiLU> model(dim, {37, 11}, 5);
    for (const Index n : {Index{1}, Index{63}, Index{64}, Index{65}, Index{130}, Index{257}}) {
      Rng rng(static_cast<std::uint64_t>(n));
      Matrix<double> x(dim, n), c(dim, n);
      RowVector<double> t(n);
      rng.fill_normal(x);
      rng.fill_normal(c);
      rng.fill_uniform(t);
      const test::ReferenceForward ref = test::reference_forward(model, x, t);
      set_num_threads(1);
      const Vector<double> expected = per_column_gradient(model, x, t, c);
      for (const int threads : {1, 2}) {
        set_num_threads(threads);
        INFO("dim " << dim << ", batch " << n << ", threads " << threads);
        typename MLPVectorField<double, SiLU>::Workspace ws;
        Matrix<double> inference(dim, n);
        model.forward(x, t, inference, ws);  // block-buffer inference path
        CHECK(test::max_abs(inference - ref.out) < 1e-12);
        const Matrix<double> out = model.forward_train(x, t, ws);
        CHECK(test::max_abs(out - ref.out) < 1e-12);
        model.backward(c, ws);
        const double scale = expected.cwiseAbs().maxCoeff();
        CHECK(test::max_abs(model.gradients() - expected) < 1e-12 * scale * static_cast<double>(n));
      }
    }
  }
}

TEST_CASE("MLPVectorField: backward is deterministic for a given thread count", "[nn][mlp][threads]") {
  ThreadsGuard guard;
  MLPVectorField<float, SiLU> model(2, {256, 16}, 3);
  Rng rng(4);
  Matrix<float> x(2, 1000), c(2, 1000);
  RowVector<float> t(1000);
  rng.fill_normal(x);
  rng.fill_normal(c);
  rng.fill_uniform(t);
  for (const int threads : {1, 2}) {
    set_num_threads(threads);
    typename MLPVectorField<float, SiLU>::Workspace ws;
    model.forward_train(x, t, ws);
    model.backward(c, ws);
    const Vector<float> first = model.gradients();
    model.forward_train(x, t, ws);
    model.backward(c, ws);
    INFO("threads " << threads);
    CHECK((model.gradients().array() == first.array()).all());
  }
}

TEST_CASE("MLPVectorField: a workspace moved to a model of another architecture is resized, not misused", "[nn][mlp]") {
  MLPVectorField<double, Tanh> small(2, {5}, 1), large(3, {17, 9}, 2);
  Rng rng(8);
  Matrix<double> x2(2, 70), x3(3, 70);
  rng.fill_normal(x2);
  rng.fill_normal(x3);
  typename MLPVectorField<double, Tanh>::Workspace ws;
  Matrix<double> out2(2, 70), out3(3, 70);
  small.forward(x2, 0.3, out2, ws);
  large.forward(x3, 0.3, out3, ws);
  CHECK(test::max_abs(out3 - test::reference_forward(large, x3, RowVector<double>::Constant(70, 0.3)).out) < 1e-12);
  small.forward_train(x2, 0.3, ws);
  large.forward_train(x3, 0.3, ws);
  large.backward(x3, ws);
  CHECK(large.gradients().allFinite());
}

}  // namespace FLOWMATCH_TEST_FILE_ID
