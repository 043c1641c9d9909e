#pragma once
/// \file
/// Log-likelihood of points under a flow by the instantaneous change of variables
///   d/dt log p_t(x_t) = -div u_t(x_t),
/// integrated backwards from t = 1 to t = 0 together with the state:
///   log p_1(x_1) = log p_0(x_0) - int_0^1 div u_t(x_t) dt.
/// The divergence is exact (a Jacobian trace) or Hutchinson's unbiased estimate E[v^T J v].

#include <cmath>
#include <concepts>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/distribution/concepts.hpp"
#include "flowmatch/ode/concepts.hpp"
#include "flowmatch/ode/explicit_steppers.hpp"

namespace flowmatch {

/// A field that gives its value and Jacobian-vector products: for a d x n batch x, a time t and
/// d x n tangents v, `f.jvp(x, t, v, u, jv)` writes u = u_t(x) and jv = (du/dx) v column by column
/// (MLPJacobian, GaussianMarginalField).
template <class F>
concept JacobianVectorProductField =
    requires(F& f, const Matrix<typename F::Scalar>& x, double t, Matrix<typename F::Scalar>& out) {
      typename F::Scalar;
      { f.dim() } -> std::convertible_to<Index>;
      f.jvp(x, t, x, out, out);
    };

/// Exact divergence: trace(du/dx) by the field's own exact_divergence(x, t, u, div) when it has
/// one (MLPJacobian: d forward-mode passes after one linearisation), otherwise by d JVPs with
/// the unit vectors. Exact up to rounding; the cost grows with d.
template <JacobianVectorProductField F>
class ExactDivergence {
 public:
  using Scalar = typename F::Scalar;
  explicit ExactDivergence(F& field) : field_(field) {}
  Index dim() const { return static_cast<Index>(field_.dim()); }

  /// u (d x n) and div (1 x n or n x 1) at (x, t).
  template <class DX, class DU, class DD>
  void evaluate(const Eigen::MatrixBase<DX>& x, double t, const Eigen::MatrixBase<DU>& u_, const Eigen::MatrixBase<DD>& div_) {
    auto& u = detail::writable(u_);
    auto& div = detail::writable(div_);
    if constexpr (requires { field_.exact_divergence(x, t, u, div); }) {
      field_.exact_divergence(x, t, u, div);
    } else {
      const Index d = dim(), n = x.cols();
      if (e_.rows() != d || e_.cols() != n) {
        e_.resize(d, n);
        jv_.resize(d, n);
      }
      div.setZero();
      for (Index k = 0; k < d; ++k) {
        e_.setZero();
        e_.row(k).setOnes();
        field_.jvp(x, t, e_, u, jv_);
        for (Index j = 0; j < n; ++j) div(j) += jv_(k, j);
      }
    }
  }

 private:
  F& field_;
  Matrix<Scalar> e_, jv_;
};

/// The law of Hutchinson's probe vectors: Rademacher (+-1, the smaller variance) or standard normal.
enum class ProbeKind { rademacher, gaussian };

/// Hutchinson's estimator div u ~ (1/P) sum_p v_p^T (du/dx) v_p with P probes per sample, each
/// v_p with independent entries of mean 0 and variance 1 (E[v v^T] = I, so the estimate is
/// unbiased). The probes are drawn by draw_probes(rng, n) and then kept fixed (FFJORD): the
/// augmented ODE stays deterministic during one integration. log_likelihood() draws them itself.
template <JacobianVectorProductField F>
class HutchinsonDivergence {
 public:
  using Scalar = typename F::Scalar;

  HutchinsonDivergence(F& field, Index probes, ProbeKind kind = ProbeKind::rademacher)
      : field_(field), probes_(probes), kind_(kind) {
    if (probes < 1) detail::throw_invalid("flowmatch::HutchinsonDivergence::HutchinsonDivergence", "probes", probes, "must be at least 1");
  }
  Index dim() const { return static_cast<Index>(field_.dim()); }
  Index probes() const { return probes_; }
  ProbeKind kind() const { return kind_; }

  /// Draws P probe batches of d x n entries.
  void draw_probes(Rng& rng, Index n) {
    const Index d = dim();
    v_.resize(d, n * probes_);
    if (kind_ == ProbeKind::gaussian) {
      rng.fill_normal(v_);
    } else {
      for (Index j = 0; j < v_.cols(); ++j)
        for (Index i = 0; i < d; ++i) v_(i, j) = (rng.next() >> 63) != 0 ? Scalar(1) : Scalar(-1);
    }
    jv_.resize(d, n);
  }

  /// The probes: columns [p n, (p + 1) n) are probe p.
  const Matrix<Scalar>& probe_vectors() const { return v_; }

  /// u (d x n) and the estimate of div (n entries) at (x, t).
  template <class DX, class DU, class DD>
  void evaluate(const Eigen::MatrixBase<DX>& x, double t, const Eigen::MatrixBase<DU>& u_, const Eigen::MatrixBase<DD>& div_) {
    auto& u = detail::writable(u_);
    auto& div = detail::writable(div_);
    const Index n = x.cols();
    if (v_.cols() != n * probes_ || v_.rows() != dim())
      throw InvalidArgument("flowmatch::HutchinsonDivergence::evaluate: no probes for a batch of " + std::to_string(n) +
                            " columns: call draw_probes(rng, n) first");
    div.setZero();
    constexpr bool linearizes = requires { field_.linearize(x, t); };
    if constexpr (linearizes) {  // MLPJacobian: one forward pass, then one JVP per probe
      field_.linearize(x, t);
      u = field_.output().template cast<typename DU::Scalar>();
    }
    for (Index p = 0; p < probes_; ++p) {
      if constexpr (linearizes) field_.jvp(v_.middleCols(p * n, n), jv_);
      else field_.jvp(x, t, v_.middleCols(p * n, n), u, jv_);
      for (Index j = 0; j < n; ++j)
        div(j) += static_cast<typename DD::Scalar>(v_.col(p * n + j).dot(jv_.col(j)) / static_cast<Scalar>(probes_));
    }
  }

 private:
  F& field_;
  Index probes_;
  ProbeKind kind_;
  Matrix<Scalar> v_, jv_;
};

/// The ODE of the state and the accumulated divergence: rows 0..d-1 of y are x, row d is l with
/// dx/dt = u_t(x), dl/dt = div u_t(x). Div is ExactDivergence or HutchinsonDivergence.
template <class Div>
class AugmentedDivergenceODE {
 public:
  using Scalar = typename Div::Scalar;
  explicit AugmentedDivergenceODE(Div& div) : div_(div) {}
  Index dim() const { return div_.dim() + 1; }
  template <class DY, class DO>
  void drift(const Eigen::MatrixBase<DY>& y, double t, const Eigen::MatrixBase<DO>& out_) {
    auto& out = detail::writable(out_);
    const Index d = div_.dim();
    div_.evaluate(y.topRows(d), t, out.topRows(d), out.row(d));
  }

 private:
  Div& div_;
};

/// What log_likelihood() computed, per column of x1.
template <Real S>
struct LogLikelihoodResult {
  Vector<double> log_density;        ///< log p_1(x_1): the model's log-likelihood
  Vector<double> prior_log_density;  ///< log p_0(x_0) of the transported points
  Vector<double> divergence_integral;  ///< int_0^1 div u_t(x_t) dt
  Matrix<S> x0;                      ///< the points carried back to t = 0
  Index nfe = 0;                     ///< field evaluations (each with its divergence)
  double mean() const { return log_density.mean(); }
};

/// log p_1(x_1) for each column of x1 under the flow of the field behind `div` (an
/// ExactDivergence or HutchinsonDivergence), started from the known density p0 at t = 0:
/// integrates the state and the divergence backwards from t = 1 to 0 in `steps` uniform steps of
/// any fixed-step stepper (Euler, midpoint, Heun, RK4, AB2, AB3; a multistep stepper starts with
/// an empty history), then adds log p0(x_0). A Hutchinson estimator gets fresh probes from `rng`
/// (ignored for the exact divergence).
template <class Div, DensityDistribution Base, class DX, class St = RK4Stepper<typename Div::Scalar>>
  requires FixedStepper<St, AugmentedDivergenceODE<Div>>
LogLikelihoodResult<typename Div::Scalar> log_likelihood(Div& div, const Base& p0, const Eigen::MatrixBase<DX>& x1, Index steps,
                                                         Rng* rng = nullptr, St stepper = St{}) {
  using S = typename Div::Scalar;
  constexpr const char* where = "flowmatch::log_likelihood";
  const Index d = div.dim(), n = x1.cols();
  detail::require_rows(where, "x1", x1.rows(), d);
  detail::require_rows(where, "p0 (its dim())", static_cast<long long>(p0.dim()), d);
  if (n < 1) detail::throw_invalid(where, "x1.cols() (number of points)", n, "must be at least 1");
  if (steps < 1) detail::throw_invalid(where, "steps", steps, "must be at least 1");
  if constexpr (requires(Rng& r) { div.draw_probes(r, n); }) {
    if (rng == nullptr) throw InvalidArgument(std::string(where) + ": argument 'rng' is null: Hutchinson's estimator needs a generator for its probes");
    div.draw_probes(*rng, n);
  }
  AugmentedDivergenceODE<Div> ode(div);
  Matrix<S> y(d + 1, n);
  y.topRows(d) = x1.template cast<S>();
  y.row(d).setZero();
  LogLikelihoodResult<S> r;
  if constexpr (requires { stepper.reset(); }) stepper.reset();
  for (Index k = steps; k > 0; --k) {
    const double t0 = static_cast<double>(k) / static_cast<double>(steps);
    const double t1 = static_cast<double>(k - 1) / static_cast<double>(steps);
    r.nfe += stepper.advance(ode, y, t0, t1);
  }
  r.x0 = y.topRows(d);
  const Matrix<double> x0d = r.x0.template cast<double>();
  r.prior_log_density.resize(n);
  p0.log_density(x0d, r.prior_log_density);
  // y(d) = l(0) = -int_0^1 div dt (l(1) = 0, dl/dt = div): log p_1 = log p_0(x_0) + l(0).
  r.divergence_integral = -y.row(d).transpose().template cast<double>();
  r.log_density = r.prior_log_density - r.divergence_integral;
  return r;
}

}  // namespace flowmatch
