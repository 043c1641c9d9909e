#pragma once
/// \file
/// Classifier-free guidance (Ho and Salimans, 2022) as an ODE for the simulators.

#include <cmath>
#include <concepts>
#include <type_traits>
#include <utility>

#include "flowmatch/core/condition.hpp"
#include "flowmatch/core/error.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch {

/// dx/dt = (1 + w) u_theta(x, t | c) - w u_theta(x, t | none), for a conditional model
/// (ConditionalVectorField, ClassConditionalVectorField, or anything with forward(x, t, condition,
/// out, ws) on a ConditionBatch, dim() and a Workspace) and one condition per column of the state:
/// class labels or context vectors. "none" is the same condition with every presence flag 0 (the
/// all-zero one-hot, or the zeroed context with its "no condition" flag set). w = 0 is the
/// conditional model itself (computed with one evaluation); w > 0 pushes samples towards their
/// condition. Holds a reference to the model (which must outlive it) and its own buffers: after
/// the first call at a batch size, drift() allocates nothing.
template <class Model>
class GuidedVectorFieldODE {
 public:
  using Scalar = typename Model::Scalar;

  /// `condition`: one per column of the states to be simulated, either
  /// - class labels: an integer vector, each in [0, num_classes], where num_classes (the empty
  ///   label) means no condition for that column; or
  /// - context vectors: a real m x n matrix, one context per column;
  /// or a ConditionBatch (its presence flags are kept). The model checks them at each evaluation.
  /// guidance: finite (InvalidArgument otherwise).
  template <class C>
  GuidedVectorFieldODE(const Model& model, const C& condition, double guidance)
      : model_(model), condition_(make_condition(model, condition)) {
    none_ = condition_;
    none_.present.setZero();
    set_guidance(guidance);
  }

  Index dim() const { return static_cast<Index>(model_.dim()); }
  double guidance() const { return w_; }
  void set_guidance(double w) {
    if (!std::isfinite(w))
      detail::throw_invalid("flowmatch::GuidedVectorFieldODE", "guidance", w, "the guidance weight must be finite");
    w_ = w;
  }
  /// The conditions, one per column (labels or context, with their presence flags).
  const ConditionBatch<Scalar>& condition() const { return condition_; }
  /// The class labels (kind Label; the empty label where a label is absent).
  const Vector<Index>& labels() const { return condition_.labels; }

  template <class DX, class DO>
  void drift(const Eigen::MatrixBase<DX>& x, double t, const Eigen::MatrixBase<DO>& out_) {
    auto& out = detail::writable(out_);
    if (condition_.size() != x.cols())
      detail::throw_dimension("flowmatch::GuidedVectorFieldODE::drift", "x",
                              "columns (batch size; one condition each)", x.cols(), condition_.size());
    model_.forward(x, t, condition_, out, ws_);
    if (w_ == 0.0) return;
    if (unconditional_.rows() != out.rows() || unconditional_.cols() != out.cols())
      unconditional_.resize(out.rows(), out.cols());
    model_.forward(x, t, none_, unconditional_, ws_);
    const auto w = static_cast<Scalar>(w_);
    out = (Scalar(1) + w) * out - w * unconditional_;
  }

 private:
  template <class C>
  static ConditionBatch<Scalar> make_condition(const Model& model, const C& c) {
    if constexpr (std::same_as<C, ConditionBatch<Scalar>>) {
      return c;
    } else {
      ConditionBatch<Scalar> b;
      if constexpr (std::is_integral_v<typename C::Scalar>) {
        b.set_labels(c.size());
        const auto empty = static_cast<Index>(model.num_classes());
        for (Index j = 0; j < c.size(); ++j) {
          b.labels(j) = static_cast<Index>(c(j));
          if (b.labels(j) == empty) b.present(j) = Scalar(0);
        }
      } else {
        (void)model;
        b.set_context(c.rows(), c.cols());
        b.context = c.template cast<Scalar>();
      }
      return b;
    }
  }

  const Model& model_;
  ConditionBatch<Scalar> condition_;
  ConditionBatch<Scalar> none_;
  double w_ = 0.0;
  Matrix<Scalar> unconditional_;
  typename Model::Workspace ws_;
};

}  // namespace flowmatch
