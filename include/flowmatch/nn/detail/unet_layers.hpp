#pragma once
/// \file
/// The layers of UNetVectorField, each with a hand-written backward pass: 2-D convolution (3x3 at
/// stride 1 or 2, 3x3 after nearest x2 upsampling, 1x1), GroupNorm, SiLU and FiLM.
///
/// Layout. An activation of C channels on an H x W grid for n samples is a C x (H W n) matrix:
/// one column per pixel of each sample (sample-major, then row-major pixels), the C channels of a
/// pixel contiguous (NHWC). With it a 1x1 convolution is one matrix product, and a 3x3 one is a
/// matrix product with a gathered ("im2col") matrix whose column for an output pixel stacks the
/// channel vectors of its 9 source pixels, copied as contiguous runs of C values. Strides, zero
/// padding and nearest upsampling are all one table: for each output pixel and tap, the source
/// pixel's index (or -1 for padding). Parameters live in the model's flat vector: a layer knows
/// its offsets; a 3x3 weight is C_out x (9 C_in), column (ky 3 + kx) C_in + c_in, that is HWIO
/// order read row-major (what the checkpoint names it).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "flowmatch/core/random.hpp"
#include "flowmatch/nn/detail/blocked_product.hpp"
#include "flowmatch/nn/detail/conv_direct.hpp"
#include "flowmatch/nn/detail/conv_winograd.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch::detail::unet {

/// Weight and bias drawn as PyTorch's defaults for Conv2d and Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
template <Real S>
void init_uniform(S* p, Index count, Index fan_in, Rng& rng) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  for (Index i = 0; i < count; ++i) p[i] = static_cast<S>((2.0 * rng.uniform() - 1.0) * bound);
}

/// silu(f) = f sigmoid(f), elementwise, into s.
template <class DF, class DS>
void silu_forward(const Eigen::MatrixBase<DF>& f, Eigen::MatrixBase<DS>& s) {
  using S = typename DF::Scalar;
  s.derived().array() = f.array() / (S(1) + (-f.array()).exp());
}
/// df = ds silu'(f), silu'(f) = sigmoid(f) (1 + f (1 - sigmoid(f))).
template <class DF, class DG, class DO>
void silu_backward(const Eigen::MatrixBase<DF>& f, const Eigen::MatrixBase<DG>& ds, Eigen::MatrixBase<DO>& df) {
  using S = typename DF::Scalar;
  const auto sig = (S(1) / (S(1) + (-f.array()).exp()));
  df.derived().array() = ds.array() * sig * (S(1) + f.array() * (S(1) - sig));
}

enum class ConvKind : std::uint8_t { k3, k3_stride2, up2_k3, k1 };

/// A 2-D convolution with zero padding 1 (3x3 kinds) on an H x W grid.
struct Conv {
  Index cin = 0, cout = 0, hin = 0, win = 0, hout = 0, wout = 0;
  ConvKind kind = ConvKind::k3;
  Index w_off = 0, b_off = 0;
  std::vector<int> src;  // hout wout 9: source pixel in the input grid, -1 = zero padding
  /// Float, stride 1 or upsampling, channel counts multiples of 8, AVX2 + FMA compiled in: the
  /// forward pass and both gradients run Winograd F(m x m, 3x3) (conv_winograd.hpp) instead of the
  /// direct kernel; upsampling as 4 phases of folded kernels on the small grid, shuffled.
  bool winograd = false;
  /// Its tile m, 2 or 4: the one with less GEMM work on the grid (F(2x2) for upsampling).
  int winograd_tile = 2;

  Index taps() const { return kind == ConvKind::k1 ? 1 : 9; }
  Index hw_in() const { return hin * win; }
  Index hw_out() const { return hout * wout; }
  Index num_params() const { return cout * taps() * cin + cout; }

  Conv() = default;
  Conv(Index cin_, Index cout_, Index h, Index w, ConvKind k, Index offset) : cin(cin_), cout(cout_), kind(k) {
    hin = h;
    win = w;
    hout = k == ConvKind::k3_stride2 ? (h + 1) / 2 : k == ConvKind::up2_k3 ? 2 * h : h;
    wout = k == ConvKind::k3_stride2 ? (w + 1) / 2 : k == ConvKind::up2_k3 ? 2 * w : w;
    w_off = offset;
    b_off = offset + cout * taps() * cin;
    if (k == ConvKind::k1) return;
#if FLOWMATCH_CONV_DIRECT
    winograd = (k == ConvKind::k3 || k == ConvKind::up2_k3) && conv_winograd_available(cin, cout);
    // The upsampling fold keeps F(2x2): measured on the U-Net's grids (7x7 64 -> 64, 14x14 32 -> 32
    // channels), F(4x4) is no faster there, and at 14x14 its backward pass is 25% slower.
    winograd_tile = k == ConvKind::up2_k3 ? 2 : winograd::tile_for(h, w);
#endif
    src.assign(static_cast<std::size_t>(hout * wout * 9), -1);
    for (Index oy = 0; oy < hout; ++oy)
      for (Index ox = 0; ox < wout; ++ox)
        for (Index ky = 0; ky < 3; ++ky)
          for (Index kx = 0; kx < 3; ++kx) {
            Index sy, sx;
            bool inside;
            if (k == ConvKind::up2_k3) {  // nearest x2, then a 3x3 convolution on the 2h x 2w grid
              const Index uy = oy + ky - 1, ux = ox + kx - 1;
              inside = uy >= 0 && uy < hout && ux >= 0 && ux < wout;
              sy = uy / 2;
              sx = ux / 2;
            } else {
              const Index stride = k == ConvKind::k3_stride2 ? 2 : 1;
              sy = oy * stride + ky - 1;
              sx = ox * stride + kx - 1;
              inside = sy >= 0 && sy < hin && sx >= 0 && sx < win;
            }
            if (inside) src[static_cast<std::size_t>((oy * wout + ox) * 9 + ky * 3 + kx)] = static_cast<int>(sy * win + sx);
          }
  }

  template <Real S>
  void init(S* params, Rng& rng) const {
    init_uniform(params + w_off, cout * taps() * cin, taps() * cin, rng);
    init_uniform(params + b_off, cout, taps() * cin, rng);
  }

  /// Samples per im2col chunk: the gathered matrix stays near `budget` scalars.
  Index chunk(Index n) const {
    constexpr Index budget = Index{1} << 19;
    return std::clamp<Index>(budget / std::max<Index>(1, 9 * cin * hw_out()), 1, n);
  }

  // Gathers samples [s0, s0 + ns) of x (cin x hw_in n) into col (9 cin x hw_out ns).
  template <Real S>
  void im2col(const S* x, Index s0, Index ns, S* col) const {
    const Index hwi = hw_in(), hwo = hw_out();
    for (Index s = 0; s < ns; ++s) {
      const S* xs = x + (s0 + s) * hwi * cin;
      for (Index p = 0; p < hwo; ++p) {
        S* c = col + (s * hwo + p) * 9 * cin;
        const int* tab = src.data() + p * 9;
        for (Index k = 0; k < 9; ++k, c += cin) {
          if (tab[k] >= 0)
            std::copy_n(xs + static_cast<Index>(tab[k]) * cin, cin, c);
          else
            std::fill_n(c, cin, S(0));
        }
      }
    }
  }
  // Scatters-adds col (9 cin x hw_out ns) into samples [s0, s0 + ns) of dx.
  template <Real S>
  void col2im(const S* col, Index s0, Index ns, S* dx) const {
    const Index hwi = hw_in(), hwo = hw_out();
    for (Index s = 0; s < ns; ++s) {
      S* xs = dx + (s0 + s) * hwi * cin;
      for (Index p = 0; p < hwo; ++p) {
        const S* c = col + (s * hwo + p) * 9 * cin;
        const int* tab = src.data() + p * 9;
        for (Index k = 0; k < 9; ++k, c += cin)
          if (tab[k] >= 0) {
            S* d = xs + static_cast<Index>(tab[k]) * cin;
            for (Index i = 0; i < cin; ++i) d[i] += c[i];
          }
      }
    }
  }

  /// y = conv(x) for n samples (x: cin x hw_in n, y: cout x hw_out n, both sized by the caller).
  template <Real S>
  void forward(const S* params, const Matrix<S>& x, Matrix<S>& y, Vector<S>& scratch, Index n,
               bool portable = false) const {
#if FLOWMATCH_CONV_DIRECT
    if constexpr (std::is_same_v<S, float>) {
      if (!portable && winograd && kind == ConvKind::up2_k3) {
        const Index c4 = 4 * cout, hw = hw_in(), step = winograd::upsample_chunk(cout, hw, n);
        const Index need = 9 * cin * c4 + c4 * hw * step + conv3x3_winograd_scratch(cin, c4);
        if (scratch.size() < need) scratch.resize(need);  // grows once
        float* wp = scratch.data();
        float* buf = wp + 9 * cin * c4;
        float* work = buf + c4 * hw * step;
        winograd::upsample_weights(params + w_off, cin, cout, wp);
        for (Index s0 = 0; s0 < n; s0 += step) {
          const Index m = std::min(step, n - s0);
          conv3x3_winograd(x.data() + s0 * hw * cin, cin, hin, win, wp, c4, nullptr, buf, m, false, work,
                           winograd_tile);
          winograd::pixel_shuffle(buf, cout, hin, win, m, params + b_off, y.data() + s0 * 4 * hw * cout);
        }
        return;
      }
      if (!portable && winograd) {
        const Index need = conv3x3_winograd_scratch(cin, cout);
        if (scratch.size() < need) scratch.resize(need);  // grows once
        conv3x3_winograd(x.data(), cin, hin, win, params + w_off, cout, params + b_off, y.data(), n, false,
                         scratch.data(), winograd_tile);
        return;
      }
      if (!portable && kind != ConvKind::k1 && conv_direct_available<S>(cout)) {
        if (scratch.size() < cin) scratch.resize(cin);  // grows once
        scratch.head(cin).setZero();
        conv3x3_direct(x.data(), cin, hw_in(), src.data(), hw_out(), params + w_off, cout, params + b_off, y.data(), n,
                       false, scratch.data());
        return;
      }
    }
#endif
    (void)portable;
    const Eigen::Map<const Matrix<S>> w(params + w_off, cout, taps() * cin);
    const Eigen::Map<const Vector<S>> b(params + b_off, cout);
    if (kind == ConvKind::k1) {
      product_in_pieces<false, S>(y, w, x);
    } else {
      const Index hwo = hw_out(), step = chunk(n);
      if (scratch.size() < 9 * cin * step * hwo) scratch.resize(9 * cin * step * hwo);  // grows once
      Eigen::Map<Matrix<S>> col(scratch.data(), 9 * cin, step * hwo);
      for (Index s0 = 0; s0 < n; s0 += step) {
        const Index ns = std::min(step, n - s0);
        im2col(x.data(), s0, ns, col.data());
        product_in_pieces<false, S>(y.middleCols(s0 * hwo, ns * hwo), w, col.leftCols(ns * hwo));
      }
    }
    y.colwise() += b;
  }

  /// Given dy (cout x hw_out n): adds dL/dW, dL/db into grad, and dL/dx into dx (if not null; with
  /// add_dx false dL/dx replaces what dx holds, which the Winograd path writes without zeroing first).
  template <Real S>
  void backward(const S* params, S* grad, const Matrix<S>& x, const Matrix<S>& dy, Matrix<S>* dx, Vector<S>& scratch,
                Vector<S>& dscratch, Index n, bool portable = false, bool add_dx = true) const {
    if (dx && !add_dx && !(FLOWMATCH_CONV_DIRECT && std::is_same_v<S, float> && !portable && winograd)) dx->setZero();
#if FLOWMATCH_CONV_DIRECT
    if constexpr (std::is_same_v<S, float>) {
      if (!portable && winograd && kind == ConvKind::up2_k3) {
        Eigen::Map<Vector<S>> db(grad + b_off, cout);
        db += dy.rowwise().sum();
        const Index c4 = 4 * cout, hw = hw_in(), step = winograd::upsample_chunk(cout, hw, n);
        const Index need = 18 * cin * c4 + c4 * hw * step + conv3x3_winograd_scratch(cin, c4);
        if (scratch.size() < need) scratch.resize(need);  // grows once
        float* wp = scratch.data();
        float* dwp = wp + 9 * cin * c4;
        float* buf = dwp + 9 * cin * c4;
        float* work = buf + c4 * hw * step;
        std::fill_n(dwp, 9 * cin * c4, 0.0f);
        float* wt = nullptr;
        if (dx) {
          if (dscratch.size() < 9 * cin * c4) dscratch.resize(9 * cin * c4);  // grows once
          wt = dscratch.data();
          winograd::upsample_weights(params + w_off, cin, cout, wp);
          winograd::flip_transpose(wp, cin, c4, wt);
        }
        for (Index s0 = 0; s0 < n; s0 += step) {
          const Index m = std::min(step, n - s0);
          winograd::pixel_unshuffle(dy.data() + s0 * 4 * hw * cout, cout, hin, win, m, buf);
          conv3x3_winograd_weight_grad(x.data() + s0 * hw * cin, cin, hin, win, buf, c4, dwp, m, work,
                                       winograd_tile);
          if (dx)
            conv3x3_winograd(buf, c4, hin, win, wt, cin, nullptr, dx->data() + s0 * hw * cin, m, add_dx, work,
                             winograd_tile);
        }
        winograd::upsample_fold_grad(dwp, cin, cout, grad + w_off);
        return;
      }
      if (!portable && winograd) {
        Eigen::Map<Vector<S>> db(grad + b_off, cout);
        db += dy.rowwise().sum();
        const Index need = conv3x3_winograd_scratch(cin, cout);
        if (scratch.size() < need) scratch.resize(need);  // grows once
        conv3x3_winograd_weight_grad(x.data(), cin, hin, win, dy.data(), cout, grad + w_off, n, scratch.data(),
                                     winograd_tile);
        if (!dx) return;
        // dL/dx: the same convolution of dy with the kernel flipped and transposed (C_in fastest).
        if (dscratch.size() < 9 * cin * cout) dscratch.resize(9 * cin * cout);  // grows once
        float* wt = dscratch.data();
        winograd::flip_transpose(params + w_off, cin, cout, wt);
        conv3x3_winograd(dy.data(), cout, hout, wout, wt, cin, nullptr, dx->data(), n, add_dx, scratch.data(),
                         winograd_tile);
        return;
      }
      if (!portable && kind != ConvKind::k1 && conv_direct_available<S>(cout) && (!dx || conv_direct_available<S>(cin))) {
        Eigen::Map<Vector<S>> db(grad + b_off, cout);
        db += dy.rowwise().sum();
        const Index wsize = 9 * cin * cout;
        const Index nz = std::max(cin, cout);
        if (dscratch.size() < wsize + nz) dscratch.resize(wsize + nz);  // grows once
        float* wt = dscratch.data();
        const float* zeros = wt + wsize;  // a row of zeros, as long as any pixel's channels
        std::fill_n(wt + wsize, nz, 0.0f);
        conv3x3_weight_grad(x.data(), cin, hw_in(), src.data(), hw_out(), dy.data(), cout, grad + w_off, n, zeros);
        if (!dx) return;
        // The kernel transposed (C_in fastest); at stride 1 also flipped: dL/dx is then the
        // convolution of dy on the same table (input pixel q gets output pixel src(q, t) through
        // tap 8 - t). Other kinds scatter through the table with the unflipped taps.
        const float* w = params + w_off;
        const bool flip = kind == ConvKind::k3;
        for (Index t = 0; t < 9; ++t) {
          const Index ts = flip ? 8 - t : t;
          for (Index co = 0; co < cout; ++co)
            for (Index ci = 0; ci < cin; ++ci) wt[ci + cin * (t * cout + co)] = w[co + cout * (ts * cin + ci)];
        }
        if (flip)
          conv3x3_direct(dy.data(), cout, hw_out(), src.data(), hw_in(), wt, cin, nullptr, dx->data(), n, true, zeros);
        else
          conv3x3_input_grad_scatter(dy.data(), cout, hw_out(), src.data(), hw_in(), wt, cin, dx->data(), n);
        return;
      }
    }
#endif
    (void)portable;
    const Eigen::Map<const Matrix<S>> w(params + w_off, cout, taps() * cin);
    Eigen::Map<Matrix<S>> dw(grad + w_off, cout, taps() * cin);
    Eigen::Map<Vector<S>> db(grad + b_off, cout);
    db += dy.rowwise().sum();
    if (kind == ConvKind::k1) {
      product_in_pieces<true, S>(dw, dy, x.transpose());
      if (dx) product_in_pieces<true, S>(*dx, w.transpose(), dy);
      return;
    }
    const Index hwo = hw_out(), step = chunk(n);
    if (scratch.size() < 9 * cin * step * hwo) scratch.resize(9 * cin * step * hwo);  // grows once
    if (dx && dscratch.size() < 9 * cin * step * hwo) dscratch.resize(9 * cin * step * hwo);
    Eigen::Map<Matrix<S>> col(scratch.data(), 9 * cin, step * hwo);
    Eigen::Map<Matrix<S>> dcol(dscratch.data(), 9 * cin, step * hwo);
    for (Index s0 = 0; s0 < n; s0 += step) {
      const Index ns = std::min(step, n - s0);
      im2col(x.data(), s0, ns, col.data());
      const auto dys = dy.middleCols(s0 * hwo, ns * hwo);
      product_in_pieces<true, S>(dw, dys, col.leftCols(ns * hwo).transpose());
      if (dx) {
        product_in_pieces<false, S>(dcol.leftCols(ns * hwo), w.transpose(), dys);
        col2im(dcol.data(), s0, ns, dx->data());
      }
    }
  }
};

/// GroupNorm (Wu and He, 2018) over C channels in G groups on an hw-pixel grid: each sample's
/// group of C/G channels is normalised over its channels and pixels together, then scaled and
/// shifted per channel (gamma, beta: C each; gamma starts at 1, beta at 0).
struct GroupNorm {
  Index c = 0, groups = 1, hw = 0;
  Index g_off = 0, b_off = 0;
  double eps = 1e-5;

  GroupNorm() = default;
  GroupNorm(Index channels, Index num_groups, Index pixels, Index offset)
      : c(channels), groups(num_groups), hw(pixels), g_off(offset), b_off(offset + channels) {}
  Index num_params() const { return 2 * c; }
  template <Real S>
  void init(S* params) const {
    std::fill_n(params + g_off, c, S(1));
    std::fill_n(params + b_off, c, S(0));
  }

  /// xhat = normalised x, y = gamma xhat + beta; rstd (groups x n) = 1 / sqrt(var + eps). Channels
  /// last: every pass runs over a sample's pixels, vectorised across the C channels of each.
  template <Real S>
  void forward(const S* params, const Matrix<S>& x, Matrix<S>& xhat, Matrix<S>& y, Matrix<S>& rstd, Index n,
               Vector<S>& scratch) const {
    using Arr = Eigen::Array<S, Eigen::Dynamic, 1>;
    const Eigen::Map<const Vector<S>> gamma(params + g_off, c), beta(params + b_off, c);
    const Index cg = c / groups;
    const S inv_count = S(1) / static_cast<S>(cg * hw);
    if (scratch.size() < 5 * c) scratch.resize(5 * c);  // grows once
    Eigen::Map<Arr> acc(scratch.data(), c), mean(scratch.data() + c, c), r(scratch.data() + 2 * c, c);
    for (Index s = 0; s < n; ++s) {
      const S* xs = x.data() + s * hw * c;
      acc.setZero();
      for (Index p = 0; p < hw; ++p) acc += Eigen::Map<const Eigen::Array<S, Eigen::Dynamic, 1>>(xs + p * c, c);
      for (Index g = 0; g < groups; ++g) mean.segment(g * cg, cg).setConstant(acc.segment(g * cg, cg).sum() * inv_count);
      acc.setZero();
      for (Index p = 0; p < hw; ++p)
        acc += (Eigen::Map<const Eigen::Array<S, Eigen::Dynamic, 1>>(xs + p * c, c) - mean).square();
      for (Index g = 0; g < groups; ++g) {
        const S v = acc.segment(g * cg, cg).sum() * inv_count;
        const auto rg = static_cast<S>(1.0 / std::sqrt(static_cast<double>(v) + eps));
        rstd(g, s) = rg;
        r.segment(g * cg, cg).setConstant(rg);
      }
      auto xh = xhat.middleCols(s * hw, hw).array();
      xh = (x.middleCols(s * hw, hw).array().colwise() - mean).colwise() * r;
      y.middleCols(s * hw, hw).array() = (xh.colwise() * gamma.array()).colwise() + beta.array();
    }
  }

  template <Real S>
  void forward_silu(const S* params, const Matrix<S>& x, Matrix<S>& xhat, Matrix<S>& out, Matrix<S>& rstd, Index n,
                    Vector<S>& scratch, const S* film = nullptr) const;
  template <Real S>
  void backward_silu(const S* params, S* grad, const Matrix<S>& xhat, const Matrix<S>& rstd, Matrix<S>& ds,
                     Matrix<S>& dx, Index n, Vector<S>& scratch, bool add_dx = true, const S* film = nullptr,
                     S* dfilm = nullptr) const;

  /// Given dy: adds dL/dgamma, dL/dbeta into grad and dL/dx into dx (or writes it there, add_dx false).
  template <Real S>
  void backward(const S* params, S* grad, const Matrix<S>& xhat, const Matrix<S>& rstd, const Matrix<S>& dy,
                Matrix<S>& dx, Index n, Vector<S>& scratch, bool add_dx = true) const {
    using Arr = Eigen::Array<S, Eigen::Dynamic, 1>;
    const Eigen::Map<const Arr> gamma(params + g_off, c);
    Eigen::Map<Arr> dgamma(grad + g_off, c), dbeta(grad + b_off, c);
    const Index cg = c / groups;
    const S inv_count = S(1) / static_cast<S>(cg * hw);
    if (scratch.size() < 8 * c) scratch.resize(8 * c);  // grows once
    Eigen::Map<Arr> a(scratch.data(), c), b(scratch.data() + c, c), m1(scratch.data() + 2 * c, c),
        m2(scratch.data() + 3 * c, c), r(scratch.data() + 4 * c, c), rg(scratch.data() + 5 * c, c),
        rm1(scratch.data() + 6 * c, c), rm2(scratch.data() + 7 * c, c);
    for (Index s = 0; s < n; ++s) {
      const S* dys = dy.data() + s * hw * c;
      const S* xhs = xhat.data() + s * hw * c;
      a.setZero();
      b.setZero();
      for (Index p = 0; p < hw; ++p) {
        const Eigen::Map<const Arr> d(dys + p * c, c);
        a += d;
        b += d * Eigen::Map<const Arr>(xhs + p * c, c);
      }
      dbeta += a;
      dgamma += b;
      for (Index g = 0; g < groups; ++g) {
        m1.segment(g * cg, cg).setConstant((gamma.segment(g * cg, cg) * a.segment(g * cg, cg)).sum() * inv_count);
        m2.segment(g * cg, cg).setConstant((gamma.segment(g * cg, cg) * b.segment(g * cg, cg)).sum() * inv_count);
        r.segment(g * cg, cg).setConstant(rstd(g, s));
      }
      rg = r * gamma;
      rm1 = r * m1;
      rm2 = r * m2;
      auto dxs = dx.middleCols(s * hw, hw).array();
      const auto d = ((dy.middleCols(s * hw, hw).array().colwise() * rg).colwise() - rm1) -
                     xhat.middleCols(s * hw, hw).array().colwise() * rm2;
      if (add_dx)
        dxs += d;
      else
        dxs = d;
    }
  }
};

/// GroupNorm, then FiLM, then SiLU in one pass over the pixels, as a residual block applies them:
/// xhat = normalised x, f = (gamma xhat + beta)(1 + scale) + shift, out = silu(f). film (2c x n,
/// column s: 1 + scale, then shift, for sample s) may be null: scale 0, shift 0. Keeps xhat and
/// rstd (groups x n) for backward_silu, which recomputes f from them.
template <Real S>
void GroupNorm::forward_silu(const S* params, const Matrix<S>& x, Matrix<S>& xhat, Matrix<S>& out, Matrix<S>& rstd,
                             Index n, Vector<S>& scratch, const S* film) const {
  const S* gamma = params + g_off;
  const S* beta = params + b_off;
  const Index cg = c / groups;
  const double count = static_cast<double>(cg * hw);
  if (scratch.size() < 6 * c) scratch.resize(6 * c);  // grows once
  S* s1 = scratch.data();
  S* s2 = s1 + c;
  S* r = s2 + c;
  S* mr = r + c;
  S* ga = mr + c;
  S* be = ga + c;
  for (Index s = 0; s < n; ++s) {
    const S* xs = x.data() + s * hw * c;
    // One pass for the statistics: sums of x - k and (x - k)^2 per channel, k = the channel's value
    // at the first pixel (a shift that keeps the squares from cancelling), combined per group in double.
    {
      using Arr = Eigen::Array<S, Eigen::Dynamic, 1>;
      Eigen::Map<Arr> a1(s1, c), a2(s2, c);
      const Eigen::Map<const Arr> k(xs, c);
      a1.setZero();
      a2.setZero();
      for (Index p = 1; p < hw; ++p) {
        const auto d = Eigen::Map<const Arr>(xs + p * c, c) - k;
        a1 += d;
        a2 += d.square();
      }
    }
    for (Index g = 0; g < groups; ++g) {
      double m = 0;
      for (Index ch = g * cg; ch < (g + 1) * cg; ++ch)
        m += static_cast<double>(s1[ch]) + static_cast<double>(hw) * static_cast<double>(xs[ch]);
      m /= count;
      double ss = 0;  // sum (x - m)^2 = S2 - 2 (m - k) S1 + hw (m - k)^2
      for (Index ch = g * cg; ch < (g + 1) * cg; ++ch) {
        const double mk = m - static_cast<double>(xs[ch]);
        ss += static_cast<double>(s2[ch]) - 2.0 * mk * static_cast<double>(s1[ch]) + static_cast<double>(hw) * mk * mk;
      }
      const double rg = 1.0 / std::sqrt(std::max(ss, 0.0) / count + eps);
      rstd(g, s) = static_cast<S>(rg);
      for (Index ch = g * cg; ch < (g + 1) * cg; ++ch) {
        r[ch] = static_cast<S>(rg);
        mr[ch] = static_cast<S>(m * rg);
      }
    }
    for (Index ch = 0; ch < c; ++ch) {
      const S sc = film ? film[s * 2 * c + ch] : S(1);
      const S sh = film ? film[s * 2 * c + c + ch] : S(0);
      ga[ch] = gamma[ch] * sc;
      be[ch] = beta[ch] * sc + sh;
    }
    S* xh = xhat.data() + s * hw * c;
    S* os = out.data() + s * hw * c;
    using Arr = Eigen::Array<S, Eigen::Dynamic, 1>;
    using CMap = Eigen::Map<const Arr>;
    const CMap ra(r, c), mra(mr, c), gaa(ga, c), bea(be, c);
    for (Index p = 0; p < hw; ++p) {  // xhat = x r - mean r; f = xhat gamma (1 + scale) + ...; silu
      Eigen::Map<Arr> xhp(xh + p * c, c), op(os + p * c, c);
      xhp = CMap(xs + p * c, c) * ra - mra;
      op = xhp * gaa + bea;
      op = op / (S(1) + (-op).exp());
    }
  }
}

/// The gradient of forward_silu. ds: dL/dout, overwritten with dL/df. Adds dL/dgamma, dL/dbeta into
/// grad, writes dL/dx into dx (adds with add_dx) and, with film, dL/d(scale, shift) into dfilm (2c x n).
template <Real S>
void GroupNorm::backward_silu(const S* params, S* grad, const Matrix<S>& xhat, const Matrix<S>& rstd, Matrix<S>& ds,
                              Matrix<S>& dx, Index n, Vector<S>& scratch, bool add_dx, const S* film,
                              S* dfilm) const {
  using Arr = Eigen::Array<S, Eigen::Dynamic, 1>;
  using CMap = Eigen::Map<const Arr>;
  const CMap gamma(params + g_off, c), beta(params + b_off, c);
  Eigen::Map<Arr> dgamma(grad + g_off, c), dbeta(grad + b_off, c);
  const Index cg = c / groups;
  const S inv_count = S(1) / static_cast<S>(cg * hw);
  if (scratch.size() < 9 * c) scratch.resize(9 * c);  // grows once
  Eigen::Map<Arr> a(scratch.data(), c), b(scratch.data() + c, c), ga(scratch.data() + 2 * c, c),
      be(scratch.data() + 3 * c, c), rgs(scratch.data() + 4 * c, c), rm1(scratch.data() + 5 * c, c),
      rm2(scratch.data() + 6 * c, c), f(scratch.data() + 7 * c, c), sig(scratch.data() + 8 * c, c);
  for (Index s = 0; s < n; ++s) {
    const S* xh = xhat.data() + s * hw * c;
    S* d = ds.data() + s * hw * c;
    if (film) {
      const CMap sc(film + s * 2 * c, c), sh(film + s * 2 * c + c, c);
      ga = gamma * sc;
      be = beta * sc + sh;
    } else {
      ga = gamma;
      be = beta;
    }
    a.setZero();
    b.setZero();
    for (Index p = 0; p < hw; ++p) {  // df = ds silu'(f), in place; a = sum df, b = sum df xhat
      const CMap xhp(xh + p * c, c);
      Eigen::Map<Arr> dp(d + p * c, c);
      f = xhp * ga + be;
      sig = S(1) / (S(1) + (-f).exp());
      dp = dp * sig * (S(1) + f * (S(1) - sig));
      a += dp;
      b += dp * xhp;
    }
    if (film) {  // a2 = gamma xhat + beta: d scale = sum df a2, d shift = sum df
      Eigen::Map<Arr>(dfilm + s * 2 * c, c) = gamma * b + beta * a;
      Eigen::Map<Arr>(dfilm + s * 2 * c + c, c) = a;
      const CMap sc(film + s * 2 * c, c);
      a *= sc;  // now the sums of dy = df (1 + scale), the GroupNorm output's gradient
      b *= sc;
    }
    dbeta += a;
    dgamma += b;
    for (Index g = 0; g < groups; ++g) {
      const S rg = rstd(g, s);
      rm1.segment(g * cg, cg).setConstant(rg * (gamma.segment(g * cg, cg) * a.segment(g * cg, cg)).sum() * inv_count);
      rm2.segment(g * cg, cg).setConstant(rg * (gamma.segment(g * cg, cg) * b.segment(g * cg, cg)).sum() * inv_count);
      rgs.segment(g * cg, cg) = rg * ga.segment(g * cg, cg);
    }
    S* dxs = dx.data() + s * hw * c;
    if (add_dx)
      for (Index p = 0; p < hw; ++p)
        Eigen::Map<Arr>(dxs + p * c, c) += CMap(d + p * c, c) * rgs - rm1 - CMap(xh + p * c, c) * rm2;
    else
      for (Index p = 0; p < hw; ++p)
        Eigen::Map<Arr>(dxs + p * c, c) = CMap(d + p * c, c) * rgs - rm1 - CMap(xh + p * c, c) * rm2;
  }
}

/// A dense layer out = W in + b on embedding vectors (W: out x in, column-major in the flat vector).
struct Dense {
  Index in = 0, out = 0, w_off = 0, b_off = 0;
  Dense() = default;
  Dense(Index in_, Index out_, Index offset) : in(in_), out(out_), w_off(offset), b_off(offset + in_ * out_) {}
  Index num_params() const { return in * out + out; }
  template <Real S>
  void init(S* params, Rng& rng) const {
    init_uniform(params + w_off, in * out, in, rng);
    init_uniform(params + b_off, out, in, rng);
  }
  template <Real S>
  Eigen::Map<const Matrix<S>> weight(const S* params) const {
    return {params + w_off, out, in};
  }
  template <Real S>
  Eigen::Map<const Vector<S>> bias(const S* params) const {
    return {params + b_off, out};
  }
  template <Real S>
  void forward(const S* params, const Matrix<S>& x, Matrix<S>& y) const {
    product_in_pieces<false, S>(y, weight(params), x);
    y.colwise() += bias(params);
  }
  /// Adds dW, db into grad and, if dx is not null, W^T dy into *dx.
  template <Real S>
  void backward(const S* params, S* grad, const Matrix<S>& x, const Matrix<S>& dy, Matrix<S>* dx) const {
    Eigen::Map<Matrix<S>> dw(grad + w_off, out, in);
    Eigen::Map<Vector<S>> db(grad + b_off, out);
    product_in_pieces<true, S>(dw, dy, x.transpose());
    db += dy.rowwise().sum();
    if (dx) product_in_pieces<true, S>(*dx, weight(params).transpose(), dy);
  }
};

/// Resizes m to rows x cols if its shape differs (no allocation once sized).
template <Real S>
void ensure(Matrix<S>& m, Index rows, Index cols) {
  if (m.rows() != rows || m.cols() != cols) m.resize(rows, cols);
}

}  // namespace flowmatch::detail::unet
