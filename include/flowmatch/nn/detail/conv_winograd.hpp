#pragma once
/// \file
/// Winograd F(m x m, 3x3), m = 2 or 4, for UNetVectorField's stride-1 3x3 convolutions (padding
/// 1), single precision, AVX2 + FMA: the forward pass, the input gradient (the same convolution of
/// dy with the kernel flipped and transposed) and the weight gradient.
///
/// The output grid is cut into m x m tiles (the last row and column of tiles cross the border when
/// a side is not a multiple of m: what falls outside reads zeros and is not written). A tile's
/// a x a input patch d (a = m + 2) goes to V = B^T d B, the kernel g of each (input, output) channel
/// pair to U = G g G^T, and the tile's output is A^T (U . V) A. With channels last, the transforms
/// run 8 channels to a vector, and the a^2 elementwise products over a block of tiles are a^2 GEMMs,
/// (tiles x C_in) (C_in x C_out), with the direct kernel's register tile (6 rows x 16 columns). The
/// weight gradient is the transpose: dU = sum over tiles of V . (A dY A^T), a^2 GEMMs
/// (C_in x tiles) (tiles x C_out), and dW = G^T dU G.
///
/// Multiplications per output: 9 direct, 4 for F(2x2), 2.25 for F(4x4), whose transforms cost more
/// and round more: in float, against im2col + GEMM, F(2x2) differs by up to about 1e-6 of the
/// largest magnitude, F(4x4) with the points 0, +-1, +-2 (Lavin and Gray) by up to about 1e-5
/// (tests/nn/unet_test.cpp). tile_for picks, per grid, the one with less GEMM work.

#include <algorithm>
#include <cstddef>

#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/detail/conv_direct.hpp"

namespace flowmatch::detail::unet {

#if FLOWMATCH_CONV_DIRECT
namespace winograd {

// The arithmetic of the 1-D transforms, on 8 channels to a vector: add, sub, mul(a, c) = a c and
// mad(a, c, b) = a c + b for a constant c.
inline __m256 add(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
inline __m256 sub(__m256 a, __m256 b) { return _mm256_sub_ps(a, b); }
inline __m256 mul(__m256 a, float c) { return _mm256_mul_ps(a, _mm256_set1_ps(c)); }
inline __m256 mad(__m256 a, float c, __m256 b) { return _mm256_fmadd_ps(a, _mm256_set1_ps(c), b); }

/// The 1-D transforms of F(m, 3) over kA = m + 2 points: data (B^T d), output (A^T M), kernel
/// (G g), and the adjoints that the weight gradient needs, grad (A dy) and kernel_grad (G^T dU).
template <int M>
struct Points;

/// F(2, 3), points 0, +-1, infinity.
template <>
struct Points<2> {
  static constexpr int kA = 4;
  template <class V>
  static void data(const V (&d)[4], V (&r)[4]) {
    r[0] = sub(d[0], d[2]);
    r[1] = add(d[1], d[2]);
    r[2] = sub(d[2], d[1]);
    r[3] = sub(d[1], d[3]);
  }
  template <class V>
  static void output(const V (&m)[4], V (&o)[2]) {
    o[0] = add(add(m[0], m[1]), m[2]);
    o[1] = sub(sub(m[1], m[2]), m[3]);
  }
  template <class V>
  static void kernel(const V (&g)[3], V (&u)[4]) {
    const V s = add(g[0], g[2]);
    u[0] = g[0];
    u[1] = mul(add(s, g[1]), 0.5f);
    u[2] = mul(sub(s, g[1]), 0.5f);
    u[3] = g[2];
  }
  template <class V>
  static void grad(const V (&y)[2], V (&e)[4]) {
    e[0] = y[0];
    e[1] = add(y[0], y[1]);
    e[2] = sub(y[0], y[1]);
    e[3] = sub(V{}, y[1]);
  }
  template <class V>
  static void kernel_grad(const V (&m)[4], V (&g)[3]) {
    const V h = mul(add(m[1], m[2]), 0.5f);
    g[0] = add(m[0], h);
    g[1] = mul(sub(m[1], m[2]), 0.5f);
    g[2] = add(h, m[3]);
  }
};

/// F(4, 3), points 0, +-1, +-2, infinity (Lavin and Gray, 2016). The mixed set 0, +-1, 1/2, -2
/// rounds about 1.5 times less in float but has no +- pairs to share work; +-1/2 rounds a little
/// more than +-2.
template <>
struct Points<4> {
  static constexpr int kA = 6;
  template <class V>
  static void data(const V (&d)[6], V (&r)[6]) {
    const V a = mad(d[2], -4.0f, d[4]), b = mad(d[1], -4.0f, d[3]);  // d4 - 4 d2, d3 - 4 d1
    const V c = sub(d[4], d[2]), e = mul(sub(d[3], d[1]), 2.0f);
    r[0] = mad(d[0], 4.0f, mad(d[2], -5.0f, d[4]));
    r[1] = add(a, b);
    r[2] = sub(a, b);
    r[3] = add(c, e);
    r[4] = sub(c, e);
    r[5] = mad(d[1], 4.0f, mad(d[3], -5.0f, d[5]));
  }
  template <class V>
  static void output(const V (&m)[6], V (&o)[4]) {
    const V a = add(m[1], m[2]), b = sub(m[1], m[2]), c = add(m[3], m[4]), d = sub(m[3], m[4]);
    o[0] = add(add(m[0], a), c);
    o[1] = mad(d, 2.0f, b);
    o[2] = mad(c, 4.0f, a);
    o[3] = add(mad(d, 8.0f, b), m[5]);
  }
  template <class V>
  static void kernel(const V (&g)[3], V (&u)[6]) {
    const V s = add(g[0], g[2]), t = mad(g[0], 0.25f, g[2]);  // g0 + g2, g0 / 4 + g2
    u[0] = mul(g[0], 0.25f);
    u[1] = mul(add(s, g[1]), -1.0f / 6);
    u[2] = mul(sub(s, g[1]), -1.0f / 6);
    u[3] = mul(mad(g[1], 0.5f, t), 1.0f / 6);
    u[4] = mul(mad(g[1], -0.5f, t), 1.0f / 6);
    u[5] = g[2];
  }
  template <class V>
  static void grad(const V (&y)[4], V (&e)[6]) {
    const V a = add(y[0], y[2]), b = add(y[1], y[3]);
    const V c = mad(y[2], 4.0f, y[0]), d = mad(y[3], 8.0f, mul(y[1], 2.0f));
    e[0] = y[0];
    e[1] = add(a, b);
    e[2] = sub(a, b);
    e[3] = add(c, d);
    e[4] = sub(c, d);
    e[5] = y[3];
  }
  template <class V>
  static void kernel_grad(const V (&m)[6], V (&g)[3]) {
    const V a = add(m[1], m[2]), b = sub(m[1], m[2]), c = add(m[3], m[4]), d = sub(m[3], m[4]);
    g[0] = mad(m[0], 0.25f, mad(a, -1.0f / 6, mul(c, 1.0f / 24)));
    g[1] = mad(b, -1.0f / 6, mul(d, 1.0f / 12));
    g[2] = add(mul(sub(c, a), 1.0f / 6), m[5]);
  }
};

/// T in T^T for the 1-D transform f (NI values to NO) of the NI x NI values in(i, j), handed to
/// out(i, j, value): f on each row, then on each column, so that only the NI x NO intermediate
/// values are held at once and the results go straight out.
template <int NI, int NO, class V, class F, class In, class Out>
inline void sandwich(F&& f, In&& in, Out&& out) {
  V t[NI][NO];
  for (int i = 0; i < NI; ++i) {
    V c[NI];
    for (int j = 0; j < NI; ++j) c[j] = in(i, j);
    f(c, t[i]);
  }
  for (int j = 0; j < NO; ++j) {
    V c[NI], r[NO];
    for (int i = 0; i < NI; ++i) c[i] = t[i][j];
    f(c, r);
    for (int i = 0; i < NO; ++i) out(i, j, r[i]);
  }
}

/// m x m output tiles on an h x w grid, n samples; tile g is sample g / per_sample, row-major within.
template <int M>
struct Tiles {
  Index h = 0, w = 0, tw = 0, per_sample = 0;
  Tiles(Index h_, Index w_) : h(h_), w(w_), tw((w_ + M - 1) / M), per_sample(((h_ + M - 1) / M) * tw) {}

  /// The N x N pixels of tile g's window at (m ty + off, m tx + off) in x (c channels per pixel,
  /// h w per sample): pointers, `outside` for pixels off the grid.
  template <int N, class T>
  void window(Index g, Index off, T* x, Index c, T* outside, T* (&p)[N][N]) const {
    const Index s = g / per_sample, r = g % per_sample, y0 = M * (r / tw) + off, x0 = M * (r % tw) + off;
    T* xs = x + s * h * w * c;
    for (Index i = 0; i < N; ++i)
      for (Index j = 0; j < N; ++j) {
        const Index yy = y0 + i, xx = x0 + j;
        p[i][j] = yy >= 0 && yy < h && xx >= 0 && xx < w ? xs + (yy * w + xx) * c : outside;
      }
  }
};

/// Tiles per block: the block's transformed inputs and products (a^2 (cin + cout) floats per tile)
/// stay near 192 KiB, in L2; a multiple of 6 (the GEMM's row tile).
template <int M>
inline Index block_tiles(Index cin, Index cout) {
  constexpr Index a2 = (M + 2) * (M + 2);
  const Index b = (Index{48} << 10) / (a2 * (cin + cout));
  return std::max<Index>(12, b / 6 * 6);
}

/// The scratch of conv3x3_winograd and conv3x3_winograd_weight_grad, laid out in one place: the
/// transformed kernel or its gradient (a^2 cin cout), one block's transformed inputs (a^2 nb cin)
/// and products or transformed dy (a^2 nb cout), and a row of zeros (max(cin, cout), written here).
template <int M>
struct Scratch {
  static constexpr Index kA2 = (M + 2) * (M + 2);
  static Index floats(Index cin, Index cout) {
    return kA2 * cin * cout + kA2 * block_tiles<M>(cin, cout) * (cin + cout) + std::max(cin, cout);
  }
  Scratch(float* s, Index cin, Index cout)
      : nb(block_tiles<M>(cin, cout)), kernel(s), in(kernel + kA2 * cin * cout), out(in + kA2 * nb * cin),
        zeros(out + kA2 * nb * cout) {
    std::fill_n(zeros, std::max(cin, cout), 0.0f);
  }
  Index nb;
  float* kernel;
  float* in;
  float* out;
  float* zeros;
};

/// U[xi][ci][co] (C_out fastest) = (G g G^T)[xi] for g[t] = w[co + cout (t cin + ci)] (HWIO), 8
/// output channels to a vector.
template <int M>
inline void transform_weights(const float* w, Index cin, Index cout, float* u) {
  constexpr int kA = M + 2;
  const Index plane = cin * cout;
  for (Index ci = 0; ci < cin; ++ci)
    for (Index co = 0; co < cout; co += 8)
      sandwich<3, kA, __m256>([](const auto& a, auto& b) { Points<M>::kernel(a, b); },
                              [&](int i, int j) { return _mm256_loadu_ps(w + co + cout * ((3 * i + j) * cin + ci)); },
                              [&](int i, int j, __m256 v) {
                                _mm256_storeu_ps(u + (kA * i + j) * plane + ci * cout + co, v);
                              });
}

/// dw[co + cout (t cin + ci)] += (G^T dU G)[t] for dU[xi][ci][co] (C_out fastest).
template <int M>
inline void transform_weight_grad(const float* du, Index cin, Index cout, float* dw) {
  constexpr int kA = M + 2;
  const Index plane = cin * cout;
  for (Index ci = 0; ci < cin; ++ci)
    for (Index co = 0; co < cout; co += 8)
      sandwich<kA, 3, __m256>([](const auto& a, auto& b) { Points<M>::kernel_grad(a, b); },
                              [&](int i, int j) { return _mm256_loadu_ps(du + (kA * i + j) * plane + ci * cout + co); },
                              [&](int i, int j, __m256 v) {
                                float* d = dw + co + cout * ((3 * i + j) * cin + ci);
                                _mm256_storeu_ps(d, _mm256_add_ps(_mm256_loadu_ps(d), v));
                              });
}

/// V[xi][k][ch] (plane nb c) = (B^T d B)[xi] for tiles g0 + k, k < nb. Requires c % 8 == 0.
template <int M>
inline void input_transform(const float* x, Index c, const Tiles<M>& tl, Index g0, Index nb, const float* zeros,
                            float* v) {
  constexpr int kA = M + 2;
  const Index plane = nb * c;
  for (Index k = 0; k < nb; ++k) {
    const float* p[kA][kA];
    tl.template window<kA>(g0 + k, -1, x, c, zeros, p);
    float* o = v + k * c;
    for (Index ch = 0; ch < c; ch += 8)
      sandwich<kA, kA, __m256>([](const auto& a, auto& b) { Points<M>::data(a, b); },
                               [&](int i, int j) { return _mm256_loadu_ps(p[i][j] + ch); },
                               [&](int i, int j, __m256 r) { _mm256_storeu_ps(o + (kA * i + j) * plane + ch, r); });
  }
}

/// Tile k's output A^T M A (M[xi][k][co], plane nb cout) written to y (or added when accumulate),
/// plus bias (may be null), for tiles g0 + k; pixels outside the grid are dropped.
template <int M>
inline void output_transform(const float* m, Index cout, const Tiles<M>& tl, Index g0, Index nb, const float* bias,
                             float* y, bool accumulate) {
  constexpr int kA = M + 2;
  const Index plane = nb * cout;
  for (Index k = 0; k < nb; ++k) {
    float* q[M][M];
    tl.template window<M>(g0 + k, 0, y, cout, static_cast<float*>(nullptr), q);
    const float* mk = m + k * cout;
    for (Index co = 0; co < cout; co += 8) {
      const __m256 b = bias ? _mm256_loadu_ps(bias + co) : _mm256_setzero_ps();
      sandwich<kA, M, __m256>([](const auto& a, auto& r) { Points<M>::output(a, r); },
                              [&](int i, int j) { return _mm256_loadu_ps(mk + (kA * i + j) * plane + co); },
                              [&](int i, int j, __m256 o) {
                                float* d = q[i][j];
                                if (!d) return;
                                __m256 v = _mm256_add_ps(o, b);
                                if (accumulate) v = _mm256_add_ps(v, _mm256_loadu_ps(d + co));
                                _mm256_storeu_ps(d + co, v);
                              });
    }
  }
}

/// T[xi][k][co] (plane nb cout) = (A dY A^T)[xi] for tile g0 + k's m x m block of dy (zeros outside).
template <int M>
inline void grad_transform(const float* dy, Index cout, const Tiles<M>& tl, Index g0, Index nb, const float* zeros,
                           float* t) {
  constexpr int kA = M + 2;
  const Index plane = nb * cout;
  for (Index k = 0; k < nb; ++k) {
    const float* p[M][M];
    tl.template window<M>(g0 + k, 0, dy, cout, zeros, p);
    float* o = t + k * cout;
    for (Index co = 0; co < cout; co += 8)
      sandwich<M, kA, __m256>([](const auto& a, auto& b) { Points<M>::grad(a, b); },
                              [&](int i, int j) { return _mm256_loadu_ps(p[i][j] + co); },
                              [&](int i, int j, __m256 r) { _mm256_storeu_ps(o + (kA * i + j) * plane + co, r); });
  }
}
// C rows [i, i + R) (of ldc), columns [j, j + 8 NB), over k: C = A B with A's row r at a + r lda
// (kTransA false), or C += A^T B with A k x lda, row r of A^T its column a + r (kTransA true).
template <bool kTransA, int R, int NB>
inline void gemm_tile(const float* a, Index lda, const float* b, Index ldb, Index k, float* c, Index ldc) {
  // The loops over the register tile are unrolled early (the pragmas): unrolled late, GCC (12, -O3)
  // kept the sums in a stack array besides the registers, a store per FMA.
  __m256 acc[R][NB];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NB; ++j) acc[r][j] = _mm256_setzero_ps();
  for (Index kk = 0; kk < k; ++kk, b += ldb) {
    __m256 bv[NB];
#pragma GCC unroll 4
    for (int j = 0; j < NB; ++j) bv[j] = _mm256_loadu_ps(b + 8 * j);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256 av = _mm256_broadcast_ss(kTransA ? a + kk * lda + r : a + r * lda + kk);
#pragma GCC unroll 4
      for (int j = 0; j < NB; ++j) acc[r][j] = _mm256_fmadd_ps(av, bv[j], acc[r][j]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NB; ++j) {
      float* cj = c + r * ldc + 8 * j;
      _mm256_storeu_ps(cj, kTransA ? _mm256_add_ps(_mm256_loadu_ps(cj), acc[r][j]) : acc[r][j]);
    }
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

/// The Winograd tile for an h x w grid: 4 where F(4x4) does less GEMM work (a^2 times the tiles)
/// than F(2x2), which holds on every grid but the smallest (1 or 2 pixels to a side).
inline int tile_for(Index h, Index w) {
  const auto work = [&](Index m) { return (m + 2) * (m + 2) * ((h + m - 1) / m) * ((w + m - 1) / m); };
  return work(4) < work(2) ? 4 : 2;
}

template <int M>
inline void conv3x3(const float* x, Index cin, Index h, Index w, const float* wts, Index cout, const float* bias,
                    float* y, Index n, bool accumulate, float* scratch) {
  constexpr Index a2 = (M + 2) * (M + 2);
  const Tiles<M> tl(h, w);
  const Scratch<M> ws(scratch, cin, cout);
  const Index total = tl.per_sample * n;
  transform_weights<M>(wts, cin, cout, ws.kernel);
  for (Index g0 = 0; g0 < total; g0 += ws.nb) {
    const Index b = std::min(ws.nb, total - g0);
    input_transform<M>(x, cin, tl, g0, b, ws.zeros, ws.in);
    for (Index xi = 0; xi < a2; ++xi)
      gemm(ws.in + xi * b * cin, b, cin, ws.kernel + xi * cin * cout, cout, ws.out + xi * b * cout);
    output_transform<M>(ws.out, cout, tl, g0, b, bias, y, accumulate);
  }
}

template <int M>
inline void conv3x3_weight_grad(const float* x, Index cin, Index h, Index w, const float* dy, Index cout, float* dw,
                                Index n, float* scratch) {
  constexpr Index a2 = (M + 2) * (M + 2);
  const Tiles<M> tl(h, w);
  const Scratch<M> ws(scratch, cin, cout);
  const Index total = tl.per_sample * n;
  std::fill_n(ws.kernel, a2 * cin * cout, 0.0f);
  for (Index g0 = 0; g0 < total; g0 += ws.nb) {
    const Index b = std::min(ws.nb, total - g0);
    input_transform<M>(x, cin, tl, g0, b, ws.zeros, ws.in);
    grad_transform<M>(dy, cout, tl, g0, b, ws.zeros, ws.out);
    for (Index xi = 0; xi < a2; ++xi)
      gemm_tn(ws.in + xi * b * cin, cin, b, ws.out + xi * b * cout, cout, ws.kernel + xi * cin * cout);
  }
  transform_weight_grad<M>(ws.kernel, cin, cout, dw);
}

}  // namespace winograd

/// Whether the Winograd path can run a stride-1 3x3 convolution of cin -> cout channels (float).
inline bool conv_winograd_available(Index cin, Index cout) { return cin % 8 == 0 && cout % 8 == 0; }

/// Scratch floats for conv3x3_winograd and conv3x3_winograd_weight_grad (either direction, either tile).
inline Index conv3x3_winograd_scratch(Index cin, Index cout) {
  return std::max(winograd::Scratch<2>::floats(cin, cout), winograd::Scratch<4>::floats(cin, cout));
}

/// y (cout x h w n) = [y +] bias + conv(x) (stride 1, padding 1) for x (cin x h w n), channels last,
/// weights w (cout x 9 cin, column-major, HWIO); bias may be null; tile: 2 or 4 (F(tile x tile, 3x3)).
/// scratch: conv3x3_winograd_scratch floats. Requires conv_winograd_available(cin, cout).
inline void conv3x3_winograd(const float* x, Index cin, Index h, Index w, const float* wts, Index cout,
                             const float* bias, float* y, Index n, bool accumulate, float* scratch, int tile) {
  if (tile == 4)
    winograd::conv3x3<4>(x, cin, h, w, wts, cout, bias, y, n, accumulate, scratch);
  else
    winograd::conv3x3<2>(x, cin, h, w, wts, cout, bias, y, n, accumulate, scratch);
}

/// dw (cout x 9 cin, column-major) += dL/dW of the convolution above given dy (cout x h w n) and x.
inline void conv3x3_winograd_weight_grad(const float* x, Index cin, Index h, Index w, const float* dy, Index cout,
                                         float* dw, Index n, float* scratch, int tile) {
  if (tile == 4)
    winograd::conv3x3_weight_grad<4>(x, cin, h, w, dy, cout, dw, n, scratch);
  else
    winograd::conv3x3_weight_grad<2>(x, cin, h, w, dy, cout, dw, n, scratch);
}
#endif  // FLOWMATCH_CONV_DIRECT

}  // namespace flowmatch::detail::unet
