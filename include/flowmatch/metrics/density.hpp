#pragma once
/// \file
/// Sample-quality metrics against a known distribution: mean log-density and Gaussian-mixture mode
/// coverage.

#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/distribution/concepts.hpp"
#include "flowmatch/distribution/gaussian_mixture.hpp"

namespace flowmatch {

/// (1/n) sum_j log p(x_j) for the columns of x under a distribution with a log-density (Gaussian,
/// GaussianMixture, ...): the samples' average log-likelihood under the true target.
template <DensityDistribution D, class DX>
double mean_log_density(const D& dist, const Eigen::MatrixBase<DX>& x) {
  constexpr const char* where = "flowmatch::mean_log_density";
  detail::require_rows(where, "x", x.rows(), static_cast<long long>(dist.dim()));
  if (x.cols() < 1) detail::throw_invalid(where, "x.cols() (number of points)", x.cols(), "must be at least 1");
  const Matrix<double> xd = x.template cast<double>();
  Vector<double> lp(xd.cols());
  dist.log_density(xd, lp);
  return lp.mean();
}

/// How the samples spread over the modes of a GaussianMixture.
struct ModeCoverage {
  Index covered = 0;          ///< modes holding at least min_fraction of the samples
  Index modes = 0;            ///< number of modes of the mixture
  std::vector<Index> counts;  ///< samples within radius_in_std of each mode (nearest mode only)
  double fraction_in_modes = 0;  ///< share of the samples near some mode
};

/// Mode coverage of the samples x under the mixture: each sample counts for its nearest mode (by
/// Mahalanobis distance with the mode's diagonal std) when within `radius_in_std` stds of it; a
/// mode is covered when it holds at least `min_fraction` of all samples. Agrees with
/// GaussianMixture::mode_counts and GaussianMixture::modes_covered, which it calls.
template <class DX>
ModeCoverage mode_coverage(const GaussianMixture& gmm, const Eigen::MatrixBase<DX>& x, double min_fraction = 0.02,
                           double radius_in_std = 3.0) {
  constexpr const char* where = "flowmatch::mode_coverage";
  detail::require_rows(where, "x", x.rows(), gmm.dim());
  if (x.cols() < 1) detail::throw_invalid(where, "x.cols() (number of points)", x.cols(), "must be at least 1");
  if (!(min_fraction >= 0.0 && min_fraction <= 1.0))
    detail::throw_invalid(where, "min_fraction", min_fraction, "must lie in [0, 1]");
  if (!(radius_in_std > 0.0)) detail::throw_invalid(where, "radius_in_std", radius_in_std, "must be > 0");
  ModeCoverage c;
  c.modes = gmm.nmodes();
  c.counts = gmm.mode_counts(x, radius_in_std);
  c.covered = gmm.modes_covered(x, min_fraction, radius_in_std);
  Index near = 0;
  for (Index k : c.counts) near += k;
  c.fraction_in_modes = static_cast<double>(near) / static_cast<double>(x.cols());
  return c;
}

}  // namespace flowmatch
