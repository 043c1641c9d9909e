#pragma once
/// \file
/// MLPVectorField's per-block passes (inference, training forward, backward over one block of
/// columns): the portable Eigen code, with the hooks that hand layers 0 and 1 to the AVX-512
/// kernels (nn/detail/mlp_fast_path.hpp) when fast_path() holds. Member definitions of
/// MLPVectorField, moved out of nn/mlp_vector_field.hpp unchanged; that header includes this one.

#include <cstddef>
#include <type_traits>

#include "flowmatch/nn/mlp_vector_field.hpp"

namespace flowmatch {

/// Inference over columns [j0, j0 + nb): every layer in the thread's block buffers.
template <Real S, Activation Act>
template <class DX, TimeArgument T, class DO>
void MLPVectorField<S, Act>::inference_block(const Eigen::MatrixBase<DX>& x, const T& t, Eigen::MatrixBase<DO>& out,
                                             const Workspace& ws, typename Workspace::Thread& th, Index j0, Index nb) const {
  const Index d = input_dim(), L = num_layers();
  for (Index j = 0; j < nb; ++j) {
    for (Index i = 0; i < d; ++i) th.in(i, j) = static_cast<S>(x(i, j0 + j));
    th.in(d, j) = static_cast<S>(detail::time_at(t, j0 + j));
  }
  const Matrix<S>* input = &th.in;
  Index first = 0;
  if constexpr (kFastKernels) {
    if (fast_path()) {  // layers 0 and 1 (and a small last layer) by the AVX-512 kernels
      input = FastPath::inference(*this, t, out, ws, th, j0, nb);
      if (input == nullptr) return;
      first = 2;
    }
  }
  for (Index l = first; l + 1 < L; ++l) {
    Matrix<S>& z = th.hidden[static_cast<std::size_t>(l % 2)];
    const Index h = fan_out(l), stride = z.rows();
    const ConstBiasMap bias_l = bias(l);
    if (l == 0 && small_fan_in()) {
      for (Index j = 0; j < nb; ++j) {
        Eigen::Map<Vector<S>> col(z.data() + j * stride, h);
        col = bias_l;
        for (Index k = 0; k < fan_in(0); ++k) col += th.in(k, j) * ws.w0.col(k);
        Act::forward(col.data(), col.data(), th.aux.data(), h);
      }
    } else {
      product_in_pieces<false>(z.topLeftCorner(h, nb), weight(l), input->topLeftCorner(fan_in(l), nb));
      for (Index j = 0; j < nb; ++j) {
        S* col = z.data() + j * stride;
        Eigen::Map<Vector<S>>(col, h) += bias_l;
        Act::forward(col, col, th.aux.data(), h);
      }
    }
    input = &z;
  }
  if constexpr (std::is_same_v<typename DO::Scalar, S>) {
    product_in_pieces<false>(out.middleCols(j0, nb), weight(L - 1), input->topLeftCorner(fan_in(L - 1), nb));
  } else {
    out.middleCols(j0, nb).noalias() = (weight(L - 1) * input->topLeftCorner(fan_in(L - 1), nb)).template cast<typename DO::Scalar>();
  }
  out.middleCols(j0, nb).colwise() += bias(L - 1).template cast<typename DO::Scalar>();
}

/// Forward pass over columns [j0, j0 + nb) of the batch, layer after layer.
/// With `local` (the fused mse_loss_and_gradient), the AVX-512 path keeps the block's first
/// hidden layer in the thread's block buffers instead of the batch-wide ws.a[1] / ws.aux[1]:
/// they stay in cache from one block to the next and the batch-wide pages are never touched.
template <Real S, Activation Act>
void MLPVectorField<S, Act>::forward_block(Workspace& ws, [[maybe_unused]] typename Workspace::Thread* th, Index j0, Index nb,
                                           [[maybe_unused]] bool local) const {
  const Index L = num_layers();
  Index first = 0;
  if constexpr (kFastKernels) {
    if (fast_path()) {  // layers 0 and 1 by the AVX-512 kernels
      if (FastPath::forward(*this, ws, th, j0, nb, local)) return;
      first = 2;
    }
  }
  for (Index l = first; l + 1 < L; ++l) {
    const auto ul = static_cast<std::size_t>(l);
    Matrix<S>& z = ws.a[ul + 1];
    const Index h = z.rows();
    const ConstBiasMap bias_l = bias(l);
    S* aux = Act::uses_aux ? ws.aux[ul + 1].data() : nullptr;
    if (l == 0 && small_fan_in()) {
      // z_j = b + sum_k W[:, k] a0(k, j): a few axpys on one L1-resident column, then f.
      const Matrix<S>& a0 = ws.a[0];
      for (Index j = j0; j < j0 + nb; ++j) {
        Eigen::Map<Vector<S>> col(z.data() + j * h, h);
        col = bias_l;
        for (Index k = 0; k < a0.rows(); ++k) col += a0(k, j) * ws.w0.col(k);
        Act::forward(col.data(), col.data(), aux ? aux + j * h : nullptr, h);
      }
      continue;
    }
    product_in_pieces<false>(z.middleCols(j0, nb), weight(l), ws.a[ul].middleCols(j0, nb));
    for (Index j = j0; j < j0 + nb; ++j) {
      S* col = z.data() + j * h;
      Eigen::Map<Vector<S>>(col, h) += bias_l;
      Act::forward(col, col, aux ? aux + j * h : nullptr, h);
    }
  }
  product_in_pieces<false>(ws.out.middleCols(j0, nb), weight(L - 1), ws.a[static_cast<std::size_t>(L) - 1].middleCols(j0, nb));
  ws.out.middleCols(j0, nb).colwise() += bias(L - 1);
}

/// Backward pass over columns [j0, j0 + nb), accumulating into the thread's gradient.
template <Real S, Activation Act>
template <class DG>
void MLPVectorField<S, Act>::backward_block(const Eigen::MatrixBase<DG>& grad_out, const Workspace& ws,
                                            typename Workspace::Thread& th, Index j0, Index nb, [[maybe_unused]] bool local) const {
  S* g = th.grad.data();
  this->output_delta(grad_out, th.dz.back(), g, j0, nb);  // output layer: dz_{L-1} is grad_out itself
  for (Index l = num_layers() - 1; l >= 0; --l) {
    const auto ul = static_cast<std::size_t>(l);
    const Eigen::Ref<const Matrix<S>> dz = th.dz[ul].leftCols(nb);
    if constexpr (kFastKernels) {
      if (l == 1 && fast_path()) {  // layers 1 and 0 by the AVX-512 kernels
        FastPath::backward(*this, dz, ws, th, g, j0, nb, local);
        break;
      }
    }
    const Eigen::Ref<const Matrix<S>> input = ws.a[ul].middleCols(j0, nb);
    if (l == 0 && small_fan_in()) {
      // dW0 += dz a0^T as axpys into a column-major accumulator (one column per input).
      const Index h = dz.rows();
      for (Index j = 0; j < nb; ++j) {
        const Eigen::Map<const Vector<S>> d(th.dz[0].data() + j * h, h);
        for (Index k = 0; k < input.rows(); ++k) th.dw0.col(k) += input(k, j) * d;
      }
      break;
    }
    this->add_weight_gradient(l, g, dz, input);
    if (l == 0) break;
    // dz_{l-1} = (W_l^T dz_l) .* f'(z_{l-1}), with the bias gradient of layer l-1 in the same pass.
    const Index h = fan_out(l - 1);
    this->template backprop_hidden<Act>(l, dz, th.dz[ul - 1], g, ws.a[ul].data() + j0 * h,
                                        Act::uses_aux ? ws.aux[ul].data() + j0 * h : nullptr, nb);
  }
}

}  // namespace flowmatch
