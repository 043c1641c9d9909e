#pragma once
/// \file
/// Vector fields that feed an MLPVectorField more than [x; t]: Fourier features of the time
/// (FourierTimeVectorField) and, in conditional_field.hpp, a condition (a one-hot class label or a
/// context vector).

#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/state.hpp"
#include "flowmatch/core/time.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/activation.hpp"
#include "flowmatch/nn/mlp_vector_field.hpp"

namespace flowmatch {

/// Fourier features of the time: for K frequencies omega_k = pi 2^k (k = 0..K-1), the 2K values
/// sin(omega_0 t), cos(omega_0 t), ..., sin(omega_{K-1} t), cos(omega_{K-1} t) (Tancik et al.,
/// 2020, with a fixed geometric spectrum: periods 2, 1, 1/2, ... on t in [0, 1]).
struct FourierTimeEmbedding {
  Index num_frequencies = 0;

  Index rows() const { return 2 * num_frequencies; }
  static double frequency(Index k) { return std::numbers::pi * std::ldexp(1.0, static_cast<int>(k)); }
  /// Writes the 2K features of time t into rows [row0, row0 + 2K) of column j of `out`.
  template <class D>
  void write(double t, Eigen::MatrixBase<D>& out, Index row0, Index j) const {
    using S = typename D::Scalar;
    for (Index k = 0; k < num_frequencies; ++k) {
      const double w = frequency(k) * t;
      out(row0 + 2 * k, j) = static_cast<S>(std::sin(w));
      out(row0 + 2 * k + 1, j) = static_cast<S>(std::cos(w));
    }
  }
};

namespace detail {

/// Writes no condition rows (an unconditional embedded field).
struct NoConditionRows {
  template <class M>
  void operator()(M&, Index) const {}
};

/// An MLPVectorField on assembled features [x; fourier(t); condition rows] (plus the raw t that
/// the MLP always appends). The features live in the caller's workspace, sized once per batch
/// size. The derived field writes the condition rows (none for FourierTimeVectorField).
template <Real S, Activation Act>
class EmbeddedMLP {
 public:
  using Scalar = S;
  using Network = MLPVectorField<S, Act>;
  static constexpr std::string_view state_scope = "model";

  struct Workspace {
    typename Network::Workspace mlp;
    Matrix<S> features;
  };

  EmbeddedMLP(const char* where, Index dim, Index num_frequencies, Index condition_rows, std::vector<Index> hidden,
              std::uint64_t seed)
      : dim_(checked(where, "dim", dim, 1)),
        embedding_{checked(where, "num_frequencies", num_frequencies, 0)},
        condition_rows_(checked(where, "condition rows", condition_rows, 0)),
        net_(dim + 2 * num_frequencies + condition_rows, dim, std::move(hidden), seed) {}

  Index dim() const { return dim_; }
  Index num_frequencies() const { return embedding_.num_frequencies; }
  const FourierTimeEmbedding& embedding() const { return embedding_; }
  Network& network() { return net_; }
  const Network& network() const { return net_; }
  Vector<S>& parameters() { return net_.parameters(); }
  const Vector<S>& parameters() const { return net_.parameters(); }
  Vector<S>& gradients() { return net_.gradients(); }
  const Vector<S>& gradients() const { return net_.gradients(); }
  Index num_parameters() const { return net_.num_parameters(); }

  template <class DG>
  void backward(const Eigen::MatrixBase<DG>& grad_out, Workspace& ws) {
    net_.backward(grad_out, ws.mlp);
  }

 protected:
  static Index checked(const char* where, const char* arg, Index v, Index min) {
    if (v < min) throw_invalid(where, arg, v, "must be at least " + std::to_string(min));
    return v;
  }

  // Checks x and t, sizes ws.features, writes x and the time features, then calls
  // write_condition(features, row0) for the condition rows [row0, row0 + condition_rows_).
  template <class DX, TimeArgument T, class WriteCondition>
  const Matrix<S>& assemble(const char* where, const Eigen::MatrixBase<DX>& x, const T& t, Workspace& ws,
                            WriteCondition&& write_condition) const {
    require_rows(where, "x", x.rows(), dim_);
    const Index n = x.cols();
    if (n <= 0) throw_invalid(where, "x.cols() (batch size)", n, "must be at least 1");
    require_unit_times(where, "t", t, n);
    const Index rows = dim_ + embedding_.rows() + condition_rows_;
    if (ws.features.rows() != rows || ws.features.cols() != n) ws.features.resize(rows, n);
    ws.features.topRows(dim_) = x.template cast<S>();
    for (Index j = 0; j < n; ++j) embedding_.write(time_at(t, j), ws.features, dim_, j);
    write_condition(ws.features, dim_ + embedding_.rows());
    return ws.features;
  }

  // The settings every embedded field saves, and the network under "net".
  void save_common(StateWriter& w, std::string_view type) const {
    w.text("type", std::string(type));
    w.integer("dim", dim_);
    w.integer("num_frequencies", embedding_.num_frequencies);
    // The network's own state (MLPVectorField::save_state, added with the state protocol).
    if constexpr (Stateful<Network>) {
      StateWriter net = w.scope("net");
      net_.save_state(net);
    }
  }
  void load_common(const StateReader& r, std::string_view type) const {
    r.expect_text("type", type, "model type");
    if (r.integer("dim") != dim_)
      r.fail("holds a field of dimension " + std::to_string(r.integer("dim")) + ", the model passed has " +
             std::to_string(dim_));
    if (r.integer("num_frequencies") != embedding_.num_frequencies)
      r.fail("holds " + std::to_string(r.integer("num_frequencies")) +
             " Fourier time frequencies, the model passed has " + std::to_string(embedding_.num_frequencies));
  }
  void load_network(const StateReader& r) {
    if constexpr (Stateful<Network>) net_.load_state(r.scope("net"));
  }

  Index dim_;
  FourierTimeEmbedding embedding_;
  Index condition_rows_;
  Network net_;
};

}  // namespace detail

/// u_theta(x, t) = MLP([x; sin(omega_k t), cos(omega_k t) for k < K; t]): the reference workload's MLP with
/// Fourier features of t added to its input, an alternative to feeding raw t alone (high-frequency
/// dependence on t is easier to fit). A TrainableVectorField: CFMTrainer, LearnedVectorFieldODE and
/// the simulators take it unchanged. With K = 0 it is an MLPVectorField on [x; t].
template <Real S = float, Activation Act = SiLU>
class FourierTimeVectorField : public detail::EmbeddedMLP<S, Act> {
  using Base = detail::EmbeddedMLP<S, Act>;

 public:
  using typename Base::Workspace;
  using Scalar = S;

  /// dim >= 1, num_frequencies >= 0, hidden widths as MLPVectorField. Throws InvalidArgument otherwise.
  FourierTimeVectorField(Index dim, Index num_frequencies, std::vector<Index> hidden, std::uint64_t seed = 0)
      : Base("flowmatch::FourierTimeVectorField::FourierTimeVectorField", dim, num_frequencies, 0, std::move(hidden),
             seed) {}

  /// State: type "fourier_time_field", dim and num_frequencies, the network under "net".
  void save_state(StateWriter& w) const { this->save_common(w, "fourier_time_field"); }
  /// Checks the type and settings (CheckpointMismatchError), then loads the network.
  void load_state(const StateReader& r) {
    this->load_common(r, "fourier_time_field");
    this->load_network(r);
  }

  /// Evaluates u_theta(x, t) (x: dim x n; t one time or one per column) into `out` (dim x n).
  template <class DX, TimeArgument T, class DO>
  void forward(const Eigen::MatrixBase<DX>& x, const T& t, const Eigen::MatrixBase<DO>& out, Workspace& ws) const {
    const Matrix<S>& f = this->assemble("flowmatch::FourierTimeVectorField::forward", x, t, ws, no_condition);
    this->net_.forward(f, t, out, ws.mlp);
  }

  /// Forward pass keeping what backward() needs in `ws`.
  template <class DX, TimeArgument T>
  const Matrix<S>& forward_train(const Eigen::MatrixBase<DX>& x, const T& t, Workspace& ws) const {
    const Matrix<S>& f = this->assemble("flowmatch::FourierTimeVectorField::forward_train", x, t, ws, no_condition);
    return this->net_.forward_train(f, t, ws.mlp);
  }

  /// The fused loss mean((u_theta(x, t) - target)^2) and its parameter gradient (see
  /// MLPVectorField::mse_loss_and_gradient); CFMTrainer uses it when present.
  template <class DX, TimeArgument T, class DU>
  double mse_loss_and_gradient(const Eigen::MatrixBase<DX>& x, const T& t, const Eigen::MatrixBase<DU>& target,
                               Workspace& ws) {
    const Matrix<S>& f = this->assemble("flowmatch::FourierTimeVectorField::mse_loss_and_gradient", x, t, ws,
                                        no_condition);
    return this->net_.mse_loss_and_gradient(f, t, target, ws.mlp);
  }

 private:
  static constexpr detail::NoConditionRows no_condition{};
};

}  // namespace flowmatch
