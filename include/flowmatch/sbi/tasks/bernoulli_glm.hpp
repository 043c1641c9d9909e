#pragma once
/// \file
/// sbibm's "bernoulli_glm" task: a generalised linear model of a neuron's spikes (Bernoulli, with
/// a logistic link) driven by a white-noise stimulus through a 9-tap temporal filter, observed
/// through 10 summary statistics.
///
/// theta = (b, h_0..h_8): an offset and the filter. Prior: theta ~ N(0, P^{-1}) with the
/// precision P = diag(0.5, F^T F), F = D^2 + diag(sqrt(i / 9), i = 0..8), D the 9 x 9 first
/// difference matrix (ones on the diagonal, -1 below it): a smoothness prior on the filter.
/// Stimulus: I_0..I_99 = NumPy's `RandomState(42).randn(100)` rounded to float32. Design matrix
/// X (100 x 10): X(t, 0) = 1, X(t, 1 + j) = I_{t-j} for t >= j, else 0. Simulator: the spike
/// train y_t ~ Bernoulli(sigmoid((X theta)_t)), t = 0..99, reduced to
///   x = (sum_t y_t, sta_0, ..., sta_8),  sta_j = sum_{t=j}^{99} y_t I_{t-j}
/// (sbibm's `conv1d(y, I, padding=8)[-9:]`: the stimulus-weighted spike counts at lags 0..8).
/// sbibm computes in float32; this computes in double from the float32 stimulus.

#include <cmath>
#include <cstdint>
#include <random>
#include <string_view>

#include <Eigen/Cholesky>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/sbi/task.hpp"

namespace flowmatch::sbi {

namespace detail {

/// NumPy's legacy `RandomState(seed).randn(n)`, bit for bit: MT19937 seeded by init_genrand(seed)
/// (std::mt19937(seed) is the same generator), 53-bit doubles ((a >> 5) 2^26 + (b >> 6)) / 2^53,
/// and the Marsaglia polar method, which makes two normals per accepted pair and returns
/// f x2 first, then the cached f x1.
/// (A template of nothing, as the task below, so that <random>'s generator is compiled only where
/// it is used.)
template <class Void = void>
Vector<double> numpy_legacy_randn(std::uint32_t seed, Index n) {
  flowmatch::detail::dependent_t<std::mt19937, Void> mt(seed);
  const auto random_double = [&mt]() {
    const std::uint32_t a = static_cast<std::uint32_t>(mt()) >> 5, b = static_cast<std::uint32_t>(mt()) >> 6;
    return (static_cast<double>(a) * 67108864.0 + static_cast<double>(b)) / 9007199254740992.0;
  };
  Vector<double> out(n);
  bool has_cached = false;
  double cached = 0.0;
  for (Index i = 0; i < n; ++i) {
    if (has_cached) {
      out(i) = cached;
      has_cached = false;
      continue;
    }
    double x1 = 0.0, x2 = 0.0, r2 = 0.0;
    do {
      x1 = 2.0 * random_double() - 1.0;
      x2 = 2.0 * random_double() - 1.0;
      r2 = x1 * x1 + x2 * x2;
    } while (r2 >= 1.0 || r2 == 0.0);
    const double f = std::sqrt(-2.0 * std::log(r2) / r2);
    cached = f * x1;
    has_cached = true;
    out(i) = f * x2;
  }
  return out;
}

}  // namespace detail

/// theta = (offset, 9-tap filter) ~ N(0, P^{-1}) (smoothness prior); x = (spike count, 9
/// stimulus-weighted spike counts) of 100 Bernoulli spikes with logits X theta.
/// The reference posterior is stored (`examples/posterior/sbibm/bernoulli_glm/reference_<k>.npy`).
/// BernoulliGLM is BasicBernoulliGLM<>: a class template of nothing, so that its constructor
/// (a Cholesky factorisation) and simulator are compiled only in the files that use the task, not
/// in every file that includes <flowmatch.hpp> (issue 20).
template <class Void = void>
class BasicBernoulliGLM {
 public:
  static constexpr std::string_view kName = "bernoulli_glm";
  static constexpr Index kSteps = 100;        ///< time steps of the stimulus and the spike train
  static constexpr Index kTaps = 9;           ///< length of the temporal filter
  static constexpr std::uint32_t kStimulusSeed = 42;
  static constexpr bool has_analytic_reference = false;

  /// Builds the stimulus, the design matrix, the prior's precision and its Cholesky factor.
  BasicBernoulliGLM() {
    const Vector<double> noise = detail::numpy_legacy_randn<Void>(kStimulusSeed, kSteps);
    stimulus_.resize(kSteps);
    for (Index t = 0; t < kSteps; ++t) stimulus_(t) = static_cast<double>(static_cast<float>(noise(t)));
    design_ = Matrix<double>::Zero(kSteps, kTaps + 1);
    design_.col(0).setOnes();
    for (Index j = 0; j < kTaps; ++j)
      for (Index t = j; t < kSteps; ++t) design_(t, 1 + j) = stimulus_(t - j);
    Matrix<double> d = Matrix<double>::Identity(kTaps, kTaps);
    for (Index i = 1; i < kTaps; ++i) d(i, i - 1) = -1.0;
    Matrix<double> f = d * d;
    for (Index i = 0; i < kTaps; ++i) f(i, i) += std::sqrt(static_cast<double>(i) / static_cast<double>(kTaps));
    precision_ = Matrix<double>::Zero(kTaps + 1, kTaps + 1);
    precision_(0, 0) = 0.5;
    precision_.bottomRightCorner(kTaps, kTaps) = f.transpose() * f;
    const flowmatch::detail::dependent_t<Matrix<double>, Void>& precision = precision_;
    prior_cholesky_ = precision.llt().matrixL();
  }

  std::string_view name() const { return kName; }
  Index theta_dim() const { return kTaps + 1; }
  Index x_dim() const { return kTaps + 1; }

  /// The stimulus I_0..I_99 (float32 values of RandomState(42).randn(100)).
  const Vector<double>& stimulus() const { return stimulus_; }
  /// The 100 x 10 design matrix X: a column of ones, then the stimulus delayed by 0..8 steps.
  const Matrix<double>& design_matrix() const { return design_; }
  /// The prior's 10 x 10 precision matrix P (its covariance is P^{-1}).
  const Matrix<double>& prior_precision() const { return precision_; }

  /// Fills every column of the 10 x n `theta` with a prior draw L^{-T} z, z ~ N(0, I), where
  /// P = L L^T (its covariance is L^{-T} L^{-1} = P^{-1}).
  template <class Derived>
  void sample_prior(Rng& rng, const Eigen::MatrixBase<Derived>& theta_) const {
    auto& theta = flowmatch::detail::writable(theta_);
    detail::require_sbi_rows("flowmatch::sbi::BernoulliGLM::sample_prior", "theta", theta.rows(), theta_dim());
    Vector<double> z(theta_dim());
    for (Index j = 0; j < theta.cols(); ++j) {
      for (Index i = 0; i < theta_dim(); ++i) z(i) = rng.normal();
      prior_cholesky_.transpose().triangularView<Eigen::Upper>().solveInPlace(z);
      for (Index i = 0; i < theta_dim(); ++i) theta(i, j) = z(i);
    }
  }

  /// n prior draws as a new 10 x n matrix.
  Matrix<double> sample_prior(Rng& rng, Index n) const {
    detail::require_sample_count("flowmatch::sbi::BernoulliGLM::sample_prior", n);
    Matrix<double> theta(theta_dim(), n);
    sample_prior(rng, theta);
    return theta;
  }

  /// One simulation per column of theta (a spike train of 100 steps, reduced to its 10
  /// statistics); x is resized to 10 x theta.cols() and must not alias theta.
  template <class Derived>
  void simulate(Rng& rng, const Eigen::MatrixBase<Derived>& theta, Matrix<double>& x) const {
    detail::require_sbi_rows("flowmatch::sbi::BernoulliGLM::simulate", "theta", theta.rows(), theta_dim());
    x.resize(x_dim(), theta.cols());
    Vector<double> spikes(kSteps);
    for (Index j = 0; j < theta.cols(); ++j) {
      const Vector<double> psi = design_ * theta.col(j).template cast<double>();
      for (Index t = 0; t < kSteps; ++t) {
        const double rate = 1.0 / (1.0 + std::exp(-psi(t)));
        spikes(t) = rng.uniform() < rate ? 1.0 : 0.0;
      }
      summarise(spikes, x.col(j));
    }
  }

  /// The 10 statistics of a 100-step spike train (entries 0 or 1): its spike count, then
  /// sta_j = sum_{t=j}^{99} y_t I_{t-j} for j = 0..8, written to `out` (10 entries).
  template <class Derived>
  void summarise(const Eigen::Ref<const Vector<double>>& spikes, const Eigen::MatrixBase<Derived>& out_) const {
    constexpr const char* where = "flowmatch::sbi::BernoulliGLM::summarise";
    auto& out = flowmatch::detail::writable(out_);
    detail::require_sbi_size(where, "spikes", spikes.size(), kSteps);
    detail::require_sbi_size(where, "out", out.size(), x_dim());
    out(0) = spikes.sum();
    for (Index j = 0; j < kTaps; ++j) {
      double sta = 0.0;
      for (Index t = j; t < kSteps; ++t) sta += spikes(t) * stimulus_(t - j);
      out(1 + j) = sta;
    }
  }

  /// The prior is Gaussian: every theta of 10 entries is in its support.
  bool in_support(const Eigen::Ref<const Vector<double>>& theta) const {
    detail::require_sbi_size("flowmatch::sbi::BernoulliGLM::in_support", "theta", theta.size(), theta_dim());
    return true;
  }

 private:
  Vector<double> stimulus_;
  Matrix<double> design_;
  Matrix<double> precision_;
  Matrix<double> prior_cholesky_;  // lower-triangular L with precision_ = L L^T
};

using BernoulliGLM = BasicBernoulliGLM<>;

}  // namespace flowmatch::sbi
