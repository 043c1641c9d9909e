#pragma once
/// \file
/// Rebuilding an MLPVectorField whose activation is known only from its saved state: a program
/// that resumes or samples from a model file need not be told the architecture again.
///
///   StateReader r(dict, "model.safetensors", "model.");
///   visit_mlp_from_state<float>(r, [&](auto model) { sample_with(model); });
///
/// The activation policy is a template parameter of the model, so the program is compiled for
/// each built-in activation (BuiltinActivations in builtin_activations.hpp: SiLU, ReLU, Tanh, GELU,
/// GELUTanh, ELU, SELU, LeakyReLU, Softplus) and the name read from the state picks one. A
/// program with its own activation calls MLPVectorField<S, MyActivation>::from_state directly.

#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "flowmatch/core/state.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/activation.hpp"
#include "flowmatch/nn/builtin_activations.hpp"
#include "flowmatch/nn/mlp_vector_field.hpp"

namespace flowmatch {

// kBuiltinActivationNames and visit_mlp_activation(name, f, source): builtin_activations.hpp.

/// Rebuilds the MLPVectorField<S, Act> saved under `r`'s scope, with Act picked by the
/// "activation" attribute, and calls `f(std::move(model))`; returns f's result (the same type for
/// every activation). Throws CheckpointMismatchError for an unknown activation and whatever
/// MLPVectorField::from_state throws (another scalar type, a bad architecture, a bad tensor).
template <Real S, class F>
decltype(auto) visit_mlp_from_state(const StateReader& r, F&& f) {
  const std::string activation = r.text("activation");
  return visit_mlp_activation(
      activation,
      [&](auto act) -> decltype(auto) {
        return f(MLPVectorField<S, decltype(act)>::from_state(r));
      },
      r.source());
}

}  // namespace flowmatch
