#pragma once
// Comparisons of Eigen matrices that cannot be fooled by NaN.

#include <cmath>
#include <limits>

#include <Eigen/Core>

namespace flowmatch::test {

/// max |m_ij| in double; +infinity if any entry is NaN (Eigen's maxCoeff may skip NaNs, which
/// would let a check like max_abs(a - b) < tol pass on garbage).
template <class Derived>
double max_abs(const Eigen::MatrixBase<Derived>& m) {
  double worst = 0.0;
  for (Eigen::Index j = 0; j < m.cols(); ++j)
    for (Eigen::Index i = 0; i < m.rows(); ++i) {
      const double v = std::abs(static_cast<double>(m(i, j)));
      if (std::isnan(v)) return std::numeric_limits<double>::infinity();
      if (v > worst) worst = v;
    }
  return worst;
}

}  // namespace flowmatch::test
