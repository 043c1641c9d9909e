#pragma once
/// \file
/// Log-likelihood of points under a flow by the instantaneous change of variables
///   d/dt log p_t(x_t) = -div u_t(x_t),
/// integrated backwards from t = 1 to t = 0 together with the state:
///   log p_1(x_1) = log p_0(x_0) - int_0^1 div u_t(x_t) dt.
/// The divergence is exact (a Jacobian trace) or Hutchinson's unbiased estimate E[v^T J v].
///
/// Two directions: log_likelihood() scores given points x_1 (backwards from t = 1 to 0, then
/// log p_0 of where they land); sample_with_log_likelihood() draws samples and their densities in
/// one forward pass from points x_0 ~ p_0 (no second integration to score what it produced).

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
#include "flowmatch/ode/time_grids.hpp"

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

/// What sample_with_log_likelihood() computed, per column of x0.
template <Real S>
struct SampleLogLikelihoodResult {
  Matrix<S> x1;                        ///< the samples: x0 carried to the grid's last time
  Vector<double> log_density;          ///< log p_1(x_1): the model's log-density of each sample
  Vector<double> prior_log_density;    ///< log p_0(x_0) of the starting points
  Vector<double> divergence_integral;  ///< int_0^1 div u_t(x_t) dt along each path
  Index nfe = 0;                       ///< field evaluations (each with its divergence)
  double mean() const { return log_density.mean(); }
};

/// Samples and their log-densities in one forward pass: carries the points x0 (d x n, drawn from
/// p0, whose density is known) along the flow of the field behind `div` over the time grid `ts`
/// (strictly increasing, at least 2 points: from the time where p0 is the density, 0, to the
/// samples' time, 1; uniform_time_grid, shifted_time_grid, edm_time_grid or your own) together with
///   l(t) = int_{ts[0]}^t div u_s(x_s) ds,   log p_1(x_1) = log p_0(x_0) - l(1).
/// Any Stepper: a fixed-step one makes one step per interval (RK4 by default; AB2 and AB3 start
/// with an empty history); an adaptive one (Dopri5Stepper) integrates each interval with its own
/// steps, its error control covering the divergence row too. A Hutchinson estimator gets fresh
/// probes from `rng` (ignored for the exact divergence). The same as sampling, then calling
/// log_likelihood() on the samples, up to the two integrations' errors, without the separate
/// sampling pass; the densities belong to exactly the samples returned. (The divergence pass costs
/// the same either way: on the reference model, 1000 points, RK4 with 100 steps, exact divergence,
/// 3.5 s forwards here against 3.6 s for log_likelihood() at its samples, whose densities differ
/// from these by at most 4.7e-6.)
template <class Div, DensityDistribution Base, class DX, class DT, class St = RK4Stepper<typename Div::Scalar>>
  requires Stepper<St, AugmentedDivergenceODE<Div>>
SampleLogLikelihoodResult<typename Div::Scalar> sample_with_log_likelihood(Div& div, const Base& p0,
                                                                           const Eigen::MatrixBase<DX>& x0,
                                                                           const Eigen::MatrixBase<DT>& ts, Rng* rng = nullptr,
                                                                           St stepper = St{}) {
  using S = typename Div::Scalar;
  constexpr const char* where = "flowmatch::sample_with_log_likelihood";
  const Index d = div.dim(), n = x0.cols();
  detail::require_rows(where, "x0", x0.rows(), d);
  detail::require_rows(where, "p0 (its dim())", static_cast<long long>(p0.dim()), d);
  if (n < 1) detail::throw_invalid(where, "x0.cols() (number of points)", n, "must be at least 1");
  if (ts.size() < 2) detail::throw_invalid(where, "ts.size()", ts.size(), "the grid needs at least 2 points (1 step)");
  detail::require_time_grid(where, "ts", ts);
  if constexpr (requires(Rng& r) { div.draw_probes(r, n); }) {
    if (rng == nullptr) throw InvalidArgument(std::string(where) + ": argument 'rng' is null: Hutchinson's estimator needs a generator for its probes");
    div.draw_probes(*rng, n);
  }
  AugmentedDivergenceODE<Div> ode(div);
  Matrix<S> y(d + 1, n);
  y.topRows(d) = x0.template cast<S>();
  y.row(d).setZero();
  SampleLogLikelihoodResult<S> r;
  if constexpr (requires { stepper.reset(); }) stepper.reset();
  for (Index k = 0; k + 1 < ts.size(); ++k)
    r.nfe += stepper.advance(ode, y, static_cast<double>(ts(k)), static_cast<double>(ts(k + 1)));
  r.x1 = y.topRows(d);
  r.prior_log_density.resize(n);
  const Matrix<double> x0d = x0.template cast<double>();
  p0.log_density(x0d, r.prior_log_density);
  r.divergence_integral = y.row(d).transpose().template cast<double>();
  r.log_density = r.prior_log_density - r.divergence_integral;
  return r;
}

/// sample_with_log_likelihood() over `steps` uniform steps on [0, 1] (uniform_time_grid(steps)).
template <class Div, DensityDistribution Base, class DX, class St = RK4Stepper<typename Div::Scalar>>
  requires Stepper<St, AugmentedDivergenceODE<Div>>
SampleLogLikelihoodResult<typename Div::Scalar> sample_with_log_likelihood(Div& div, const Base& p0,
                                                                           const Eigen::MatrixBase<DX>& x0, Index steps,
                                                                           Rng* rng = nullptr, St stepper = St{}) {
  if (steps < 1) detail::throw_invalid("flowmatch::sample_with_log_likelihood", "steps", steps, "must be at least 1");
  return sample_with_log_likelihood(div, p0, x0, uniform_time_grid(steps), rng, std::move(stepper));
}

}  // namespace flowmatch
