#pragma once
/// \file
/// The exact marginal vector field, score and density of a Gaussian conditional path whose data
/// distribution is itself a (diagonal) Gaussian: a flow known in closed form, for tests and as a
/// reference.

#include <cmath>
#include <numbers>
#include <utility>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/time.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/distribution/gaussian.hpp"
#include "flowmatch/schedule/concepts.hpp"

namespace flowmatch {

/// For z ~ N(m, diag(s^2)) and x_t = alpha_t z + beta_t eps, each coordinate of x_t is Gaussian:
///   p_t = N(alpha_t m, diag(v_t)),  v_t = alpha_t^2 s^2 + beta_t^2,
/// and the marginal vector field u_t(x) = E[alpha'_t z + beta'_t eps | x_t = x] is affine:
///   u_t(x) = alpha'_t m + c_t (x - alpha_t m),  c_t = (alpha_t alpha'_t s^2 + beta_t beta'_t) / v_t,
/// with score_t(x) = -(x - alpha_t m) / v_t and divergence sum_i c_t,i. Its flow carries N(0, I)
/// at t = 0 to N(m, diag(s^2)) at t = 1. Satisfies VectorField (forward with a Workspace) and
/// provides jvp() like MLPJacobian, so the log-likelihood code can run on it.
template <Real S, AlphaSchedule Alpha, BetaSchedule Beta>
class GaussianMarginalField {
 public:
  using Scalar = S;
  struct Workspace {};

  GaussianMarginalField(Gaussian data, Alpha alpha = Alpha{}, Beta beta = Beta{})
      : data_(std::move(data)), alpha_(std::move(alpha)), beta_(std::move(beta)) {}

  Index dim() const { return data_.dim(); }
  const Gaussian& data() const { return data_; }

  /// u_t(x) into out (d x n); t is one time or one per column.
  template <class DX, TimeArgument T, class DO>
  void forward(const Eigen::MatrixBase<DX>& x, const T& t, const Eigen::MatrixBase<DO>& out_, Workspace& = dummy()) const {
    auto& out = detail::writable(out_);
    check(x, t, out.rows(), out.cols());
    for (Index j = 0; j < x.cols(); ++j) {
      const double tj = detail::time_at(t, j);
      const double a = alpha_.value(tj), da = alpha_.derivative(tj), b = beta_.value(tj), db = beta_.derivative(tj);
      for (Index i = 0; i < dim(); ++i) {
        const double m = data_.mean()(i), s2 = data_.std()(i) * data_.std()(i);
        const double c = (a * da * s2 + b * db) / (a * a * s2 + b * b);
        out(i, j) = static_cast<typename DO::Scalar>(da * m + c * (static_cast<double>(x(i, j)) - a * m));
      }
    }
  }

  /// u_t(x) and the Jacobian-vector product J_u(x) v (J is diagonal: c_t).
  template <class DX, class DV, class DU, class DJ>
  void jvp(const Eigen::MatrixBase<DX>& x, double t, const Eigen::MatrixBase<DV>& v, const Eigen::MatrixBase<DU>& u,
           const Eigen::MatrixBase<DJ>& jv_) const {
    auto& jv = detail::writable(jv_);
    forward(x, t, u);
    for (Index i = 0; i < dim(); ++i) jv.row(i) = static_cast<S>(coefficient(i, t)) * v.row(i);
  }

  /// div u_t = sum_i c_t,i (the same at every x).
  double divergence(double t) const {
    double s = 0.0;
    for (Index i = 0; i < dim(); ++i) s += coefficient(i, t);
    return s;
  }

  /// grad log p_t(x) = -(x - alpha_t m) / v_t.
  template <class DX, class DO>
  void score(const Eigen::MatrixBase<DX>& x, double t, const Eigen::MatrixBase<DO>& out_) const {
    auto& out = detail::writable(out_);
    const double a = alpha_.value(t), b = beta_.value(t);
    for (Index j = 0; j < x.cols(); ++j)
      for (Index i = 0; i < dim(); ++i) {
        const double m = data_.mean()(i), s2 = data_.std()(i) * data_.std()(i);
        out(i, j) = static_cast<typename DO::Scalar>(-(static_cast<double>(x(i, j)) - a * m) / (a * a * s2 + b * b));
      }
  }

  /// log p_t(x_j) for each column.
  template <class DX, class DO>
  void log_density(const Eigen::MatrixBase<DX>& x, double t, const Eigen::MatrixBase<DO>& out_) const {
    auto& out = detail::writable(out_);
    const double a = alpha_.value(t), b = beta_.value(t);
    for (Index j = 0; j < x.cols(); ++j) {
      double lp = 0.0;
      for (Index i = 0; i < dim(); ++i) {
        const double m = data_.mean()(i), s2 = data_.std()(i) * data_.std()(i), v = a * a * s2 + b * b;
        const double r = static_cast<double>(x(i, j)) - a * m;
        lp += -0.5 * r * r / v - 0.5 * std::log(2.0 * std::numbers::pi * v);
      }
      out(j) = static_cast<typename DO::Scalar>(lp);
    }
  }

 private:
  double coefficient(Index i, double t) const {
    const double a = alpha_.value(t), da = alpha_.derivative(t), b = beta_.value(t), db = beta_.derivative(t);
    const double s2 = data_.std()(i) * data_.std()(i);
    return (a * da * s2 + b * db) / (a * a * s2 + b * b);
  }
  template <class DX, class T>
  void check(const Eigen::MatrixBase<DX>& x, const T& t, Index out_rows, Index out_cols) const {
    constexpr const char* where = "flowmatch::GaussianMarginalField::forward";
    detail::require_rows(where, "x", x.rows(), dim());
    detail::require_rows(where, "out", out_rows, dim());
    detail::require_cols(where, "out", out_cols, x.cols());
    detail::require_unit_times(where, "t", t, x.cols());
  }
  static Workspace& dummy() {
    static thread_local Workspace ws;
    return ws;
  }

  Gaussian data_;
  Alpha alpha_;
  Beta beta_;
};

}  // namespace flowmatch
