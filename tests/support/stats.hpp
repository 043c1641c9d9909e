#pragma once
// Small statistics helpers for the statistical tests: sample moments, the normal CDF and
// binomial / mean tolerances expressed in standard errors.

#include <cmath>
#include <cstdint>
#include <numbers>
#include <vector>

#include <Eigen/Core>

namespace flowmatch::test {

/// Sample mean, variance (1/n), skewness and excess kurtosis, accumulated in double.
struct Moments {
  double mean = 0.0;
  double variance = 0.0;
  double skewness = 0.0;
  double excess_kurtosis = 0.0;
  std::int64_t n = 0;
};

template <class Range>
Moments moments(const Range& values) {
  Moments m;
  double sum = 0.0;
  for (double v : values) {
    sum += v;
    ++m.n;
  }
  const double n = static_cast<double>(m.n);
  m.mean = sum / n;
  double m2 = 0.0, m3 = 0.0, m4 = 0.0;
  for (double v : values) {
    const double d = v - m.mean;
    const double d2 = d * d;
    m2 += d2;
    m3 += d2 * d;
    m4 += d2 * d2;
  }
  m2 /= n;
  m3 /= n;
  m4 /= n;
  m.variance = m2;
  m.skewness = m3 / std::pow(m2, 1.5);
  m.excess_kurtosis = m4 / (m2 * m2) - 3.0;
  return m;
}

/// Moments of one row of a matrix (one coordinate of a batch).
template <class Derived>
Moments row_moments(const Eigen::MatrixBase<Derived>& x, Eigen::Index row) {
  std::vector<double> v(static_cast<std::size_t>(x.cols()));
  for (Eigen::Index j = 0; j < x.cols(); ++j) v[static_cast<std::size_t>(j)] = static_cast<double>(x(row, j));
  return moments(v);
}

/// Phi(x), the standard normal CDF.
inline double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::numbers::sqrt2); }

/// Standard deviation of a Binomial(n, p) count.
inline double binomial_sd(double n, double p) { return std::sqrt(n * p * (1.0 - p)); }

/// 5 standard errors: the tolerance of every statistical check in this suite. A fixed seed makes
/// each check deterministic; 5 sigma keeps the checks valid for any seed (two-sided p ~ 6e-7).
inline constexpr double kSigmas = 5.0;

}  // namespace flowmatch::test
