#pragma once
/// \file
/// The flow ODE dx/dt = u_theta(x, t) of a learned vector field.

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/time.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/concepts.hpp"

namespace flowmatch {

/// dx/dt = u_theta(x, t) for a VectorField (e.g. a trained MLPVectorField). Holds a reference to
/// the model (which must outlive it) and its own workspace, so repeated drift() calls at one batch
/// size allocate nothing.
template <VectorField Model>
class LearnedVectorFieldODE {
 public:
  using Scalar = typename Model::Scalar;

  explicit LearnedVectorFieldODE(const Model& model) : model_(model) {
    if constexpr (requires { model.input_dim(); }) {
      if (static_cast<Index>(model.input_dim()) != static_cast<Index>(model.dim()))
        detail::throw_dimension("flowmatch::LearnedVectorFieldODE::LearnedVectorFieldODE", "model",
                                "input dimension", static_cast<long long>(model.input_dim()),
                                static_cast<long long>(model.dim()));
    }
  }

  Index dim() const { return static_cast<Index>(model_.dim()); }

  template <class DX, class DO>
  void drift(const Eigen::MatrixBase<DX>& x, double t, const Eigen::MatrixBase<DO>& out) {
    model_.forward(x, t, out, ws_);
  }

  const Model& model() const { return model_; }

 private:
  const Model& model_;
  typename Model::Workspace ws_;
};

}  // namespace flowmatch
