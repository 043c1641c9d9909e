#pragma once
/// \file
/// The coupling concept: how a batch of source samples x0 is paired with a batch of data samples x1.
///
/// Conditional flow matching learns from pairs (x0, x1): the reference implementation pairs them independently; a
/// minibatch optimal-transport coupling (Tong et al., 2023) pairs each x0 with a nearby x1, so the
/// conditional paths cross less and the learned flow is straighter. A coupling only reorders the
/// data batch: every sample is used once (pairing without replacement).

#include <concepts>

#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch {

/// Valid expressions, for `const C c`, `Rng rng`, a d x n source batch `x0` and a writable d x n
/// data batch `x1` (both float or both double): `c.pair(rng, x0, x1)` permutes the columns of x1
/// so that column j of x1 is the partner of column j of x0. A coupling may keep buffers in
/// `mutable` members (one coupling object per thread); after the first call at a batch size it
/// allocates nothing. `independent.hpp` is the template to copy.
template <class C>
concept Coupling =
    std::copy_constructible<C> &&
    requires(const C& c, Rng& rng, const Matrix<float>& x0f, Matrix<float>& x1f, const Matrix<double>& x0d,
             Matrix<double>& x1d) {
      c.pair(rng, x0f, x1f);
      c.pair(rng, x0d, x1d);
    };

}  // namespace flowmatch
