#pragma once
/// \file
/// The saved state of a stack of affine layers kept in one flat vector (each layer's weight,
/// fan_out x fan_in row-major, then its bias): what MLPVectorField and MLP write and read. The
/// attributes scalar = "float" | "double", activation = Act::name(), widths = [w0, w1, ...] and the
/// tensors "<2l>.weight" [w(l+1), w(l)] and "<2l>.bias" [w(l+1)]: the names and layouts of PyTorch's
/// nn.Sequential(Linear, act, Linear, act, ..., Linear). The caller writes its own type tag.

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "flowmatch/core/state.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch::detail {

template <Real S>
constexpr const char* state_scalar_name() {
  return std::is_same_v<S, float> ? "float" : "double";
}
inline std::string layer_tensor_name(std::size_t l, const char* what) { return std::to_string(2 * l) + "." + what; }
inline std::string widths_string(const std::vector<long long>& w) {
  std::string s;
  for (std::size_t i = 0; i < w.size(); ++i) s.append(i ? "-" : "").append(std::to_string(w[i]));
  return s;
}

/// Writes scalar, activation, widths and every layer's weight and bias from `params`.
template <Real S, class Act>
void save_layer_state(StateWriter& w, const std::vector<Index>& widths, const S* params) {
  w.text("scalar", state_scalar_name<S>());
  w.text("activation", std::string(Act::name()));
  w.integers("widths", std::vector<long long>(widths.begin(), widths.end()));
  std::size_t offset = 0;
  for (std::size_t l = 0; l + 1 < widths.size(); ++l) {
    const auto in = static_cast<std::int64_t>(widths[l]), out = static_cast<std::int64_t>(widths[l + 1]);
    w.tensor(layer_tensor_name(l, "weight"), params + offset, {out, in});
    offset += static_cast<std::size_t>(out * in);
    w.tensor(layer_tensor_name(l, "bias"), params + offset, {out});
    offset += static_cast<std::size_t>(out);
  }
}

/// Checks scalar and activation against S and Act and the saved widths against `widths`, reads
/// every tensor into a new flat vector of `num_parameters` and checks that it is finite; throws
/// CheckpointMismatchError naming the key. Changes nothing: the caller commits the result.
template <Real S, class Act>
Vector<S> load_layer_state(const StateReader& r, const std::vector<Index>& widths, Index num_parameters) {
  r.expect_text("scalar", state_scalar_name<S>(), "scalar type");
  r.expect_text("activation", Act::name(), "activation");
  const std::vector<long long> saved = r.integers("widths");
  const std::vector<long long> have(widths.begin(), widths.end());
  if (saved != have)
    r.fail("holds a model with layer widths " + widths_string(saved) + " at '" + r.prefix() +
           "widths', the model passed has " + widths_string(have));
  Vector<S> p(num_parameters);
  Index offset = 0;
  for (std::size_t l = 0; l + 1 < widths.size(); ++l) {
    const Index in = widths[l], out = widths[l + 1];
    for (const char* what : {"weight", "bias"}) {
      const bool weight = what[0] == 'w';
      const Index count = weight ? out * in : out;
      std::vector<std::int64_t> shape{static_cast<std::int64_t>(out)};
      if (weight) shape.push_back(static_cast<std::int64_t>(in));
      r.read(layer_tensor_name(l, what), shape, p.data() + offset);
      if (!Eigen::Map<const Vector<S>>(p.data() + offset, count).allFinite())
        r.fail("tensor '" + r.prefix() + layer_tensor_name(l, what) + "' holds a NaN or an infinity");
      offset += count;
    }
  }
  return p;
}

}  // namespace flowmatch::detail
