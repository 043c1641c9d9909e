#pragma once
/// \file
/// A class-conditional vector field u_theta(x, t | y) for classifier-free guidance.

#include <cstdint>
#include <utility>
#include <vector>

#include "flowmatch/core/time.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/activation.hpp"
#include "flowmatch/nn/fourier_time_field.hpp"

namespace flowmatch {

/// u_theta(x, t | y) = MLP([x; fourier(t); onehot(y); t]) for labels y in {0, ..., C - 1}, and the
/// unconditional u_theta(x, t | empty) for the empty label y = C (an all-zero one-hot), which
/// label dropout trains (ConditionalCFMTrainer). One-hot labels need no trainable embedding: the
/// first layer's columns for the C label rows are the class embedding. Labels are any integer
/// Eigen vector with one entry per column; a label outside [0, C] throws InvalidArgument naming
/// its position.
template <Real S = float, Activation Act = SiLU>
class ClassConditionalVectorField : public detail::EmbeddedMLP<S, Act> {
  using Base = detail::EmbeddedMLP<S, Act>;

 public:
  using typename Base::Workspace;
  using Scalar = S;

  /// dim >= 1, num_classes >= 1, num_frequencies >= 0 (0: raw t only), hidden widths as
  /// MLPVectorField. Throws InvalidArgument otherwise.
  ClassConditionalVectorField(Index dim, Index num_classes, std::vector<Index> hidden, std::uint64_t seed = 0,
                              Index num_frequencies = 0)
      : Base("flowmatch::ClassConditionalVectorField::ClassConditionalVectorField", dim, num_frequencies,
             Base::checked("flowmatch::ClassConditionalVectorField::ClassConditionalVectorField", "num_classes",
                           num_classes, 1),
             std::move(hidden), seed) {}

  Index num_classes() const { return this->num_classes_; }
  /// The label that selects the unconditional field: num_classes().
  Index empty_label() const { return this->num_classes_; }

  /// Evaluates u_theta(x, t | labels) into `out` (dim x n).
  template <class DX, TimeArgument T, class DL, class DO>
  void forward(const Eigen::MatrixBase<DX>& x, const T& t, const Eigen::MatrixBase<DL>& labels,
               const Eigen::MatrixBase<DO>& out, Workspace& ws) const {
    const Matrix<S>& f = this->assemble("flowmatch::ClassConditionalVectorField::forward", x, t, &labels, ws);
    this->net_.forward(f, t, out, ws.mlp);
  }

  /// Forward pass keeping what backward() needs in `ws`.
  template <class DX, TimeArgument T, class DL>
  const Matrix<S>& forward_train(const Eigen::MatrixBase<DX>& x, const T& t, const Eigen::MatrixBase<DL>& labels,
                                 Workspace& ws) const {
    const Matrix<S>& f = this->assemble("flowmatch::ClassConditionalVectorField::forward_train", x, t, &labels, ws);
    return this->net_.forward_train(f, t, ws.mlp);
  }

  /// The fused loss mean((u_theta(x, t | labels) - target)^2) and its parameter gradient (see
  /// MLPVectorField::mse_loss_and_gradient).
  template <class DX, TimeArgument T, class DL, class DU>
  double mse_loss_and_gradient(const Eigen::MatrixBase<DX>& x, const T& t, const Eigen::MatrixBase<DL>& labels,
                               const Eigen::MatrixBase<DU>& target, Workspace& ws) {
    const Matrix<S>& f =
        this->assemble("flowmatch::ClassConditionalVectorField::mse_loss_and_gradient", x, t, &labels, ws);
    return this->net_.mse_loss_and_gradient(f, t, target, ws.mlp);
  }
};

}  // namespace flowmatch
