#pragma once
/// \file
/// The Langevin-corrected flow SDE of a Gaussian path: dX = [u_t(X) + sigma^2/2 score_t(X)] dt +
/// sigma dW, with the score recovered from the (learned) vector field through alpha_t and beta_t.

#include <cmath>
#include <string>
#include <utility>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/time.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/concepts.hpp"
#include "flowmatch/schedule/concepts.hpp"

namespace flowmatch {

/// The score of the marginal path from its vector field, for x_t = alpha_t z + beta_t eps.
/// With ze = E[z | x], ee = E[eps | x]: x = alpha ze + beta ee, u = alpha' ze + beta' ee and
/// score = -ee / beta. Eliminating ze:
///
///   score_t(x) = (alpha_t u_t(x) - alpha'_t x) / (alpha'_t beta_t^2 - alpha_t beta_t beta'_t)
///
/// (the formula of Holderrieth and Erives' MIT notes). The denominator is beta_t (alpha'_t beta_t -
/// alpha_t beta'_t): positive for t < 1 for the usual schedules, 0 at t = 1 where beta_t = 0.
/// Writes score (d x n) from x and u (same shape) at one time t; throws InvalidArgument where the
/// denominator is 0 or not finite.
template <AlphaSchedule Alpha, BetaSchedule Beta, class DX, class DU, class DS>
void score_from_vector_field(const Alpha& alpha, const Beta& beta, double t, const Eigen::MatrixBase<DX>& x,
                             const Eigen::MatrixBase<DU>& u, const Eigen::MatrixBase<DS>& score_) {
  constexpr const char* where = "flowmatch::score_from_vector_field";
  auto& score = detail::writable(score_);
  detail::require_rows(where, "u", u.rows(), x.rows());
  detail::require_cols(where, "u", u.cols(), x.cols());
  const double a = alpha.value(t), da = alpha.derivative(t), b = beta.value(t), db = beta.derivative(t);
  const double den = da * b * b - a * b * db;
  if (!(std::isfinite(den) && den != 0.0))
    detail::throw_invalid(where, "t", t,
                          "alpha'_t beta_t^2 - alpha_t beta_t beta'_t = " + detail::to_string_value(den) +
                              " there: the score is not determined by the vector field (beta_t = 0 at t = 1)");
  using S = typename DS::Scalar;
  score.noalias() = (static_cast<S>(a / den) * u.template cast<S>() - static_cast<S>(da / den) * x.template cast<S>());
}

/// dX = [u_t(X) + (sigma^2 / 2) score_t(X)] dt + sigma dW for a VectorField u (a trained
/// MLPVectorField, or any field of the path's marginal) of a Gaussian path with schedules alpha,
/// beta. For every sigma >= 0 its marginals are those of the flow ODE (Fokker-Planck: the score
/// term's drift cancels the diffusion's spreading); sigma = 0 is the ODE itself. The score comes
/// from u by score_from_vector_field, so it needs beta_t > 0: simulate on grids whose drift times
/// are < 1 (Euler-Maruyama evaluates at the left end of each step, so a grid ending at 1 is fine).
/// Satisfies the SDE concept; holds a reference to the field and its own workspace.
template <VectorField Field, AlphaSchedule Alpha, BetaSchedule Beta>
class LangevinFlowSDE {
 public:
  using Scalar = typename Field::Scalar;

  LangevinFlowSDE(const Field& field, double sigma, Alpha alpha = Alpha{}, Beta beta = Beta{})
      : field_(field), alpha_(std::move(alpha)), beta_(std::move(beta)), sigma_(sigma) {
    if (!(sigma >= 0.0 && std::isfinite(sigma)))
      detail::throw_invalid("flowmatch::LangevinFlowSDE::LangevinFlowSDE", "sigma", sigma, "must be finite and >= 0");
  }

  Index dim() const { return static_cast<Index>(field_.dim()); }
  double sigma() const { return sigma_; }

  template <class DX, class DO>
  void drift(const Eigen::MatrixBase<DX>& x, double t, const Eigen::MatrixBase<DO>& out_) {
    auto& out = detail::writable(out_);
    field_.forward(x, t, out, ws_);
    if (sigma_ == 0.0) return;
    // out = u + sigma^2/2 (a u - a' x) / den = (1 + k a) u - k a' x with k = sigma^2 / (2 den).
    const double a = alpha_.value(t), da = alpha_.derivative(t), b = beta_.value(t), db = beta_.derivative(t);
    const double den = da * b * b - a * b * db;
    if (!(std::isfinite(den) && den != 0.0))
      detail::throw_invalid("flowmatch::LangevinFlowSDE::drift", "t", t,
                            "the score term needs beta_t > 0 (alpha'_t beta_t^2 - alpha_t beta_t beta'_t = " +
                                detail::to_string_value(den) + ")");
    const double k = sigma_ * sigma_ / (2.0 * den);
    out = static_cast<Scalar>(1.0 + k * a) * out - static_cast<Scalar>(k * da) * x;
  }

  template <class DX, class DO>
  void diffusion(const Eigen::MatrixBase<DX>& /*x*/, double /*t*/, const Eigen::MatrixBase<DO>& out) {
    detail::writable(out).setConstant(static_cast<Scalar>(sigma_));
  }

 private:
  const Field& field_;
  Alpha alpha_;
  Beta beta_;
  double sigma_;
  typename Field::Workspace ws_;
};

}  // namespace flowmatch
