#pragma once
// Training helpers shared by the examples and the flowmatch program: the optional EMA of the
// weights as one checkpoint part.

#include <optional>

#include <flowmatch/core/state.hpp>
#include <flowmatch/optim/ema.hpp>

namespace flowmatch::examples {

/// The EMA of the weights when one is asked for, else nothing: a part of every checkpoint either
/// way (with no EMA it saves nothing, and loading one finds nothing under "ema.").
struct OptionalEma {
  std::optional<ExponentialMovingAverage<float>> average;
  void save_state(StateWriter& w) const {
    if (average) average->save_state(w);
  }
  void load_state(const StateReader& r) {
    if (average) average->load_state(r);
  }
};

}  // namespace flowmatch::examples
