// MLPVectorField's state protocol (core/state.hpp): the fixed names and layouts (PyTorch's
// nn.Sequential), bit-exact round trips in float and double, every architecture mismatch refused
// before the parameters change, from_state rebuilding an identical network from the state alone,
// and visit_mlp_from_state picking the activation by its saved name, for every built-in activation.

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <flowmatch/core/random.hpp>
#include <flowmatch/core/state.hpp>
#include <flowmatch/nn/activation.hpp>
#include <flowmatch/nn/builtin_activations.hpp>
#include <flowmatch/nn/mlp_from_state.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>

#include "support/state_edit.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;
using flowmatch::test::same_state;
using flowmatch::test::state_of;
using flowmatch::test::with_attribute;
using flowmatch::test::with_element;
using flowmatch::test::with_tensor;
using flowmatch::test::without;

static_assert(Stateful<MLPVectorField<float>> && Stateful<MLPVectorField<double, Tanh>>);
static_assert(MLPVectorField<float, ReLU>::state_scope == "model");

namespace {

/// Loading `d` into `model` throws CheckpointMismatchError holding every needle and leaves the
/// parameters as they were, through load_state_parts and through load_state alone (when `direct`).
template <class M>
void check_refused(M& model, const StateDict& d, std::initializer_list<std::string_view> needles, bool direct = true) {
  const Vector<typename M::Scalar> before = model.parameters();
  try {
    load_state_parts(d, "bad.safetensors", model);
    FAIL("load_state_parts did not throw");
  } catch (const CheckpointMismatchError& e) {
    const std::string what = e.what();
    CHECK_THAT(what, Catch::Contains("bad.safetensors"));
    for (std::string_view needle : needles) CHECK_THAT(what, Catch::Contains(std::string(needle)));
  }
  CHECK(model.parameters() == before);
  if (direct) {
    CHECK_THROWS_AS(model.load_state(StateReader(d, "mem", "model.")), CheckpointMismatchError);
    CHECK(model.parameters() == before);
  }
}

/// MLPVectorField<S, Act>::from_state on `d` throws CheckpointMismatchError holding every needle.
template <class M>
void check_from_state_refused(const StateDict& d, std::initializer_list<std::string_view> needles) {
  try {
    (void)M::from_state(StateReader(d, "bad.safetensors", "model."));
    FAIL("from_state did not throw");
  } catch (const CheckpointMismatchError& e) {
    const std::string what = e.what();
    for (std::string_view needle : needles) CHECK_THAT(what, Catch::Contains(std::string(needle)));
  }
}

template <class M>
Matrix<typename M::Scalar> sample_output(const M& model) {
  Matrix<typename M::Scalar> x(model.input_dim(), 37);
  Rng(9).fill_normal(x);
  Vector<typename M::Scalar> t(37);
  Rng(10).fill_uniform(t);
  return model(x, t);
}

}  // namespace

TEST_CASE("MLP state: the fixed names, shapes and PyTorch's weight layout", "[nn][state]") {
  MLPVectorField<float> model(2, {16, 8}, 3);  // widths 3-16-8-2
  const StateDict d = state_of(model);
  CHECK(*d.find_attribute("model.type") == "mlp_vector_field");
  CHECK(*d.find_attribute("model.scalar") == "float");
  CHECK(*d.find_attribute("model.activation") == "silu");
  CHECK(*d.find_attribute("model.widths") == "[3,16,8,2]");
  CHECK(*d.find_attribute("model.time") == "last");
  CHECK(d.attributes().size() == 5);
  CHECK(d.tensors().size() == 6);
  const std::vector<std::pair<std::string, std::vector<std::int64_t>>> expected{
      {"model.0.weight", {16, 3}}, {"model.0.bias", {16}}, {"model.2.weight", {8, 16}},
      {"model.2.bias", {8}},       {"model.4.weight", {2, 8}}, {"model.4.bias", {2}}};
  for (const auto& [name, shape] : expected) {
    INFO(name);
    REQUIRE(d.find_tensor(name) != nullptr);
    CHECK(d.find_tensor(name)->shape == shape);
    CHECK(d.find_tensor(name)->dtype == DType::F32);
  }
  // Row-major [out, in]: element (i, k) of layer 1's weight at i * 16 + k.
  const Tensor& w1 = *d.find_tensor("model.2.weight");
  float v = 0;
  std::memcpy(&v, w1.bytes.data() + (5 * 16 + 11) * sizeof(float), sizeof(float));
  CHECK(v == model.weight(1)(5, 11));
  std::memcpy(&v, d.find_tensor("model.4.bias")->bytes.data() + sizeof(float), sizeof(float));
  CHECK(v == model.bias(2)(1));

  const StateDict dd = state_of(MLPVectorField<double, Tanh>(4, 1, {5}, 1));
  CHECK(*dd.find_attribute("model.scalar") == "double");
  CHECK(*dd.find_attribute("model.activation") == "tanh");
  CHECK(*dd.find_attribute("model.widths") == "[5,5,1]");
  CHECK(dd.find_tensor("model.2.weight")->dtype == DType::F64);
  CHECK(dd.find_tensor("model.2.weight")->shape == std::vector<std::int64_t>{1, 5});
}

TEMPLATE_TEST_CASE("MLP state: round-trips bit for bit, and from_state rebuilds an identical network", "[nn][state]",
                   float, double) {
  using S = TestType;
  MLPVectorField<S> src(2, {32, 16}, 5), dst(2, {32, 16}, 6);
  REQUIRE(src.parameters() != dst.parameters());
  const StateDict d = state_of(src);
  load_state_parts(d, "mem", dst);
  CHECK(dst.parameters() == src.parameters());
  CHECK(same_state(state_of(dst), d));
  CHECK(sample_output(dst) == sample_output(src));

  const MLPVectorField<S> rebuilt = MLPVectorField<S>::from_state(StateReader(d, "mem", "model."));
  CHECK(rebuilt.layer_widths() == src.layer_widths());
  CHECK(rebuilt.input_dim() == 2);
  CHECK(rebuilt.dim() == 2);
  CHECK(rebuilt.hidden_widths() == std::vector<Index>{32, 16});
  CHECK(rebuilt.parameters() == src.parameters());
  CHECK(sample_output(rebuilt) == sample_output(src));

  // Separate input and output dimensions (a trunk on [x; features; t]), and ReLU.
  MLPVectorField<S, ReLU> trunk(5, 3, {7}, 8);
  const auto trunk2 = MLPVectorField<S, ReLU>::from_state(StateReader(state_of(trunk), "mem", "model."));
  CHECK(trunk2.input_dim() == 5);
  CHECK(trunk2.dim() == 3);
  CHECK(sample_output(trunk2) == sample_output(trunk));
}

TEST_CASE("MLP state: visit_mlp_from_state picks the activation by its saved name", "[nn][state]") {
  MLPVectorField<float, Tanh> tanh_model(2, {24}, 4);
  MLPVectorField<float, ReLU> relu_model(3, {8, 8}, 5);
  for (const StateDict& d : {state_of(tanh_model), state_of(relu_model)}) {
    const std::string name = visit_mlp_from_state<float>(StateReader(d, "mem", "model."), [&](auto model) {
      using Act = typename decltype(model)::activation_type;
      if constexpr (std::is_same_v<Act, Tanh>) CHECK(sample_output(model) == sample_output(tanh_model));
      if constexpr (std::is_same_v<Act, ReLU>) CHECK(sample_output(model) == sample_output(relu_model));
      return std::string(Act::name());
    });
    CHECK(name == *d.find_attribute("model.activation"));
  }
  CHECK(visit_mlp_activation("relu", [](auto act) { return std::string(decltype(act)::name()); }) == "relu");
  CHECK_THROWS_AS(visit_mlp_activation("mish", [](auto) { return 0; }), CheckpointMismatchError);
  CHECK_THROWS_WITH(visit_mlp_activation("mish", [](auto) { return 0; }, "m.safetensors"),
                    Catch::Contains("'mish'") && Catch::Contains("silu, relu, tanh") && Catch::Contains("m.safetensors"));
  const StateDict mish = with_attribute(state_of(tanh_model), "model.activation", "mish");
  CHECK_THROWS_WITH(visit_mlp_from_state<float>(StateReader(mish, "g.safetensors", "model."), [](auto) { return 0; }),
                    Catch::Contains("activation 'mish'") && Catch::Contains("silu, relu, tanh"));
  // Names are matched exactly: no case folding, no PyTorch class names.
  CHECK_THROWS_AS(visit_mlp_activation("GELU", [](auto) { return 0; }), CheckpointMismatchError);
  CHECK_THROWS_AS(visit_mlp_activation("gelu ", [](auto) { return 0; }), CheckpointMismatchError);
  CHECK_THROWS_AS(visit_mlp_activation("", [](auto) { return 0; }), CheckpointMismatchError);
  // The scalar type is checked by from_state.
  const StateDict dbl = state_of(MLPVectorField<double>(2, {4}, 1));
  CHECK_THROWS_WITH(visit_mlp_from_state<float>(StateReader(dbl, "mem", "model."), [](auto) { return 0; }),
                    Catch::Contains("scalar type 'double'"));
}

TEST_CASE("MLP state: kBuiltinActivationNames lists every built-in, in BuiltinActivations' order", "[nn][state]") {
  CHECK(std::string(kBuiltinActivationNames) ==
        "silu, relu, tanh, gelu, gelu_tanh, elu, selu, leaky_relu, softplus");
  CHECK(BuiltinActivations::size == 9);
  // The unknown-name error lists all of them.
  try {
    visit_mlp_activation("swish", [](auto) { return 0; }, "x.safetensors");
    FAIL("no exception");
  } catch (const CheckpointMismatchError& e) {
    const std::string what = e.what();
    CHECK_THAT(what, Catch::Contains("'swish'") && Catch::Contains("x.safetensors") &&
                         Catch::Contains("(known: " + std::string(kBuiltinActivationNames) + ")"));
    for (const char* name : {"silu", "relu", "tanh", "gelu", "gelu_tanh", "elu", "selu", "leaky_relu", "softplus"})
      CHECK_THAT(what, Catch::Contains(name));
  }
}

TEMPLATE_LIST_TEST_CASE("MLP state: every built-in activation round-trips and is found by its name", "[nn][state]",
                        BuiltinActivations) {
  using Act = TestType;
  INFO("activation " << Act::name());
  // visit_mlp_activation finds the policy by its name.
  CHECK(visit_mlp_activation(Act::name(), [](auto act) { return std::is_same_v<decltype(act), Act>; }));
  const auto round_trip = [](auto scalar_tag) {
    using S = decltype(scalar_tag);
    MLPVectorField<S, Act> src(3, 2, {12, 7}, 41), dst(3, 2, {12, 7}, 42);
    const StateDict d = state_of(src);
    CHECK(*d.find_attribute("model.activation") == std::string(Act::name()));
    load_state_parts(d, "mem", dst);
    CHECK(dst.parameters() == src.parameters());
    CHECK(same_state(state_of(dst), d));
    CHECK(sample_output(dst) == sample_output(src));
    // from_state with the policy known, and visit_mlp_from_state with the name read from the state.
    const auto rebuilt = MLPVectorField<S, Act>::from_state(StateReader(d, "mem", "model."));
    CHECK(sample_output(rebuilt) == sample_output(src));
    const std::string visited = visit_mlp_from_state<S>(StateReader(d, "mem", "model."), [&](auto model) {
      using Visited = typename decltype(model)::activation_type;
      CHECK(std::is_same_v<Visited, Act>);
      if constexpr (std::is_same_v<Visited, Act>) CHECK(sample_output(model) == sample_output(src));
      return std::string(Visited::name());
    });
    CHECK(visited == std::string(Act::name()));
    // A model of another activation refuses this state, naming both.
    if constexpr (!std::is_same_v<Act, SiLU>) {
      MLPVectorField<S, SiLU> other(3, 2, {12, 7}, 43);
      check_refused(other, d, {std::string("activation '") + std::string(Act::name()) + "'", "'silu'"});
    }
  };
  round_trip(float{});
  round_trip(double{});
}

TEST_CASE("MLP state: every mismatch is refused with its reason and leaves the parameters unchanged", "[nn][state]") {
  MLPVectorField<float> model(2, {64}, 1);  // widths 3-64-2
  const StateDict good = state_of(MLPVectorField<float>(2, {64}, 2));
  SECTION("other layer widths") {
    check_refused(model, state_of(MLPVectorField<float>(2, {1024, 16}, 1)),
                  {"layer widths 3-1024-16-2", "the model passed has 3-64-2", "'model.widths'"});
    check_refused(model, state_of(MLPVectorField<float>(3, 2, {64}, 1)), {"4-64-2"});
  }
  SECTION("another activation") {
    check_refused(model, state_of(MLPVectorField<float, ReLU>(2, {64}, 1)), {"activation 'relu'", "'silu'"});
  }
  SECTION("another scalar type") {
    check_refused(model, state_of(MLPVectorField<double>(2, {64}, 1)), {"scalar type 'double'", "'float'"});
  }
  SECTION("another model type or time input") {
    check_refused(model, with_attribute(good, "model.type", "unet"), {"model type 'unet'"});
    check_refused(model, with_attribute(good, "model.time", "first"), {"'first'", "'last'"});
  }
  SECTION("a missing tensor or attribute") {
    check_refused(model, without(good, "model.2.bias"), {"no tensor 'model.2.bias'"});
    check_refused(model, without(good, "model.widths"), {"no attribute 'model.widths'"});
  }
  SECTION("a tensor of the wrong shape or dtype") {
    Tensor t = *good.find_tensor("model.0.weight");
    t.shape = {3, 64};  // transposed
    check_refused(model, with_tensor(good, "model.0.weight", t), {"'model.0.weight' has shape [3, 64]", "[64, 3]"});
    Tensor b = *good.find_tensor("model.2.bias");
    b.dtype = DType::I32;
    check_refused(model, with_tensor(good, "model.2.bias", b), {"'model.2.bias' holds I32"});
  }
  SECTION("a NaN or an infinity in a tensor") {
    check_refused(model, with_element(good, "model.2.weight", 77, std::numeric_limits<float>::quiet_NaN()),
                  {"'model.2.weight' holds a NaN or an infinity"});
    check_refused(model, with_element(good, "model.0.bias", 3, -std::numeric_limits<float>::infinity()),
                  {"'model.0.bias' holds a NaN or an infinity"});
  }
  SECTION("a left-over tensor or attribute (checked by load_state_parts)") {
    Tensor extra = *good.find_tensor("model.2.bias");
    check_refused(model, with_tensor(good, "model.4.bias", extra), {"'model.4.bias'"}, false);
    check_refused(model, with_attribute(good, "model.frequencies", "8"), {"'model.frequencies'"}, false);
  }
}

TEST_CASE("MLP state: from_state validates the architecture before it allocates", "[nn][state]") {
  using M = MLPVectorField<float>;
  const StateDict good = state_of(M(2, {8}, 1));  // 3-8-2
  check_from_state_refused<M>(with_attribute(good, "model.widths", "[3]"), {"widths [3] at", "at least two"});
  check_from_state_refused<M>(with_attribute(good, "model.widths", "[3,0,2]"), {"layer width 0", "widths'[1]"});
  check_from_state_refused<M>(with_attribute(good, "model.widths", "[1,8,2]"), {"layer width 1", "widths'[0]", "[2, 2^31)"});
  check_from_state_refused<M>(with_attribute(good, "model.widths", "[3,2147483648,2]"), {"layer width 2147483648"});
  check_from_state_refused<M>(with_attribute(good, "model.widths", "[3,-8,2]"), {"layer width -8"});
  check_from_state_refused<M>(with_attribute(good, "model.widths", "3-8-2"), {"not a list of integers"});
  // Widths that the tensors do not have: refused by shape before the network is built.
  check_from_state_refused<M>(with_attribute(good, "model.widths", "[3,100000,2]"),
                              {"'model.0.weight' has shape [8, 3]", "[100000, 3]"});
  check_from_state_refused<M>(with_attribute(good, "model.widths", "[3,8,8,2]"),
                              {"'model.2.weight' has shape [2, 8], layer widths 3-8-8-2 need [8, 8]"});
  check_from_state_refused<M>(without(good, "model.2.bias"), {"no tensor 'model.2.bias'"});
  check_from_state_refused<M>(with_attribute(good, "model.time", "first"), {"time input position 'first'"});
  check_from_state_refused<M>(with_attribute(good, "model.activation", "relu"), {"activation 'relu'"});
  check_from_state_refused<MLPVectorField<double>>(good, {"scalar type 'float'", "'double'"});
  check_from_state_refused<M>(with_element(good, "model.0.weight", 0, std::numeric_limits<float>::quiet_NaN()),
                              {"'model.0.weight' holds a NaN"});
  Tensor extra = *good.find_tensor("model.2.bias");
  check_from_state_refused<M>(with_tensor(good, "model.4.bias", extra), {"'model.4.bias'", "does not have"});
  // The good one, for contrast.
  CHECK(M::from_state(StateReader(good, "mem", "model.")).layer_widths() == std::vector<Index>{3, 8, 2});
}

}  // namespace FLOWMATCH_TEST_FILE_ID
