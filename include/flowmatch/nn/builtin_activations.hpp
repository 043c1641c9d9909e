#pragma once
/// \file
/// The built-in activation policies, registered in one place: the type list BuiltinActivations,
/// the names derived from it (kBuiltinActivationNames) and visit_mlp_activation, which picks a
/// policy by the name a saved model records. A new built-in activation is added to the list
/// below and nowhere else: loading (mlp_from_state.hpp), the error for an unknown name and the
/// tests that iterate over the list follow.

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>

#include "flowmatch/core/state_dict.hpp"
#include "flowmatch/nn/activation.hpp"
#include "flowmatch/nn/activation_extra.hpp"

namespace flowmatch {

/// A list of activation policies (a type list: it holds no values). Its parameters are checked by
/// a static_assert rather than constrained, so that it binds to a `template <class...> class`
/// parameter (Catch's TEMPLATE_LIST_TEST_CASE iterates over BuiltinActivations).
template <class... Acts>
struct ActivationList {
  static_assert((Activation<Acts> && ...), "flowmatch::ActivationList: every element must be an Activation policy");
  static constexpr std::size_t size = sizeof...(Acts);
};

/// Every built-in activation policy, in the order their names are listed.
using BuiltinActivations = ActivationList<SiLU, ReLU, Tanh, GELU, GELUTanh, ELU, SELU, LeakyReLU, Softplus>;

namespace detail {

template <class... Acts>
constexpr std::size_t joined_names_size(ActivationList<Acts...>) {
  return (Acts::name().size() + ...) + 2 * (sizeof...(Acts) - 1);
}

/// The names of a list's policies joined by ", ", as characters (no terminating zero).
template <std::size_t N, class... Acts>
constexpr std::array<char, N> join_names(ActivationList<Acts...>) {
  std::array<char, N> out{};
  std::size_t k = 0;
  bool first = true;
  const auto append = [&](std::string_view name) {
    if (!first) {
      out[k++] = ',';
      out[k++] = ' ';
    }
    first = false;
    for (char c : name) out[k++] = c;
  };
  (append(Acts::name()), ...);
  return out;
}

/// Whether the policies of a list have pairwise different names.
template <class... Acts>
constexpr bool distinct_names(ActivationList<Acts...>) {
  const std::array<std::string_view, sizeof...(Acts)> names{Acts::name()...};
  for (std::size_t i = 0; i < names.size(); ++i)
    for (std::size_t j = i + 1; j < names.size(); ++j)
      if (names[i] == names[j]) return false;
  return true;
}

inline constexpr std::size_t kBuiltinActivationNamesSize = joined_names_size(BuiltinActivations{});
inline constexpr std::array<char, kBuiltinActivationNamesSize> kBuiltinActivationNamesChars =
    join_names<kBuiltinActivationNamesSize>(BuiltinActivations{});

static_assert(distinct_names(BuiltinActivations{}), "flowmatch: two built-in activations share a name");

template <class R, class F, class Act, class... Rest>
R visit_activation_named(std::string_view name, F& f, const std::string& source) {
  if (name == Act::name()) return f(Act{});
  if constexpr (sizeof...(Rest) > 0) {
    return visit_activation_named<R, F, Rest...>(name, f, source);
  } else {
    throw CheckpointMismatchError("flowmatch::load_checkpoint: '" + source + "': holds a model with activation '" +
                                  std::string(name) + "', which is not a built-in activation (known: " +
                                  std::string(kBuiltinActivationNamesChars.data(), kBuiltinActivationNamesSize) +
                                  ")");
  }
}

template <class F, class First, class... Rest>
decltype(auto) visit_builtin_activation(ActivationList<First, Rest...>, std::string_view name, F& f,
                                        const std::string& source) {
  using R = std::invoke_result_t<F&, First>;
  static_assert((std::is_same_v<R, std::invoke_result_t<F&, Rest>> && ...),
                "flowmatch::visit_mlp_activation: f must return the same type for every activation");
  return visit_activation_named<R, F, First, Rest...>(name, f, source);
}

}  // namespace detail

/// The names of the built-in activations that visit_mlp_activation knows, comma-separated
/// ("silu, relu, tanh, gelu, ..."), derived from BuiltinActivations.
inline constexpr std::string_view kBuiltinActivationNames(detail::kBuiltinActivationNamesChars.data(),
                                                          detail::kBuiltinActivationNamesSize);

/// Calls `f(Act{})` for the built-in activation policy (one of BuiltinActivations) whose name()
/// is `name` and returns its result (f must return the same type for each). Throws
/// CheckpointMismatchError naming the known activations for any other name; `source` names the
/// file in that message.
template <class F>
decltype(auto) visit_mlp_activation(std::string_view name, F&& f, const std::string& source = "") {
  return detail::visit_builtin_activation(BuiltinActivations{}, name, f, source);
}

}  // namespace flowmatch
