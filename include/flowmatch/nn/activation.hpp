#pragma once
/// \file
/// Activation functions as policies for MLPVectorField, with the derivative expressed through what
/// the forward pass saved, so the backward pass never recomputes an exponential.
///
/// An activation policy `A` provides, for S = float and double, on contiguous columns of n values:
/// - `A::name()` -> a short name ("silu");
/// - `A::uses_aux` -> whether forward saves a second array (SiLU saves sigmoid(z));
/// - `A::forward(z, a, aux, n)`: a = f(z) (a may alias z), and aux filled when uses_aux;
/// - `A::backward(a, aux, g, n)`: g *= f'(z), from the saved a (and aux);
/// - `A::value(z)` / `A::derivative(z)`: scalar reference versions, for tests.
/// `ReLU` below is the simplest complete example to copy.

#include <cmath>
#include <concepts>
#include <string_view>

#include "flowmatch/core/types.hpp"

namespace flowmatch {

namespace detail {
template <class S>
using ConstArrayMap = Eigen::Map<const Eigen::Array<S, Eigen::Dynamic, 1>, Eigen::Unaligned>;
template <class S>
using MutArrayMap = Eigen::Map<Eigen::Array<S, Eigen::Dynamic, 1>, Eigen::Unaligned>;
}  // namespace detail

/// SiLU (swish): f(z) = z sigmoid(z); f'(z) = s + a (1 - s) with s = sigmoid(z), a = f(z).
struct SiLU {
  static constexpr bool uses_aux = true;
  static constexpr std::string_view name() { return "silu"; }
  template <Real S>
  static void forward(const S* z, S* a, S* aux, Index n) {
    detail::ConstArrayMap<S> zz(z, n);
    detail::MutArrayMap<S> ss(aux, n), aa(a, n);
    ss = (S(1) + (-zz).exp()).inverse();
    aa = zz * ss;
  }
  template <Real S>
  static void backward(const S* a, const S* aux, S* g, Index n) {
    detail::ConstArrayMap<S> aa(a, n), ss(aux, n);
    detail::MutArrayMap<S> gg(g, n);
    gg *= ss + aa * (S(1) - ss);
  }
  template <Real S>
  static S value(S z) { return z / (S(1) + std::exp(-z)); }
  template <Real S>
  static S derivative(S z) {
    const S s = S(1) / (S(1) + std::exp(-z));
    return s * (S(1) + z * (S(1) - s));
  }
};

/// ReLU: f(z) = max(z, 0); f'(z) = [z > 0] = [a > 0]. Needs no auxiliary array.
struct ReLU {
  static constexpr bool uses_aux = false;
  static constexpr std::string_view name() { return "relu"; }
  template <Real S>
  static void forward(const S* z, S* a, S* /*aux*/, Index n) {
    detail::MutArrayMap<S>(a, n) = detail::ConstArrayMap<S>(z, n).max(S(0));
  }
  template <Real S>
  static void backward(const S* a, const S* /*aux*/, S* g, Index n) {
    detail::ConstArrayMap<S> aa(a, n);
    detail::MutArrayMap<S> gg(g, n);
    gg = (aa > S(0)).select(gg, S(0));
  }
  template <Real S>
  static S value(S z) { return z > S(0) ? z : S(0); }
  template <Real S>
  static S derivative(S z) { return z > S(0) ? S(1) : S(0); }
};

/// tanh: f'(z) = 1 - a^2.
struct Tanh {
  static constexpr bool uses_aux = false;
  static constexpr std::string_view name() { return "tanh"; }
  template <Real S>
  static void forward(const S* z, S* a, S* /*aux*/, Index n) {
    detail::MutArrayMap<S>(a, n) = detail::ConstArrayMap<S>(z, n).tanh();
  }
  template <Real S>
  static void backward(const S* a, const S* /*aux*/, S* g, Index n) {
    detail::ConstArrayMap<S> aa(a, n);
    detail::MutArrayMap<S> gg(g, n);
    gg *= S(1) - aa.square();
  }
  template <Real S>
  static S value(S z) { return std::tanh(z); }
  template <Real S>
  static S derivative(S z) {
    const S t = std::tanh(z);
    return S(1) - t * t;
  }
};

/// The activation policy concept (see the file comment for its valid expressions).
template <class A>
concept Activation = requires(const float* zf, float* af, const double* zd, double* ad, Index n) {
  { A::uses_aux } -> std::convertible_to<bool>;
  { A::name() } -> std::convertible_to<std::string_view>;
  A::template forward<float>(zf, af, af, n);
  A::template forward<double>(zd, ad, ad, n);
  A::template backward<float>(zf, zf, af, n);
  A::template backward<double>(zd, zd, ad, n);
  { A::template value<double>(0.0) } -> std::convertible_to<double>;
  { A::template derivative<double>(0.0) } -> std::convertible_to<double>;
};

}  // namespace flowmatch
