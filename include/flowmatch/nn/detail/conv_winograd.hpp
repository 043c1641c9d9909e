#pragma once
/// \file
/// Winograd F(2x2, 3x3) for UNetVectorField's stride-1 3x3 convolutions (padding 1), single
/// precision, AVX2 + FMA: the forward pass, the input gradient (the same convolution of dy with the
/// kernel flipped and transposed) and the weight gradient.
///
/// The output grid is cut into 2x2 tiles (the last row and column of tiles cross the border when a
/// side is odd: what falls outside reads zeros and is not written). A tile's 4x4 input patch d goes
/// to V = B^T d B, the kernel g of each (input, output) channel pair to U = G g G^T, and the tile's
/// output is A^T (U . V) A. With channels last, the transforms run 8 channels to a vector, and the
/// 16 elementwise products over a block of tiles are 16 GEMMs, (tiles x C_in) (C_in x C_out), with
/// the direct kernel's register tile (6 rows x 16 columns). The weight gradient is the transpose:
/// dU = sum over tiles of V . (A dY A^T), 16 GEMMs (C_in x tiles) (tiles x C_out), and dW = G^T dU G.
/// 2.25 times fewer multiplications than the direct kernel, at the cost of the transforms and
/// rounding of order 1e-6 relative in float (tests/nn/unet_test.cpp compares it with im2col + GEMM).

#include <algorithm>
#include <cstddef>

#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/detail/conv_direct.hpp"

namespace flowmatch::detail::unet {

#if FLOWMATCH_CONV_DIRECT
namespace winograd {

/// 2x2 output tiles on an h x w grid, n samples; tile g is sample g / per_sample, row-major within.
struct Tiles {
  Index h = 0, w = 0, tw = 0, per_sample = 0;
  Tiles(Index h_, Index w_) : h(h_), w(w_), tw((w_ + 1) / 2), per_sample(((h_ + 1) / 2) * ((w_ + 1) / 2)) {}
};

/// Tiles per block: the block's transformed inputs and products (16 (cin + cout) floats per tile)
/// stay near 192 KiB, in L2; a multiple of 6 (the GEMM's row tile).
inline Index block_tiles(Index cin, Index cout) {
  const Index b = (Index{48} << 10) / (16 * (cin + cout));
  return std::max<Index>(12, b / 6 * 6);
}

/// The scratch of conv3x3_winograd and conv3x3_winograd_weight_grad, laid out in one place: the
/// transformed kernel or its gradient (16 cin cout), one block's transformed inputs (16 nb cin) and
/// products or transformed dy (16 nb cout), and a row of zeros (max(cin, cout), written here).
struct Scratch {
  static Index floats(Index cin, Index cout) {
    return 16 * cin * cout + 16 * block_tiles(cin, cout) * (cin + cout) + std::max(cin, cout);
  }
  Scratch(float* s, Index cin, Index cout)
      : nb(block_tiles(cin, cout)), kernel(s), in(kernel + 16 * cin * cout), out(in + 16 * nb * cin),
        zeros(out + 16 * nb * cout) {
    std::fill_n(zeros, std::max(cin, cout), 0.0f);
  }
  Index nb;
  float* kernel;
  float* in;
  float* out;
  float* zeros;
};

/// U[xi][ci][co] (C_out fastest) = (G g G^T)[xi] for g[t] = w[co + cout (t cin + ci)] (HWIO).
inline void transform_weights(const float* w, Index cin, Index cout, float* u) {
  const Index plane = cin * cout;
  for (Index ci = 0; ci < cin; ++ci)
    for (Index co = 0; co < cout; ++co) {
      float g[9];
      for (Index t = 0; t < 9; ++t) g[t] = w[co + cout * (t * cin + ci)];
      float r[4][3];  // G g
      for (int k = 0; k < 3; ++k) {
        r[0][k] = g[k];
        r[1][k] = 0.5f * (g[k] + g[3 + k] + g[6 + k]);
        r[2][k] = 0.5f * (g[k] - g[3 + k] + g[6 + k]);
        r[3][k] = g[6 + k];
      }
      for (int i = 0; i < 4; ++i) {
        float* o = u + static_cast<Index>(4 * i) * plane + ci * cout + co;
        o[0] = r[i][0];
        o[plane] = 0.5f * (r[i][0] + r[i][1] + r[i][2]);
        o[2 * plane] = 0.5f * (r[i][0] - r[i][1] + r[i][2]);
        o[3 * plane] = r[i][2];
      }
    }
}

/// dw[co + cout (t cin + ci)] += (G^T dU G)[t] for dU[xi][ci][co] (C_out fastest).
inline void transform_weight_grad(const float* du, Index cin, Index cout, float* dw) {
  const Index plane = cin * cout;
  for (Index ci = 0; ci < cin; ++ci)
    for (Index co = 0; co < cout; ++co) {
      float m[16];
      for (int k = 0; k < 16; ++k) m[k] = du[k * plane + ci * cout + co];
      float r[3][4];  // G^T dU
      for (int j = 0; j < 4; ++j) {
        const float a = m[j], b = m[4 + j], c = m[8 + j], d = m[12 + j];
        r[0][j] = a + 0.5f * (b + c);
        r[1][j] = 0.5f * (b - c);
        r[2][j] = 0.5f * (b + c) + d;
      }
      for (int i = 0; i < 3; ++i) {
        const float a = r[i][0], b = r[i][1], c = r[i][2], d = r[i][3];
        const float g[3] = {a + 0.5f * (b + c), 0.5f * (b - c), 0.5f * (b + c) + d};
        for (int k = 0; k < 3; ++k) dw[co + cout * ((3 * i + k) * cin + ci)] += g[k];
      }
    }
}

// The 16 source pixels of tile g's 4x4 input patch (zeros outside the grid), in sample x.
inline void patch(const float* x, Index c, const Tiles& tl, Index g, const float* zeros, const float* (&p)[16]) {
  const Index s = g / tl.per_sample, r = g % tl.per_sample, ty = r / tl.tw, tx = r % tl.tw;
  const float* xs = x + s * tl.h * tl.w * c;
  for (Index i = 0; i < 4; ++i) {
    const Index yy = 2 * ty - 1 + i;
    for (Index j = 0; j < 4; ++j) {
      const Index xx = 2 * tx - 1 + j;
      p[4 * i + j] = yy >= 0 && yy < tl.h && xx >= 0 && xx < tl.w ? xs + (yy * tl.w + xx) * c : zeros;
    }
  }
}

/// V[xi][k][ch] (plane nb c) = (B^T d B)[xi] for tiles g0 + k, k < nb. Requires c % 8 == 0.
inline void input_transform(const float* x, Index c, const Tiles& tl, Index g0, Index nb, const float* zeros,
                            float* v) {
  const Index plane = nb * c;
  for (Index k = 0; k < nb; ++k) {
    const float* p[16];
    patch(x, c, tl, g0 + k, zeros, p);
    float* o = v + k * c;
    for (Index ch = 0; ch < c; ch += 8) {
      __m256 e[16];
      for (int j = 0; j < 4; ++j) {  // B^T d: rows
        const __m256 d0 = _mm256_loadu_ps(p[j] + ch), d1 = _mm256_loadu_ps(p[4 + j] + ch);
        const __m256 d2 = _mm256_loadu_ps(p[8 + j] + ch), d3 = _mm256_loadu_ps(p[12 + j] + ch);
        e[j] = _mm256_sub_ps(d0, d2);
        e[4 + j] = _mm256_add_ps(d1, d2);
        e[8 + j] = _mm256_sub_ps(d2, d1);
        e[12 + j] = _mm256_sub_ps(d1, d3);
      }
      for (int i = 0; i < 4; ++i) {  // (B^T d) B: columns
        float* oi = o + static_cast<Index>(4 * i) * plane + ch;
        _mm256_storeu_ps(oi, _mm256_sub_ps(e[4 * i], e[4 * i + 2]));
        _mm256_storeu_ps(oi + plane, _mm256_add_ps(e[4 * i + 1], e[4 * i + 2]));
        _mm256_storeu_ps(oi + 2 * plane, _mm256_sub_ps(e[4 * i + 2], e[4 * i + 1]));
        _mm256_storeu_ps(oi + 3 * plane, _mm256_sub_ps(e[4 * i + 1], e[4 * i + 3]));
      }
    }
  }
}

/// Tile k's output A^T M A (M[xi][k][co], plane nb cout) written to y (or added when accumulate),
/// plus bias (may be null), for tiles g0 + k; pixels outside the grid are dropped.
inline void output_transform(const float* m, Index cout, const Tiles& tl, Index g0, Index nb, const float* bias,
                             float* y, bool accumulate) {
  const Index plane = nb * cout;
  for (Index k = 0; k < nb; ++k) {
    const Index g = g0 + k, s = g / tl.per_sample, r = g % tl.per_sample, ty = r / tl.tw, tx = r % tl.tw;
    float* ys = y + s * tl.h * tl.w * cout;
    const Index y0 = 2 * ty, x0 = 2 * tx;
    const bool down = y0 + 1 < tl.h, right = x0 + 1 < tl.w;
    float* q[4] = {ys + (y0 * tl.w + x0) * cout, right ? ys + (y0 * tl.w + x0 + 1) * cout : nullptr,
                   down ? ys + ((y0 + 1) * tl.w + x0) * cout : nullptr,
                   down && right ? ys + ((y0 + 1) * tl.w + x0 + 1) * cout : nullptr};
    const float* mk = m + k * cout;
    for (Index co = 0; co < cout; co += 8) {
      __m256 t[8];  // A^T M: 2 rows of 4
      for (int j = 0; j < 4; ++j) {
        const __m256 m0 = _mm256_loadu_ps(mk + j * plane + co), m1 = _mm256_loadu_ps(mk + (4 + j) * plane + co);
        const __m256 m2 = _mm256_loadu_ps(mk + (8 + j) * plane + co), m3 = _mm256_loadu_ps(mk + (12 + j) * plane + co);
        t[j] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
        t[4 + j] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
      }
      const __m256 b = bias ? _mm256_loadu_ps(bias + co) : _mm256_setzero_ps();
      for (int i = 0; i < 2; ++i) {
        const __m256 o0 = _mm256_add_ps(_mm256_add_ps(t[4 * i], t[4 * i + 1]), t[4 * i + 2]);
        const __m256 o1 = _mm256_sub_ps(_mm256_sub_ps(t[4 * i + 1], t[4 * i + 2]), t[4 * i + 3]);
        const __m256 o[2] = {o0, o1};
        for (int j = 0; j < 2; ++j) {
          float* d = q[2 * i + j];
          if (!d) continue;
          __m256 v = _mm256_add_ps(o[j], b);
          if (accumulate) v = _mm256_add_ps(v, _mm256_loadu_ps(d + co));
          _mm256_storeu_ps(d + co, v);
        }
      }
    }
  }
}

/// T[xi][k][co] (plane nb cout) = (A dY A^T)[xi] for tile g0 + k's 2x2 block of dy (zeros outside).
inline void grad_transform(const float* dy, Index cout, const Tiles& tl, Index g0, Index nb, const float* zeros,
                           float* t) {
  const Index plane = nb * cout;
  for (Index k = 0; k < nb; ++k) {
    const Index g = g0 + k, s = g / tl.per_sample, r = g % tl.per_sample, ty = r / tl.tw, tx = r % tl.tw;
    const float* ds = dy + s * tl.h * tl.w * cout;
    const Index y0 = 2 * ty, x0 = 2 * tx;
    const bool down = y0 + 1 < tl.h, right = x0 + 1 < tl.w;
    const float* p[4] = {ds + (y0 * tl.w + x0) * cout, right ? ds + (y0 * tl.w + x0 + 1) * cout : zeros,
                         down ? ds + ((y0 + 1) * tl.w + x0) * cout : zeros,
                         down && right ? ds + ((y0 + 1) * tl.w + x0 + 1) * cout : zeros};
    float* o = t + k * cout;
    for (Index co = 0; co < cout; co += 8) {
      const __m256 a = _mm256_loadu_ps(p[0] + co), b = _mm256_loadu_ps(p[1] + co);
      const __m256 c = _mm256_loadu_ps(p[2] + co), d = _mm256_loadu_ps(p[3] + co);
      // A dY: rows [y0, y0 + y1, y0 - y1, -y1] of the 2 columns
      const __m256 e[4][2] = {{a, b},
                              {_mm256_add_ps(a, c), _mm256_add_ps(b, d)},
                              {_mm256_sub_ps(a, c), _mm256_sub_ps(b, d)},
                              {_mm256_sub_ps(_mm256_setzero_ps(), c), _mm256_sub_ps(_mm256_setzero_ps(), d)}};
      for (int i = 0; i < 4; ++i) {
        float* oi = o + static_cast<Index>(4 * i) * plane + co;
        _mm256_storeu_ps(oi, e[i][0]);
        _mm256_storeu_ps(oi + plane, _mm256_add_ps(e[i][0], e[i][1]));
        _mm256_storeu_ps(oi + 2 * plane, _mm256_sub_ps(e[i][0], e[i][1]));
        _mm256_storeu_ps(oi + 3 * plane, _mm256_sub_ps(_mm256_setzero_ps(), e[i][1]));
      }
    }
  }
}

// C rows [i, i + R) (of ldc), columns [j, j + 8 NB), over k: C = A B with A's row r at a + r lda
// (kTransA false), or C += A^T B with A k x lda, row r of A^T its column a + r (kTransA true).
template <bool kTransA, int R, int NB>
inline void gemm_tile(const float* a, Index lda, const float* b, Index ldb, Index k, float* c, Index ldc) {
  __m256 acc[R][NB];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NB; ++j) acc[r][j] = kTransA ? _mm256_loadu_ps(c + r * ldc + 8 * j) : _mm256_setzero_ps();
  for (Index kk = 0; kk < k; ++kk, b += ldb) {
    __m256 bv[NB];
    for (int j = 0; j < NB; ++j) bv[j] = _mm256_loadu_ps(b + 8 * j);
    for (int r = 0; r < R; ++r) {
      const __m256 av = _mm256_broadcast_ss(kTransA ? a + kk * lda + r : a + r * lda + kk);
      for (int j = 0; j < NB; ++j) acc[r][j] = _mm256_fmadd_ps(av, bv[j], acc[r][j]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NB; ++j) _mm256_storeu_ps(c + r * ldc + 8 * j, acc[r][j]);
}

// All m rows of C, 8 NB columns: tiles of 6 rows, then one of m mod 6.
template <bool kTransA, int NB>
inline void gemm_rows(const float* a, Index m, Index k, const float* b, Index n, float* c) {
  const Index lda = kTransA ? m : k;
  const auto row = [&](Index i) { return kTransA ? a + i : a + i * k; };
  Index i = 0;
  for (; i + 6 <= m; i += 6) gemm_tile<kTransA, 6, NB>(row(i), lda, b, n, k, c + i * n, n);
  switch (m - i) {
    case 5: gemm_tile<kTransA, 5, NB>(row(i), lda, b, n, k, c + i * n, n); break;
    case 4: gemm_tile<kTransA, 4, NB>(row(i), lda, b, n, k, c + i * n, n); break;
    case 3: gemm_tile<kTransA, 3, NB>(row(i), lda, b, n, k, c + i * n, n); break;
    case 2: gemm_tile<kTransA, 2, NB>(row(i), lda, b, n, k, c + i * n, n); break;
    case 1: gemm_tile<kTransA, 1, NB>(row(i), lda, b, n, k, c + i * n, n); break;
    default: break;
  }
}

template <bool kTransA>
inline void gemm_any(const float* a, Index m, Index k, const float* b, Index n, float* c) {
  Index j = 0;
  for (; j + 16 <= n; j += 16) gemm_rows<kTransA, 2>(a, m, k, b + j, n, c + j);
  if (j < n) gemm_rows<kTransA, 1>(a, m, k, b + j, n, c + j);
}

/// C (m x n) = A (m x k) B (k x n), all row-major and packed; n % 8 == 0.
inline void gemm(const float* a, Index m, Index k, const float* b, Index n, float* c) {
  gemm_any<false>(a, m, k, b, n, c);
}

/// C (m x n) += A^T B for A (k x m), B (k x n), all row-major and packed; n % 8 == 0.
inline void gemm_tn(const float* a, Index m, Index k, const float* b, Index n, float* c) {
  gemm_any<true>(a, m, k, b, n, c);
}

/// wt (C_in x 9 C_out, C_in fastest) = w (C_out x 9 C_in, HWIO) transposed and flipped: the kernel
/// of dL/dx as a stride-1 convolution of dy.
inline void flip_transpose(const float* w, Index cin, Index cout, float* wt) {
  for (Index t = 0; t < 9; ++t)
    for (Index co = 0; co < cout; ++co)
      for (Index ci = 0; ci < cin; ++ci) wt[ci + cin * (t * cout + co)] = w[co + cout * ((8 - t) * cin + ci)];
}

/// Nearest x2 upsampling then a 3x3 convolution (padding 1) is, per output phase (a, b) (output
/// pixel (2 i + a, 2 j + b)), a convolution on the input grid whose row tap ky reads input row
/// i - 1 + up_tap(a, ky): one 3x3 convolution of cin -> 4 cout channels (channel (2 a + b) cout +
/// co) on the small grid, with the 3 x 3 taps folded to 2 x 2 per phase, then a pixel shuffle.
inline Index up_tap(Index a, Index k) { return (a + k + 1) / 2; }

/// Calls f(p, q) for every pair of an entry p of the folded kernels (4 cout x 9 cin, HWIO) and an
/// entry q of w (cout x 9 cin) that it sums: the fold below and its adjoint share it.
template <class F>
inline void for_each_fold_pair(Index cin, Index cout, F&& f) {
  const Index c4 = 4 * cout;
  for (Index a = 0; a < 2; ++a)
    for (Index b = 0; b < 2; ++b)
      for (Index ky = 0; ky < 3; ++ky)
        for (Index kx = 0; kx < 3; ++kx) {
          const Index t = 3 * ky + kx, tp = 3 * up_tap(a, ky) + up_tap(b, kx), o = (2 * a + b) * cout;
          for (Index ci = 0; ci < cin; ++ci)
            for (Index co = 0; co < cout; ++co) f(o + co + c4 * (tp * cin + ci), co + cout * (t * cin + ci));
        }
}

/// wp (4 cout x 9 cin, HWIO) = the folded kernels of w (cout x 9 cin) for the 4 phases.
inline void upsample_weights(const float* w, Index cin, Index cout, float* wp) {
  std::fill_n(wp, 9 * cin * 4 * cout, 0.0f);
  for_each_fold_pair(cin, cout, [&](Index p, Index q) { wp[p] += w[q]; });
}

/// dw (cout x 9 cin) += the gradient of w given dwp, the gradient of upsample_weights(w).
inline void upsample_fold_grad(const float* dwp, Index cin, Index cout, float* dw) {
  for_each_fold_pair(cin, cout, [&](Index p, Index q) { dw[q] += dwp[p]; });
}

/// y (cout x 2h 2w ns) = bias + yp (4 cout x h w ns) with phase (a, b) of pixel (i, j) at (2i+a, 2j+b).
/// Requires cout % 8 == 0.
inline void pixel_shuffle(const float* yp, Index cout, Index h, Index w, Index ns, const float* bias, float* y) {
  const Index c4 = 4 * cout, w2 = 2 * w;
  for (Index s = 0; s < ns; ++s)
    for (Index i = 0; i < h; ++i)
      for (Index j = 0; j < w; ++j) {
        const float* src = yp + ((s * h + i) * w + j) * c4;
        for (Index a = 0; a < 2; ++a)
          for (Index b = 0; b < 2; ++b) {
            float* d = y + ((s * 2 * h + 2 * i + a) * w2 + 2 * j + b) * cout;
            const float* q = src + (2 * a + b) * cout;
            for (Index co = 0; co < cout; co += 8)
              _mm256_storeu_ps(d + co, _mm256_add_ps(_mm256_loadu_ps(q + co), _mm256_loadu_ps(bias + co)));
          }
      }
}

/// The inverse gather: dyp (4 cout x h w ns) from dy (cout x 2h 2w ns).
inline void pixel_unshuffle(const float* dy, Index cout, Index h, Index w, Index ns, float* dyp) {
  const Index c4 = 4 * cout, w2 = 2 * w;
  for (Index s = 0; s < ns; ++s)
    for (Index i = 0; i < h; ++i)
      for (Index j = 0; j < w; ++j) {
        float* d = dyp + ((s * h + i) * w + j) * c4;
        for (Index a = 0; a < 2; ++a)
          for (Index b = 0; b < 2; ++b)
            std::copy_n(dy + ((s * 2 * h + 2 * i + a) * w2 + 2 * j + b) * cout, cout, d + (2 * a + b) * cout);
      }
}

/// Samples per chunk of the upsampling convolution: its small-grid output (4 cout x h w) stays
/// near 2^18 floats.
inline Index upsample_chunk(Index cout, Index hw, Index n) {
  return std::clamp<Index>((Index{1} << 18) / std::max<Index>(1, 4 * cout * hw), 1, n);
}

}  // namespace winograd

/// Whether the Winograd path can run a stride-1 3x3 convolution of cin -> cout channels (float).
inline bool conv_winograd_available(Index cin, Index cout) { return cin % 8 == 0 && cout % 8 == 0; }

/// Scratch floats for conv3x3_winograd and conv3x3_winograd_weight_grad (either direction).
inline Index conv3x3_winograd_scratch(Index cin, Index cout) {
  return winograd::Scratch::floats(cin, cout);
}

/// y (cout x h w n) = [y +] bias + conv(x) (stride 1, padding 1) for x (cin x h w n), channels last,
/// weights w (cout x 9 cin, column-major, HWIO); bias may be null. scratch: conv3x3_winograd_scratch
/// floats. Requires conv_winograd_available(cin, cout).
inline void conv3x3_winograd(const float* x, Index cin, Index h, Index w, const float* wts, Index cout,
                             const float* bias, float* y, Index n, bool accumulate, float* scratch) {
  const winograd::Tiles tl(h, w);
  const winograd::Scratch ws(scratch, cin, cout);
  const Index total = tl.per_sample * n;
  winograd::transform_weights(wts, cin, cout, ws.kernel);
  for (Index g0 = 0; g0 < total; g0 += ws.nb) {
    const Index b = std::min(ws.nb, total - g0);
    winograd::input_transform(x, cin, tl, g0, b, ws.zeros, ws.in);
    for (Index xi = 0; xi < 16; ++xi)
      winograd::gemm(ws.in + xi * b * cin, b, cin, ws.kernel + xi * cin * cout, cout, ws.out + xi * b * cout);
    winograd::output_transform(ws.out, cout, tl, g0, b, bias, y, accumulate);
  }
}

/// dw (cout x 9 cin, column-major) += dL/dW of the convolution above given dy (cout x h w n) and x.
inline void conv3x3_winograd_weight_grad(const float* x, Index cin, Index h, Index w, const float* dy, Index cout,
                                         float* dw, Index n, float* scratch) {
  const winograd::Tiles tl(h, w);
  const winograd::Scratch ws(scratch, cin, cout);
  const Index total = tl.per_sample * n;
  std::fill_n(ws.kernel, 16 * cin * cout, 0.0f);
  for (Index g0 = 0; g0 < total; g0 += ws.nb) {
    const Index b = std::min(ws.nb, total - g0);
    winograd::input_transform(x, cin, tl, g0, b, ws.zeros, ws.in);
    winograd::grad_transform(dy, cout, tl, g0, b, ws.zeros, ws.out);
    for (Index xi = 0; xi < 16; ++xi)
      winograd::gemm_tn(ws.in + xi * b * cin, cin, b, ws.out + xi * b * cout, cout, ws.kernel + xi * cin * cout);
  }
  winograd::transform_weight_grad(ws.kernel, cin, cout, dw);
}
#endif  // FLOWMATCH_CONV_DIRECT

}  // namespace flowmatch::detail::unet
