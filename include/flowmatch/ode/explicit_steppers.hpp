#pragma once
/// \file
/// Fixed-step explicit Runge-Kutta steppers: Euler, midpoint, Heun (RK2) and classical RK4.
///
/// Each stepper is a few lines: the method and nothing else. The CRTP base owns the public
/// overloads (`advance` between two times, `step` by a signed step size), checks the scalar type at
/// compile time and sizes the stage buffers on the first call for a batch shape, so later steps
/// allocate nothing. A stepper holds no reference to an ODE: one stepper object can serve any ODE
/// of its scalar type (one thread at a time, since the buffers are its own).

#include <concepts>
#include <string_view>
#include <type_traits>

#include "flowmatch/core/types.hpp"
#include "flowmatch/ode/concepts.hpp"

namespace flowmatch {

/// CRTP base of the fixed-step steppers. `Derived` provides
/// - `static constexpr int order, stages` and `static constexpr std::string_view name`;
/// - `void resize_buffers(Index rows, Index cols)`;
/// - `template <class O, class X> void do_step(O& ode, X& x, double t0, double t1)`, where `x` is a
///   writable Eigen expression and h = t1 - t0 may be negative.
template <class Derived, Real S>
class ExplicitStepperBase {
 public:
  using Scalar = S;
  static constexpr bool adaptive = false;

  /// One step of the method from t0 to t1 (t1 < t0 integrates backwards); returns its NFE.
  template <ODE O, class DX>
  Index advance(O& ode, const Eigen::MatrixBase<DX>& x_, double t0, double t1) {
    static_assert(std::same_as<typename O::Scalar, S>,
                  "flowmatch: a stepper's Scalar must equal the ODE's Scalar (e.g. RK4Stepper<double> for an "
                  "ODE in double)");
    static_assert(std::same_as<typename DX::Scalar, S>, "flowmatch: the state's scalar must be the stepper's Scalar");
    auto& x = detail::writable(x_);
    if (rows_ != x.rows() || cols_ != x.cols()) {
      derived().resize_buffers(x.rows(), x.cols());
      rows_ = x.rows();
      cols_ = x.cols();
    }
    derived().do_step(ode, x, t0, t1);
    return Derived::stages;
  }

  /// One step of signed size h from t: the same as advance(ode, x, t, t + h).
  template <ODE O, class DX>
  Index step(O& ode, const Eigen::MatrixBase<DX>& x, double t, double h) {
    return advance(ode, x, t, t + h);
  }

 protected:
  static S scalar(double v) { return static_cast<S>(v); }

 private:
  Derived& derived() { return static_cast<Derived&>(*this); }
  Index rows_ = -1;
  Index cols_ = -1;
};

/// Explicit Euler: x <- x + h f(x, t0). Order 1, one drift evaluation a step.
template <Real S = float>
class EulerStepper : public ExplicitStepperBase<EulerStepper<S>, S> {
 public:
  static constexpr int order = 1;
  static constexpr int stages = 1;
  static constexpr std::string_view name = "euler";

  void resize_buffers(Index r, Index c) { k1_.resize(r, c); }
  template <class O, class X>
  void do_step(O& ode, X& x, double t0, double t1) {
    ode.drift(x, t0, k1_);
    x.noalias() += this->scalar(t1 - t0) * k1_;
  }

 private:
  Matrix<S> k1_;
};

/// Explicit midpoint: k1 = f(x, t0), x <- x + h f(x + h/2 k1, t0 + h/2). Order 2, two evaluations.
template <Real S = float>
class MidpointStepper : public ExplicitStepperBase<MidpointStepper<S>, S> {
 public:
  static constexpr int order = 2;
  static constexpr int stages = 2;
  static constexpr std::string_view name = "midpoint";

  void resize_buffers(Index r, Index c) {
    k1_.resize(r, c);
    tmp_.resize(r, c);
  }
  template <class O, class X>
  void do_step(O& ode, X& x, double t0, double t1) {
    const double h = t1 - t0;
    ode.drift(x, t0, k1_);
    tmp_.noalias() = x + this->scalar(0.5 * h) * k1_;
    ode.drift(tmp_, t0 + 0.5 * h, k1_);
    x.noalias() += this->scalar(h) * k1_;
  }

 private:
  Matrix<S> k1_, tmp_;
};

/// Heun (explicit trapezoid, RK2): k1 = f(x, t0), k2 = f(x + h k1, t1), x <- x + h/2 (k1 + k2).
/// Order 2, two evaluations; its second stage is at t1 itself.
template <Real S = float>
class HeunStepper : public ExplicitStepperBase<HeunStepper<S>, S> {
 public:
  static constexpr int order = 2;
  static constexpr int stages = 2;
  static constexpr std::string_view name = "heun";

  void resize_buffers(Index r, Index c) {
    k1_.resize(r, c);
    k2_.resize(r, c);
    tmp_.resize(r, c);
  }
  template <class O, class X>
  void do_step(O& ode, X& x, double t0, double t1) {
    const double h = t1 - t0;
    ode.drift(x, t0, k1_);
    tmp_.noalias() = x + this->scalar(h) * k1_;
    ode.drift(tmp_, t1, k2_);
    x.noalias() += this->scalar(0.5 * h) * (k1_ + k2_);
  }

 private:
  Matrix<S> k1_, k2_, tmp_;
};

/// Classical fourth-order Runge-Kutta: four evaluations at t0, t0 + h/2 (twice) and t1.
template <Real S = float>
class RK4Stepper : public ExplicitStepperBase<RK4Stepper<S>, S> {
 public:
  static constexpr int order = 4;
  static constexpr int stages = 4;
  static constexpr std::string_view name = "rk4";

  void resize_buffers(Index r, Index c) {
    for (Matrix<S>* m : {&k1_, &k2_, &k3_, &k4_, &tmp_}) m->resize(r, c);
  }
  template <class O, class X>
  void do_step(O& ode, X& x, double t0, double t1) {
    const double h = t1 - t0, tm = t0 + 0.5 * h;
    ode.drift(x, t0, k1_);
    tmp_.noalias() = x + this->scalar(0.5 * h) * k1_;
    ode.drift(tmp_, tm, k2_);
    tmp_.noalias() = x + this->scalar(0.5 * h) * k2_;
    ode.drift(tmp_, tm, k3_);
    tmp_.noalias() = x + this->scalar(h) * k3_;
    ode.drift(tmp_, t1, k4_);
    x.noalias() += this->scalar(h / 6.0) * (k1_ + this->scalar(2) * (k2_ + k3_) + k4_);
  }

 private:
  Matrix<S> k1_, k2_, k3_, k4_, tmp_;
};

}  // namespace flowmatch
