// The time-free MLP<S, Act> (nn/mlp.hpp): its hand-written backward pass against five-point
// differences in double (every parameter, SiLU and Tanh, zero to three hidden layers), its
// forward pass against a plain double one (support/reference_mlp.hpp) across block boundaries
// and thread counts, determinism, its state (names, shapes, round trip, every mismatch refused
// before anything changes) and bad arguments.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <flowmatch/core/state.hpp>
#include <flowmatch/core/threads.hpp>
#include <flowmatch/nn/mlp.hpp>

#include "support/compare.hpp"
#include "support/errors.hpp"
#include "support/gradient_check.hpp"
#include "support/reference_mlp.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

static_assert(Stateful<MLP<float>>);
static_assert(Stateful<MLP<double, Tanh>>);

struct ThreadsGuard {
  int saved = num_threads();
  ~ThreadsGuard() { set_num_threads(saved); }
};

// L = sum(C .* mlp(x)) for a fixed C, so dL/dout = C checks every output at once.
template <class Act>
void check_gradient(const std::vector<Index>& hidden) {
  MLP<double, Act> mlp(4, 3, hidden, std::uint64_t{21});
  Rng rng(5);
  Matrix<double> x(4, 37), c(3, 37);  // 37 columns: two blocks, the second partial
  rng.fill_normal(x);
  rng.fill_normal(c);
  typename MLP<double, Act>::Workspace ws, ws_loss;
  mlp.forward_train(x, ws);
  mlp.backward(c, ws);
  const Vector<double> analytic = mlp.gradients();
  Matrix<double> out(3, 37);
  auto f = [&] {
    mlp.forward(x, out, ws_loss);
    return (c.array() * out.array()).sum();
  };
  double worst = 0.0;
  for (Index i = 0; i < mlp.num_parameters(); ++i) {
    const double numeric = test::five_point_difference(f, mlp.parameters()(i), 1e-3);
    worst = test::worse(worst, test::relative_error(analytic(i), numeric, 1e-4));
  }
  INFO(Act::name() << ", " << hidden.size() << " hidden layers: worst relative error " << worst);
  CHECK(worst < 1e-6);
  CHECK(test::max_abs(analytic) > 1e-3);
  // The per-layer views see the same numbers.
  const Index L = mlp.num_layers();
  CHECK(mlp.bias_gradient(L - 1)(0) == Approx(c.row(0).sum()).epsilon(1e-12));
}

}  // namespace

TEST_CASE("MLP: shapes, layout and initialisation", "[nn][mlp_plain]") {
  const MLP<float> mlp(5, 3, {8, 4}, std::uint64_t{3});
  CHECK(mlp.input_dim() == 5);
  CHECK(mlp.output_dim() == 3);
  CHECK(mlp.layer_widths() == std::vector<Index>{5, 8, 4, 3});
  CHECK(mlp.num_layers() == 3);
  CHECK(mlp.num_parameters() == (8 * 5 + 8) + (4 * 8 + 4) + (3 * 4 + 3));
  // Flat layout: layer 0's weight (row-major), its bias, then layer 1's ...
  CHECK(mlp.weight(0).data() == mlp.parameters().data());
  CHECK(mlp.bias(0).data() == mlp.parameters().data() + 40);
  CHECK(mlp.weight(1).data() == mlp.parameters().data() + 48);
  CHECK(mlp.weight(0)(1, 2) == mlp.parameters()(1 * 5 + 2));
  // nn.Linear's initialisation bound 1/sqrt(fan_in), deterministic in the seed.
  CHECK(test::max_abs(mlp.weight(0)) <= 1.0 / std::sqrt(5.0));
  CHECK(test::max_abs(mlp.weight(1)) <= 1.0 / std::sqrt(8.0));
  CHECK(MLP<float>(5, 3, {8, 4}, std::uint64_t{3}).parameters() == mlp.parameters());
  CHECK(MLP<float>(5, 3, {8, 4}, std::uint64_t{4}).parameters() != mlp.parameters());
  const MLP<double> affine(3, 2, {}, std::uint64_t{1});  // no hidden layer: an affine map
  CHECK(affine.num_layers() == 1);
  CHECK(affine.num_parameters() == 2 * 3 + 2);
}

TEST_CASE("MLP: parameter gradient matches finite differences in double", "[nn][mlp_plain][gradient]") {
  for (const std::vector<Index>& hidden :
       {std::vector<Index>{}, std::vector<Index>{6}, std::vector<Index>{6, 5}, std::vector<Index>{4, 7, 3}}) {
    check_gradient<SiLU>(hidden);
    check_gradient<Tanh>(hidden);
  }
}

TEST_CASE("MLP: forward matches a plain double forward pass at any thread count, deterministically",
          "[nn][mlp_plain]") {
  ThreadsGuard guard;
  const MLP<float> mlp(20, 4, {48, 16}, std::uint64_t{9});
  Rng rng(1);
  Matrix<float> x(20, 77);  // not a multiple of the 32-column blocks
  rng.fill_normal(x);
  const test::ReferenceForward ref = test::reference_forward(mlp, x.cast<double>());
  Matrix<float> c(4, 77);
  rng.fill_normal(c);
  Vector<float> first_gradient;
  for (const int threads : {1, 2, 3}) {
    set_num_threads(threads);
    MLP<float>::Workspace ws;
    Matrix<float> out(4, 77);
    mlp.forward(x, out, ws);
    INFO(threads << " threads");
    CHECK(test::max_abs(out.cast<double>() - ref.out) < 1e-5 * (1.0 + test::max_abs(ref.out)));
    CHECK(mlp(x) == out);
    // forward_train keeps the hidden layers: a[2] is the last hidden layer's output.
    const Matrix<float>& train_out = mlp.forward_train(x, ws);
    CHECK(train_out == out);
    const Eigen::MatrixXd h2 = ref.pre.back().unaryExpr([](double v) { return SiLU::value<double>(v); });
    CHECK(test::max_abs(ws.a[2].cast<double>() - h2) < 1e-5 * (1.0 + test::max_abs(h2)));
    // A double output and a block of a bigger matrix work too.
    Matrix<double> wide = Matrix<double>::Constant(6, 80, -7.0);
    mlp.forward(x, wide.block(1, 2, 4, 77), ws);
    CHECK(test::max_abs(wide.block(1, 2, 4, 77) - out.cast<double>()) == 0.0);
    CHECK(wide(0, 0) == -7.0);
    // Gradients: the same at one thread count whatever the run, close across counts.
    MLP<float> m = mlp;
    m.forward_train(x, ws);
    m.backward(c, ws);
    const Vector<float> g = m.gradients();
    m.forward_train(x, ws);
    m.backward(c, ws);
    CHECK(m.gradients() == g);
    if (threads == 1) first_gradient = g;
    else CHECK(test::max_abs(g - first_gradient) < 1e-4 * (1.0 + test::max_abs(first_gradient)));
  }
}

TEST_CASE("MLP: state names, round trip, and every mismatch refused before anything changes",
          "[nn][mlp_plain][state]") {
  MLP<float> mlp(3, 2, {5, 4}, std::uint64_t{2});
  mlp.parameters().array() += 0.5f;
  StateDict dict;
  save_state_parts(dict, mlp);  // default scope "model"
  CHECK(*dict.find_attribute("model.type") == "mlp");
  CHECK(*dict.find_attribute("model.scalar") == "float");
  CHECK(*dict.find_attribute("model.activation") == "silu");
  CHECK(*dict.find_attribute("model.widths") == "[3,5,4,2]");
  CHECK(dict.tensors().size() == 6);
  REQUIRE(dict.find_tensor("model.2.weight") != nullptr);
  CHECK(dict.find_tensor("model.2.weight")->shape == std::vector<std::int64_t>{4, 5});
  CHECK(dict.find_tensor("model.2.weight")->dtype == DType::F32);
  CHECK(dict.find_tensor("model.4.bias")->shape == std::vector<std::int64_t>{2});
  CHECK(dict.find_tensor("model.1.weight") == nullptr);  // nn.Sequential numbering: 0, 2, 4
  // Row-major [out, in]: element (1, 2) of layer 0 at 1 * 3 + 2.
  float w12 = 0.0f;
  std::memcpy(&w12, dict.find_tensor("model.0.weight")->bytes.data() + 4 * (1 * 3 + 2), 4);
  CHECK(w12 == mlp.weight(0)(1, 2));

  MLP<float> loaded(3, 2, {5, 4}, std::uint64_t{77});
  load_state_parts(dict, "mlp", loaded);
  CHECK(loaded.parameters() == mlp.parameters());

  const auto refused = [&](auto model, const StateDict& d, const std::string& needle) {
    const auto before = model.parameters();
    const std::string m = test::error_message([&] { load_state_parts(d, "mlp-file", model); });
    INFO(m);
    CHECK(m.find(needle) != std::string::npos);
    CHECK(m.find("mlp-file") != std::string::npos);
    CHECK(model.parameters() == before);
  };
  refused(MLP<float>(3, 2, {5, 3}, std::uint64_t{1}), dict, "widths");
  refused(MLP<double>(3, 2, {5, 4}, std::uint64_t{1}), dict, "scalar");
  refused(MLP<float, Tanh>(3, 2, {5, 4}, std::uint64_t{1}), dict, "activation");
  // A copy of `dict` with one tensor or attribute replaced (StateDict refuses duplicate names).
  const auto replaced = [&](const std::string& key, const Tensor* t, const std::string* a) {
    StateDict d;
    for (const auto& [k, v] : dict.tensors()) d.put_tensor(k, k == key && t ? *t : v);
    for (const auto& [k, v] : dict.attributes()) d.put_attribute(k, k == key && a ? *a : v);
    return d;
  };
  Tensor nan_bias = *dict.find_tensor("model.4.bias");
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(nan_bias.bytes.data(), &nan, 4);
  refused(MLP<float>(3, 2, {5, 4}, std::uint64_t{1}), replaced("model.4.bias", &nan_bias, nullptr), "NaN or an infinity");
  const std::string other_type = "mlp_vector_field";
  const StateDict wrong_type = replaced("model.type", nullptr, &other_type);
  refused(MLP<float>(3, 2, {5, 4}, std::uint64_t{1}), wrong_type, "model type");
  StateDict extra = dict;
  extra.put_attribute("model.extra", "1");
  refused(MLP<float>(3, 2, {5, 4}, std::uint64_t{1}), extra, "model.extra");
}

TEST_CASE("MLP: bad arguments throw naming them", "[nn][mlp_plain][errors]") {
  CHECK(test::error_message([] { MLP<float>(0, 2, {4}); }).find("input_dim") != std::string::npos);
  CHECK(test::error_message([] { MLP<float>(3, 0, {4}); }).find("output_dim") != std::string::npos);
  CHECK(test::error_message([] { MLP<float>(3, 2, {4, 0}); }).find("hidden_widths[1]") != std::string::npos);
  MLP<float> mlp(3, 2, {4}, std::uint64_t{1});
  MLP<float>::Workspace ws;
  CHECK(test::error_message([&] { mlp.backward(Matrix<float>::Zero(2, 5), ws); }).find("forward_train") !=
        std::string::npos);
  Matrix<float> out(2, 5);
  CHECK_THROWS_AS(mlp.forward(Matrix<float>::Zero(4, 5), out, ws), DimensionMismatch);
  CHECK_THROWS_AS(mlp.forward(Matrix<float>::Zero(3, 5), Matrix<float>(2, 4), ws), DimensionMismatch);
  CHECK_THROWS_AS(mlp.forward(Matrix<float>(3, 0), Matrix<float>(2, 0), ws), InvalidArgument);
  mlp.forward_train(Matrix<float>::Zero(3, 5), ws);
  CHECK_THROWS_AS(mlp.backward(Matrix<float>::Zero(2, 4), ws), DimensionMismatch);
  CHECK_THROWS_AS(mlp.backward(Matrix<float>::Zero(3, 5), ws), DimensionMismatch);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
