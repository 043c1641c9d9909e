#pragma once
/// \file
/// More activation policies (see activation.hpp for the interface), named and defined as PyTorch
/// defines them, so that an nn.Sequential MLP trained in PyTorch runs unchanged:
/// - GELU ("gelu", torch.nn.GELU()): z Phi(z), Phi the standard normal CDF (the erf form);
/// - GELUTanh ("gelu_tanh", torch.nn.GELU(approximate="tanh")):
///   0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)));
/// - ELU ("elu", alpha = 1), SELU ("selu", PyTorch's alpha and scale), LeakyReLU ("leaky_relu",
///   negative_slope = 0.01), Softplus ("softplus", beta = 1, threshold = 20: z where z > 20).
/// Each is evaluated in a form without cancellation (Phi(z) = erfc(-z / sqrt 2) / 2,
/// 1 + tanh(u) = 2 sigmoid(2u), expm1), so the result is accurate also where PyTorch's literal
/// formula loses digits (GELU at z = -5 in float); every finite input gives a finite result
/// (except SELU beyond float's largest value / 1.0507, which overflows as in PyTorch), with the
/// right limits, never a NaN. backward() uses only what forward() saved.

#include <cmath>
#include <string_view>
#include <type_traits>

#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/activation.hpp"

namespace flowmatch {

namespace detail {
/// Phi(z) = P(N(0, 1) <= z) = erfc(-z / sqrt 2) / 2, accurate in the lower tail too.
template <Real S>
inline S normal_cdf(S z) {
  return S(0.5) * std::erfc(-z * S(0.70710678118654752440084436210485));
}
/// phi(z) = exp(-z^2 / 2) / sqrt(2 pi); 0 (not NaN) where z^2 overflows.
template <Real S>
inline S normal_pdf(S z) {
  return S(0.39894228040143267793994605993438) * std::exp(S(-0.5) * z * z);
}
/// q = Phi(-|z|) = erfc(|z| / sqrt 2) / 2 on m floats, vectorised (Eigen 3.4 has no vectorised
/// erfc): Numerical Recipes' erfcc, erfc(x) = t exp(-x^2 - 1.26551223 + t P(t)), t = 1 / (1 + x/2),
/// a Chebyshev fit with relative error below 1.2e-7 for every x >= 0, so accurate in the tail
/// (no 1 + erf cancellation). Where z^2 overflows t is 0 and q is 0; where only e^{-x^2}
/// underflows, q is at most t times Eigen's smallest exp result (below 1e-38). q may be z.
/// (A template of nothing: its deeply nested expression costs 0.5 s to compile, now only in the
/// files that use GELU; issue 20.)
template <class Void = void>
void normal_lower_tail(const float* z, float* q, Index m) {
  using F = dependent_t<float, Void>;
  ConstArrayMap<F> zz(z, m);
  MutArrayMap<F> qq(q, m);
  const auto x = zz.abs() * 0.70710678118654752f;
  qq = (1.0f + 0.5f * x).inverse();  // t (read below before q is written, coefficient by coefficient)
  qq = 0.5f * qq *
       (-x.square() - 1.26551223f +
        qq * (1.00002368f +
              qq * (0.37409196f +
                    qq * (0.09678418f +
                          qq * (-0.18628806f +
                                qq * (0.27886807f +
                                      qq * (-1.13520398f +
                                            qq * (1.48851587f + qq * (-0.82215223f + qq * 0.17087277f)))))))))
           .exp();
}

/// Block size and alignment of in_padded_blocks' buffers.
inline constexpr Index kPaddedBlock = 256;
/// Evaluates an activation position-independently: z is copied, kPaddedBlock values at a time,
/// into a 64-byte-aligned buffer padded with zeros to a multiple of 16 values, and
/// `f(zb, i, m, mp)` computes on zb[0, mp) (m values of z from index i, mp the padded count) into
/// the caller's aligned buffers and writes the m results out. Eigen then evaluates every value
/// with its packet functions: none falls into a scalar prologue or tail (std::exp, std::log1p,
/// which round differently), so f(z) does not depend on where z sits in the batch or on the
/// batch size (results do not depend on how a batch is split into blocks or threads).
template <Real S, class F>
inline void in_padded_blocks(const S* z, Index n, F&& f) {
  alignas(64) S zb[kPaddedBlock];
  for (Index i = 0; i < n; i += kPaddedBlock) {
    const Index m = n - i < kPaddedBlock ? n - i : kPaddedBlock;
    const Index mp = (m + 15) / 16 * 16;
    for (Index k = 0; k < m; ++k) zb[k] = z[i + k];
    for (Index k = m; k < mp; ++k) zb[k] = S(0);
    f(static_cast<const S*>(zb), i, m, mp);
  }
}
/// e = expm1(min(z, 0)) on mp values (z, e 64-byte aligned, mp a multiple of 16), for ELU and
/// SELU. float: Eigen 3.4's vectorised expm1 goes through a logarithm and costs several
/// exponentials; here, where -0.3125 < z <= 0, the Taylor polynomial of degree 7 (truncation
/// below 3e-9 relative: no cancellation), and elsewhere e^z - 1 (|result| >= 0.26, so the
/// subtraction loses nothing): two cheap packet evaluations and a blend, relative error about
/// 2e-7. double: Eigen's expm1.
template <Real S>
inline void expm1_nonpositive(const S* z, S* e, S* scratch, Index mp) {
  using In = Eigen::Map<const Eigen::Array<S, Eigen::Dynamic, 1>, Eigen::Aligned64>;
  using Out = Eigen::Map<Eigen::Array<S, Eigen::Dynamic, 1>, Eigen::Aligned64>;
  if constexpr (std::is_same_v<S, float>) {
    In zz(z, mp);
    Out ee(e, mp), pp(scratch, mp);
    const auto w = zz.min(0.0f).max(-0.3125f);
    pp = w * (1.0f + w * (1.0f / 2 + w * (1.0f / 6 + w * (1.0f / 24 + w * (1.0f / 120 + w * (1.0f / 720 + w * (1.0f / 5040)))))));
    ee = zz.min(0.0f).exp() - 1.0f;
    for (Index k = 0; k < mp; ++k) e[k] = z[k] > -0.3125f ? scratch[k] : e[k];
  } else {
    (void)scratch;
    Out(e, mp) = In(z, mp).min(S(0)).expm1();
  }
}
template <Real S>
using AlignedArrayMap = Eigen::Map<Eigen::Array<S, Eigen::Dynamic, 1>, Eigen::Aligned64>;
template <Real S>
using ConstAlignedArrayMap = Eigen::Map<const Eigen::Array<S, Eigen::Dynamic, 1>, Eigen::Aligned64>;

}  // namespace detail

/// GELU, erf form (PyTorch's default): f(z) = z Phi(z); f'(z) = Phi(z) + z phi(z).
/// forward saves z in aux (Phi(z) alone cannot give z back where it underflows); backward
/// evaluates Phi and phi again. float: vectorised, with detail::normal_lower_tail (relative error
/// about 2e-7); double: scalar loops over std::erfc (Eigen 3.4 has no vectorised erfc, and the
/// float approximation is not accurate enough for double).
struct GELU {
  static constexpr bool uses_aux = true;
  static constexpr std::string_view name() { return "gelu"; }
  template <Real S>
  static void forward(const S* z, S* a, S* aux, Index n) {
    if constexpr (std::is_same_v<S, float>) {
      // S (= float here), not float: the branch's expressions stay dependent, compiled only
      // where GELU runs on float (issue 20: compile time of the umbrella).
      alignas(64) S q[detail::kPaddedBlock];
      detail::in_padded_blocks(z, n, [&](const S* zb, Index i, Index m, Index mp) {
        detail::normal_lower_tail(zb, q, mp);  // q = Phi(-|z|)
        for (Index k = 0; k < m; ++k) {
          aux[i + k] = zb[k];  // z saved (a may be z: zb is a copy)
          a[i + k] = zb[k] < S(0) ? zb[k] * q[k] : zb[k] * (S(1) - q[k]);
        }
      });
    } else {
      for (Index i = 0; i < n; ++i) {
        const S zi = z[i];  // read before a[i] (which may be z[i]) is written
        aux[i] = zi;
        a[i] = zi * detail::normal_cdf(zi);
      }
    }
  }
  template <Real S>
  static void backward(const S* /*a*/, const S* aux, S* g, Index n) {
    if constexpr (std::is_same_v<S, float>) {
      // f' on z clamped to +-15, where it is 1 or 0 in float: keeps z phi(z) 0 (not z times the
      // smallest exp result) for huge |z|.
      alignas(64) S zc[detail::kPaddedBlock], q[detail::kPaddedBlock], zphi[detail::kPaddedBlock];
      detail::in_padded_blocks(aux, n, [&](const S* zb, Index i, Index m, Index mp) {
        detail::AlignedArrayMap<S> zz(zc, mp), pp(zphi, mp);
        zz = detail::ConstAlignedArrayMap<S>(zb, mp).max(S(-15)).min(S(15));
        detail::normal_lower_tail(zc, q, mp);
        pp = zz * S(0.39894228040143268) * (S(-0.5) * zz.square()).exp();
        for (Index k = 0; k < m; ++k) g[i + k] *= (zc[k] < S(0) ? q[k] : S(1) - q[k]) + zphi[k];
      });
    } else {
      for (Index i = 0; i < n; ++i) g[i] *= derivative(aux[i]);
    }
  }
  template <Real S>
  static S value(S z) { return z * detail::normal_cdf(z); }
  template <Real S>
  static S derivative(S z) { return detail::normal_cdf(z) + z * detail::normal_pdf(z); }
};

/// GELU, tanh approximation: f(z) = 0.5 z (1 + tanh(u)), u = sqrt(2/pi) (z + 0.044715 z^3),
/// evaluated as z s with s = sigmoid(2u) (the same function, without the cancellation of
/// 1 + tanh(u) for z < 0). f'(z) = s + 2 z s (1 - s) u'(z), u' = sqrt(2/pi) (1 + 3 0.044715 z^2).
/// forward saves z in aux; backward evaluates s again, on z clamped to +-clamp<S>().
struct GELUTanh {
  static constexpr bool uses_aux = true;
  static constexpr std::string_view name() { return "gelu_tanh"; }
  // 2 sqrt(2/pi) and 2 sqrt(2/pi) 0.044715: 2u = z (kC1 + kC3 z^2).
  static constexpr double kC1 = 1.5957691216057307117597842397375;
  static constexpr double kC3 = 1.5957691216057307117597842397375 * 0.044715;
  /// Beyond +-clamp, f'(z) is 1 or 0 to the precision of S (|2u| > 260 in float, 4600 in double,
  /// far past e^{-|2u|} underflowing): backward evaluates f' at z clamped there, which keeps u'
  /// finite (no 0 * inf) and z t u' tiny even where Eigen's exp returns its smallest value
  /// instead of 0 (SSE only).
  template <Real S>
  static constexpr S clamp() { return std::is_same_v<S, float> ? S(15) : S(40); }
  template <Real S>
  static void forward(const S* z, S* a, S* aux, Index n) {
    // z^2 may overflow to inf (|z| > 1.8e19 in float): 2u = +-inf, exp gives 0 or inf, s = 1 or 0.
    alignas(64) S s[detail::kPaddedBlock];
    detail::in_padded_blocks(z, n, [&](const S* zb, Index i, Index m, Index mp) {
      detail::ConstAlignedArrayMap<S> zz(zb, mp);
      detail::AlignedArrayMap<S>(s, mp) = (S(1) + (-zz * (S(kC1) + S(kC3) * zz.square())).exp()).inverse();
      for (Index k = 0; k < m; ++k) {
        aux[i + k] = zb[k];
        a[i + k] = zb[k] * s[k];
      }
    });
  }
  template <Real S>
  static void backward(const S* /*a*/, const S* aux, S* g, Index n) {
    // With t = e^{-|2u|} in (0, 1] and p = 1 / (1 + t): s = p where u >= 0 (z >= 0), t p
    // otherwise, and s (1 - s) = t p^2, with neither an overflow nor the cancellation of 1 - s.
    // In blocks through stack buffers, so that each exponential is evaluated once per value.
    alignas(64) S zc_buffer[detail::kPaddedBlock], t_buffer[detail::kPaddedBlock], p_buffer[detail::kPaddedBlock];
    detail::in_padded_blocks(aux, n, [&](const S* zb, Index i, Index m, Index mp) {
      detail::AlignedArrayMap<S> zc(zc_buffer, mp), tt(t_buffer, mp), pp(p_buffer, mp);
      zc = detail::ConstAlignedArrayMap<S>(zb, mp).max(-clamp<S>()).min(clamp<S>());
      tt = (-(zc * (S(kC1) + S(kC3) * zc.square())).abs()).exp();
      pp = (S(1) + tt).inverse();
      // f' = s + z t p^2 u'; the rest as value-by-value arithmetic (no transcendental function).
      tt = (zc >= S(0)).select(pp, tt * pp) + zc * tt * pp.square() * (S(kC1) + S(3 * kC3) * zc.square());
      for (Index k = 0; k < m; ++k) g[i + k] *= t_buffer[k];
    });
  }
  template <Real S>
  static S value(S z) {
    return z / (S(1) + std::exp(-z * (S(kC1) + S(kC3) * z * z)));
  }
  template <Real S>
  static S derivative(S z) {
    const S zc = std::fmax(-clamp<S>(), std::fmin(clamp<S>(), z));
    const S t = std::exp(-std::abs(zc * (S(kC1) + S(kC3) * zc * zc)));
    const S p = S(1) / (S(1) + t);
    return (zc >= S(0) ? p : t * p) + zc * t * p * p * (S(kC1) + S(3 * kC3) * zc * zc);
  }
};

/// ELU with alpha = 1: f(z) = z for z > 0, alpha (e^z - 1) otherwise (by expm1);
/// f'(z) = 1 for z > 0 (a > 0), alpha e^z = a + alpha otherwise (PyTorch's 1 at z = 0).
/// ELU, SELU and LeakyReLU need no aux: f' comes from the saved a. Where z << 0, a + alpha
/// carries an absolute error of about alpha eps (f'(-20) is 2e-9, a + alpha is 0 in float).
struct ELU {
  static constexpr bool uses_aux = false;
  static constexpr std::string_view name() { return "elu"; }
  static constexpr double kAlpha = 1.0;
  template <Real S>
  static void forward(const S* z, S* a, S* /*aux*/, Index n) {
    // max(z, 0) + alpha expm1(min(z, 0)), PyTorch's form: exact on each side (expm1(0) = 0), and
    // vectorised (Eigen 3.4's select() is not, and would evaluate expm1 one value at a time).
    alignas(64) S e[detail::kPaddedBlock], scratch[detail::kPaddedBlock];
    detail::in_padded_blocks(z, n, [&](const S* zb, Index i, Index m, Index mp) {
      detail::expm1_nonpositive(zb, e, scratch, mp);
      for (Index k = 0; k < m; ++k) a[i + k] = (zb[k] > S(0) ? zb[k] : S(0)) + S(kAlpha) * e[k];
    });
  }
  template <Real S>
  static void backward(const S* a, const S* /*aux*/, S* g, Index n) {
    detail::ConstArrayMap<S> aa(a, n);
    detail::MutArrayMap<S> gg(g, n);
    gg = (aa > S(0)).select(gg, gg * (aa + S(kAlpha)));
  }
  template <Real S>
  static S value(S z) { return z > S(0) ? z : S(kAlpha) * std::expm1(z); }
  template <Real S>
  static S derivative(S z) { return z > S(0) ? S(1) : S(kAlpha) * std::exp(z); }
};

/// SELU: f(z) = scale z for z > 0, scale alpha (e^z - 1) otherwise, with PyTorch's constants;
/// f'(z) = scale for z > 0 (a > 0), scale alpha e^z = a + scale alpha otherwise.
struct SELU {
  static constexpr bool uses_aux = false;
  static constexpr std::string_view name() { return "selu"; }
  static constexpr double kAlpha = 1.6732632423543772848170429916717;
  static constexpr double kScale = 1.0507009873554804934193349852946;
  template <Real S>
  static void forward(const S* z, S* a, S* /*aux*/, Index n) {
    alignas(64) S e[detail::kPaddedBlock], scratch[detail::kPaddedBlock];
    detail::in_padded_blocks(z, n, [&](const S* zb, Index i, Index m, Index mp) {
      detail::expm1_nonpositive(zb, e, scratch, mp);
      for (Index k = 0; k < m; ++k) a[i + k] = S(kScale) * (zb[k] > S(0) ? zb[k] : S(0)) + S(kScale * kAlpha) * e[k];
    });
  }
  template <Real S>
  static void backward(const S* a, const S* /*aux*/, S* g, Index n) {
    detail::ConstArrayMap<S> aa(a, n);
    detail::MutArrayMap<S> gg(g, n);
    gg = (aa > S(0)).select(S(kScale) * gg, gg * (aa + S(kScale * kAlpha)));
  }
  template <Real S>
  static S value(S z) { return z > S(0) ? S(kScale) * z : S(kScale * kAlpha) * std::expm1(z); }
  template <Real S>
  static S derivative(S z) { return z > S(0) ? S(kScale) : S(kScale * kAlpha) * std::exp(z); }
};

/// LeakyReLU with negative_slope = 0.01: f(z) = z for z > 0, 0.01 z otherwise;
/// f'(z) = 1 for z > 0 (a > 0), 0.01 otherwise (PyTorch's 0.01 at z = 0).
struct LeakyReLU {
  static constexpr bool uses_aux = false;
  static constexpr std::string_view name() { return "leaky_relu"; }
  static constexpr double kNegativeSlope = 0.01;
  template <Real S>
  static void forward(const S* z, S* a, S* /*aux*/, Index n) {
    detail::ConstArrayMap<S> zz(z, n);
    detail::MutArrayMap<S>(a, n) = (zz > S(0)).select(zz, S(kNegativeSlope) * zz);
  }
  template <Real S>
  static void backward(const S* a, const S* /*aux*/, S* g, Index n) {
    detail::ConstArrayMap<S> aa(a, n);
    detail::MutArrayMap<S> gg(g, n);
    gg = (aa > S(0)).select(gg, S(kNegativeSlope) * gg);
  }
  template <Real S>
  static S value(S z) { return z > S(0) ? z : S(kNegativeSlope) * z; }
  template <Real S>
  static S derivative(S z) { return z > S(0) ? S(1) : S(kNegativeSlope); }
};

/// Softplus with beta = 1, threshold = 20: f(z) = z for z > 20, log(1 + e^z) otherwise (by
/// log1p); f'(z) = 1 for z > 20, sigmoid(z) = e^z / (1 + e^z) otherwise. forward saves f'(z) in
/// aux (one exponential for both), so backward is one multiplication.
struct Softplus {
  static constexpr bool uses_aux = true;
  static constexpr std::string_view name() { return "softplus"; }
  static constexpr double kThreshold = 20.0;
  template <Real S>
  static void forward(const S* z, S* a, S* aux, Index n) {
    // The exponential, log1p and division vectorise; only the cheap choice between branches is
    // value by value.
    alignas(64) S e_buffer[detail::kPaddedBlock], l_buffer[detail::kPaddedBlock];
    detail::in_padded_blocks(z, n, [&](const S* zb, Index i, Index m, Index mp) {
      detail::AlignedArrayMap<S> ee(e_buffer, mp), ll(l_buffer, mp);
      ee = detail::ConstAlignedArrayMap<S>(zb, mp).min(S(kThreshold)).exp();  // e^z, at most e^20 = 4.9e8
      ll = ee.log1p();
      ee = ee / (S(1) + ee);  // sigmoid(z) where z <= 20
      for (Index k = 0; k < m; ++k) {
        const bool linear = zb[k] > S(kThreshold);
        aux[i + k] = linear ? S(1) : e_buffer[k];
        a[i + k] = linear ? zb[k] : l_buffer[k];
      }
    });
  }
  template <Real S>
  static void backward(const S* /*a*/, const S* aux, S* g, Index n) {
    detail::MutArrayMap<S>(g, n) *= detail::ConstArrayMap<S>(aux, n);
  }
  template <Real S>
  static S value(S z) { return z > S(kThreshold) ? z : std::log1p(std::exp(z)); }
  template <Real S>
  static S derivative(S z) {
    if (z > S(kThreshold)) return S(1);
    const S e = std::exp(z);
    return e / (S(1) + e);
  }
};

static_assert(Activation<GELU> && Activation<GELUTanh> && Activation<ELU> && Activation<SELU> &&
              Activation<LeakyReLU> && Activation<Softplus>);

}  // namespace flowmatch
