#pragma once
/// \file
/// AVX-512 kernels for the two layers around a wide SiLU hidden layer with a small fan-in before
/// it and at most 16 units after it: the reference workload's [x, t] (3) -> 1024 -> 16 shape. MLPVectorField<float,
/// SiLU> uses them when the CPU build has AVX-512 (for example -march=native on a CPU with
/// AVX-512F) and the shape fits (see MLPVectorField::fast_path()); every other case runs the
/// portable Eigen code.
///
/// Why hand-written: Eigen's GEMM packs both operands of every product. Here one side of each
/// product has 16 rows, so a 16-wide accumulator (one zmm register) can hold a whole output
/// column and the weights can be read directly, with no packing at all. The kernels also fuse
/// the first layer's bias, its SiLU and the saving of the sigmoid into one pass, and the
/// SiLU derivative, the first layer's weight and bias gradients into another. Inference has its
/// own kernel (first_two_layers), which turns the batch around: 16 samples per register, so
/// that a hidden unit's activations for 16 samples go straight from its SiLU into the 16 outputs'
/// accumulators and nothing between the layers is stored.
///
/// Layouts (all column-major, one sample per column, as in MLPVectorField's workspace):
/// - in: F x nb (F = fan-in of the first layer, at most 8), h and s: K x nb with leading dimension
///   ld >= K (K hidden units, a multiple of 16; MLPVectorField pads ld to K + 16 so that successive
///   columns do not map to the same L1 cache set when K is a multiple of 1024), y and dz2: 16 x nb
///   (rows past the second layer's width are zero);
/// - w0: K x F column-major (the first weight, one column per input), b0: K;
/// - w2t: K x 16 row-major, i.e. w2t[k * 16 + i] = W2(i, k) (zero for i >= the layer's width);
/// - w2p: 16 x K row-major, i.e. w2p[i * K + k] = W2(i, k) (zero rows past the width).

#include <type_traits>

#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/activation.hpp"

namespace flowmatch::detail::avx512 {
/// Largest first-layer fan-in the kernels handle (the number of accumulators they keep).
inline constexpr Index kMaxFanIn = 8;

/// A bound on inference's scaled pre-activations |t| = |b0s + sum_r w0s[r] x[r]| from the largest
/// |b0s| (b) and the largest |w0s| of each input (w[r]): |t| <= b + sum_r w[r] |x[r]|. Where it
/// is at most kUncappedLimit for all 16 columns of a group, silu_log2 can skip its cap (see
/// first_two_layers).
struct PreactivationBound {
  float b = 0.0f;
  float w[kMaxFanIn] = {};
};
/// Below the cap of 126 by a margin far larger than the rounding of the bound and of t.
inline constexpr float kUncappedLimit = 120.0f;
}  // namespace flowmatch::detail::avx512

#if defined(__AVX512F__)
#include <immintrin.h>

namespace flowmatch::detail::avx512 {

/// h = SiLU(W0 in + b0) for nb columns, and s = sigmoid(W0 in + b0) when s is not null. Column j
/// of `in` starts at in + j * in_stride (in_stride >= F: inference passes F - 1 inputs with the
/// time already folded into b0 when it is the same for every column). With TimeFirst, the last
/// input (the time) is added to the bias before the others, so that folding one time into the bias
/// beforehand as fma(W0[:, F - 1], t, b0) gives bit-identical results.
template <int F, bool TimeFirst>
inline void first_layer_silu(const float* w0, const float* b0, const float* in, Index in_stride, Index K, Index nb,
                             float* h, float* s, Index ld) {
  for (Index j = 0; j < nb; ++j) {
    __m512 xin[F];
    for (int r = 0; r < F; ++r) xin[r] = _mm512_set1_ps(in[j * in_stride + r]);
    float* hj = h + j * ld;
    float* sj = s ? s + j * ld : nullptr;
    for (Index k = 0; k < K; k += 16) {
      __m512 z = _mm512_loadu_ps(b0 + k);
      if constexpr (TimeFirst) {
        z = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + (F - 1) * K + k), xin[F - 1], z);
        for (int r = 0; r + 1 < F; ++r) z = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + r * K + k), xin[r], z);
      } else {
        for (int r = 0; r < F; ++r) z = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + r * K + k), xin[r], z);
      }
      const __m512 sg = sigmoid(z);
      _mm512_storeu_ps(hj + k, _mm512_mul_ps(z, sg));
      if (sj) _mm512_storeu_ps(sj + k, sg);
    }
  }
}

/// Inference's SiLU, with the constants of the exponential folded into the weights: given
/// t = -log2(e) z it returns h' = t sigmoid(z) = -log2(e) SiLU(z) (the caller folds the -ln 2 that
/// undoes the scale into the next layer's weights). e^-z = 2^t needs no multiplication: 2^floor(t)
/// (scalef) times a degree-5 minimax polynomial in t - floor(t) (reduce; relative error 2e-7
/// evaluated in float, below the rounding of the sigmoid itself); d = 1 + 2^t; 1 / d by rcp14 and
/// one Newton step fused with the product t / d. Thirteen vector operations, against nineteen for
/// the sigmoid the training kernels use, which also keeps the range reduction the backward pass
/// relies on. t is capped at 126 (z < -87.3) in the exponential and in the product, so d never
/// overflows, h' is at most 126 * 2^-126 there (0 after FTZ, against an exact value below
/// 2^-126), and no NaN comes out of finite inputs. With Capped = false the caller guarantees
/// t <= 126 (the cap would change nothing): one operation less, the same bits.
template <bool Capped = true>
inline __m512 silu_log2(__m512 t) {
  __m512 tc = t;
  if constexpr (Capped) tc = _mm512_min_ps(t, _mm512_set1_ps(126.0f));
  const __m512 f = _mm512_reduce_ps(tc, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);  // tc - floor(tc)
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(1.8937540582e-03f), f, _mm512_set1_ps(8.9495904233e-03f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5860337077e-02f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4014181820e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9315448966e-01f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.9999989835e-01f));
  const __m512 d = _mm512_add_ps(_mm512_set1_ps(1.0f), _mm512_scalef_ps(p, tc));  // scalef: p * 2^floor(tc)
  const __m512 q = _mm512_rcp14_ps(d);
  return _mm512_mul_ps(_mm512_mul_ps(tc, q), _mm512_fnmadd_ps(d, q, _mm512_set1_ps(2.0f)));
}

/// Inference through the first two layers for 16 columns at once, one column per lane, every
/// intermediate in registers: for each hidden unit k, its pre-activation for the 16 columns
/// (F broadcast weights times the F input rows x[r], plus the bias), silu_log2, then one FMA into
/// each of the 16 outputs' accumulators with the unit's broadcast weight w2ts[k * 16 + i]. Nothing
/// is stored between the layers, and every address is a single pointer plus a constant, so the
/// loads (19 broadcasts per unit, against 2 x 16 vector operations) stay well under the load
/// ports' rate.
/// x: F rows of 16 lanes (x + r * 16); yt: 16 outputs x 16 columns, row-major (yt + i * 16); K a
/// multiple of 2.
template <int F, bool TimeFirst, bool Capped>
inline void first_two_layers16(const float* w0s, const float* b0s, const float* x, Index K, const float* w2ts,
                               float* yt) {
  __m512 xin[F];
  for (int r = 0; r < F; ++r) xin[r] = _mm512_loadu_ps(x + r * 16);
  // Two units per step, software-pipelined: the SiLUs of units k and k + 1 (two independent chains
  // of about 15 dependent operations each) are issued before the output updates with units k - 2
  // and k - 1, whose activations are ready, so both vector ports have work while the chains run
  // (in a micro-benchmark 5-10% faster than four units a step unpipelined, 15-25% faster than one
  // unit at a time). Blocked summation: the registers accumulate 64 units at a time and each block's sums
  // are added to yt, so that rounding errors grow with 64 + K / 64 terms rather than with K (one
  // sample through the reference workload's 1024 units: relative error 1.4e-7 against 2.6e-6 summed in one chain).
  auto activations = [&](Index k, __m512* h) {
    for (int u = 0; u < 2; ++u) {
      __m512 t = _mm512_set1_ps(b0s[k + u]);
      if constexpr (TimeFirst) {
        t = _mm512_fmadd_ps(_mm512_set1_ps(w0s[(F - 1) * K + k + u]), xin[F - 1], t);
        for (int r = 0; r + 1 < F; ++r) t = _mm512_fmadd_ps(_mm512_set1_ps(w0s[r * K + k + u]), xin[r], t);
      } else {
        for (int r = 0; r < F; ++r) t = _mm512_fmadd_ps(_mm512_set1_ps(w0s[r * K + k + u]), xin[r], t);
      }
      h[u] = silu_log2<Capped>(t);
    }
  };
  __m512 acc[16];
  auto update = [&](Index k, const __m512* h) {
    const float* w = w2ts + k * 16;
    for (int u = 0; u < 2; ++u)
      for (int i = 0; i < 16; ++i) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(w[u * 16 + i]), h[u], acc[i]);
  };
  auto flush = [&](bool first) {
    for (int i = 0; i < 16; ++i) {
      _mm512_storeu_ps(yt + i * 16, first ? acc[i] : _mm512_add_ps(_mm512_loadu_ps(yt + i * 16), acc[i]));
      acc[i] = _mm512_setzero_ps();
    }
  };
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_setzero_ps();
  __m512 h[2];
  activations(0, h);
  for (Index k = 2; k < K; k += 2) {
    __m512 next[2];
    activations(k, next);
    update(k - 2, h);
    if (k % 64 == 0) flush(k == 64);
    h[0] = next[0];
    h[1] = next[1];
  }
  update(K - 2, h);
  flush(K <= 64);
}

/// The layers after the first two when there is exactly one more: a = SiLU(y + b1) (M units) and
/// out = W3 a + b3 (D outputs, W3 row-major D x M), for 16 columns at once with one column per
/// lane. y: 16 x 16 row-major (y + i * 16, rows past M unused); out: D x 16 row-major.
struct OutputLayer {
  const float* b1;  ///< the second layer's bias (M)
  const float* w3;  ///< the last weight, row-major D x M
  const float* b3;  ///< the last bias (D)
  Index M, D;       ///< both at most 16
};

inline void output_layer16(const OutputLayer& o, const float* y, float* out) {
  __m512 acc[16];
  for (Index d = 0; d < o.D; ++d) acc[d] = _mm512_set1_ps(o.b3[d]);
  for (Index i = 0; i < o.M; ++i) {
    const __m512 z = _mm512_add_ps(_mm512_loadu_ps(y + i * 16), _mm512_set1_ps(o.b1[i]));
    const __m512 a = _mm512_mul_ps(z, sigmoid(z));
    for (Index d = 0; d < o.D; ++d) acc[d] = _mm512_fmadd_ps(_mm512_set1_ps(o.w3[d * o.M + i]), a, acc[d]);
  }
  for (Index d = 0; d < o.D; ++d) _mm512_storeu_ps(out + d * 16, acc[d]);
}

/// Inference's first two layers without their second bias: y (16 x nb, column-major, one output
/// column per sample) = -ln(2) w2ts^T silu_log2(w0s in + b0s), i.e. W2 SiLU(W0 in + b0) when the
/// caller passes w0s = -log2(e) W0, b0s = -log2(e) b0 and w2ts = -ln(2) W2^T (K x 16 row-major).
/// With an OutputLayer (a three-layer network), y is instead the network's output, D x nb with
/// leading dimension 16. Column j of `in` starts at in + j * in_stride (in_stride >= F: with the
/// time the same for every column, the caller passes F - 1 inputs and folds the time into b0s).
/// With TimeFirst, the last input (the time) is added to the bias before the others, so that
/// folding one time into the bias beforehand as fma(w0s[:, F - 1], t, b0s) gives bit-identical
/// results. Columns go 16 at a time (first_two_layers16); a last partial group runs with zero
/// inputs in its unused lanes. A group whose pre-activations `bound` keeps within kUncappedLimit
/// (every group of the reference workload's sampling: there |t| stays under 50) runs silu_log2 without its cap;
/// any other group, non-finite inputs included, with it.
template <int F, bool TimeFirst>
inline void first_two_layers(const float* w0s, const float* b0s, const float* in, Index in_stride, Index K, Index nb,
                             const float* w2ts, float* y, const PreactivationBound& bound,
                             const OutputLayer* last = nullptr) {
  alignas(64) float x[F * 16];
  alignas(64) float yt[16 * 16];
  alignas(64) float ot[16 * 16];
  for (Index j0 = 0; j0 < nb; j0 += 16) {
    const Index m = nb - j0 < 16 ? nb - j0 : 16;
    for (Index c = 0; c < 16; ++c)
      for (int r = 0; r < F; ++r) x[r * 16 + c] = c < m ? in[(j0 + c) * in_stride + r] : 0.0f;
    float largest = 0.0f;
    for (Index c = 0; c < 16; ++c) {
      float tc = bound.b;
      for (int r = 0; r < F; ++r) tc += bound.w[r] * (x[r * 16 + c] < 0.0f ? -x[r * 16 + c] : x[r * 16 + c]);
      largest = tc > largest || tc != tc ? tc : largest;  // a NaN sticks
    }
    if (largest <= kUncappedLimit) first_two_layers16<F, TimeFirst, false>(w0s, b0s, x, K, w2ts, yt);
    else first_two_layers16<F, TimeFirst, true>(w0s, b0s, x, K, w2ts, yt);
    const float* src = yt;
    Index rows = 16;
    if (last) {
      output_layer16(*last, yt, ot);
      src = ot;
      rows = last->D;
    }
    for (Index c = 0; c < m; ++c)
      for (Index i = 0; i < rows; ++i) y[(j0 + c) * 16 + i] = src[i * 16 + c];
  }
}

/// y (C x 16 block of columns) = W2 h for the columns [0, C): C accumulators, one weight load each
/// per hidden unit.
template <int C>
inline void second_layer_columns(const float* w2t, const float* h, Index K, float* y, Index ld) {
  __m512 acc[C];
  for (int c = 0; c < C; ++c) acc[c] = _mm512_setzero_ps();
  for (Index k = 0; k < K; ++k) {
    const __m512 w = _mm512_loadu_ps(w2t + k * 16);
    for (int c = 0; c < C; ++c) acc[c] = _mm512_fmadd_ps(w, _mm512_set1_ps(h[c * ld + k]), acc[c]);
  }
  for (int c = 0; c < C; ++c) _mm512_storeu_ps(y + c * 16, acc[c]);
}

/// y (16 x nb) = W2 h, without the bias: a 16-row output column is one register, updated by one
/// FMA per hidden unit with the unit's 16 weights (a row of w2t) and its broadcast activation.
/// Sixteen columns share each weight load (then eight, then one at a time), so that the loads
/// (one per FMA for the activation, 1/16 for the weights) stay under the two load ports' rate.
inline void second_layer(const float* w2t, const float* h, Index K, Index nb, float* y, Index ld) {
  Index j = 0;
  for (; j + 16 <= nb; j += 16) second_layer_columns<16>(w2t, h + j * ld, K, y + j * 16, ld);
  for (; j + 8 <= nb; j += 8) second_layer_columns<8>(w2t, h + j * ld, K, y + j * 16, ld);
  for (; j < nb; ++j) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    const float* hj = h + j * ld;
    for (Index k = 0; k < K; k += 4)
      for (int u = 0; u < 4; ++u) acc[u] = _mm512_fmadd_ps(_mm512_loadu_ps(w2t + (k + u) * 16), _mm512_set1_ps(hj[k + u]), acc[u]);
    _mm512_storeu_ps(y + j * 16, _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
  }
}

/// dW2^T (K x 16, row-major, accumulated) += h dz2^T: row k gains sum_j h(k, j) dz2(:, j).
/// Sixteen hidden units (one cache line of each column of h) at a time, each column of dz2 loaded
/// once for the sixteen.
inline void second_layer_weight_gradient(const float* dz2, const float* h, Index K, Index nb, float* dw2t,
                                         Index ld) {
  for (Index k = 0; k < K; k += 16) {
    __m512 acc[16];
    for (int u = 0; u < 16; ++u) acc[u] = _mm512_loadu_ps(dw2t + (k + u) * 16);
    for (Index j = 0; j < nb; ++j) {
      const __m512 d = _mm512_loadu_ps(dz2 + j * 16);
      const float* hk = h + j * ld + k;
      for (int u = 0; u < 16; ++u) acc[u] = _mm512_fmadd_ps(d, _mm512_set1_ps(hk[u]), acc[u]);
    }
    for (int u = 0; u < 16; ++u) _mm512_storeu_ps(dw2t + (k + u) * 16, acc[u]);
  }
}

/// The first layer's backward: dz1 = (W2^T dz2) .* SiLU'(z1), with SiLU' = s + h (1 - s) from the
/// saved activation h and sigmoid s, then dW0 (K x F column-major, accumulated) += dz1 in^T and
/// db0 (accumulated) += the row sums of dz1. Sixteen hidden units at a time: their 16 x 16 block
/// of W2 stays in registers while the columns stream past, and so do their weight-gradient sums.
template <int F>
inline void first_layer_backward(const float* w2p, const float* dz2, const float* h, const float* s,
                                 const float* in, Index K, Index nb, float* dw0, float* db0, Index ld) {
  for (Index k = 0; k < K; k += 16) {
    __m512 w[16];
    for (int i = 0; i < 16; ++i) w[i] = _mm512_loadu_ps(w2p + i * K + k);
    __m512 gw[F];
    for (int r = 0; r < F; ++r) gw[r] = _mm512_setzero_ps();
    __m512 gb = _mm512_setzero_ps();
    for (Index j = 0; j < nb; ++j) {
      const float* d = dz2 + j * 16;
      __m512 a0 = _mm512_mul_ps(w[0], _mm512_set1_ps(d[0]));
      __m512 a1 = _mm512_mul_ps(w[1], _mm512_set1_ps(d[1]));
      for (int i = 2; i < 16; i += 2) {
        a0 = _mm512_fmadd_ps(w[i], _mm512_set1_ps(d[i]), a0);
        a1 = _mm512_fmadd_ps(w[i + 1], _mm512_set1_ps(d[i + 1]), a1);
      }
      const __m512 hv = _mm512_loadu_ps(h + j * ld + k);
      const __m512 sv = _mm512_loadu_ps(s + j * ld + k);
      // SiLU'(z) = s + h - h s
      const __m512 deriv = _mm512_add_ps(sv, _mm512_fnmadd_ps(hv, sv, hv));
      const __m512 dz1 = _mm512_mul_ps(_mm512_add_ps(a0, a1), deriv);
      gb = _mm512_add_ps(gb, dz1);
      for (int r = 0; r < F; ++r) gw[r] = _mm512_fmadd_ps(dz1, _mm512_set1_ps(in[j * F + r]), gw[r]);
    }
    _mm512_storeu_ps(db0 + k, _mm512_add_ps(_mm512_loadu_ps(db0 + k), gb));
    for (int r = 0; r < F; ++r)
      _mm512_storeu_ps(dw0 + r * K + k, _mm512_add_ps(_mm512_loadu_ps(dw0 + r * K + k), gw[r]));
  }
}

/// Calls f(std::integral_constant<int, F>{}) for the runtime fan-in F in 1 ... kMaxFanIn.
template <class Fn>
inline void dispatch_fan_in(Index fan_in, Fn&& f) {
  switch (fan_in) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 5: f(std::integral_constant<int, 5>{}); break;
    case 6: f(std::integral_constant<int, 6>{}); break;
    case 7: f(std::integral_constant<int, 7>{}); break;
    case 8: f(std::integral_constant<int, 8>{}); break;
    default: break;
  }
}

}  // namespace flowmatch::detail::avx512

#endif  // __AVX512F__
