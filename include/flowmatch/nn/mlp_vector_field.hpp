#pragma once
/// \file
/// A multilayer perceptron u_theta(x, t): R^d x [0, 1] -> R^d with a hand-written backward pass.

#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/time.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/activation.hpp"

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
/// nothing. One workspace per thread of use.
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
    std::vector<Matrix<S>> dz;   ///< dz[l]: dLoss/d(pre-activation of hidden layer l + 1)
    Matrix<S> out;               ///< the network's output, d x n
    Index batch = 0;
  };

  /// A network for data dimension `dim` with the given hidden widths, initialised as PyTorch's
  /// `nn.Linear` (weights and biases uniform in +-1/sqrt(fan_in)) from `rng`.
  MLPVectorField(Index dim, std::vector<Index> hidden_widths, Rng& rng)
      : hidden_widths_(std::move(hidden_widths)) {
    constexpr const char* where = "flowmatch::MLPVectorField::MLPVectorField";
    if (dim <= 0) detail::throw_invalid(where, "dim", dim, "must be at least 1");
    for (std::size_t l = 0; l < hidden_widths_.size(); ++l)
      if (hidden_widths_[l] <= 0)
        detail::throw_invalid(where, "hidden_widths[" + std::to_string(l) + "]", hidden_widths_[l],
                              "every hidden width must be at least 1");
    widths_.push_back(dim + 1);
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

  MLPVectorField(Index dim, std::vector<Index> hidden_widths, Rng&& rng)
      : MLPVectorField(dim, std::move(hidden_widths), rng) {}

  /// As above, with a generator seeded by `seed`.
  MLPVectorField(Index dim, std::vector<Index> hidden_widths, std::uint64_t seed = 0)
      : MLPVectorField(dim, std::move(hidden_widths), Rng(seed)) {}

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

  Index dim() const { return widths_.back(); }
  const std::vector<Index>& hidden_widths() const { return hidden_widths_; }
  /// Widths of every layer boundary: d + 1, the hidden widths, d.
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

  WeightMap weight(Index l) { return WeightMap(parameters_.data() + woff(l), fan_out(l), fan_in(l)); }
  ConstWeightMap weight(Index l) const { return ConstWeightMap(parameters_.data() + woff(l), fan_out(l), fan_in(l)); }
  BiasMap bias(Index l) { return BiasMap(parameters_.data() + boff(l), fan_out(l)); }
  ConstBiasMap bias(Index l) const { return ConstBiasMap(parameters_.data() + boff(l), fan_out(l)); }
  WeightMap weight_gradient(Index l) { return WeightMap(gradients_.data() + woff(l), fan_out(l), fan_in(l)); }
  BiasMap bias_gradient(Index l) { return BiasMap(gradients_.data() + boff(l), fan_out(l)); }

  /// Sizes `ws` for batches of n samples (allocates only when the shape changes).
  void prepare(Workspace& ws, Index n) const {
    if (ws.batch == n && matches_widths(ws)) return;
    const auto L = static_cast<std::size_t>(num_layers());
    ws.a.resize(L);
    ws.aux.resize(L);
    ws.dz.resize(L);
    for (std::size_t l = 0; l < L; ++l) {
      ws.a[l].resize(widths_[l], n);
      if (l > 0 && Act::uses_aux) ws.aux[l].resize(widths_[l], n);
      if (l + 1 < L) ws.dz[l].resize(widths_[l + 1], n);
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
    detail::require_rows("flowmatch::MLPVectorField::forward", "out", out.rows(), dim());
    detail::require_cols("flowmatch::MLPVectorField::forward", "out", out.cols(), x.cols());
    out = forward_train(x, t, ws);
  }

  /// u_theta(x, t) as a new matrix (allocates; for convenience outside hot loops).
  template <class DX, TimeArgument T>
  Matrix<S> operator()(const Eigen::MatrixBase<DX>& x, const T& t) const {
    Workspace ws;
    return forward_train(x, t, ws);
  }

  /// Forward pass that keeps what backward() needs in `ws`; returns the output (d x n), which
  /// lives in ws until the next call.
  template <class DX, TimeArgument T>
  const Matrix<S>& forward_train(const Eigen::MatrixBase<DX>& x, const T& t, Workspace& ws) const {
    constexpr const char* where = "flowmatch::MLPVectorField::forward";
    detail::require_rows(where, "x", x.rows(), dim());
    const Index n = x.cols();
    if (n <= 0) detail::throw_invalid(where, "x.cols() (batch size)", n, "must be at least 1");
    detail::require_unit_times(where, "t", t, n);
    prepare(ws, n);
    Matrix<S>& a0 = ws.a[0];
    a0.topRows(dim()) = x.template cast<S>();
    if constexpr (std::is_arithmetic_v<T>) {
      a0.row(dim()).setConstant(static_cast<S>(t));
    } else {
      for (Index j = 0; j < n; ++j) a0(dim(), j) = static_cast<S>(t(j));
    }
    const Index L = num_layers();
    for (Index l = 0; l + 1 < L; ++l) {
      Matrix<S>& z = ws.a[static_cast<std::size_t>(l) + 1];
      z.noalias() = weight(l) * ws.a[static_cast<std::size_t>(l)];
      const ConstBiasMap b = bias(l);
      S* aux = Act::uses_aux ? ws.aux[static_cast<std::size_t>(l) + 1].data() : nullptr;
      const Index h = z.rows();
      for (Index j = 0; j < n; ++j) {  // bias + activation fused, one L1-resident column at a time
        S* col = z.data() + j * h;
        Eigen::Map<Vector<S>>(col, h) += b;
        Act::forward(col, col, aux ? aux + j * h : nullptr, h);
      }
    }
    ws.out.noalias() = weight(L - 1) * ws.a[static_cast<std::size_t>(L) - 1];
    ws.out.colwise() += bias(L - 1);
    return ws.out;
  }

  /// Backward pass for the forward_train() that last used `ws`: given dLoss/dout (d x n), writes
  /// dLoss/dparameters into gradients() (overwriting them). Allocates nothing.
  template <class DG>
  void backward(const Eigen::MatrixBase<DG>& grad_out, Workspace& ws) {
    constexpr const char* where = "flowmatch::MLPVectorField::backward";
    if (ws.batch <= 0 || ws.a.size() != static_cast<std::size_t>(num_layers()))
      throw InvalidArgument(std::string(where) + ": argument 'ws' holds no forward pass of this model; call forward_train first");
    detail::require_rows(where, "grad_out", grad_out.rows(), dim());
    detail::require_cols(where, "grad_out", grad_out.cols(), ws.batch);
    const Index L = num_layers();
    const Index n = ws.batch;
    for (Index l = L - 1; l >= 0; --l) {
      const auto ul = static_cast<std::size_t>(l);
      const Matrix<S>& input = ws.a[ul];
      if (l == L - 1) {
        weight_gradient(l).noalias() = grad_out * input.transpose();
        bias_gradient(l).noalias() = grad_out.rowwise().sum();
      } else {
        weight_gradient(l).noalias() = ws.dz[ul] * input.transpose();
      }
      if (l == 0) break;
      // dz[l-1] = (W_l^T dz_l) .* f'(z), with the bias gradient of layer l-1 summed in the same pass.
      Matrix<S>& d = ws.dz[ul - 1];
      if (l == L - 1)
        d.noalias() = weight(l).transpose() * grad_out;
      else
        d.noalias() = weight(l).transpose() * ws.dz[ul];
      BiasMap db = bias_gradient(l - 1);
      db.setZero();
      const Index h = d.rows();
      const S* act = input.data();
      const S* aux = Act::uses_aux ? ws.aux[ul].data() : nullptr;
      for (Index j = 0; j < n; ++j) {
        S* col = d.data() + j * h;
        Act::backward(act + j * h, aux ? aux + j * h : nullptr, col, h);
        db += Eigen::Map<const Vector<S>>(col, h);
      }
    }
  }

 private:
  Index woff(Index l) const { return weight_offsets_[static_cast<std::size_t>(l)]; }
  Index boff(Index l) const { return bias_offsets_[static_cast<std::size_t>(l)]; }
  bool matches_widths(const Workspace& ws) const {
    if (ws.a.size() != static_cast<std::size_t>(num_layers()) || ws.out.rows() != dim()) return false;
    for (std::size_t l = 0; l < ws.a.size(); ++l)
      if (ws.a[l].rows() != widths_[l]) return false;
    return true;
  }

  std::vector<Index> hidden_widths_;
  std::vector<Index> widths_;
  std::vector<Index> weight_offsets_;
  std::vector<Index> bias_offsets_;
  Vector<S> parameters_;
  Vector<S> gradients_;
};

}  // namespace flowmatch
