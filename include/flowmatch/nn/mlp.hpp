#pragma once
/// \file
/// A plain multilayer perceptron y = W_L f(... f(W_1 x + b_1) ...) + b_L from input_dim features
/// to output_dim outputs (no time input), with a hand-written backward pass in the style of
/// MLPVectorField: the trunk of classifiers and of any model whose input is a plain vector.

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "flowmatch/core/denormals.hpp"
#include "flowmatch/core/thread_pool.hpp"
#include "flowmatch/nn/detail/dense_layers.hpp"
#include "flowmatch/nn/detail/layer_state.hpp"

namespace flowmatch {

/// y = W_L f(... f(W_1 x + b_1) ...) + b_L with any number and width of hidden layers (none: an
/// affine map) and the activation f as a policy (see activation.hpp). Inputs are columns
/// (input_dim x n).
///
/// Storage as MLPVectorField's (nn/detail/dense_layers.hpp): all parameters in one flat vector,
/// layer by layer, each layer's weight first (out x in, row-major: PyTorch's `nn.Linear` layout)
/// then its bias; the gradients in a second flat vector with the same layout, so any optimizer of
/// optim/ trains it. Passes walk
/// the batch in blocks of 32 columns shared among flowmatch::num_threads() threads (block k on
/// thread k % threads); each thread sums its own gradient and the sums are added in a fixed
/// order: deterministic for a given thread count. Work buffers live in a caller-owned Workspace,
/// sized on the first call at a batch size: later calls allocate nothing.
///
/// State (core/state.hpp, default scope "model"): attributes type = "mlp", scalar = "float" |
/// "double", activation = Act::name(), widths = layer_widths() (e.g. [784,512,128,10]); tensors
/// "<2l>.weight" [fan_out, fan_in] and "<2l>.bias" [fan_out] for layer l (nn.Sequential
/// numbering: linear layers at 0, 2, 4, ...), the keys of PyTorch's
/// nn.Sequential(Linear, act, Linear, ...).state_dict().
template <Real S = float, Activation Act = SiLU>
class MLP : public detail::DenseLayers<S> {
  using Base = detail::DenseLayers<S>;

 public:
  using activation_type = Act;
  using Base::num_layers, Base::fan_in, Base::fan_out, Base::num_parameters, Base::weight, Base::bias;
  static constexpr std::string_view state_scope = "model";

  /// Buffers of one caller at one batch size.
  struct Workspace {
    std::vector<Matrix<S>> a;    ///< a[l]: input of layer l (a[0] = x), kept for backward
    std::vector<Matrix<S>> aux;  ///< aux[l]: what the activation saved for a[l] (SiLU: sigmoid)
    Matrix<S> out;               ///< the output of the last forward_train, output_dim x n
    struct Thread {
      std::vector<Matrix<S>> dz;  ///< dz[l]: dLoss/d(pre-activation of layer l) of one block
      Vector<S> grad;             ///< this thread's share of the flat gradient
    };
    std::vector<Thread> threads;
    std::vector<Index> widths;  ///< the layer widths the buffers were sized for
    Index batch = 0;
  };

  /// A network from input_dim to output_dim through the given hidden widths, initialised as
  /// PyTorch's nn.Linear (uniform in +-1/sqrt(fan_in)) from `rng`. Throws InvalidArgument for a
  /// dimension or width below 1.
  MLP(Index input_dim, Index output_dim, std::vector<Index> hidden_widths, Rng& rng)
      : Base("flowmatch::MLP::MLP", input_dim, 0, output_dim, std::move(hidden_widths), rng) {}
  MLP(Index input_dim, Index output_dim, std::vector<Index> hidden_widths, Rng&& rng)
      : MLP(input_dim, output_dim, std::move(hidden_widths), rng) {}
  /// As above, with a generator seeded by `seed`.
  MLP(Index input_dim, Index output_dim, std::vector<Index> hidden_widths, std::uint64_t seed = 0)
      : MLP(input_dim, output_dim, std::move(hidden_widths), Rng(seed)) {}

  Index input_dim() const { return widths_.front(); }
  Index output_dim() const { return widths_.back(); }

  /// The output (output_dim x n) of the batch x (input_dim x n) into `out`. Allocates nothing
  /// once `ws` has seen this batch size.
  template <class DX, class DO>
  void forward(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DO>& out_, Workspace& ws) const {
    auto& out = detail::writable(out_);
    const Index n = check_x("flowmatch::MLP::forward", x);
    detail::require_rows("flowmatch::MLP::forward", "out", out.rows(), output_dim());
    detail::require_cols("flowmatch::MLP::forward", "out", out.cols(), n);
    out = forward_train(x, ws).template cast<typename DO::Scalar>();
  }

  /// The output as a new matrix (allocates; for convenience outside hot loops).
  template <class DX>
  Matrix<S> operator()(const Eigen::MatrixBase<DX>& x) const {
    Workspace ws;
    Matrix<S> out(output_dim(), x.cols());
    forward(x, out, ws);
    return out;
  }

  /// Forward pass that keeps what backward() needs in `ws` (ws.a[l] is the input of layer l, so
  /// ws.a[num_layers() - 1] is the last hidden layer's output); returns the output, which lives in
  /// ws until the next call.
  template <class DX>
  const Matrix<S>& forward_train(const Eigen::MatrixBase<DX>& x, Workspace& ws) const {
    const Index n = check_x("flowmatch::MLP::forward", x);
    prepare(ws, n);
    ws.a[0] = x.template cast<S>();
    run_blocks(n, [&](Index j0, Index nb, int) { forward_block(ws, j0, nb); });
    return ws.out;
  }

  /// Backward pass for the forward_train() that last used `ws`: given dLoss/dout (output_dim x n),
  /// writes dLoss/dparameters into gradients() (overwriting them).
  template <class DG>
  void backward(const Eigen::MatrixBase<DG>& grad_out, Workspace& ws) {
    this->check_backward("flowmatch::MLP::backward", grad_out, ws);
    const int threads = detail::threads_for(detail::num_blocks(ws.batch, kBlock));
    prepare_threads(ws, threads);
    for (int k = 0; k < threads; ++k) ws.threads[static_cast<std::size_t>(k)].grad.setZero();
    run_blocks(ws.batch, [&](Index j0, Index nb, int worker) {
      backward_block(grad_out, ws, ws.threads[static_cast<std::size_t>(worker)], j0, nb);
    });
    gradients_ = ws.threads[0].grad;
    for (int k = 1; k < threads; ++k) gradients_ += ws.threads[static_cast<std::size_t>(k)].grad;
  }

  /// Writes the state described in the class comment.
  void save_state(StateWriter& w) const {
    w.text("type", "mlp");
    detail::save_layer_state<S, Act>(w, widths_, parameters_.data());
  }

  /// Reads that state, checking the type, scalar, activation, widths, every tensor's dtype and
  /// shape and that every value is finite before changing the parameters (CheckpointMismatchError).
  void load_state(const StateReader& r) {
    r.expect_text("type", "mlp", "model type");
    parameters_ = detail::load_layer_state<S, Act>(r, widths_, parameters_.size());
  }

 private:
  /// Columns per block, as MLPVectorField's (see there).
  static constexpr Index kBlock = 32;

  template <class DX>
  Index check_x(const char* where, const Eigen::MatrixBase<DX>& x) const {
    detail::require_rows(where, "x", x.rows(), input_dim());
    if (x.cols() < 1) detail::throw_invalid(where, "x.cols() (batch size)", x.cols(), "must be at least 1");
    return x.cols();
  }
  using Base::widths_, Base::parameters_, Base::gradients_;

  /// Runs f(j0, nb, worker) for every block of columns of an n-column batch on the thread pool.
  template <class F>
  static void run_blocks(Index n, F&& f) {
    const Index blocks = detail::num_blocks(n, kBlock);
    auto body = [&](Index b, int worker) {
      const detail::FlushDenormals flush;  // see core/denormals.hpp
      f(b * kBlock, std::min(kBlock, n - b * kBlock), worker);
    };
    detail::ThreadPool::global().run(blocks, detail::threads_for(blocks), body);
  }

  /// Sizes `ws` for batches of n samples (allocates only when the shape changes).
  void prepare(Workspace& ws, Index n) const {
    if (ws.widths != widths_) {
      ws = Workspace{};
      ws.widths = widths_;
    }
    if (ws.batch == n) return;
    const auto L = static_cast<std::size_t>(num_layers());
    ws.a.resize(L);
    ws.aux.resize(L);
    for (std::size_t l = 0; l < L; ++l) {
      ws.a[l].resize(widths_[l], n);
      if (l > 0 && Act::uses_aux) ws.aux[l].resize(widths_[l], n);
    }
    ws.out.resize(output_dim(), n);
    ws.batch = n;
  }

  void prepare_threads(Workspace& ws, int threads) const {
    if (static_cast<int>(ws.threads.size()) == threads) return;
    ws.threads.resize(static_cast<std::size_t>(threads));
    for (auto& th : ws.threads) {
      th.dz.resize(static_cast<std::size_t>(num_layers()));
      for (Index l = 0; l < num_layers(); ++l) th.dz[static_cast<std::size_t>(l)].resize(fan_out(l), kBlock);
      th.grad.resize(num_parameters());
    }
  }

  /// Forward pass over columns [j0, j0 + nb), layer after layer.
  void forward_block(Workspace& ws, Index j0, Index nb) const {
    const Index L = num_layers();
    for (Index l = 0; l < L; ++l) {
      const auto ul = static_cast<std::size_t>(l);
      Matrix<S>& z = l + 1 < L ? ws.a[ul + 1] : ws.out;
      detail::product_in_pieces<false, S>(z.middleCols(j0, nb), weight(l), ws.a[ul].middleCols(j0, nb));
      z.middleCols(j0, nb).colwise() += bias(l);
      if (l + 1 == L) break;
      const Index h = z.rows();
      S* aux = Act::uses_aux ? ws.aux[ul + 1].data() : nullptr;
      for (Index j = j0; j < j0 + nb; ++j) Act::forward(z.data() + j * h, z.data() + j * h, aux ? aux + j * h : nullptr, h);
    }
  }

  /// Backward pass over columns [j0, j0 + nb), accumulating into the thread's gradient.
  template <class DG>
  void backward_block(const Eigen::MatrixBase<DG>& grad_out, const Workspace& ws, typename Workspace::Thread& th,
                      Index j0, Index nb) const {
    S* g = th.grad.data();
    this->output_delta(grad_out, th.dz.back(), g, j0, nb);
    for (Index l = num_layers() - 1; l >= 0; --l) {
      const auto ul = static_cast<std::size_t>(l);
      const Eigen::Ref<const Matrix<S>> dz = th.dz[ul].leftCols(nb);
      this->add_weight_gradient(l, g, dz, ws.a[ul].middleCols(j0, nb));
      if (l == 0) break;
      const Index h = fan_out(l - 1);
      this->template backprop_hidden<Act>(l, dz, th.dz[ul - 1], g, ws.a[ul].data() + j0 * h,
                                          Act::uses_aux ? ws.aux[ul].data() + j0 * h : nullptr, nb);
    }
  }
};

}  // namespace flowmatch
