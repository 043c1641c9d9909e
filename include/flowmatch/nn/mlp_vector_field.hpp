#pragma once
/// \file
/// A multilayer perceptron u_theta(x, t): R^d x [0, 1] -> R^d with a hand-written backward pass.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "flowmatch/core/denormals.hpp"
#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/state.hpp"
#include "flowmatch/core/thread_pool.hpp"
#include "flowmatch/core/threads.hpp"
#include "flowmatch/core/time.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/activation.hpp"
#include "flowmatch/nn/mlp_avx512.hpp"


namespace flowmatch {

/// u_theta(x, t) = W_L f(... f(W_1 [x; t] + b_1) ...) + b_L: an MLP on the concatenation [x, t]
/// (input dimension d + 1, output d) with any number and width of hidden layers and the
/// activation f as a policy (SiLU, ReLU, Tanh, or your own: see activation.hpp).
///
/// Storage: all parameters live in one flat vector, layer by layer, each layer's weight first
/// (out x in, row-major: PyTorch's `nn.Linear` layout) then its bias; the gradients live in a
/// second flat vector with the same layout. An optimizer only ever sees these two vectors.
///
/// Work buffers (activations, saved sigmoids, deltas) live in a `Workspace` that the caller owns;
/// it is sized on the first call for a batch size and reused, so steady-state calls allocate
/// nothing. One workspace per concurrent caller.
///
/// Speed: both passes walk the batch in blocks of 32 columns, layer after layer, so that a block's
/// activations stay in cache between one layer and the next (the 1024-wide hidden layer of the
/// seed is 4 MB per 1000 samples: bigger than L2). A first layer with a small fan-in (the seed's
/// [x, t] has 3 inputs) is a few fused axpys instead of a matrix product. The blocks are shared among
/// `flowmatch::num_threads()` threads of flowmatch's pool (block k always goes to thread
/// k % threads); each thread sums its own weight gradients and the threads' sums are added in a
/// fixed order, so results are deterministic for a given thread count.
template <Real S = float, Activation Act = SiLU>
class MLPVectorField {
 public:
  using Scalar = S;
  using activation_type = Act;
  using WeightMap = Eigen::Map<RowMajorMatrix<S>>;
  using ConstWeightMap = Eigen::Map<const RowMajorMatrix<S>>;
  using BiasMap = Eigen::Map<Vector<S>>;
  using ConstBiasMap = Eigen::Map<const Vector<S>>;

  /// Buffers of one forward/backward pass at one batch size.
  struct Workspace {
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
    detail::avx512::PreactivationBound bound;  ///< AVX-512 inference: of the scaled pre-activations
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
      : hidden_widths_(std::move(hidden_widths)) {
    constexpr const char* where = "flowmatch::MLPVectorField::MLPVectorField";
    if (input_dim <= 0) detail::throw_invalid(where, "input_dim", input_dim, "must be at least 1");
    if (output_dim <= 0) detail::throw_invalid(where, "output_dim", output_dim, "must be at least 1");
    const Index dim = output_dim;
    for (std::size_t l = 0; l < hidden_widths_.size(); ++l)
      if (hidden_widths_[l] <= 0)
        detail::throw_invalid(where, "hidden_widths[" + std::to_string(l) + "]", hidden_widths_[l],
                              "every hidden width must be at least 1");
    widths_.push_back(input_dim + 1);
    for (Index w : hidden_widths_) widths_.push_back(w);
    widths_.push_back(dim);
    Index offset = 0;
    for (Index l = 0; l < num_layers(); ++l) {
      weight_offsets_.push_back(offset);
      offset += fan_out(l) * fan_in(l);
      bias_offsets_.push_back(offset);
      offset += fan_out(l);
    }
    parameters_ = Vector<S>::Zero(offset);
    gradients_ = Vector<S>::Zero(offset);
    reset_parameters(rng);
  }

  MLPVectorField(Index input_dim, Index output_dim, std::vector<Index> hidden_widths, Rng&& rng)
      : MLPVectorField(input_dim, output_dim, std::move(hidden_widths), rng) {}

  MLPVectorField(Index input_dim, Index output_dim, std::vector<Index> hidden_widths, std::uint64_t seed)
      : MLPVectorField(input_dim, output_dim, std::move(hidden_widths), Rng(seed)) {}

  /// Re-draws every weight and bias uniformly in +-1/sqrt(fan_in) (PyTorch's default).
  void reset_parameters(Rng& rng) {
    for (Index l = 0; l < num_layers(); ++l) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in(l)));
      WeightMap w = weight(l);
      for (Index i = 0; i < w.rows(); ++i)
        for (Index k = 0; k < w.cols(); ++k) w(i, k) = static_cast<S>(bound * (2.0 * rng.uniform() - 1.0));
      BiasMap b = bias(l);
      for (Index i = 0; i < b.size(); ++i) b(i) = static_cast<S>(bound * (2.0 * rng.uniform() - 1.0));
    }
  }

  /// Output dimension d (also the input dimension of a field on R^d).
  Index dim() const { return widths_.back(); }
  /// Rows of the input x (without the time row): dim() unless built with separate dimensions.
  Index input_dim() const { return widths_.front() - 1; }
  const std::vector<Index>& hidden_widths() const { return hidden_widths_; }
  /// Widths of every layer boundary: input_dim() + 1, the hidden widths, dim().
  const std::vector<Index>& layer_widths() const { return widths_; }
  /// Number of affine layers (hidden layers + 1).
  Index num_layers() const { return static_cast<Index>(widths_.size()) - 1; }
  Index fan_in(Index l) const { return widths_[static_cast<std::size_t>(l)]; }
  Index fan_out(Index l) const { return widths_[static_cast<std::size_t>(l) + 1]; }
  Index num_parameters() const { return parameters_.size(); }

  /// All parameters, flat (see the class comment for the layout).
  Vector<S>& parameters() { return parameters_; }
  const Vector<S>& parameters() const { return parameters_; }
  /// dLoss/dparameters from the last backward(), same layout.
  Vector<S>& gradients() { return gradients_; }
  const Vector<S>& gradients() const { return gradients_; }

  // ---------------------------------------------------------------- state (core/state.hpp)
  static constexpr std::string_view state_scope = "model";

  /// Saves the architecture as attributes: type = "mlp_vector_field", scalar = "float" or
  /// "double", activation = Act::name(), widths = layer_widths() (e.g. [3,1024,16,2]; the first is
  /// input_dim() + 1 with the time row), time = "last" (the time is the last input row); and layer
  /// l's weight and bias as tensors "<2l>.weight" [fan_out, fan_in] and "<2l>.bias" [fan_out]:
  /// the names and layouts of PyTorch's nn.Sequential(Linear, act, Linear, act, ..., Linear).
  void save_state(StateWriter& w) const {
    w.text("type", "mlp_vector_field");
    w.text("scalar", state_scalar_name());
    w.text("activation", std::string(Act::name()));
    w.integers("widths", std::vector<long long>(widths_.begin(), widths_.end()));
    w.text("time", "last");
    for (Index l = 0; l < num_layers(); ++l) {
      w.tensor(state_tensor_name(l, "weight"), parameters_.data() + woff(l), state_weight_shape(l));
      w.tensor(state_tensor_name(l, "bias"), parameters_.data() + boff(l), state_bias_shape(l));
    }
  }

  /// Loads the parameters saved by save_state. Checks the type, scalar type, activation, time
  /// input and layer widths against this model's, reads every tensor into a temporary and checks
  /// that it is finite, and only then replaces the parameters; throws CheckpointMismatchError.
  void load_state(const StateReader& r) {
    const std::vector<long long> widths = check_state_architecture(r);
    if (!std::equal(widths.begin(), widths.end(), widths_.begin(), widths_.end()))
      r.fail("holds a model with layer widths " + state_widths_string(widths) + " at '" + r.prefix() +
             "widths', the model passed has " +
             state_widths_string(std::vector<long long>(widths_.begin(), widths_.end())));
    Vector<S> p(num_parameters());
    for (Index l = 0; l < num_layers(); ++l) {
      r.read(state_tensor_name(l, "weight"), state_weight_shape(l), p.data() + woff(l));
      r.read(state_tensor_name(l, "bias"), state_bias_shape(l), p.data() + boff(l));
      const auto finite = [&](Index offset, Index count, const char* what) {
        if (!Eigen::Map<const Vector<S>>(p.data() + offset, count).allFinite())
          r.fail("tensor '" + r.prefix() + state_tensor_name(l, what) + "' holds a NaN or an infinity");
      };
      finite(woff(l), fan_out(l) * fan_in(l), "weight");
      finite(boff(l), fan_out(l), "bias");
    }
    parameters_ = std::move(p);
  }

  /// A model built from its saved state alone: the architecture from the attributes (which must
  /// describe a valid network of this S and Act: widths of at least two entries, each in
  /// [1, 2^31), the first >= 2; time "last"), then load_state. Every tensor's shape is checked
  /// before anything is allocated, and a tensor or attribute under the reader's scope that the
  /// model does not read is refused. For a model whose activation is known only from the file,
  /// see nn/mlp_from_state.hpp.
  static MLPVectorField from_state(const StateReader& r) {
    const std::vector<long long> w = check_state_architecture(r);
    for (std::size_t l = 0; l + 1 < w.size(); ++l) {
      const auto check_shape = [&](const char* what, std::vector<std::int64_t> expected) {
        const std::string name = state_tensor_name(static_cast<Index>(l), what);
        const std::vector<std::int64_t> shape = r.shape(name);
        if (shape != expected)
          r.fail("tensor '" + r.prefix() + name + "' has shape " + shape_string(shape) + ", layer widths " +
                 state_widths_string(w) + " need " + shape_string(expected));
      };
      check_shape("weight", {static_cast<std::int64_t>(w[l + 1]), static_cast<std::int64_t>(w[l])});
      check_shape("bias", {static_cast<std::int64_t>(w[l + 1])});
    }
    MLPVectorField model(static_cast<Index>(w.front() - 1), static_cast<Index>(w.back()),
                         std::vector<Index>(w.begin() + 1, w.end() - 1), std::uint64_t{0});
    model.load_state(r);
    r.require_all_read();
    return model;
  }

 private:
  static constexpr const char* state_scalar_name() { return std::is_same_v<S, float> ? "float" : "double"; }
  static std::string state_tensor_name(Index l, const char* what) { return std::to_string(2 * l) + "." + what; }
  std::vector<std::int64_t> state_weight_shape(Index l) const {
    return {static_cast<std::int64_t>(fan_out(l)), static_cast<std::int64_t>(fan_in(l))};
  }
  std::vector<std::int64_t> state_bias_shape(Index l) const { return {static_cast<std::int64_t>(fan_out(l))}; }
  static std::string state_widths_string(const std::vector<long long>& w) {
    std::string s;
    for (std::size_t i = 0; i < w.size(); ++i) s.append(i ? "-" : "").append(std::to_string(w[i]));
    return s;
  }
  /// Checks the attributes (type, scalar, activation, time, valid widths); returns the widths.
  static std::vector<long long> check_state_architecture(const StateReader& r) {
    r.expect_text("type", "mlp_vector_field", "model type");
    r.expect_text("scalar", state_scalar_name(), "scalar type");
    r.expect_text("activation", Act::name(), "activation");
    r.expect_text("time", "last", "time input position");
    const std::vector<long long> w = r.integers("widths");
    constexpr long long kMaxWidth = 1LL << 31;
    if (w.size() < 2)
      r.fail("holds layer widths " + r.text("widths") + " at '" + r.prefix() + "widths': a network needs at least two");
    for (std::size_t i = 0; i < w.size(); ++i)
      if (w[i] < (i == 0 ? 2 : 1) || w[i] >= kMaxWidth)
        r.fail("holds layer width " + std::to_string(w[i]) + " at '" + r.prefix() + "widths'[" + std::to_string(i) +
               "], outside [" + (i == 0 ? "2" : "1") + ", 2^31)" + (i == 0 ? " (the inputs and the time row)" : ""));
    return w;
  }

 public:

  WeightMap weight(Index l) { return WeightMap(parameters_.data() + woff(l), fan_out(l), fan_in(l)); }
  ConstWeightMap weight(Index l) const { return ConstWeightMap(parameters_.data() + woff(l), fan_out(l), fan_in(l)); }
  BiasMap bias(Index l) { return BiasMap(parameters_.data() + boff(l), fan_out(l)); }
  ConstBiasMap bias(Index l) const { return ConstBiasMap(parameters_.data() + boff(l), fan_out(l)); }
  WeightMap weight_gradient(Index l) { return WeightMap(gradients_.data() + woff(l), fan_out(l), fan_in(l)); }
  BiasMap bias_gradient(Index l) { return BiasMap(gradients_.data() + boff(l), fan_out(l)); }

  /// Sizes `ws` for batches of n samples (allocates only when the shape changes).
  void prepare(Workspace& ws, Index n) const {
    ensure_model(ws);
    if (ws.batch == n) return;  // ensure_model reset batch to 0 if the architecture changed
    const auto L = static_cast<std::size_t>(num_layers());
    ws.a.resize(L);
    ws.aux.resize(L);
    for (std::size_t l = 0; l < L; ++l) {
      // The AVX-512 kernels keep layer 1's activations with a padded leading dimension.
      const Index rows = l == 1 && fast_path() ? fast_ld() : widths_[l];
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
    if (fast_path()) {
      stage_inference_weights(ws);
      // Inputs whose bound keeps every scaled pre-activation small run the kernel without its cap.
      Index inputs = fan_in(0);
      if constexpr (std::is_arithmetic_v<T>) {
        // fma, as the kernel adds the time to the bias: bit-identical to a vector of equal times.
        const S ts = static_cast<S>(t);
        for (Index k = 0; k < fan_out(0); ++k) ws.bt(k) = std::fma(ws.w0s(k, fan_in(0) - 1), ts, ws.b0s(k));
        ws.bound.b = ws.bt.cwiseAbs().maxCoeff();
        --inputs;
      } else {
        ws.bound.b = ws.b0s.cwiseAbs().maxCoeff();
      }
      // The kernel takes the time row last (TimeFirst only changes the order of the sum).
      for (Index r = 0; r < inputs; ++r) ws.bound.w[r] = ws.w0s.col(r).cwiseAbs().maxCoeff();
    } else {
      stage_weights(ws);
    }
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
    constexpr const char* where = "flowmatch::MLPVectorField::backward";
    if (ws.batch <= 0 || ws.widths != widths_)
      throw InvalidArgument(std::string(where) + ": argument 'ws' holds no forward pass of this model; call forward_train first");
    detail::require_rows(where, "grad_out", grad_out.rows(), dim());
    detail::require_cols(where, "grad_out", grad_out.cols(), ws.batch);
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

  /// Whether the passes use the AVX-512 kernels of mlp_avx512.hpp: float with SiLU in a build for
  /// a CPU with AVX-512F, a first layer with at most 8 inputs (x and t) and a multiple of 16
  /// units, followed by a layer of at most 16 units (the seed's 3 -> 1024 -> 16 -> 2 qualifies).
  /// Everything else takes the portable Eigen path; both compute the same function.
  bool fast_path() const {
    if constexpr (kAvx512Kernels) {
      return num_layers() >= 2 && fan_in(0) <= detail::avx512::kMaxFanIn && fan_out(0) % 16 == 0 &&
             fan_out(1) <= 16;
    } else {
      return false;
    }
  }

 private:
  /// Columns per block: a block's activations of a 1024-wide layer (1024 x 32 floats, 128 KiB)
  /// stay in L2 between one layer and the next, and between a delta and its consumers. 32 also
  /// keeps every matrix product's packed operands within Eigen's stack-allocation limit
  /// (EIGEN_STACK_ALLOCATION_LIMIT, 128 KiB), so products allocate nothing on the heap; 64 columns
  /// measured the same speed, 128 and 256 slower.
  static constexpr Index kBlock = 32;
  /// Fan-ins up to this use a fused axpy kernel for the first layer instead of a matrix product.
  static constexpr Index kSmallFanIn = 8;
  /// Products with at most this many multiply-adds skip Eigen's GEMM (see product_in_pieces).
  static constexpr Index kLazyProduct = 4096;
#if defined(__AVX512F__)
  static constexpr bool kAvx512Kernels = std::is_same_v<S, float> && std::is_same_v<Act, SiLU>;
#else
  static constexpr bool kAvx512Kernels = false;
#endif

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

  /// The AVX-512 inference kernels' weights: the first layer's scaled by -log2(e), the second's
  /// transposed and scaled by -ln(2) (see avx512::silu_log2). A few K x 16 copies per
  /// pass, nothing next to the pass itself.
  void stage_inference_weights(Workspace& ws) const {
    constexpr S kLog2e = static_cast<S>(1.44269504088896340736);
    constexpr S kLn2 = static_cast<S>(0.693147180559945309417);
    ws.w0s.noalias() = -kLog2e * weight(0);
    ws.b0s.noalias() = -kLog2e * bias(0);
    ws.w2ts.topRows(fan_out(1)).noalias() = -kLn2 * weight(1);
  }

  /// Zeroes the threads' gradient accumulators before a backward pass over `threads` threads.
  void begin_backward(Workspace& ws, int threads) {
    prepare_threads(ws, threads);
    for (int k = 0; k < threads; ++k) {
      auto& th = ws.threads[static_cast<std::size_t>(k)];
      th.grad.setZero();
      th.loss = 0.0;
      if (small_fan_in()) th.dw0.setZero();
      if (fast_path()) th.dw2t.setZero();
    }
    if (fast_path() && fan_out(1) < 16) ws.w2p.topRows(fan_out(1)) = weight(1);
  }

  /// gradients() = the sum of the threads' partial gradients, in a fixed order (deterministic).
  void reduce_gradients(Workspace& ws, int threads) {
    gradients_ = ws.threads[0].grad;
    for (int k = 1; k < threads; ++k) gradients_ += ws.threads[static_cast<std::size_t>(k)].grad;
    if (small_fan_in()) {
      WeightMap g0 = weight_gradient(0);
      for (int k = 0; k < threads; ++k) g0 += ws.threads[static_cast<std::size_t>(k)].dw0;
    }
    if (fast_path()) {
      WeightMap g1 = weight_gradient(1);
      for (int k = 0; k < threads; ++k) g1 += ws.threads[static_cast<std::size_t>(k)].dw2t.topRows(fan_out(1));
    }
  }

  /// Leading dimension of the first hidden layer's buffers in the AVX-512 kernels.
  Index fast_ld() const { return fan_out(0) + 16; }

  static Index checked_dim(Index dim) {
    if (dim <= 0) detail::throw_invalid("flowmatch::MLPVectorField::MLPVectorField", "dim", dim, "must be at least 1");
    return dim;
  }

  Index woff(Index l) const { return weight_offsets_[static_cast<std::size_t>(l)]; }
  Index boff(Index l) const { return bias_offsets_[static_cast<std::size_t>(l)]; }

  bool small_fan_in() const { return fan_in(0) <= kSmallFanIn; }

  /// dst = lhs * rhs (+= when Add) without heap allocation. Eigen packs a product's operands into
  /// buffers of kc x mc and kc x nc scalars (kc, mc, nc at most the inner, row and column sizes,
  /// otherwise chosen from the CPU's cache sizes), on the stack up to EIGEN_STACK_ALLOCATION_LIMIT
  /// bytes and on the heap above. A product whose K x M and K x N fit under the limit is one
  /// product (the seed's are); a bigger one is split into pieces of at most 256 along K and
  /// limit / 256 along M and N, which fit whatever the layer widths and the caches.
  template <bool Add, class Dst, class Lhs, class Rhs>
  static void product_in_pieces(Dst&& dst, const Lhs& lhs, const Rhs& rhs) {
    constexpr Index limit = static_cast<Index>(EIGEN_STACK_ALLOCATION_LIMIT / sizeof(S));
    const Index M = lhs.rows(), K = lhs.cols(), N = rhs.cols();
    if (M * N * K <= kLazyProduct) {
      // Tiny products (the seed's 16 -> 2 output layer): coefficient by coefficient, which skips
      // the GEMM's packing and blocking set-up that would cost more than the arithmetic.
      if constexpr (Add) dst.noalias() += lhs.lazyProduct(rhs);
      else dst.noalias() = lhs.lazyProduct(rhs);
      return;
    }
    if (K * std::max(M, N) <= limit) {
      if constexpr (Add) dst.noalias() += lhs * rhs;
      else dst.noalias() = lhs * rhs;
      return;
    }
    constexpr Index kp = std::min<Index>(256, limit / 64);
    constexpr Index np = limit / kp;
    for (Index i = 0; i < M; i += np) {
      const Index mi = std::min(np, M - i);
      for (Index j = 0; j < N; j += np) {
        const Index nj = std::min(np, N - j);
        for (Index k = 0; k < K; k += kp) {
          const Index kk = std::min(kp, K - k);
          if (Add || k > 0)
            dst.block(i, j, mi, nj).noalias() += lhs.block(i, k, mi, kk) * rhs.block(k, j, kk, nj);
          else
            dst.block(i, j, mi, nj).noalias() = lhs.block(i, k, mi, kk) * rhs.block(k, j, kk, nj);
        }
      }
    }
  }
  static Index num_blocks(Index n) { return (n + kBlock - 1) / kBlock; }
  static int threads_for(Index blocks) {
    return static_cast<int>(std::max<Index>(1, std::min<Index>(num_threads(), blocks)));
  }

  /// Forgets every buffer sized for another architecture (a workspace moved between models).
  void ensure_model(Workspace& ws) const {
    if (ws.widths == widths_) return;
    ws = Workspace{};
    ws.widths = widths_;
    ws.w0.resize(fan_out(0), fan_in(0));
    if (fast_path()) {
      ws.w2t.setZero(16, fan_out(0));
      ws.w2p.setZero(16, fan_out(0));
      ws.bt.resize(fan_out(0));
      ws.w0s.resize(fan_out(0), fan_in(0));
      ws.b0s.resize(fan_out(0));
      ws.w2ts.setZero(16, fan_out(0));
    }
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
      if (fast_path()) {
        th.y.resize(16, kBlock);
        th.dz2.setZero(16, kBlock);
        th.dw2t.resize(16, fan_out(0));
        th.h.resize(fast_ld(), kBlock);
        th.s.resize(fast_ld(), kBlock);
      }
    }
  }

  /// Inference over columns [j0, j0 + nb): every layer in the thread's block buffers.
  template <class DX, TimeArgument T, class DO>
  void inference_block(const Eigen::MatrixBase<DX>& x, const T& t, Eigen::MatrixBase<DO>& out,
                       const Workspace& ws, typename Workspace::Thread& th, Index j0, Index nb) const {
    const Index d = input_dim(), L = num_layers();
    for (Index j = 0; j < nb; ++j) {
      for (Index i = 0; i < d; ++i) th.in(i, j) = static_cast<S>(x(i, j0 + j));
      th.in(d, j) = static_cast<S>(detail::time_at(t, j0 + j));
    }
    const Matrix<S>* input = &th.in;
    Index first = 0;
#if defined(__AVX512F__)
    if constexpr (kAvx512Kernels) {
      if (fast_path()) {
        // Layers 0 and 1 by one AVX-512 kernel, 16 columns at a time with everything in registers;
        // a third and last layer of at most 16 outputs too (the seed's shape).
        const Index K = fan_out(0), M = fan_out(1), F = fan_in(0);
        const bool whole = L == 3 && fan_out(2) <= 16;
        const detail::avx512::OutputLayer last{bias(1).data(), whole ? weight(2).data() : nullptr,
                                               whole ? bias(2).data() : nullptr, M, whole ? fan_out(2) : 0};
        const detail::avx512::OutputLayer* tail = whole ? &last : nullptr;
        if constexpr (std::is_arithmetic_v<T>) {
          // One time for all columns: forward() folded b0 + t W0[:, F - 1] into ws.bt.
          detail::avx512::dispatch_fan_in(F - 1, [&](auto FF) {
            detail::avx512::first_two_layers<decltype(FF)::value, false>(ws.w0s.data(), ws.bt.data(), th.in.data(), F, K,
                                                                         nb, ws.w2ts.data(), th.y.data(), ws.bound, tail);
          });
        } else {
          detail::avx512::dispatch_fan_in(F, [&](auto FF) {
            detail::avx512::first_two_layers<decltype(FF)::value, true>(ws.w0s.data(), ws.b0s.data(), th.in.data(), F, K,
                                                                        nb, ws.w2ts.data(), th.y.data(), ws.bound, tail);
          });
        }
        if (whole) {
          out.middleCols(j0, nb) = th.y.topLeftCorner(fan_out(2), nb).template cast<typename DO::Scalar>();
          return;
        }
        if (L == 2) {
          out.middleCols(j0, nb) = th.y.topLeftCorner(M, nb).template cast<typename DO::Scalar>();
          out.middleCols(j0, nb).colwise() += bias(1).template cast<typename DO::Scalar>();
          return;
        }
        Matrix<S>& z = th.hidden[1];
        const Index stride = z.rows();
        z.topLeftCorner(M, nb) = th.y.topLeftCorner(M, nb);
        z.topLeftCorner(M, nb).colwise() += bias(1);
        for (Index j = 0; j < nb; ++j) Act::forward(z.data() + j * stride, z.data() + j * stride, th.aux.data(), M);
        input = &z;
        first = 2;
      }
    }
#endif
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
  void forward_block(Workspace& ws, [[maybe_unused]] typename Workspace::Thread* th, Index j0, Index nb,
                     [[maybe_unused]] bool local = false) const {
    const Index L = num_layers();
    Index first = 0;
#if defined(__AVX512F__)
    if constexpr (kAvx512Kernels) {
      if (fast_path()) {
        // Layers 0 and 1 by the AVX-512 kernels, saving h = a[1] and s = aux[1] for backward.
        const Index K = fan_out(0), M = fan_out(1), F = fan_in(0);
        const Index ld = fast_ld();
        S* h = local ? th->h.data() : ws.a[1].data() + j0 * ld;
        S* sg = local ? th->s.data() : ws.aux[1].data() + j0 * ld;
        detail::avx512::dispatch_fan_in(F, [&](auto FF) {
          detail::avx512::first_layer_silu<decltype(FF)::value, true>(ws.w0.data(), bias(0).data(), ws.a[0].data() + j0 * F, F,
                                                                K, nb, h, sg, ld);
        });
        detail::avx512::second_layer(ws.w2t.data(), h, K, nb, th->y.data(), ld);
        Matrix<S>& z = L == 2 ? ws.out : ws.a[2];
        z.middleCols(j0, nb) = th->y.topLeftCorner(M, nb);
        z.middleCols(j0, nb).colwise() += bias(1);
        if (L == 2) return;
        S* aux = Act::uses_aux ? ws.aux[2].data() : nullptr;
        for (Index j = j0; j < j0 + nb; ++j) Act::forward(z.data() + j * M, z.data() + j * M, aux ? aux + j * M : nullptr, M);
        first = 2;
      }
    }
#endif
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
  template <class DG>
  void backward_block(const Eigen::MatrixBase<DG>& grad_out, const Workspace& ws,
                      typename Workspace::Thread& th, Index j0, Index nb, [[maybe_unused]] bool local = false) const {
    const Index L = num_layers();
    S* g = th.grad.data();
    // Output layer: dz_{L-1} is grad_out itself.
    th.dz[static_cast<std::size_t>(L) - 1].leftCols(nb) = grad_out.middleCols(j0, nb).template cast<S>();
    BiasMap(g + boff(L - 1), fan_out(L - 1)) += th.dz[static_cast<std::size_t>(L) - 1].leftCols(nb).rowwise().sum();
    for (Index l = L - 1; l >= 0; --l) {
      const auto ul = static_cast<std::size_t>(l);
      const Eigen::Ref<const Matrix<S>> dz = th.dz[ul].leftCols(nb);
#if defined(__AVX512F__)
      if constexpr (kAvx512Kernels) {
        if (l == 1 && fast_path()) {
          // Layers 1 and 0 by the AVX-512 kernels (dz is layer 1's delta, its bias gradient done).
          const Index K = fan_out(0), M = fan_out(1), F = fan_in(0);
          th.dz2.topLeftCorner(M, nb) = dz;  // rows M..15 stay zero
          const Index ld = fast_ld();
          const S* h = local ? th.h.data() : ws.a[1].data() + j0 * ld;
          const S* sg = local ? th.s.data() : ws.aux[1].data() + j0 * ld;
          detail::avx512::second_layer_weight_gradient(th.dz2.data(), h, K, nb, th.dw2t.data(), ld);
          const S* w2p = M == 16 ? parameters_.data() + woff(1) : ws.w2p.data();
          detail::avx512::dispatch_fan_in(F, [&](auto FF) {
            detail::avx512::first_layer_backward<decltype(FF)::value>(w2p, th.dz2.data(), h, sg, ws.a[0].data() + j0 * F, K,
                                                                      nb, th.dw0.data(), g + boff(0), ld);
          });
          break;
        }
      }
#endif
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
      product_in_pieces<true>(WeightMap(g + woff(l), fan_out(l), fan_in(l)), dz, input.transpose());
      if (l == 0) break;
      // dz_{l-1} = (W_l^T dz_l) .* f'(z_{l-1}), with the bias gradient of layer l-1 in the same pass.
      Matrix<S>& prev = th.dz[ul - 1];
      product_in_pieces<false>(prev.leftCols(nb), weight(l).transpose(), dz);
      BiasMap db(g + boff(l - 1), fan_out(l - 1));
      const Index h = prev.rows();
      const S* act = ws.a[ul].data() + j0 * h;
      const S* aux = Act::uses_aux ? ws.aux[ul].data() + j0 * h : nullptr;
      for (Index j = 0; j < nb; ++j) {
        S* col = prev.data() + j * h;
        Act::backward(act + j * h, aux ? aux + j * h : nullptr, col, h);
        db += Eigen::Map<const Vector<S>>(col, h);
      }
    }
  }

  std::vector<Index> hidden_widths_;
  std::vector<Index> widths_;
  std::vector<Index> weight_offsets_;
  std::vector<Index> bias_offsets_;
  Vector<S> parameters_;
  Vector<S> gradients_;
};

}  // namespace flowmatch
