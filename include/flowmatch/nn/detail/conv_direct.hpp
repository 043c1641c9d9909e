#pragma once
/// \file
/// A direct 3x3 convolution kernel for UNetVectorField's channels-last activations (AVX2 + FMA,
/// single precision): no gathered ("im2col") matrix is written. For a tile of R output pixels and
/// 16 (or 8) output channels, R x 16 sums stay in registers while the kernel walks the 9 taps and
/// the input channels, broadcasting one input value per pixel and loading 16 weights, as a GEMM
/// micro-kernel does; the source pixel of each (pixel, tap) comes from the layer's gather table
/// (strides, padding and nearest upsampling alike), padding reading a row of zeros.
///
/// Weights are read as C_out x (9 C_in) column-major (the layers' HWIO order): the C_out weights of
/// one (tap, input channel) are contiguous, which is what the kernel loads.
///
/// The portable path (the im2col + GEMM of unet_layers.hpp) computes the same function; it runs for
/// double, where AVX2/FMA is not enabled at compile time, and where C_out is not a multiple of 8.
/// tests/nn/unet_test.cpp compares the two.

#include <algorithm>
#include <cstddef>
#include <type_traits>

#include "flowmatch/core/types.hpp"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define FLOWMATCH_CONV_DIRECT 1
#else
#define FLOWMATCH_CONV_DIRECT 0
#endif

namespace flowmatch::detail::unet {

/// Whether the direct kernel can run a convolution of `cout` output channels in scalar type S.
template <class S>
constexpr bool conv_direct_available(Index cout) {
#if FLOWMATCH_CONV_DIRECT
  return std::is_same_v<S, float> && cout % 8 == 0;
#else
  (void)cout;
  return false;
#endif
}

#if FLOWMATCH_CONV_DIRECT
namespace conv_direct {

// Sums of R pixels x (8 NB) output channels: acc[r][j] += sum_t sum_c x[r, t][c] w[(t cin + c) cout + j].
// src9: the tile's gather entries (9 per pixel); xs: the sample's input (cin per pixel).
template <int R, int NB>
inline void tile(const float* xs, const int* src9, const float* zeros, const float* w, Index cin, Index cout,
                 __m256 (&acc)[R][NB]) {
  for (int t = 0; t < 9; ++t) {
    const float* px[R];
    for (int r = 0; r < R; ++r) {
      const int s = src9[r * 9 + t];
      px[r] = s >= 0 ? xs + static_cast<Index>(s) * cin : zeros;
    }
    const float* wt = w + static_cast<Index>(t) * cin * cout;
    for (Index c = 0; c < cin; ++c, wt += cout) {
      __m256 wv[NB];
      for (int j = 0; j < NB; ++j) wv[j] = _mm256_loadu_ps(wt + 8 * j);
      for (int r = 0; r < R; ++r) {
        const __m256 a = _mm256_broadcast_ss(px[r] + c);
        for (int j = 0; j < NB; ++j) acc[r][j] = _mm256_fmadd_ps(a, wv[j], acc[r][j]);
      }
    }
  }
}

// One sample's output pixels [p0, p1), output channels [co, co + 8 NB), in tiles of R pixels.
template <int R, int NB>
inline void run_block(const float* xs, const int* src, const float* zeros, const float* w, const float* bias,
                      float* ys, Index cin, Index cout, Index co, Index p0, Index p1, bool accumulate) {
  Index p = p0;
  for (; p + R <= p1; p += R) {
    __m256 acc[R][NB];
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < NB; ++j) {
        __m256 v = accumulate ? _mm256_loadu_ps(ys + (p + r) * cout + co + 8 * j) : _mm256_setzero_ps();
        if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + co + 8 * j));
        acc[r][j] = v;
      }
    tile<R, NB>(xs, src + p * 9, zeros, w + co, cin, cout, acc);
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < NB; ++j) _mm256_storeu_ps(ys + (p + r) * cout + co + 8 * j, acc[r][j]);
  }
  for (; p < p1; ++p) {  // the last pixels, one at a time
    __m256 acc[1][NB];
    for (int j = 0; j < NB; ++j) {
      __m256 v = accumulate ? _mm256_loadu_ps(ys + p * cout + co + 8 * j) : _mm256_setzero_ps();
      if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + co + 8 * j));
      acc[0][j] = v;
    }
    tile<1, NB>(xs, src + p * 9, zeros, w + co, cin, cout, acc);
    for (int j = 0; j < NB; ++j) _mm256_storeu_ps(ys + p * cout + co + 8 * j, acc[0][j]);
  }
}

// dW block: acc[r][j] (input channel ci0 + r, output channels co + 8 j, tap t) += sum over pixels
// [p0, p1) of x[src(p, t)][ci0 + r] dy[p][co + 8 j].
template <int R, int NB>
inline void weight_block(const float* xs, const float* dys, const int* src, const float* zeros, float* dw, Index cin,
                         Index cout, int t, Index ci0, Index co, Index p0, Index p1) {
  __m256 acc[R][NB];
  float* base = dw + (static_cast<Index>(t) * cin + ci0) * cout + co;
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NB; ++j) acc[r][j] = _mm256_loadu_ps(base + r * cout + 8 * j);
  for (Index p = p0; p < p1; ++p) {
    const int s = src[p * 9 + t];
    const float* px = (s >= 0 ? xs + static_cast<Index>(s) * cin : zeros) + ci0;
    __m256 d[NB];
    for (int j = 0; j < NB; ++j) d[j] = _mm256_loadu_ps(dys + p * cout + co + 8 * j);
    for (int r = 0; r < R; ++r) {
      const __m256 a = _mm256_broadcast_ss(px + r);
      for (int j = 0; j < NB; ++j) acc[r][j] = _mm256_fmadd_ps(a, d[j], acc[r][j]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NB; ++j) _mm256_storeu_ps(base + r * cout + 8 * j, acc[r][j]);
}

template <int NB>
inline void weight_rows(const float* xs, const float* dys, const int* src, const float* zeros, float* dw, Index cin,
                        Index cout, int t, Index co, Index p0, Index p1) {
  Index ci = 0;
  for (; ci + 6 <= cin; ci += 6) weight_block<6, NB>(xs, dys, src, zeros, dw, cin, cout, t, ci, co, p0, p1);
  switch (cin - ci) {
    case 5: weight_block<5, NB>(xs, dys, src, zeros, dw, cin, cout, t, ci, co, p0, p1); break;
    case 4: weight_block<4, NB>(xs, dys, src, zeros, dw, cin, cout, t, ci, co, p0, p1); break;
    case 3: weight_block<3, NB>(xs, dys, src, zeros, dw, cin, cout, t, ci, co, p0, p1); break;
    case 2: weight_block<2, NB>(xs, dys, src, zeros, dw, cin, cout, t, ci, co, p0, p1); break;
    case 1: weight_block<1, NB>(xs, dys, src, zeros, dw, cin, cout, t, ci, co, p0, p1); break;
    default: break;
  }
}

// Scatter form of dL/dx: for R output pixels and input channels [ci, ci + 8 NB), tap t:
// dx[src(p, t)][ci..] += sum_co dy[p][co] wt[(t cout + co) cin + ci..] (wt: the kernel transposed,
// C_in fastest). Pixels whose tap falls in the padding are skipped.
template <int R, int NB>
inline void scatter_block(const float* dys, const int* src, const float* wt, float* dxs, Index cin, Index cout, int t,
                          Index ci, Index p) {
  __m256 acc[R][NB];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NB; ++j) acc[r][j] = _mm256_setzero_ps();
  const float* w = wt + static_cast<Index>(t) * cout * cin + ci;
  for (Index co = 0; co < cout; ++co, w += cin) {
    __m256 wv[NB];
    for (int j = 0; j < NB; ++j) wv[j] = _mm256_loadu_ps(w + 8 * j);
    for (int r = 0; r < R; ++r) {
      const __m256 a = _mm256_broadcast_ss(dys + (p + r) * cout + co);
      for (int j = 0; j < NB; ++j) acc[r][j] = _mm256_fmadd_ps(a, wv[j], acc[r][j]);
    }
  }
  for (int r = 0; r < R; ++r) {
    const int s = src[(p + r) * 9 + t];
    if (s < 0) continue;
    float* d = dxs + static_cast<Index>(s) * cin + ci;
    for (int j = 0; j < NB; ++j) _mm256_storeu_ps(d + 8 * j, _mm256_add_ps(_mm256_loadu_ps(d + 8 * j), acc[r][j]));
  }
}

template <int NB>
inline void scatter_rows(const float* dys, const int* src, const float* wt, float* dxs, Index cin, Index cout,
                         Index ci, Index hw_out) {
  for (int t = 0; t < 9; ++t) {
    Index p = 0;
    for (; p + 6 <= hw_out; p += 6) scatter_block<6, NB>(dys, src, wt, dxs, cin, cout, t, ci, p);
    for (; p < hw_out; ++p) scatter_block<1, NB>(dys, src, wt, dxs, cin, cout, t, ci, p);
  }
}

}  // namespace conv_direct

/// y (cout x hw_out n, channels-last) = [y +] bias + conv(x) with the gather table `src`
/// (hw_out x 9 entries, -1 = zero padding) and weights w (cout x 9 cin, column-major).
/// `zeros` holds at least cin zeros; bias may be null. Requires cout % 8 == 0.
inline void conv3x3_direct(const float* x, Index cin, Index hw_in, const int* src, Index hw_out, const float* w,
                           Index cout, const float* bias, float* y, Index n, bool accumulate, const float* zeros) {
  // Pixel blocks of 64 keep a block's source rows in L1 while every output-channel block passes.
  constexpr Index pixel_block = 64;
  for (Index s = 0; s < n; ++s) {
    const float* xs = x + s * hw_in * cin;
    float* ys = y + s * hw_out * cout;
    for (Index p0 = 0; p0 < hw_out; p0 += pixel_block) {
      const Index p1 = std::min(hw_out, p0 + pixel_block);
      Index co = 0;
      for (; co + 16 <= cout; co += 16)
        conv_direct::run_block<6, 2>(xs, src, zeros, w, bias, ys, cin, cout, co, p0, p1, accumulate);
      if (co < cout) conv_direct::run_block<6, 1>(xs, src, zeros, w, bias, ys, cin, cout, co, p0, p1, accumulate);
    }
  }
}

/// dw (cout x 9 cin, column-major) += dL/dW of the convolution above, given dy (cout x hw_out n)
/// and its input x; `zeros` holds at least cin zeros. Requires cout % 8 == 0.
inline void conv3x3_weight_grad(const float* x, Index cin, Index hw_in, const int* src, Index hw_out, const float* dy,
                                Index cout, float* dw, Index n, const float* zeros) {
  // Pixel blocks of 128: a block's dy and source rows stay in L1/L2 while every (tap, input
  // channel, output channel) block of sums passes over them.
  constexpr Index pixel_block = 128;
  for (Index s = 0; s < n; ++s) {
    const float* xs = x + s * hw_in * cin;
    const float* dys = dy + s * hw_out * cout;
    for (Index p0 = 0; p0 < hw_out; p0 += pixel_block) {
      const Index p1 = std::min(hw_out, p0 + pixel_block);
      for (int t = 0; t < 9; ++t) {
        Index co = 0;
        for (; co + 16 <= cout; co += 16) conv_direct::weight_rows<2>(xs, dys, src, zeros, dw, cin, cout, t, co, p0, p1);
        if (co < cout) conv_direct::weight_rows<1>(xs, dys, src, zeros, dw, cin, cout, t, co, p0, p1);
      }
    }
  }
}

/// dx (cin x hw_in n) += dL/dx of the convolution above, scattered through the gather table (any
/// kind: strides and upsampling included); wt is the kernel transposed, element (ci, t cout + co)
/// at ci + cin (t cout + co). Requires cin % 8 == 0.
inline void conv3x3_input_grad_scatter(const float* dy, Index cout, Index hw_out, const int* src, Index hw_in,
                                       const float* wt, Index cin, float* dx, Index n) {
  for (Index s = 0; s < n; ++s) {
    const float* dys = dy + s * hw_out * cout;
    float* dxs = dx + s * hw_in * cin;
    Index ci = 0;
    for (; ci + 16 <= cin; ci += 16) conv_direct::scatter_rows<2>(dys, src, wt, dxs, cin, cout, ci, hw_out);
    if (ci < cin) conv_direct::scatter_rows<1>(dys, src, wt, dxs, cin, cout, ci, hw_out);
  }
}
#endif  // FLOWMATCH_CONV_DIRECT

}  // namespace flowmatch::detail::unet
