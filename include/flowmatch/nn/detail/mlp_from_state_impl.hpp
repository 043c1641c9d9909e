#pragma once
/// \file
/// MLPVectorField::from_state: a network built from its saved state alone (the architecture from
/// the attributes, every tensor's shape checked before anything is allocated, then load_state and
/// a check that nothing under the reader's scope was left unread). A member definition of
/// MLPVectorField, kept out of nn/mlp_vector_field.hpp (which includes this header) for its length.

#include <cstdint>
#include <string>
#include <vector>

#include "flowmatch/core/state.hpp"
#include "flowmatch/nn/detail/layer_state.hpp"
#include "flowmatch/nn/mlp_vector_field.hpp"

namespace flowmatch {

template <Real S, Activation Act>
MLPVectorField<S, Act> MLPVectorField<S, Act>::from_state(const StateReader& r) {
  r.expect_text("type", "mlp_vector_field", "model type");
  r.expect_text("time", "last", "time input position");
  const std::vector<long long> w = r.integers("widths");
  constexpr long long kMaxWidth = 1LL << 31;
  if (w.size() < 2)
    r.fail("holds layer widths " + r.text("widths") + " at '" + r.prefix() + "widths': a network needs at least two");
  for (std::size_t i = 0; i < w.size(); ++i)
    if (w[i] < (i == 0 ? 2 : 1) || w[i] >= kMaxWidth)
      r.fail("holds layer width " + std::to_string(w[i]) + " at '" + r.prefix() + "widths'[" + std::to_string(i) +
             "], outside [" + (i == 0 ? "2" : "1") + ", 2^31)" + (i == 0 ? " (the inputs and the time row)" : ""));
  for (std::size_t l = 0; l + 1 < w.size(); ++l)  // every shape before anything is allocated
    for (const char* what : {"weight", "bias"}) {
      std::vector<std::int64_t> expected{static_cast<std::int64_t>(w[l + 1])};
      if (what[0] == 'w') expected.push_back(static_cast<std::int64_t>(w[l]));
      const std::vector<std::int64_t> shape = r.shape(detail::layer_tensor_name(l, what));
      if (shape != expected)
        r.fail("tensor '" + r.prefix() + detail::layer_tensor_name(l, what) + "' has shape " + shape_string(shape) +
               ", layer widths " + detail::widths_string(w) + " need " + shape_string(expected));
    }
  MLPVectorField<S, Act> model(static_cast<Index>(w.front() - 1), static_cast<Index>(w.back()),
                       std::vector<Index>(w.begin() + 1, w.end() - 1), std::uint64_t{0});
  model.load_state(r);
  r.require_all_read();
  return model;
}

}  // namespace flowmatch
