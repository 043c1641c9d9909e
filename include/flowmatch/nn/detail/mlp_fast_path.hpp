#pragma once
/// \file
/// MLPVectorField's AVX-512 fast path: the steps of its passes that run the kernels of
/// nn/detail/mlp_avx512.hpp, and the buffers and weight copies those kernels read. They apply to
/// MLPVectorField<float, SiLU> in a build for a CPU with AVX-512F when the shape fits
/// (MLPVectorField::fast_path()); every other case runs the portable code of mlp_vector_field.hpp.
///
/// The code was moved here from mlp_vector_field.hpp unchanged. MLPVectorField calls
/// MLPFastPath<MLPVectorField> (a friend) from `if constexpr (kMLPFastKernels<S, Act>)`
/// branches, so without AVX-512 the kernel steps are never instantiated: this file holds the
/// only preprocessor conditions of the model. The kernel steps are forced inline, as they were
/// when written in the passes themselves.

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/activation.hpp"
#include "flowmatch/nn/detail/mlp_avx512.hpp"

namespace flowmatch::detail {

#if defined(__AVX512F__)
inline constexpr bool kAvx512Build = true;
#else
inline constexpr bool kAvx512Build = false;
#endif

/// Whether MLPVectorField<S, Act> has AVX-512 kernels in this build: float with SiLU, AVX-512F.
template <class S, class Act>
inline constexpr bool kMLPFastKernels = kAvx512Build && std::is_same_v<S, float> && std::is_same_v<Act, SiLU>;

/// The fast path's steps for Model = MLPVectorField<S, Act>.
template <class Model>
struct MLPFastPath {
  using S = typename Model::Scalar;
  using Act = typename Model::activation_type;
  using Workspace = typename Model::Workspace;
  using Thread = typename Workspace::Thread;

  /// Whether the shape fits the kernels (MLPVectorField::fast_path() once the build has them).
  static bool shape_fits(const Model& m) {
    return m.num_layers() >= 2 && m.fan_in(0) <= avx512::kMaxFanIn && m.fan_out(0) % 16 == 0 && m.fan_out(1) <= 16;
  }

  /// Leading dimension of the first hidden layer's buffers in the AVX-512 kernels.
  static Index ld(const Model& m) { return m.fan_out(0) + 16; }

  /// The kernels' weight copies in a workspace new to this model.
  static void size_model(const Model& m, Workspace& ws) {
    ws.w2t.setZero(16, m.fan_out(0));
    ws.w2p.setZero(16, m.fan_out(0));
    ws.bt.resize(m.fan_out(0));
    ws.w0s.resize(m.fan_out(0), m.fan_in(0));
    ws.b0s.resize(m.fan_out(0));
    ws.w2ts.setZero(16, m.fan_out(0));
  }

  /// The kernels' per-thread block buffers.
  static void size_thread(const Model& m, Thread& th) {
    th.y.resize(16, Model::kBlock);
    th.dz2.setZero(16, Model::kBlock);
    th.dw2t.resize(16, m.fan_out(0));
    th.h.resize(ld(m), Model::kBlock);
    th.s.resize(ld(m), Model::kBlock);
  }

  /// The inference kernels' weights: the first layer's scaled by -log2(e), the second's
  /// transposed and scaled by -ln(2) (see avx512::silu_log2), a few K x 16 copies per pass,
  /// nothing next to the pass itself; and the bound on the scaled pre-activations: inputs whose
  /// bound keeps every scaled pre-activation small run the kernel without its cap.
  template <class T>
  static void stage_inference(const Model& m, Workspace& ws, const T& t) {
    constexpr S kLog2e = static_cast<S>(1.44269504088896340736);
    constexpr S kLn2 = static_cast<S>(0.693147180559945309417);
    ws.w0s.noalias() = -kLog2e * m.weight(0);
    ws.b0s.noalias() = -kLog2e * m.bias(0);
    ws.w2ts.topRows(m.fan_out(1)).noalias() = -kLn2 * m.weight(1);
    Index inputs = m.fan_in(0);
    if constexpr (std::is_arithmetic_v<T>) {
      // fma, as the kernel adds the time to the bias: bit-identical to a vector of equal times.
      const S ts = static_cast<S>(t);
      for (Index k = 0; k < m.fan_out(0); ++k) ws.bt(k) = std::fma(ws.w0s(k, m.fan_in(0) - 1), ts, ws.b0s(k));
      ws.bound.b = ws.bt.cwiseAbs().maxCoeff();
      --inputs;
    } else {
      ws.bound.b = ws.b0s.cwiseAbs().maxCoeff();
    }
    // The kernel takes the time row last (TimeFirst only changes the order of the sum).
    for (Index r = 0; r < inputs; ++r) ws.bound.w[r] = ws.w0s.col(r).cwiseAbs().maxCoeff();
  }

  /// Before a backward pass: zero the threads' second-weight gradients, pad the second weight.
  static void begin_backward(const Model& m, Workspace& ws, int threads) {
    for (int k = 0; k < threads; ++k) ws.threads[static_cast<std::size_t>(k)].dw2t.setZero();
    if (m.fan_out(1) < 16) ws.w2p.topRows(m.fan_out(1)) = m.weight(1);
  }

  /// After a backward pass: add the threads' second-weight gradients, in a fixed order.
  static void reduce_gradients(Model& m, Workspace& ws, int threads) {
    typename Model::WeightMap g1 = m.weight_gradient(1);
    for (int k = 0; k < threads; ++k) g1 += ws.threads[static_cast<std::size_t>(k)].dw2t.topRows(m.fan_out(1));
  }

#if defined(__AVX512F__)
  /// Inference's layers 0 and 1 over columns [j0, j0 + nb) (th.in holds [x; t]), and a third and
  /// last layer of at most 16 outputs too. Returns nullptr when the block's output is written,
  /// else the hidden activations (layer 2's input) from which the portable code goes on.
  template <class T, class DO>
  [[gnu::always_inline]] static const Matrix<S>* inference(const Model& m, const T&, Eigen::MatrixBase<DO>& out,
                                                           const Workspace& ws, Thread& th, Index j0, Index nb) {
    const Index L = m.num_layers();
    // Layers 0 and 1 by one AVX-512 kernel, 16 columns at a time with everything in registers;
    // a third and last layer of at most 16 outputs too (the reference workload's shape).
    const Index K = m.fan_out(0), M = m.fan_out(1), F = m.fan_in(0);
    const bool whole = L == 3 && m.fan_out(2) <= 16;
    const avx512::OutputLayer last{m.bias(1).data(), whole ? m.weight(2).data() : nullptr,
                                   whole ? m.bias(2).data() : nullptr, M, whole ? m.fan_out(2) : 0};
    const avx512::OutputLayer* tail = whole ? &last : nullptr;
    if constexpr (std::is_arithmetic_v<T>) {
      // One time for all columns: forward() folded b0 + t W0[:, F - 1] into ws.bt.
      avx512::dispatch_fan_in(F - 1, [&](auto FF) {
        avx512::first_two_layers<decltype(FF)::value, false>(ws.w0s.data(), ws.bt.data(), th.in.data(), F, K, nb,
                                                             ws.w2ts.data(), th.y.data(), ws.bound, tail);
      });
    } else {
      avx512::dispatch_fan_in(F, [&](auto FF) {
        avx512::first_two_layers<decltype(FF)::value, true>(ws.w0s.data(), ws.b0s.data(), th.in.data(), F, K, nb,
                                                            ws.w2ts.data(), th.y.data(), ws.bound, tail);
      });
    }
    if (whole) {
      out.middleCols(j0, nb) = th.y.topLeftCorner(m.fan_out(2), nb).template cast<typename DO::Scalar>();
      return nullptr;
    }
    if (L == 2) {
      out.middleCols(j0, nb) = th.y.topLeftCorner(M, nb).template cast<typename DO::Scalar>();
      out.middleCols(j0, nb).colwise() += m.bias(1).template cast<typename DO::Scalar>();
      return nullptr;
    }
    Matrix<S>& z = th.hidden[1];
    const Index stride = z.rows();
    z.topLeftCorner(M, nb) = th.y.topLeftCorner(M, nb);
    z.topLeftCorner(M, nb).colwise() += m.bias(1);
    for (Index j = 0; j < nb; ++j) Act::forward(z.data() + j * stride, z.data() + j * stride, th.aux.data(), M);
    return &z;
  }

  /// Training forward's layers 0 and 1 over columns [j0, j0 + nb), saving h = a[1] and
  /// s = aux[1] for backward (in the thread's block buffers when `local`). Returns whether the
  /// pass is done (a network of two layers).
  [[gnu::always_inline]] static bool forward(const Model& m, Workspace& ws, Thread* th, Index j0, Index nb, bool local) {
    const Index L = m.num_layers();
    // Layers 0 and 1 by the AVX-512 kernels, saving h = a[1] and s = aux[1] for backward.
    const Index K = m.fan_out(0), M = m.fan_out(1), F = m.fan_in(0);
    const Index ld = MLPFastPath::ld(m);
    S* h = local ? th->h.data() : ws.a[1].data() + j0 * ld;
    S* sg = local ? th->s.data() : ws.aux[1].data() + j0 * ld;
    avx512::dispatch_fan_in(F, [&](auto FF) {
      avx512::first_layer_silu<decltype(FF)::value, true>(ws.w0.data(), m.bias(0).data(), ws.a[0].data() + j0 * F, F, K,
                                                          nb, h, sg, ld);
    });
    avx512::second_layer(ws.w2t.data(), h, K, nb, th->y.data(), ld);
    Matrix<S>& z = L == 2 ? ws.out : ws.a[2];
    z.middleCols(j0, nb) = th->y.topLeftCorner(M, nb);
    z.middleCols(j0, nb).colwise() += m.bias(1);
    if (L == 2) return true;
    S* aux = Act::uses_aux ? ws.aux[2].data() : nullptr;
    for (Index j = j0; j < j0 + nb; ++j) Act::forward(z.data() + j * M, z.data() + j * M, aux ? aux + j * M : nullptr, M);
    return false;
  }

  /// Backward's layers 1 and 0 over columns [j0, j0 + nb): dz is layer 1's delta, its bias
  /// gradient done; g is the thread's flat gradient.
  [[gnu::always_inline]] static void backward(const Model& m, const Eigen::Ref<const Matrix<S>>& dz, const Workspace& ws,
                                              Thread& th, S* g, Index j0, Index nb, bool local) {
    const Index K = m.fan_out(0), M = m.fan_out(1), F = m.fan_in(0);
    th.dz2.topLeftCorner(M, nb) = dz;  // rows M..15 stay zero
    const Index ld = MLPFastPath::ld(m);
    const S* h = local ? th.h.data() : ws.a[1].data() + j0 * ld;
    const S* sg = local ? th.s.data() : ws.aux[1].data() + j0 * ld;
    avx512::second_layer_weight_gradient(th.dz2.data(), h, K, nb, th.dw2t.data(), ld);
    const S* w2p = M == 16 ? m.parameters_.data() + m.woff(1) : ws.w2p.data();
    avx512::dispatch_fan_in(F, [&](auto FF) {
      avx512::first_layer_backward<decltype(FF)::value>(w2p, th.dz2.data(), h, sg, ws.a[0].data() + j0 * F, K, nb,
                                                        th.dw0.data(), g + m.boff(0), ld);
    });
  }
#endif  // __AVX512F__
};

}  // namespace flowmatch::detail
