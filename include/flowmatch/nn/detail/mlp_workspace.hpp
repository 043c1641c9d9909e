#pragma once
/// \file
/// The work buffers of MLPVectorField's passes (MLPVectorField<S, Act>::Workspace), portable and
/// AVX-512 alike: the caller owns one per concurrent caller, sized on the first call for a batch
/// size and reused, so steady-state calls allocate nothing.

#include <vector>

#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/detail/mlp_avx512.hpp"

namespace flowmatch::detail {

/// Buffers of one forward/backward pass at one batch size (MLPVectorField<S, Act>::Workspace).
template <class S>
struct MLPWorkspace {
  std::vector<Matrix<S>> a;    ///< a[l]: input of layer l; a[0] = [x; t], a[l >= 1] hidden activations
  std::vector<Matrix<S>> aux;  ///< aux[l]: what the activation saved for a[l] (SiLU: sigmoid)
  Matrix<S> out;               ///< the network's output, d x n
  Matrix<S> w0;                ///< first-layer weight, column-major copy (small fan-in kernel)
  Matrix<S> w2t;               ///< AVX-512 kernels: second weight transposed, padded to 16 rows
  RowMajorMatrix<S> w2p;       ///< AVX-512 kernels: second weight padded to 16 rows
  Vector<S> bt;                ///< AVX-512 inference at one time t: first bias + t * time weights
  Matrix<S> w0s;               ///< AVX-512 inference: -log2(e) W0, column-major
  Vector<S> b0s;               ///< AVX-512 inference: -log2(e) b0
  Matrix<S> w2ts;              ///< AVX-512 inference: -ln(2) w2t (see avx512::silu_log2)
  avx512::PreactivationBound bound;  ///< AVX-512 inference: of the scaled pre-activations
  /// Per-thread scratch of the backward pass: deltas of one column block, gradient accumulators.
  struct Thread {
    std::vector<Matrix<S>> dz;  ///< dz[l]: dLoss/d(pre-activation of layer l), widths[l+1] x block
    Vector<S> grad;             ///< this thread's share of the parameter gradient (flat)
    Matrix<S> dw0;              ///< first-layer weight gradient, column-major (small fan-in kernel)
    Matrix<S> in;               ///< inference: [x; t] of one block
    Matrix<S> hidden[2];        ///< inference: a block's hidden activations, ping-pong
    Vector<S> aux;              ///< inference: the activation's discarded auxiliary output
    Matrix<S> y;                ///< AVX-512 kernels: second layer's output of one block, 16 x block
    Matrix<S> dz2;              ///< AVX-512 kernels: its delta, zero-padded to 16 rows
    Matrix<S> dw2t;             ///< AVX-512 kernels: this thread's second weight gradient, 16 x K
    Matrix<S> h, s;             ///< AVX-512 kernels, fused loss: a block's first hidden layer and sigmoid
    double loss = 0.0;          ///< mse_loss_and_gradient: this thread's sum of squared errors
  };
  std::vector<Thread> threads;
  std::vector<Index> widths;  ///< the layer widths the buffers were sized for
  Index batch = 0;
  Matrix<S> grad_out;  ///< mse_loss_and_gradient: dLoss/dout, d x n
};

}  // namespace flowmatch::detail
