#pragma once
/// \file
/// Classifier-free guidance (Ho and Salimans, 2022) as an ODE for the simulators.

#include <cmath>
#include <utility>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch {

/// dx/dt = (1 + w) u_theta(x, t | y) - w u_theta(x, t | empty), for a class-conditional model
/// (ClassConditionalVectorField or anything with forward(x, t, labels, out, ws), dim(),
/// empty_label() and a Workspace) and one label per column of the state. w = 0 is the conditional
/// model itself (computed with one evaluation); w > 0 pushes samples towards their class. Holds a
/// reference to the model (which must outlive it) and its own buffers: after the first call at a
/// batch size, drift() allocates nothing.
template <class Model>
class GuidedVectorFieldODE {
 public:
  using Scalar = typename Model::Scalar;

  /// labels: one per column of the states to be simulated, in [0, num_classes] (checked by the
  /// model at each evaluation). guidance: finite (InvalidArgument otherwise).
  template <class DL>
  GuidedVectorFieldODE(const Model& model, const Eigen::MatrixBase<DL>& labels, double guidance)
      : model_(model), labels_(labels.template cast<Index>()) {
    set_guidance(guidance);
  }

  Index dim() const { return static_cast<Index>(model_.dim()); }
  double guidance() const { return w_; }
  void set_guidance(double w) {
    if (!std::isfinite(w))
      detail::throw_invalid("flowmatch::GuidedVectorFieldODE", "guidance", w, "the guidance weight must be finite");
    w_ = w;
  }
  const Vector<Index>& labels() const { return labels_; }

  template <class DX, class DO>
  void drift(const Eigen::MatrixBase<DX>& x, double t, const Eigen::MatrixBase<DO>& out_) {
    auto& out = detail::writable(out_);
    if (labels_.size() != x.cols())
      detail::throw_dimension("flowmatch::GuidedVectorFieldODE::drift", "x", "columns (batch size; one label each)",
                              x.cols(), labels_.size());
    model_.forward(x, t, labels_, out, ws_);
    if (w_ == 0.0) return;
    if (empty_.size() != x.cols()) empty_.setConstant(x.cols(), static_cast<Index>(model_.empty_label()));
    if (unconditional_.rows() != out.rows() || unconditional_.cols() != out.cols())
      unconditional_.resize(out.rows(), out.cols());
    model_.forward(x, t, empty_, unconditional_, ws_);
    const auto w = static_cast<Scalar>(w_);
    out = (Scalar(1) + w) * out - w * unconditional_;
  }

 private:
  const Model& model_;
  Vector<Index> labels_;
  double w_ = 0.0;
  Vector<Index> empty_;
  Matrix<Scalar> unconditional_;
  typename Model::Workspace ws_;
};

}  // namespace flowmatch
