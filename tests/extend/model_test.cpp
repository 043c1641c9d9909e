// docs/extending.md, "A model": a user's own trainable vector field with its own state, written
// outside the library (between the [extending.md] markers; the page quotes parts of this file, and
// tests/extend/docs_sync_test.cpp fails if a quote no longer matches). A residual MLP: it satisfies
// TrainableVectorField (so CFMTrainer trains it and LearnedVectorFieldODE samples it) and the state
// protocol of core/state.hpp (so it is saved and loaded with no change to the library).
//
// What the tests prove: its hand-written backward pass matches five-point differences of its
// forward pass for every parameter (double); CFMTrainer trains it (finite, falling losses) and
// EulerSimulator samples it near the data; save_state_parts / load_state_parts round-trip it
// exactly (identical outputs) under its default scope "model"; a load into another width or
// number of blocks, a wrong type tag, or a non-finite tensor throws CheckpointMismatchError and
// leaves the model as it was.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <flowmatch/distribution/gaussian.hpp>
#include <flowmatch/ode/euler_simulator.hpp>
#include <flowmatch/ode/learned_vector_field_ode.hpp>
#include <flowmatch/optim/adam.hpp>
#include <flowmatch/path/gaussian_conditional_path.hpp>
#include <flowmatch/schedule/linear_alpha.hpp>
#include <flowmatch/schedule/linear_beta.hpp>
#include <flowmatch/train/cfm_trainer.hpp>

#include "support/gradient_check.hpp"

// [extending.md: model]
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <flowmatch/core/error.hpp>
#include <flowmatch/core/random.hpp>
#include <flowmatch/core/state.hpp>
#include <flowmatch/core/time.hpp>
#include <flowmatch/nn/concepts.hpp>

namespace user {

using flowmatch::Index;
using flowmatch::Matrix;
using flowmatch::Vector;

// u(x, t) = W_out tanh(h_K) + b_out, where h_0 = W_in [x; t] + b_in and, for k = 1..K blocks,
// h_k = h_{k-1} + W_k tanh(h_{k-1}) + b_k: a residual MLP of K blocks of width `width`.
// Parameters and gradients are flat vectors (what an optimizer sees), layer after layer: each
// layer's weight row-major (out x in, PyTorch's layout), then its bias.
template <flowmatch::Real S>
class ResidualField {
 public:
  using Scalar = S;
  static constexpr std::string_view state_scope = "model";  // its default name in a checkpoint

  struct Workspace {
    Matrix<S> in, out, dh, tmp;    // [x; t], the output, backward's deltas
    std::vector<Matrix<S>> h, a;   // h_k and tanh(h_k), k = 0..K
  };

  ResidualField(Index dim, Index width, Index blocks, std::uint64_t seed = 0)
      : dim_(dim), width_(width), blocks_(blocks) {
    if (dim < 1 || width < 1 || blocks < 0)
      throw flowmatch::InvalidArgument("user::ResidualField: needs dim >= 1, width >= 1, blocks >= 0");
    Index n = 0;
    for (Index l = 0; l < layers(); ++l) n += fan_out(l) * (fan_in(l) + 1);
    parameters_ = Vector<S>::Zero(n);
    gradients_ = Vector<S>::Zero(n);
    flowmatch::Rng rng(seed);  // PyTorch's nn.Linear initialisation: uniform in +-1/sqrt(fan_in)
    for (Index l = 0, k = 0; l < layers(); ++l)
      for (Index i = 0; i < fan_out(l) * (fan_in(l) + 1); ++i, ++k)
        parameters_(k) = static_cast<S>((2.0 * rng.uniform() - 1.0) / std::sqrt(static_cast<double>(fan_in(l))));
  }

  Index dim() const { return dim_; }
  Vector<S>& parameters() { return parameters_; }
  Vector<S>& gradients() { return gradients_; }

  template <class DX, flowmatch::TimeArgument T, class DO>
  void forward(const Eigen::MatrixBase<DX>& x, const T& t, const Eigen::MatrixBase<DO>& out, Workspace& ws) const {
    const_cast<Eigen::MatrixBase<DO>&>(out) = forward_train(x, t, ws);  // Eigen's idiom for output arguments
  }

  template <class DX, flowmatch::TimeArgument T>
  const Matrix<S>& forward_train(const Eigen::MatrixBase<DX>& x, const T& t, Workspace& ws) const {
    const Index n = x.cols();
    if (x.rows() != dim_ || n < 1) throw flowmatch::DimensionMismatch("user::ResidualField: x must be dim x n, n >= 1");
    ws.h.resize(static_cast<std::size_t>(blocks_ + 1));
    ws.a.resize(ws.h.size());
    ws.in.resize(dim_ + 1, n);
    ws.in.topRows(dim_) = x.template cast<S>();
    for (Index j = 0; j < n; ++j) {
      const double tj = time_at(t, j);
      if (!(tj >= 0.0 && tj <= 1.0)) throw flowmatch::InvalidArgument("user::ResidualField: a time is outside [0, 1]");
      ws.in(dim_, j) = static_cast<S>(tj);
    }
    ws.h[0].noalias() = weight(0) * ws.in;
    ws.h[0].colwise() += bias(0);
    for (Index k = 0; k <= blocks_; ++k) {
      const auto ku = static_cast<std::size_t>(k);
      ws.a[ku] = ws.h[ku].array().tanh().matrix();
      if (k == blocks_) break;
      ws.h[ku + 1] = ws.h[ku] + bias(k + 1).replicate(1, n);
      ws.h[ku + 1].noalias() += weight(k + 1) * ws.a[ku];
    }
    ws.out.noalias() = weight(layers() - 1) * ws.a.back();
    ws.out.colwise() += bias(layers() - 1);
    return ws.out;
  }

  // dLoss/dout (dim x n) for the last forward_train with `ws` -> dLoss/dparameters in gradients().
  template <class DG>
  void backward(const Eigen::MatrixBase<DG>& g, Workspace& ws) {
    const Index last = layers() - 1;
    weight_grad(last).noalias() = g * ws.a.back().transpose();
    bias_grad(last) = g.rowwise().sum();
    ws.dh.noalias() = weight(last).transpose() * g;
    ws.dh.array() *= S(1) - ws.a.back().array().square();
    for (Index k = blocks_; k >= 1; --k) {  // block k: h_k = h_{k-1} + W_k tanh(h_{k-1}) + b_k
      const Matrix<S>& a = ws.a[static_cast<std::size_t>(k - 1)];
      weight_grad(k).noalias() = ws.dh * a.transpose();
      bias_grad(k) = ws.dh.rowwise().sum();
      ws.tmp.noalias() = weight(k).transpose() * ws.dh;
      ws.dh.array() += ws.tmp.array() * (S(1) - a.array().square());
    }
    weight_grad(0).noalias() = ws.dh * ws.in.transpose();
    bias_grad(0) = ws.dh.rowwise().sum();
  }

  // The state protocol: a type tag and the settings as attributes, one tensor per weight and bias.
  void save_state(flowmatch::StateWriter& w) const {
    w.text("type", "residual_field");
    w.text("scalar", std::is_same_v<S, float> ? "float" : "double");
    w.integer("dim", dim_);
    w.integer("width", width_);
    w.integer("blocks", blocks_);
    for (Index l = 0; l < layers(); ++l) {
      w.matrix(layer_name(l) + ".weight", weight(l));
      w.vector(layer_name(l) + ".bias", bias(l));
    }
  }

  // Checks everything before it changes anything; every failure is a CheckpointMismatchError.
  void load_state(const flowmatch::StateReader& r) {
    r.expect_text("type", "residual_field", "model type");
    r.expect_text("scalar", std::is_same_v<S, float> ? "float" : "double", "scalar type");
    for (auto [key, value] : {std::pair{"dim", dim_}, std::pair{"width", width_}, std::pair{"blocks", blocks_}})
      if (r.integer(key) != value)
        r.fail("holds " + std::string(key) + " = " + std::to_string(r.integer(key)) + ", the model passed has " +
               std::to_string(value));
    Vector<S> p(parameters_.size());
    for (Index l = 0; l < layers(); ++l) {  // the file's C order is the flat layout
      r.read(layer_name(l) + ".weight", {fan_out(l), fan_in(l)}, p.data() + offset(l));
      r.read(layer_name(l) + ".bias", {fan_out(l)}, p.data() + offset(l) + fan_out(l) * fan_in(l));
    }
    if (!p.allFinite()) r.fail("holds a non-finite parameter");
    parameters_ = p;
  }

 private:
  template <class T>
  static double time_at(const T& t, Index j) {
    if constexpr (std::is_arithmetic_v<T>) {
      (void)j;
      return static_cast<double>(t);
    } else {
      return static_cast<double>(t(j));
    }
  }
  Index layers() const { return blocks_ + 2; }
  Index fan_in(Index l) const { return l == 0 ? dim_ + 1 : width_; }
  Index fan_out(Index l) const { return l == layers() - 1 ? dim_ : width_; }
  Index offset(Index l) const {
    Index o = 0;
    for (Index k = 0; k < l; ++k) o += fan_out(k) * (fan_in(k) + 1);
    return o;
  }
  std::string layer_name(Index l) const {
    return l == 0 ? "in" : l == layers() - 1 ? "out" : "blocks." + std::to_string(l - 1);
  }
  using WeightMap = Eigen::Map<flowmatch::RowMajorMatrix<S>>;
  using ConstWeightMap = Eigen::Map<const flowmatch::RowMajorMatrix<S>>;
  ConstWeightMap weight(Index l) const { return {parameters_.data() + offset(l), fan_out(l), fan_in(l)}; }
  Eigen::Map<const Vector<S>> bias(Index l) const {
    return {parameters_.data() + offset(l) + fan_out(l) * fan_in(l), fan_out(l)};
  }
  WeightMap weight_grad(Index l) { return {gradients_.data() + offset(l), fan_out(l), fan_in(l)}; }
  Eigen::Map<Vector<S>> bias_grad(Index l) {
    return {gradients_.data() + offset(l) + fan_out(l) * fan_in(l), fan_out(l)};
  }

  Index dim_, width_, blocks_;
  Vector<S> parameters_, gradients_;
};

static_assert(flowmatch::TrainableVectorField<ResidualField<float>>);
static_assert(flowmatch::Stateful<ResidualField<float>>);

}  // namespace user
// [end]

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

Gaussian toy_data() { return Gaussian(Vector<double>{{3.0, -2.0}}, Vector<double>{{0.5, 0.5}}); }

template <class M>
Matrix<double> evaluate(const M& model, const Matrix<double>& x, const RowVector<double>& t) {
  typename M::Workspace ws;
  Matrix<double> out(model.dim(), x.cols());
  model.forward(x, t, out, ws);
  return out;
}

// A copy of `dict` with the attribute or tensor `key` replaced (by `attribute`, or by `tensor`).
StateDict replaced(const StateDict& dict, const std::string& key, const std::string* attribute, const Tensor* tensor) {
  StateDict out;
  for (const auto& [k, v] : dict.attributes()) out.put_attribute(k, k == key && attribute ? *attribute : v);
  for (const auto& [k, v] : dict.tensors()) out.put_tensor(k, k == key && tensor ? *tensor : v);
  return out;
}

}  // namespace

TEST_CASE("extend/model: ResidualField backward matches finite differences (double)", "[extend][model][gradient]") {
  const Index dim = 3, n = 4;
  user::ResidualField<double> model(dim, 5, 2, 7);
  Rng rng(13);
  Matrix<double> x(dim, n), c(dim, n);
  RowVector<double> t(n);
  rng.fill_normal(x);
  rng.fill_normal(c);
  rng.fill_uniform(t);

  user::ResidualField<double>::Workspace ws;
  model.forward_train(x, t, ws);
  model.gradients().setConstant(std::numeric_limits<double>::quiet_NaN());  // backward must write all
  model.backward(c, ws);
  const Vector<double> analytic = model.gradients();

  // L = sum(C .* u(x, t)); five-point differences, h = 1e-3 (errors about 1e-13 here).
  const auto loss = [&] { return (evaluate(model, x, t).array() * c.array()).sum(); };
  double worst = 0.0;
  Index above_floor = 0;
  for (Index i = 0; i < model.parameters().size(); ++i) {
    const double numeric = test::five_point_difference(loss, model.parameters()(i), 1e-3);
    worst = test::worse(worst, test::relative_error(analytic(i), numeric, 1e-4));
    if (std::max(std::abs(analytic(i)), std::abs(numeric)) > 1e-4) ++above_floor;
  }
  INFO("worst relative error " << worst << " over " << model.parameters().size() << " parameters");
  CHECK(model.parameters().size() == 5 * 4 + 5 + 2 * (5 * 5 + 5) + 3 * 5 + 3);
  CHECK(worst < 1e-6);
  CHECK(above_floor * 3 >= model.parameters().size());  // the check is not vacuous

  // One time for the whole batch is the same as that time in every column.
  const RowVector<double> same = RowVector<double>::Constant(n, 0.25);
  CHECK(evaluate(model, x, same) == [&] {
    Matrix<double> out(dim, n);
    model.forward(x, 0.25, out, ws);
    return out;
  }());
  CHECK_THROWS_AS(model.forward_train(Matrix<double>(2, n), t, ws), DimensionMismatch);
  CHECK_THROWS_AS(model.forward_train(x, 1.5, ws), InvalidArgument);
}

TEST_CASE("extend/model: CFMTrainer trains ResidualField and EulerSimulator samples it", "[extend][model]") {
  GaussianConditionalPath path(toy_data(), LinearAlpha{}, LinearBeta{});
  user::ResidualField<float> model(2, 32, 2, 1);
  Adam<float> adam(1e-2);
  CFMTrainer trainer(path, model, adam, 2);
  const std::vector<double> losses = trainer.train(400, 128);
  double first = 0.0, last = 0.0;
  for (std::size_t k = 0; k < 20; ++k) {
    first += losses[k] / 20.0;
    last += losses[losses.size() - 1 - k] / 20.0;
  }
  for (double l : losses) REQUIRE(std::isfinite(l));
  INFO("mean loss of the first 20 steps " << first << ", of the last 20 " << last);
  CHECK(last < 0.5 * first);

  Rng rng(3);
  const Matrix<float> x0 = Gaussian::standard(2).sample<float>(500, rng);
  LearnedVectorFieldODE ode(model);
  EulerSimulator simulator(ode);
  const Matrix<float> x1 = simulator.simulate(x0, 50);
  const Vector<double> mean = x1.cast<double>().rowwise().mean();
  INFO("sample mean " << mean.transpose());
  CHECK(std::abs(mean(0) - 3.0) < 0.3);
  CHECK(std::abs(mean(1) + 2.0) < 0.3);
}

TEST_CASE("extend/model: ResidualField round-trips through save_state_parts / load_state_parts",
          "[extend][model][state]") {
  user::ResidualField<double> model(2, 6, 2, 1), copy(2, 6, 2, 99);  // other parameters
  REQUIRE(copy.parameters() != model.parameters());
  StateDict dict;
  save_state_parts(dict, model);           // under its state_scope: "model.type", "model.in.weight", ...
  load_state_parts(dict, "memory", copy);  // "memory" names the source in error messages
  CHECK(copy.parameters() == model.parameters());
  Matrix<double> x(2, 5);
  Rng rng(4);
  rng.fill_normal(x);
  const RowVector<double> t = RowVector<double>::LinSpaced(5, 0.0, 1.0);
  CHECK(evaluate(copy, x, t) == evaluate(model, x, t));

  REQUIRE(dict.find_attribute("model.type") != nullptr);
  CHECK(*dict.find_attribute("model.type") == "residual_field");
  CHECK(*dict.find_attribute("model.width") == "6");
  REQUIRE(dict.find_tensor("model.in.weight") != nullptr);
  CHECK(dict.find_tensor("model.in.weight")->shape == std::vector<std::int64_t>{6, 3});
  CHECK(dict.find_tensor("model.blocks.1.weight")->shape == std::vector<std::int64_t>{6, 6});
  CHECK(dict.find_tensor("model.out.bias")->dtype == DType::F64);
  CHECK(dict.tensors().size() == 8);     // in, 2 blocks, out: a weight and a bias each
  CHECK(dict.attributes().size() == 5);  // type, scalar, dim, width, blocks

  // Under another name, as one part among several would be.
  StateDict named;
  save_state_parts(named, state_part("ema_model", model));
  user::ResidualField<double> copy2(2, 6, 2, 5);
  load_state_parts(named, "memory", state_part("ema_model", copy2));
  CHECK(copy2.parameters() == model.parameters());
}

TEST_CASE("extend/model: ResidualField refuses state that does not fit, and is left unchanged",
          "[extend][model][state]") {
  user::ResidualField<double> model(2, 6, 2, 1);
  StateDict dict;
  save_state_parts(dict, model);

  user::ResidualField<double> wider(2, 8, 2, 3);
  const Vector<double> before = wider.parameters();
  CHECK_THROWS_WITH(load_state_parts(dict, "m.safetensors", wider),
                    Catch::Contains("width = 6, the model passed has 8") && Catch::Contains("m.safetensors"));
  CHECK_THROWS_AS(load_state_parts(dict, "m.safetensors", wider), CheckpointMismatchError);
  CHECK(wider.parameters() == before);

  user::ResidualField<double> deeper(2, 6, 3, 3);
  CHECK_THROWS_AS(load_state_parts(dict, "m", deeper), CheckpointMismatchError);
  user::ResidualField<float> in_float(2, 6, 2, 3);
  CHECK_THROWS_WITH(load_state_parts(dict, "m", in_float), Catch::Contains("scalar type 'double'"));

  user::ResidualField<double> target(2, 6, 2, 3);
  const Vector<double> kept = target.parameters();
  const std::string other_type = "mlp_vector_field";
  CHECK_THROWS_WITH(load_state_parts(replaced(dict, "model.type", &other_type, nullptr), "m", target),
                    Catch::Contains("model type 'mlp_vector_field'"));
  Tensor nan_bias = *dict.find_tensor("model.out.bias");
  for (std::size_t b = 0; b < 8; ++b) nan_bias.bytes[b] = 0xff;  // first element: a NaN
  CHECK_THROWS_WITH(load_state_parts(replaced(dict, "model.out.bias", nullptr, &nan_bias), "m", target),
                    Catch::Contains("non-finite"));
  CHECK(target.parameters() == kept);
  // A left-over tensor (state this model does not have) is refused by load_state_parts too.
  StateDict extra = replaced(dict, "", nullptr, nullptr);
  extra.put_tensor("model.blocks.2.weight", *dict.find_tensor("model.blocks.1.weight"));
  CHECK_THROWS_AS(load_state_parts(extra, "m", target), CheckpointMismatchError);
  CHECK(target.parameters() == kept);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
