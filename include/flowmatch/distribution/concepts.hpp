#pragma once
/// \file
/// Concepts for distributions: something that samples batches, and something with a log-density.

#include <concepts>

#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch {

/// Valid expressions, for `const D d`, `Rng rng` and a writable `dim x n` matrix `out` of float or
/// double: `d.dim()` -> Index; `d.sample(rng, out)` fills the n columns of `out` with independent
/// draws (one sample per column), using only `rng` for randomness.
template <class D>
concept SampleableDistribution =
    std::copy_constructible<D> &&
    requires(const D& d, Rng& rng, Matrix<float>& out_f, Matrix<double>& out_d) {
      { d.dim() } -> std::convertible_to<Index>;
      d.sample(rng, out_f);
      d.sample(rng, out_d);
    };

/// Valid expressions, for `const D d`, a `dim x n` batch `x` and a writable vector `out` of n
/// entries: `d.log_density(x, out)` writes log p(x_j) for each column j.
template <class D>
concept DensityDistribution =
    requires(const D& d, const Matrix<double>& x, Vector<double>& out) {
      { d.dim() } -> std::convertible_to<Index>;
      d.log_density(x, out);
    };

}  // namespace flowmatch
