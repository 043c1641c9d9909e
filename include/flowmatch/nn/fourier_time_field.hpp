#pragma once
/// \file
/// Vector fields that feed an MLPVectorField more than [x; t]: Fourier features of the time
/// (FourierTimeVectorField) and, in class_conditional_field.hpp, a one-hot class label.

#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
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

/// An MLPVectorField on assembled features [x; fourier(t); onehot(label)] (plus the raw t that the
/// MLP always appends). The features live in the caller's workspace, sized once per batch size.
template <Real S, Activation Act>
class EmbeddedMLP {
 public:
  using Scalar = S;
  using Network = MLPVectorField<S, Act>;

  struct Workspace {
    typename Network::Workspace mlp;
    Matrix<S> features;
  };

  EmbeddedMLP(const char* where, Index dim, Index num_frequencies, Index num_classes, std::vector<Index> hidden,
              std::uint64_t seed)
      : dim_(checked(where, "dim", dim, 1)),
        embedding_{checked(where, "num_frequencies", num_frequencies, 0)},
        num_classes_(checked(where, "num_classes", num_classes, 0)),
        net_(dim + 2 * num_frequencies + num_classes, dim, std::move(hidden), seed) {}

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

  // labels: nullptr (no label rows), else labels(j) in [0, num_classes]; num_classes is the empty
  // label (all-zero one-hot).
  template <class DX, TimeArgument T, class DL>
  const Matrix<S>& assemble(const char* where, const Eigen::MatrixBase<DX>& x, const T& t,
                            const Eigen::MatrixBase<DL>* labels, Workspace& ws) const {
    require_rows(where, "x", x.rows(), dim_);
    const Index n = x.cols();
    if (n <= 0) throw_invalid(where, "x.cols() (batch size)", n, "must be at least 1");
    require_unit_times(where, "t", t, n);
    if (labels) {
      if ((*labels).size() != n) throw_dimension(where, "labels", "size", (*labels).size(), n);
      for (Index j = 0; j < n; ++j) {
        const auto y = static_cast<long long>((*labels)(j));
        if (y < 0 || y > num_classes_)
          throw_invalid(where, "labels[" + std::to_string(j) + "]", y,
                        "a class label must lie in [0, " + std::to_string(num_classes_ - 1) +
                            "], or be " + std::to_string(num_classes_) + " (the empty label)");
      }
    }
    const Index rows = dim_ + embedding_.rows() + num_classes_;
    if (ws.features.rows() != rows || ws.features.cols() != n) ws.features.resize(rows, n);
    ws.features.topRows(dim_) = x.template cast<S>();
    if (num_classes_ > 0) ws.features.bottomRows(num_classes_).setZero();
    for (Index j = 0; j < n; ++j) {
      embedding_.write(time_at(t, j), ws.features, dim_, j);
      if (labels) {
        const auto y = static_cast<Index>((*labels)(j));
        if (y < num_classes_) ws.features(dim_ + embedding_.rows() + y, j) = S(1);
      }
    }
    return ws.features;
  }

  Index dim_;
  FourierTimeEmbedding embedding_;
  Index num_classes_;
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

  /// Evaluates u_theta(x, t) (x: dim x n; t one time or one per column) into `out` (dim x n).
  template <class DX, TimeArgument T, class DO>
  void forward(const Eigen::MatrixBase<DX>& x, const T& t, const Eigen::MatrixBase<DO>& out, Workspace& ws) const {
    const Matrix<S>& f = this->assemble("flowmatch::FourierTimeVectorField::forward", x, t,
                                        static_cast<const Eigen::MatrixBase<Vector<Index>>*>(nullptr), ws);
    this->net_.forward(f, t, out, ws.mlp);
  }

  /// Forward pass keeping what backward() needs in `ws`.
  template <class DX, TimeArgument T>
  const Matrix<S>& forward_train(const Eigen::MatrixBase<DX>& x, const T& t, Workspace& ws) const {
    const Matrix<S>& f = this->assemble("flowmatch::FourierTimeVectorField::forward_train", x, t,
                                        static_cast<const Eigen::MatrixBase<Vector<Index>>*>(nullptr), ws);
    return this->net_.forward_train(f, t, ws.mlp);
  }

  /// The fused loss mean((u_theta(x, t) - target)^2) and its parameter gradient (see
  /// MLPVectorField::mse_loss_and_gradient); CFMTrainer uses it when present.
  template <class DX, TimeArgument T, class DU>
  double mse_loss_and_gradient(const Eigen::MatrixBase<DX>& x, const T& t, const Eigen::MatrixBase<DU>& target,
                               Workspace& ws) {
    const Matrix<S>& f = this->assemble("flowmatch::FourierTimeVectorField::mse_loss_and_gradient", x, t,
                                        static_cast<const Eigen::MatrixBase<Vector<Index>>*>(nullptr), ws);
    return this->net_.mse_loss_and_gradient(f, t, target, ws.mlp);
  }
};

}  // namespace flowmatch
