#pragma once
/// \file
/// Rebuilding an MLPVectorField whose activation is known only from its saved state: a program
/// that resumes or samples from a model file need not be told the architecture again.
///
///   StateReader r(dict, "model.safetensors", "model.");
///   visit_mlp_from_state<float>(r, [&](auto model) { sample_with(model); });
///
/// The activation policy is a template parameter of the model, so the program is compiled for
/// each built-in activation (SiLU, ReLU, Tanh) and the name read from the state picks one. A
/// program with its own activation calls MLPVectorField<S, MyActivation>::from_state directly.

#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "flowmatch/core/state.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/activation.hpp"
#include "flowmatch/nn/mlp_vector_field.hpp"

namespace flowmatch {

/// The names of the built-in activations that visit_mlp_activation knows, comma-separated.
inline constexpr std::string_view kBuiltinActivationNames = "silu, relu, tanh";

/// Calls `f(Act{})` for the built-in activation policy whose name() is `name` (SiLU, ReLU, Tanh)
/// and returns its result (f must return the same type for each). Throws CheckpointMismatchError
/// naming the known activations for any other name; `source` names the file in that message.
template <class F>
decltype(auto) visit_mlp_activation(std::string_view name, F&& f, const std::string& source = "") {
  using R = std::invoke_result_t<F&, SiLU>;
  static_assert(std::is_same_v<R, std::invoke_result_t<F&, ReLU>> && std::is_same_v<R, std::invoke_result_t<F&, Tanh>>,
                "flowmatch::visit_mlp_activation: f must return the same type for every activation");
  if (name == SiLU::name()) return f(SiLU{});
  if (name == ReLU::name()) return f(ReLU{});
  if (name == Tanh::name()) return f(Tanh{});
  throw CheckpointMismatchError("flowmatch::load_checkpoint: '" + source + "': holds a model with activation '" +
                                std::string(name) + "', which is not a built-in activation (known: " +
                                std::string(kBuiltinActivationNames) + ")");
}

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
