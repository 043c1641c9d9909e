#pragma once
/// \file
/// A conditional vector field u_theta(x, t | c) for a class label or a real context vector, with
/// a "no condition" input for classifier-free guidance.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "flowmatch/core/condition.hpp"
#include "flowmatch/core/error.hpp"
#include "flowmatch/core/state.hpp"
#include "flowmatch/core/time.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/activation.hpp"
#include "flowmatch/nn/fourier_time_field.hpp"

namespace flowmatch {

/// u_theta(x, t | c) = MLP([x; fourier(t); e(c); t]), where the condition's input e(c) is
/// - for class labels (ConditionKind::Label, C classes): the one-hot vector of the label (C rows),
///   all zero when the condition is dropped (c.present(j) = 0) or is the "empty" label C. One-hot
///   labels need no trainable embedding: the first layer's columns for the C label rows are the
///   class embedding. (The layout of ClassConditionalVectorField, whose checkpoints it reads.)
/// - for context vectors (ConditionKind::Vector, dimension m): the vector as is, then a flag row
///   that is 1 when the condition is dropped (the context is then zeroed) and 0 otherwise (m + 1 rows).
/// Condition dropout in training (TrainerOptions::condition_dropout) teaches the same network the
/// unconditional field u_theta(x, t | none), which classifier-free guidance (GuidedVectorFieldODE)
/// combines with the conditional one. A TrainableConditionalField: CFMTrainer trains it on batches
/// whose condition matches its kind.
///
/// State (scope "model"): type "conditional_field", attributes dim, num_frequencies, condition
/// ("labels" or "vector"), num_classes or condition_dim, and the network under "net".
template <Real S = float, Activation Act = SiLU>
class ConditionalVectorField : public detail::EmbeddedMLP<S, Act> {
  using Base = detail::EmbeddedMLP<S, Act>;

 public:
  using typename Base::Workspace;
  using Scalar = S;

  /// kind: Label (condition_size = the number of classes C >= 1) or Vector (condition_size = the
  /// context dimension m >= 1); dim >= 1; num_frequencies >= 0 (0: raw t only); hidden widths as
  /// MLPVectorField. Throws InvalidArgument otherwise.
  ConditionalVectorField(Index dim, ConditionKind kind, Index condition_size, std::vector<Index> hidden,
                         std::uint64_t seed = 0, Index num_frequencies = 0)
      : Base("flowmatch::ConditionalVectorField::ConditionalVectorField", dim, num_frequencies,
             condition_rows(kind, condition_size), std::move(hidden), seed),
        kind_(kind),
        size_(condition_size) {}

  ConditionKind condition_kind() const { return kind_; }
  /// The number of classes C (kind Label), else 0.
  Index num_classes() const { return kind_ == ConditionKind::Label ? size_ : 0; }
  /// The context dimension m (kind Vector), else 0.
  Index condition_dim() const { return kind_ == ConditionKind::Vector ? size_ : 0; }
  /// The label that selects the unconditional field, num_classes() (kind Label).
  Index empty_label() const { return num_classes(); }

  /// Evaluates u_theta(x, t | c) into `out` (dim x n); c must be of this field's kind for the n
  /// columns of x (InvalidArgument / DimensionMismatch otherwise, naming the argument).
  template <class DX, TimeArgument T, class DO>
  void forward(const Eigen::MatrixBase<DX>& x, const T& t, const ConditionBatch<S>& c, const Eigen::MatrixBase<DO>& out,
               Workspace& ws) const {
    this->net_.forward(assemble_condition("flowmatch::ConditionalVectorField::forward", x, t, c, ws), t, out, ws.mlp);
  }
  /// Forward pass keeping what backward() needs in `ws`.
  template <class DX, TimeArgument T>
  const Matrix<S>& forward_train(const Eigen::MatrixBase<DX>& x, const T& t, const ConditionBatch<S>& c,
                                 Workspace& ws) const {
    return this->net_.forward_train(assemble_condition("flowmatch::ConditionalVectorField::forward_train", x, t, c, ws),
                                    t, ws.mlp);
  }
  /// The fused loss mean((u_theta(x, t | c) - target)^2) and its parameter gradient (see
  /// MLPVectorField::mse_loss_and_gradient); CFMTrainer uses it.
  template <class DX, TimeArgument T, class DU>
  double mse_loss_and_gradient(const Eigen::MatrixBase<DX>& x, const T& t, const ConditionBatch<S>& c,
                               const Eigen::MatrixBase<DU>& target, Workspace& ws) {
    return this->net_.mse_loss_and_gradient(
        assemble_condition("flowmatch::ConditionalVectorField::mse_loss_and_gradient", x, t, c, ws), t, target, ws.mlp);
  }

  // Class labels given directly (kind Label): one integer per column in [0, C], C the empty label.

  /// u_theta(x, t | labels) into `out`; a label outside [0, C] throws InvalidArgument naming its position.
  template <class DX, TimeArgument T, class DL, class DO>
  void forward(const Eigen::MatrixBase<DX>& x, const T& t, const Eigen::MatrixBase<DL>& labels,
               const Eigen::MatrixBase<DO>& out, Workspace& ws) const {
    this->net_.forward(assemble_labels("flowmatch::ConditionalVectorField::forward", x, t, labels, ws), t, out, ws.mlp);
  }
  template <class DX, TimeArgument T, class DL>
  const Matrix<S>& forward_train(const Eigen::MatrixBase<DX>& x, const T& t, const Eigen::MatrixBase<DL>& labels,
                                 Workspace& ws) const {
    return this->net_.forward_train(
        assemble_labels("flowmatch::ConditionalVectorField::forward_train", x, t, labels, ws), t, ws.mlp);
  }
  template <class DX, TimeArgument T, class DL, class DU>
  double mse_loss_and_gradient(const Eigen::MatrixBase<DX>& x, const T& t, const Eigen::MatrixBase<DL>& labels,
                               const Eigen::MatrixBase<DU>& target, Workspace& ws) {
    return this->net_.mse_loss_and_gradient(
        assemble_labels("flowmatch::ConditionalVectorField::mse_loss_and_gradient", x, t, labels, ws), t, target,
        ws.mlp);
  }

  /// State: type "conditional_field", dim, num_frequencies, condition ("labels" | "vector"),
  /// num_classes or condition_dim, and the network under "net".
  void save_state(StateWriter& w) const {
    this->save_common(w, "conditional_field");
    w.text("condition", std::string(condition_kind_name(kind_)));
    w.integer(kind_ == ConditionKind::Label ? "num_classes" : "condition_dim", size_);
  }
  /// Checks the type and every setting against this field (CheckpointMismatchError naming the
  /// first that differs) before it loads the network.
  void load_state(const StateReader& r) {
    this->load_common(r, "conditional_field");
    r.expect_text("condition", condition_kind_name(kind_), "condition kind");
    const char* name = kind_ == ConditionKind::Label ? "num_classes" : "condition_dim";
    if (r.integer(name) != size_)
      r.fail("holds " + std::string(name) + " = " + std::to_string(r.integer(name)) + ", the model passed has " +
             std::to_string(size_));
    this->load_network(r);
  }

 private:
  static Index condition_rows(ConditionKind kind, Index size) {
    constexpr const char* where = "flowmatch::ConditionalVectorField::ConditionalVectorField";
    if (kind == ConditionKind::None)
      detail::throw_invalid(where, "kind", "none", "must be ConditionKind::Label or ConditionKind::Vector");
    if (size < 1)
      detail::throw_invalid(where, kind == ConditionKind::Label ? "num_classes" : "condition_dim", size,
                            "must be at least 1");
    return kind == ConditionKind::Label ? size : size + 1;
  }

  template <class DX, TimeArgument T>
  const Matrix<S>& assemble_condition(const char* where, const Eigen::MatrixBase<DX>& x, const T& t,
                                      const ConditionBatch<S>& c, Workspace& ws) const {
    detail::check_condition(where, c, kind_, x.cols(), size_);
    return this->assemble(where, x, t, ws, [&](Matrix<S>& f, Index row0) {
      const Index n = f.cols();
      if (kind_ == ConditionKind::Label) {
        f.middleRows(row0, size_).setZero();
        for (Index j = 0; j < n; ++j)
          if (c.present(j) != S(0) && c.labels(j) < size_) f(row0 + c.labels(j), j) = S(1);
      } else {
        for (Index j = 0; j < n; ++j) {
          const S p = c.present(j);
          f.col(j).segment(row0, size_) = p * c.context_col(j);
          f(row0 + size_, j) = S(1) - p;
        }
      }
    });
  }

  template <class DX, TimeArgument T, class DL>
  const Matrix<S>& assemble_labels(const char* where, const Eigen::MatrixBase<DX>& x, const T& t,
                                   const Eigen::MatrixBase<DL>& labels, Workspace& ws) const {
    if (kind_ != ConditionKind::Label)
      detail::throw_invalid(where, "labels", "(class labels)", "this field takes context vectors, not class labels");
    if (labels.size() != x.cols()) detail::throw_dimension(where, "labels", "size", labels.size(), x.cols());
    for (Index j = 0; j < labels.size(); ++j) {
      const auto y = static_cast<long long>(labels(j));
      if (y < 0 || y > size_)
        detail::throw_invalid(where, "labels[" + std::to_string(j) + "]", y,
                              "a class label must lie in [0, " + std::to_string(size_ - 1) + "], or be " +
                                  std::to_string(size_) + " (the empty label)");
    }
    return this->assemble(where, x, t, ws, [&](Matrix<S>& f, Index row0) {
      f.middleRows(row0, size_).setZero();
      for (Index j = 0; j < f.cols(); ++j) {
        const auto y = static_cast<Index>(labels(j));
        if (y < size_) f(row0 + y, j) = S(1);
      }
    });
  }

  ConditionKind kind_;
  Index size_;
};

}  // namespace flowmatch
