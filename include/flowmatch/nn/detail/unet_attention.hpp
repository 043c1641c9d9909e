#pragma once
/// \file
/// Multi-head self-attention over the pixels of each image, as DDPM's and ADM's attention block:
/// out = x + proj(MHA(GroupNorm(x))), with q, k, v from one 1x1 convolution (C -> 3C) and
/// softmax(q^T k / sqrt(d)) over the hw pixels of the same image, d = C / heads. Hand-written
/// backward pass; activations in the layout of unet_layers.hpp (C x (hw n), channels last), where a
/// head's q, k or v of one image is a d x hw block: the scores are one GEMM per image and head.

#include <algorithm>
#include <cmath>

#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/detail/blocked_product.hpp"
#include "flowmatch/nn/detail/unet_layers.hpp"

namespace flowmatch::detail::unet {

/// What one thread part keeps between an attention block's forward and backward passes, and its
/// backward scratch; sized on first use (ensure), so later calls at the same batch allocate nothing.
template <Real S>
struct AttentionCache {
  Matrix<S> xhat, hn, rstd;  // GroupNorm: normalised x, its output, 1 / std per group and image
  Matrix<S> qkv;             // 3C x hw n: q (rows [0, C)), k, v; head h is rows [h d, (h + 1) d) of each
  Matrix<S> probs;           // hw x (hw heads n): per image and head, softmax weights (key x query)
  Matrix<S> o;               // C x hw n: the heads' outputs, proj's input
  Matrix<S> d_o, dqkv, dhn, dprobs;
};

struct Attention {
  Index c = 0, hw = 0, heads = 1;
  GroupNorm norm;
  Conv qkv, proj;  // 1x1: C -> 3C and C -> C

  Index head_dim() const { return c / heads; }

  /// GroupNorm at gamma 1, beta 0; qkv as PyTorch's default; proj at zero (as DDPM and ADM do),
  /// so that the block starts as the identity.
  template <Real S>
  void init(S* params, Rng& rng) const {
    norm.init(params);
    qkv.init(params, rng);
    std::fill_n(params + proj.w_off, proj.num_params(), S(0));
  }

  /// out = x + proj(attention(GroupNorm(x))) for n images (x, out: c x hw n; out sized by the caller).
  template <Real S>
  void forward(const S* params, const Matrix<S>& x, Matrix<S>& out, AttentionCache<S>& a, Index n,
               Vector<S>& norm_scratch, Vector<S>& conv_scratch) const {
    const Index d = head_dim(), P = hw * n;
    ensure(a.xhat, c, P);
    ensure(a.hn, c, P);
    ensure(a.rstd, norm.groups, n);
    ensure(a.qkv, 3 * c, P);
    ensure(a.probs, hw, hw * heads * n);
    ensure(a.o, c, P);
    norm.forward(params, x, a.xhat, a.hn, a.rstd, n, norm_scratch);
    qkv.forward(params, a.hn, a.qkv, conv_scratch, n);
    const S scale = S(1) / std::sqrt(static_cast<S>(d));
    for (Index s = 0; s < n; ++s)
      for (Index h = 0; h < heads; ++h) {
        const auto q = a.qkv.block(h * d, s * hw, d, hw);
        const auto k = a.qkv.block(c + h * d, s * hw, d, hw);
        const auto v = a.qkv.block(2 * c + h * d, s * hw, d, hw);
        auto pr = a.probs.middleCols((s * heads + h) * hw, hw);
        product_in_pieces<false, S>(pr, k.transpose(), q);  // column i: k_j . q_i over keys j
        for (Index i = 0; i < hw; ++i) {  // softmax over the keys, shifted by the largest score
          auto col = pr.col(i).array();
          const S top = col.maxCoeff();
          col = ((col - top) * scale).exp();
          col /= col.sum();
        }
        product_in_pieces<false, S>(a.o.middleCols(s * hw, hw).middleRows(h * d, d), v, pr);
      }
    proj.forward(params, a.o, out, conv_scratch, n);
    out += x;
  }

  /// Given dout: adds dL/dparameters into grad and dL/dx into dx.
  template <Real S>
  void backward(const S* params, S* grad, const Matrix<S>& dout, Matrix<S>& dx, AttentionCache<S>& a, Index n,
                Vector<S>& norm_scratch, Vector<S>& conv_scratch, Vector<S>& conv_dscratch) const {
    const Index d = head_dim(), P = hw * n;
    ensure(a.d_o, c, P);
    ensure(a.dqkv, 3 * c, P);
    ensure(a.dhn, c, P);
    ensure(a.dprobs, hw, hw);
    dx += dout;
    proj.backward(params, grad, a.o, dout, &a.d_o, conv_scratch, conv_dscratch, n, false, false);
    const S scale = S(1) / std::sqrt(static_cast<S>(d));
    for (Index s = 0; s < n; ++s)
      for (Index h = 0; h < heads; ++h) {
        const auto q = a.qkv.block(h * d, s * hw, d, hw);
        const auto k = a.qkv.block(c + h * d, s * hw, d, hw);
        const auto v = a.qkv.block(2 * c + h * d, s * hw, d, hw);
        const auto pr = a.probs.middleCols((s * heads + h) * hw, hw);
        const auto dout_h = a.d_o.block(h * d, s * hw, d, hw);
        product_in_pieces<false, S>(a.dqkv.block(2 * c + h * d, s * hw, d, hw), dout_h, pr.transpose());  // dv
        product_in_pieces<false, S>(a.dprobs, v.transpose(), dout_h);
        // Through the softmax (column i: p (dp - p . dp)) and the score scale: d scores.
        for (Index i = 0; i < hw; ++i) {
          const S dot = pr.col(i).dot(a.dprobs.col(i));
          a.dprobs.col(i).array() = scale * pr.col(i).array() * (a.dprobs.col(i).array() - dot);
        }
        product_in_pieces<false, S>(a.dqkv.block(h * d, s * hw, d, hw), k, a.dprobs);                  // dq
        product_in_pieces<false, S>(a.dqkv.block(c + h * d, s * hw, d, hw), q, a.dprobs.transpose());  // dk
      }
    qkv.backward(params, grad, a.hn, a.dqkv, &a.dhn, conv_scratch, conv_dscratch, n, false, false);
    norm.backward(params, grad, a.xhat, a.rstd, a.dhn, dx, n, norm_scratch, true);
  }
};

}  // namespace flowmatch::detail::unet
