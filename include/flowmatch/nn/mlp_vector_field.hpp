#pragma once
/// \file
/// A multilayer perceptron u_theta(x, t): R^d x [0, 1] -> R^d with a hand-written backward pass.

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "flowmatch/core/denormals.hpp"
#include "flowmatch/core/state.hpp"
#include "flowmatch/core/thread_pool.hpp"
#include "flowmatch/core/threads.hpp"
#include "flowmatch/core/time.hpp"
#include "flowmatch/nn/detail/dense_layers.hpp"
#include "flowmatch/nn/detail/layer_state.hpp"
#include "flowmatch/nn/detail/mlp_fast_path.hpp"
#include "flowmatch/nn/detail/mlp_workspace.hpp"

namespace flowmatch {

/// u_theta(x, t) = W_L f(... f(W_1 [x; t] + b_1) ...) + b_L: an MLP on the concatenation [x, t]
/// (input dimension d + 1, output d) with any number and width of hidden layers and the
/// activation f as a policy (SiLU, ReLU, Tanh, or your own: see activation.hpp).
///
/// Storage (nn/detail/dense_layers.hpp, shared with MLP): all parameters live in one flat vector,
/// layer by layer, each layer's weight first (out x in, row-major: PyTorch's `nn.Linear` layout)
/// then its bias; the gradients live in a second flat vector with the same layout. An optimizer
/// only ever sees these two vectors.
///
/// Work buffers (activations, saved sigmoids, deltas) live in a `Workspace` that the caller owns;
/// it is sized on the first call for a batch size and reused, so steady-state calls allocate
/// nothing. One workspace per concurrent caller.
///
/// Speed: both passes walk the batch in blocks of 32 columns, layer after layer, so that a block's
/// activations stay in cache between one layer and the next (the 1024-wide hidden layer of the
/// reference workload is 4 MB per 1000 samples: bigger than L2). A first layer with a small
/// fan-in (the reference workload's [x, t] has 3 inputs) is a few fused axpys instead of a matrix product. The blocks are shared among
/// `flowmatch::num_threads()` threads of flowmatch's pool (block k always goes to thread
/// k % threads); each thread sums its own weight gradients and the threads' sums are added in a
/// fixed order, so results are deterministic for a given thread count.
template <Real S = float, Activation Act = SiLU>
class MLPVectorField : public detail::DenseLayers<S> {
  using Base = detail::DenseLayers<S>;

 public:
  using activation_type = Act;
  using typename Base::WeightMap, typename Base::ConstBiasMap;
  using Base::num_layers, Base::fan_in, Base::fan_out, Base::num_parameters, Base::weight, Base::bias;
  using Base::weight_gradient;

  /// Buffers of one forward/backward pass at one batch size (see nn/detail/mlp_workspace.hpp).
  using Workspace = detail::MLPWorkspace<S>;

  /// A network for data dimension `dim` with the given hidden widths, initialised as PyTorch's
  /// `nn.Linear` (weights and biases uniform in +-1/sqrt(fan_in)) from `rng`.
  MLPVectorField(Index dim, std::vector<Index> hidden_widths, Rng& rng)
      : MLPVectorField(checked_dim(dim), dim, std::move(hidden_widths), rng) {}

  MLPVectorField(Index dim, std::vector<Index> hidden_widths, Rng&& rng)
      : MLPVectorField(dim, std::move(hidden_widths), rng) {}

  /// As above, with a generator seeded by `seed`.
  MLPVectorField(Index dim, std::vector<Index> hidden_widths, std::uint64_t seed = 0)
      : MLPVectorField(dim, std::move(hidden_widths), Rng(seed)) {}

  /// A network on [in; t] with `input_dim` rows of features `in` (plus the time row) and
  /// `output_dim` outputs: the trunk of fields whose input is more than x, such as a Fourier time
  /// embedding or a one-hot class label concatenated to x. For a vector field on R^d,
  /// input_dim = output_dim = d (the constructors above).
  MLPVectorField(Index input_dim, Index output_dim, std::vector<Index> hidden_widths, Rng& rng)
      : Base("flowmatch::MLPVectorField::MLPVectorField", input_dim, 1, output_dim, std::move(hidden_widths), rng) {}

  MLPVectorField(Index input_dim, Index output_dim, std::vector<Index> hidden_widths, Rng&& rng)
      : MLPVectorField(input_dim, output_dim, std::move(hidden_widths), rng) {}

  MLPVectorField(Index input_dim, Index output_dim, std::vector<Index> hidden_widths, std::uint64_t seed)
      : MLPVectorField(input_dim, output_dim, std::move(hidden_widths), Rng(seed)) {}

  /// Output dimension d (also the input dimension of a field on R^d).
  Index dim() const { return widths_.back(); }
  /// Rows of the input x (without the time row): dim() unless built with separate dimensions.
  Index input_dim() const { return widths_.front() - 1; }

  // ---------------------------------------------------------------- state (core/state.hpp)
  static constexpr std::string_view state_scope = "model";

  /// type = "mlp_vector_field", time = "last" (the time is the last input row), and the layers as
  /// nn/detail/layer_state.hpp writes them (scalar, activation, widths = layer_widths(),
  /// "<2l>.weight" / "<2l>.bias": PyTorch's nn.Sequential names and layouts).
  void save_state(StateWriter& w) const {
    w.text("type", "mlp_vector_field");
    w.text("time", "last");
    detail::save_layer_state<S, Act>(w, widths_, parameters_.data());
  }

  /// Loads what save_state wrote, all checked before the parameters change (CheckpointMismatchError).
  void load_state(const StateReader& r) {
    r.expect_text("type", "mlp_vector_field", "model type");
    r.expect_text("time", "last", "time input position");
    parameters_ = detail::load_layer_state<S, Act>(r, widths_, num_parameters());
  }

  /// A model built from its saved state alone (nn/detail/mlp_from_state_impl.hpp); for one whose
  /// activation is known only from the file, see nn/mlp_from_state.hpp.
  static MLPVectorField from_state(const StateReader& r);  // defined in nn/detail/mlp_from_state_impl.hpp

  /// Sizes `ws` for batches of n samples (allocates only when the shape changes).
  void prepare(Workspace& ws, Index n) const {
    ensure_model(ws);
    if (ws.batch == n) return;  // ensure_model reset batch to 0 if the architecture changed
    const auto L = static_cast<std::size_t>(num_layers());
    ws.a.resize(L);
    ws.aux.resize(L);
    for (std::size_t l = 0; l < L; ++l) {
      // The AVX-512 kernels keep layer 1's activations with a padded leading dimension.
      const Index rows = l == 1 && fast_path() ? FastPath::ld(*this) : widths_[l];
      ws.a[l].resize(rows, n);
      if (l > 0 && Act::uses_aux) ws.aux[l].resize(rows, n);
    }
    ws.out.resize(dim(), n);
    ws.batch = n;
  }

  /// Evaluates u_theta(x, t) for the d x n batch x into `out` (d x n). t is one time in [0, 1] or
  /// one per column. Allocates nothing once `ws` has seen this batch size.
  template <class DX, TimeArgument T, class DO>
  void forward(const Eigen::MatrixBase<DX>& x, const T& t, const Eigen::MatrixBase<DO>& out_,
               Workspace& ws) const {
    auto& out = detail::writable(out_);
    constexpr const char* where = "flowmatch::MLPVectorField::forward";
    const Index n = check_batch(where, x, t);
    detail::require_rows(where, "out", out.rows(), dim());
    detail::require_cols(where, "out", out.cols(), n);
    // Inference keeps nothing for a backward pass: each thread runs its blocks through the whole
    // network in block-sized buffers that stay in cache.
    const Index blocks = num_blocks(n);
    const int threads = threads_for(blocks);
    prepare_threads(ws, threads);
    if (fast_path()) FastPath::stage_inference(*this, ws, t);
    else stage_weights(ws);
    auto body = [&](Index b, int worker) {
      const detail::FlushDenormals flush;  // see core/denormals.hpp
      inference_block(x, t, out, ws, ws.threads[static_cast<std::size_t>(worker)], b * kBlock,
                      std::min(kBlock, n - b * kBlock));
    };
    detail::ThreadPool::global().run(blocks, threads, body);
  }

  /// u_theta(x, t) as a new matrix (allocates; for convenience outside hot loops).
  template <class DX, TimeArgument T>
  Matrix<S> operator()(const Eigen::MatrixBase<DX>& x, const T& t) const {
    Workspace ws;
    Matrix<S> out(dim(), x.cols());
    forward(x, t, out, ws);
    return out;
  }

  /// Forward pass that keeps what backward() needs in `ws`; returns the output (d x n), which
  /// lives in ws until the next call.
  template <class DX, TimeArgument T>
  const Matrix<S>& forward_train(const Eigen::MatrixBase<DX>& x, const T& t, Workspace& ws) const {
    constexpr const char* where = "flowmatch::MLPVectorField::forward";
    const Index n = check_batch(where, x, t);
    load_batch(x, t, ws);
    stage_weights(ws);
    const Index blocks = num_blocks(n);
    const int threads = threads_for(blocks);
    if (fast_path()) prepare_threads(ws, threads);  // the kernels' per-thread output buffer
    auto body = [&](Index b, int worker) {
      const detail::FlushDenormals flush;  // see core/denormals.hpp
      forward_block(ws, ws.threads.empty() ? nullptr : &ws.threads[static_cast<std::size_t>(worker)], b * kBlock,
                    std::min(kBlock, n - b * kBlock));
    };
    detail::ThreadPool::global().run(blocks, threads, body);
    return ws.out;
  }

  /// Backward pass for the forward_train() that last used `ws`: given dLoss/dout (d x n), writes
  /// dLoss/dparameters into gradients() (overwriting them). Allocates nothing after the first call
  /// at a batch size and thread count. Deterministic for a given thread count.
  template <class DG>
  void backward(const Eigen::MatrixBase<DG>& grad_out, Workspace& ws) {
    this->check_backward("flowmatch::MLPVectorField::backward", grad_out, ws);
    const Index n = ws.batch;
    const Index blocks = num_blocks(n);
    const int threads = threads_for(blocks);
    begin_backward(ws, threads);
    auto body = [&](Index b, int worker) {
      const detail::FlushDenormals flush;  // see core/denormals.hpp
      backward_block(grad_out, ws, ws.threads[static_cast<std::size_t>(worker)], b * kBlock,
                     std::min(kBlock, n - b * kBlock));
    };
    detail::ThreadPool::global().run(blocks, threads, body);
    reduce_gradients(ws, threads);
  }

  /// The flow matching regression in one call: with out = u_theta(x, t), returns the mean squared
  /// error mean((out - target)^2) over the d x n entries and writes its gradient with respect to
  /// the parameters into gradients(), the same numbers as forward_train() then backward() with
  /// dLoss/dout = 2 (out - target) / (d n), up to rounding. Faster: each block of columns runs
  /// forward and backward back to back, while its activations are still in cache. The parameters
  /// are not touched, so a caller that finds the loss not finite can still refuse the step.
  template <class DX, TimeArgument T, class DU>
  double mse_loss_and_gradient(const Eigen::MatrixBase<DX>& x, const T& t, const Eigen::MatrixBase<DU>& target,
                               Workspace& ws) {
    constexpr const char* where = "flowmatch::MLPVectorField::mse_loss_and_gradient";
    const Index n = check_batch(where, x, t);
    detail::require_rows(where, "target", target.rows(), dim());
    detail::require_cols(where, "target", target.cols(), n);
    load_batch(x, t, ws);
    if (ws.grad_out.rows() != dim() || ws.grad_out.cols() != n) ws.grad_out.resize(dim(), n);
    stage_weights(ws);
    const Index blocks = num_blocks(n);
    const int threads = threads_for(blocks);
    begin_backward(ws, threads);
    const double count = static_cast<double>(dim()) * static_cast<double>(n);
    const S scale = static_cast<S>(2.0 / count);
    auto body = [&](Index b, int worker) {
      const detail::FlushDenormals flush;  // see core/denormals.hpp
      typename Workspace::Thread& th = ws.threads[static_cast<std::size_t>(worker)];
      const Index j0 = b * kBlock, nb = std::min(kBlock, n - b * kBlock);
      forward_block(ws, &th, j0, nb, true);
      auto g = ws.grad_out.middleCols(j0, nb);
      g.noalias() = ws.out.middleCols(j0, nb) - target.middleCols(j0, nb).template cast<S>();
      th.loss += static_cast<double>(g.squaredNorm());
      g *= scale;
      backward_block(ws.grad_out, ws, th, j0, nb, true);
    };
    detail::ThreadPool::global().run(blocks, threads, body);
    reduce_gradients(ws, threads);
    double sum = 0.0;
    for (int k = 0; k < threads; ++k) sum += ws.threads[static_cast<std::size_t>(k)].loss;
    return sum / count;
  }

  /// Whether the passes use the AVX-512 kernels of nn/detail/mlp_avx512.hpp (through
  /// nn/detail/mlp_fast_path.hpp): float with SiLU in a build for a CPU with AVX-512F, a first
  /// layer with at most 8 inputs (x and t) and a multiple of 16 units, followed by a layer of at
  /// most 16 units (the reference workload's 3 -> 1024 -> 16 -> 2 qualifies). Everything else takes the
  /// portable Eigen path; both compute the same function.
  bool fast_path() const {
    if constexpr (kFastKernels) return FastPath::shape_fits(*this);
    else return false;
  }

 private:
  using FastPath = detail::MLPFastPath<MLPVectorField>;
  friend FastPath;
  static constexpr bool kFastKernels = detail::kMLPFastKernels<S, Act>;

  /// Columns per block: a block's activations of a 1024-wide layer (1024 x 32 floats, 128 KiB)
  /// stay in L2 between one layer and the next, and between a delta and its consumers. 32 also
  /// keeps every matrix product's packed operands within Eigen's stack-allocation limit
  /// (EIGEN_STACK_ALLOCATION_LIMIT, 128 KiB), so products allocate nothing on the heap; 64 columns
  /// measured the same speed, 128 and 256 slower.
  static constexpr Index kBlock = 32;
  /// Fan-ins up to this use a fused axpy kernel for the first layer instead of a matrix product.
  static constexpr Index kSmallFanIn = 8;

  /// Checks a batch x (input_dim() x n, n >= 1) and its time argument; returns n.
  template <class DX, TimeArgument T>
  Index check_batch(const char* where, const Eigen::MatrixBase<DX>& x, const T& t) const {
    detail::require_rows(where, "x", x.rows(), input_dim());
    const Index n = x.cols();
    if (n <= 0) detail::throw_invalid(where, "x.cols() (batch size)", n, "must be at least 1");
    detail::require_unit_times(where, "t", t, n);
    return n;
  }

  /// Sizes ws for the batch and writes the network's input [x; t] into ws.a[0].
  template <class DX, TimeArgument T>
  void load_batch(const Eigen::MatrixBase<DX>& x, const T& t, Workspace& ws) const {
    const Index n = x.cols(), din = input_dim();
    prepare(ws, n);
    Matrix<S>& a0 = ws.a[0];
    a0.topRows(din) = x.template cast<S>();
    if constexpr (std::is_arithmetic_v<T>) {
      a0.row(din).setConstant(static_cast<S>(t));
    } else {
      for (Index j = 0; j < n; ++j) a0(din, j) = static_cast<S>(t(j));
    }
  }

  /// Copies the weights the kernels read in their own layouts: the first weight column-major (one
  /// contiguous column per input) for a small fan-in, the second transposed for the AVX-512 path.
  void stage_weights(Workspace& ws) const {
    if (small_fan_in()) ws.w0 = weight(0);
    if (fast_path()) ws.w2t.topRows(fan_out(1)) = weight(1);
  }

  /// Zeroes the threads' gradient accumulators before a backward pass over `threads` threads.
  void begin_backward(Workspace& ws, int threads) {
    prepare_threads(ws, threads);
    for (int k = 0; k < threads; ++k) {
      auto& th = ws.threads[static_cast<std::size_t>(k)];
      th.grad.setZero();
      th.loss = 0.0;
      if (small_fan_in()) th.dw0.setZero();
    }
    if (fast_path()) FastPath::begin_backward(*this, ws, threads);
  }

  /// gradients() = the sum of the threads' partial gradients, in a fixed order (deterministic).
  void reduce_gradients(Workspace& ws, int threads) {
    gradients_ = ws.threads[0].grad;
    for (int k = 1; k < threads; ++k) gradients_ += ws.threads[static_cast<std::size_t>(k)].grad;
    if (small_fan_in()) {
      WeightMap g0 = weight_gradient(0);
      for (int k = 0; k < threads; ++k) g0 += ws.threads[static_cast<std::size_t>(k)].dw0;
    }
    if (fast_path()) FastPath::reduce_gradients(*this, ws, threads);
  }

  static Index checked_dim(Index dim) {
    if (dim <= 0) detail::throw_invalid("flowmatch::MLPVectorField::MLPVectorField", "dim", dim, "must be at least 1");
    return dim;
  }

  using Base::widths_, Base::parameters_, Base::gradients_, Base::woff, Base::boff;

  bool small_fan_in() const { return fan_in(0) <= kSmallFanIn; }

  template <bool Add, class Dst, class Lhs, class Rhs>
  static void product_in_pieces(Dst&& dst, const Lhs& lhs, const Rhs& rhs) {
    detail::product_in_pieces<Add, S>(std::forward<Dst>(dst), lhs, rhs);
  }
  static Index num_blocks(Index n) { return detail::num_blocks(n, kBlock); }
  static int threads_for(Index blocks) { return detail::threads_for(blocks); }

  /// Forgets every buffer sized for another architecture (a workspace moved between models).
  void ensure_model(Workspace& ws) const {
    if (ws.widths == widths_) return;
    ws = Workspace{};
    ws.widths = widths_;
    ws.w0.resize(fan_out(0), fan_in(0));
    if (fast_path()) FastPath::size_model(*this, ws);
  }

  void prepare_threads(Workspace& ws, int threads) const {
    ensure_model(ws);
    if (static_cast<int>(ws.threads.size()) == threads) return;
    ws.threads.resize(static_cast<std::size_t>(threads));
    Index widest = 1;
    for (Index l = 1; l < num_layers(); ++l) widest = std::max(widest, widths_[static_cast<std::size_t>(l)]);
    for (auto& th : ws.threads) {
      th.dz.resize(static_cast<std::size_t>(num_layers()));
      for (Index l = 0; l < num_layers(); ++l) th.dz[static_cast<std::size_t>(l)].resize(fan_out(l), kBlock);
      th.grad.resize(num_parameters());
      if (small_fan_in()) th.dw0.resize(fan_out(0), fan_in(0));
      th.in.resize(fan_in(0), kBlock);
      th.hidden[0].resize(widest, kBlock);
      th.hidden[1].resize(widest, kBlock);
      th.aux.resize(widest);
      if (fast_path()) FastPath::size_thread(*this, th);
    }
  }

  /// Inference over columns [j0, j0 + nb): every layer in the thread's block buffers.
  template <class DX, TimeArgument T, class DO>
  void inference_block(const Eigen::MatrixBase<DX>& x, const T& t, Eigen::MatrixBase<DO>& out,
                       const Workspace& ws, typename Workspace::Thread& th, Index j0, Index nb) const;

  /// Forward pass over columns [j0, j0 + nb) of the batch, layer after layer.
  /// With `local` (the fused mse_loss_and_gradient), the AVX-512 path keeps the block's first
  /// hidden layer in the thread's block buffers instead of the batch-wide ws.a[1] / ws.aux[1]:
  /// they stay in cache from one block to the next and the batch-wide pages are never touched.
  void forward_block(Workspace& ws, [[maybe_unused]] typename Workspace::Thread* th, Index j0, Index nb,
                     [[maybe_unused]] bool local = false) const;

  /// Backward pass over columns [j0, j0 + nb), accumulating into the thread's gradient.
  template <class DG>
  void backward_block(const Eigen::MatrixBase<DG>& grad_out, const Workspace& ws,
                      typename Workspace::Thread& th, Index j0, Index nb, [[maybe_unused]] bool local = false) const;

};

}  // namespace flowmatch

#include "flowmatch/nn/detail/mlp_passes.hpp"  // the definitions of the per-block passes
#include "flowmatch/nn/detail/mlp_from_state_impl.hpp"  // MLPVectorField::from_state
