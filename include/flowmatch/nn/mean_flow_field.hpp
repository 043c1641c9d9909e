#pragma once
/// \file
/// MeanFlowField: a model of the average velocity of a flow over a time interval (MeanFlow, Geng
/// et al. 2025, "Mean Flows for One-step Generative Modeling"), an MLP on [x; t; r] with a
/// hand-written forward-mode derivative along the flow, for one-step and few-step sampling.
///
/// Conventions. Our time runs from the source (t = 0, noise) to the data (t = 1). For a flow with
/// velocity v, the average velocity from the current time t to a later time r >= t is
///   U(x_t, t, r) = 1 / (r - t) int_t^r v(x_s, s) ds,   U(x, t, t) = v(x, t),
/// so x_r = x_t + (r - t) U(x_t, t, r) exactly: one network evaluation jumps from t to r.
/// Differentiating (r - t) U = int_t^r v along the flow in t gives the MeanFlow identity
///   U(x_t, t, r) = v(x_t, t) + (r - t) d/dt U(x_t, t, r),
///   d/dt U = (dU/dx) v + dU/dt   (the total derivative along the flow, r fixed),
/// which is a Jacobian-vector product of the network along the input tangent (v, 1, 0) of its
/// inputs (x, t, r). (The paper's time runs the other way, z_t = (1 - t) x + t eps, with r <= t;
/// its t is our 1 - t and its r our 1 - r, its u our -U, and its tangent (v, 0, 1) of (z, r, t)
/// is our (v, 1, 0) of (x, t, r).)
///
/// The network: an MLP<S, Act> from d + 2 inputs [x; t; r] to d outputs (plain inputs, no time
/// embedding: right for low-dimensional data). As a VectorField it is the instantaneous velocity
/// U(x, t, t), so every ODE solver samples it too; mean_flow_sample() takes the big steps.
///
/// State (scope "model"): attributes type = "mean_flow", scalar, activation, widths; tensors
/// "<2l>.weight" and "<2l>.bias" (the MLP's layout, nn.Sequential numbering).

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/state.hpp"
#include "flowmatch/core/time.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/activation.hpp"
#include "flowmatch/nn/mlp.hpp"

namespace flowmatch {

template <Real S = float, Activation Act = SiLU>
class MeanFlowField {
 public:
  using Scalar = S;
  using activation_type = Act;
  using Network = MLP<S, Act>;
  static constexpr std::string_view state_scope = "model";

  /// Buffers of one caller at one batch size (sized on first use; later calls allocate nothing).
  struct Workspace {
    typename Network::Workspace net;
    Matrix<S> in;          ///< (d + 2) x n network input [x; t; r]
    Matrix<S> tan, tan2;   ///< tangents of the hidden layers
    Matrix<S> out;         ///< d x n output of forward()
  };

  /// A field on R^dim through the given hidden widths (at least one), initialised as PyTorch's
  /// nn.Linear from `rng` / `seed`.
  MeanFlowField(Index dim, std::vector<Index> hidden_widths, Rng& rng)
      : net_(checked_dim(dim) + 2, dim, checked_hidden(std::move(hidden_widths)), rng) {}
  MeanFlowField(Index dim, std::vector<Index> hidden_widths, Rng&& rng)
      : MeanFlowField(dim, std::move(hidden_widths), rng) {}
  MeanFlowField(Index dim, std::vector<Index> hidden_widths, std::uint64_t seed = 0)
      : MeanFlowField(dim, std::move(hidden_widths), Rng(seed)) {}

  Index dim() const { return net_.output_dim(); }
  const Network& network() const { return net_; }
  Network& network() { return net_; }
  Vector<S>& parameters() { return net_.parameters(); }
  const Vector<S>& parameters() const { return net_.parameters(); }
  Vector<S>& gradients() { return net_.gradients(); }
  const Vector<S>& gradients() const { return net_.gradients(); }
  Index num_parameters() const { return net_.num_parameters(); }
  const std::vector<Index>& layer_widths() const { return net_.layer_widths(); }

  /// U(x, t, r) for each column into `out` (d x n); t and r: numbers or one per column, each in
  /// [0, 1]. (r < t is allowed: the network is evaluated as it is, a backward jump.)
  template <class DX, TimeArgument T, TimeArgument R, class DO>
  void average_velocity(const Eigen::MatrixBase<DX>& x, const T& t, const R& r, const Eigen::MatrixBase<DO>& out_,
                        Workspace& ws) const {
    constexpr const char* where = "flowmatch::MeanFlowField::average_velocity";
    auto& out = detail::writable(out_);
    fill_input(where, x, t, r, ws);
    detail::require_rows(where, "out", out.rows(), dim());
    detail::require_cols(where, "out", out.cols(), x.cols());
    out = net_.forward_train(ws.in, ws.net).template cast<typename DO::Scalar>();
  }

  /// The instantaneous velocity v(x, t) = U(x, t, t) (the VectorField interface: ODE solvers,
  /// likelihoods and path-energy metrics take a MeanFlowField as any other field).
  template <class DX, TimeArgument T, class DO>
  void forward(const Eigen::MatrixBase<DX>& x, const T& t, const Eigen::MatrixBase<DO>& out, Workspace& ws) const {
    average_velocity(x, t, t, out, ws);
  }

  /// U(x, t, r) as a new matrix (allocates; for convenience outside hot loops).
  template <class DX, TimeArgument T, TimeArgument R>
  Matrix<S> operator()(const Eigen::MatrixBase<DX>& x, const T& t, const R& r) const {
    Workspace ws;
    Matrix<S> out(dim(), x.cols());
    average_velocity(x, t, r, out, ws);
    return out;
  }

  /// Forward pass that keeps what backward() and time_derivative() need; returns U (d x n),
  /// which lives in ws until the next call.
  template <class DX, TimeArgument T, TimeArgument R>
  const Matrix<S>& forward_train(const Eigen::MatrixBase<DX>& x, const T& t, const R& r, Workspace& ws) const {
    fill_input("flowmatch::MeanFlowField::forward_train", x, t, r, ws);
    return net_.forward_train(ws.in, ws.net);
  }

  /// After forward_train(x, t, r): out = d/dt U along the flow with velocity v, that is the
  /// Jacobian-vector product of the network along the input tangent (v, 1, 0):
  ///   out = (dU/dx) v + dU/dt,
  /// by forward mode through the layers kept by forward_train (the cost of one forward pass).
  template <class DV, class DO>
  void time_derivative(const Eigen::MatrixBase<DV>& v, const Eigen::MatrixBase<DO>& out_, Workspace& ws) const {
    constexpr const char* where = "flowmatch::MeanFlowField::time_derivative";
    auto& out = detail::writable(out_);
    const Index d = dim(), n = ws.net.batch;
    if (n < 1 || ws.in.cols() != n) throw InvalidArgument(std::string(where) + ": call forward_train first");
    detail::require_rows(where, "v", v.rows(), d);
    detail::require_cols(where, "v", v.cols(), n);
    detail::require_rows(where, "out", out.rows(), d);
    detail::require_cols(where, "out", out.cols(), n);
    const Index L = net_.num_layers();
    Index widest = 1;
    for (Index l = 0; l + 1 < L; ++l) widest = std::max(widest, net_.fan_out(l));
    if (ws.tan.rows() != widest || ws.tan.cols() != n) {
      ws.tan.resize(widest, n);
      ws.tan2.resize(widest, n);
    }
    // Tangent of the first pre-activation: W_0 [v; 1; 0] = W_0[:, :d] v + W_0[:, d].
    Matrix<S>* cur = &ws.tan;
    Matrix<S>* next = &ws.tan2;
    {
      Eigen::Block<Matrix<S>> t0 = cur->topRows(net_.fan_out(0));
      t0.noalias() = net_.weight(0).leftCols(d) * v.template cast<S>();
      t0.colwise() += net_.weight(0).col(d);
    }
    for (Index l = 1; l < L; ++l) {
      const auto ul = static_cast<std::size_t>(l);
      const Index h = net_.fan_in(l);
      // Through the activation of hidden layer l: multiply by f'(z_l), from its saved output. The
      // tangent block is contiguous per column only when it fills the buffer: do it column by column.
      const Matrix<S>& a = ws.net.a[ul];
      const S* aux = Act::uses_aux ? ws.net.aux[ul].data() : nullptr;
      for (Index j = 0; j < n; ++j)
        Act::backward(a.data() + j * h, aux ? aux + j * h : nullptr, cur->data() + j * cur->rows(), h);
      const Eigen::Block<Matrix<S>> dz = cur->topRows(h);
      if (l + 1 < L) {
        next->topRows(net_.fan_out(l)).noalias() = net_.weight(l) * dz;
        std::swap(cur, next);
      } else {
        out.noalias() = (net_.weight(l) * dz).template cast<typename DO::Scalar>();
      }
    }
  }

  /// Backward pass for the last forward_train: given dLoss/dU (d x n), writes dLoss/dparameters
  /// into gradients().
  template <class DG>
  void backward(const Eigen::MatrixBase<DG>& grad_out, Workspace& ws) {
    net_.backward(grad_out, ws.net);
  }

  void save_state(StateWriter& w) const {
    w.text("type", "mean_flow");
    detail::save_layer_state<S, Act>(w, net_.layer_widths(), net_.parameters().data());
  }
  void load_state(const StateReader& r) {
    r.expect_text("type", "mean_flow", "model type");
    net_.parameters() = detail::load_layer_state<S, Act>(r, net_.layer_widths(), net_.num_parameters());
  }

 private:
  static Index checked_dim(Index dim) {
    if (dim < 1) detail::throw_invalid("flowmatch::MeanFlowField::MeanFlowField", "dim", dim, "must be at least 1");
    return dim;
  }
  static std::vector<Index> checked_hidden(std::vector<Index> hidden) {
    if (hidden.empty())
      detail::throw_invalid("flowmatch::MeanFlowField::MeanFlowField", "hidden_widths.size()", 0LL,
                            "needs at least one hidden layer");
    return hidden;
  }

  template <class DX, TimeArgument T, TimeArgument R>
  void fill_input(const char* where, const Eigen::MatrixBase<DX>& x, const T& t, const R& r, Workspace& ws) const {
    const Index d = dim(), n = x.cols();
    detail::require_rows(where, "x", x.rows(), d);
    if (n < 1) detail::throw_invalid(where, "x.cols() (batch size)", n, "must be at least 1");
    detail::require_unit_times(where, "t", t, n);
    detail::require_unit_times(where, "r", r, n);
    if (ws.in.rows() != d + 2 || ws.in.cols() != n) ws.in.resize(d + 2, n);
    ws.in.topRows(d) = x.template cast<S>();
    for (Index j = 0; j < n; ++j) {
      ws.in(d, j) = static_cast<S>(detail::time_at(t, j));
      ws.in(d + 1, j) = static_cast<S>(detail::time_at(r, j));
    }
  }

  Network net_;
};

/// One-step and few-step sampling with a MeanFlowField: on the grid ts (increasing, in [0, 1]),
///   x <- x + (t_{k+1} - t_k) U(x, t_k, t_{k+1}),
/// one network evaluation per interval (exact for a perfect model: no discretisation error).
/// `x` (d x n) is moved in place from ts[0] to ts[last]; returns the NFE (ts.size() - 1).
template <Real S, Activation Act, class DX, class DT>
Index mean_flow_sample(const MeanFlowField<S, Act>& model, const Eigen::MatrixBase<DX>& x_,
                       const Eigen::MatrixBase<DT>& ts) {
  constexpr const char* where = "flowmatch::mean_flow_sample";
  auto& x = detail::writable(x_);
  detail::require_time_grid(where, "ts", ts);
  detail::require_unit_times(where, "ts", ts, ts.size());
  detail::require_rows(where, "x", x.rows(), model.dim());
  typename MeanFlowField<S, Act>::Workspace ws;
  Matrix<S> u(model.dim(), x.cols());
  for (Index k = 0; k + 1 < ts.size(); ++k) {
    const double t = static_cast<double>(ts(k)), r = static_cast<double>(ts(k + 1));
    model.average_velocity(x, t, r, u, ws);
    x.noalias() += (static_cast<S>(r - t) * u).template cast<typename DX::Scalar>();
  }
  return ts.size() - 1;
}

/// `steps` uniform MeanFlow steps from 0 to 1 (1: the one-step sampler x1 = x0 + U(x0, 0, 1)).
template <Real S, Activation Act, class DX>
Index mean_flow_sample(const MeanFlowField<S, Act>& model, const Eigen::MatrixBase<DX>& x, Index steps) {
  if (steps < 1) detail::throw_invalid("flowmatch::mean_flow_sample", "steps", steps, "must be at least 1");
  return mean_flow_sample(model, x, linspace(0.0, 1.0, steps + 1));
}

}  // namespace flowmatch
