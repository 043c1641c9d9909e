#pragma once
/// \file
/// The concept of a conditional probability path that a CFM trainer can learn.

#include <concepts>

#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/path/training_batch.hpp"

namespace flowmatch {

/// Valid expressions, for `const P p`, `Rng rng` and a sized `TrainingBatch<float>` or
/// `TrainingBatch<double>` `b`: `p.dim()` -> Index; `p.sample_training_batch(rng, b)` fills
/// b.z, b.t, b.x and b.u (the regression target) without allocating.
template <class P>
concept ConditionalPath =
    requires(const P& p, Rng& rng, TrainingBatch<float>& bf, TrainingBatch<double>& bd) {
      { p.dim() } -> std::convertible_to<Index>;
      p.sample_training_batch(rng, bf);
      p.sample_training_batch(rng, bd);
    };

}  // namespace flowmatch
