#pragma once
/// \file
/// Matrix products and column blocks of the MLPs' blocked passes (MLPVectorField, MLP): a product
/// that never allocates, and the split of a batch into blocks of columns shared among threads.

#include <algorithm>

#include "flowmatch/core/threads.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch::detail {

/// Products with at most this many multiply-adds skip Eigen's GEMM (see product_in_pieces).
inline constexpr Index kLazyProduct = 4096;

/// dst = lhs * rhs (+= when Add) without heap allocation. Eigen packs a product's operands into
/// buffers of kc x mc and kc x nc scalars (kc, mc, nc at most the inner, row and column sizes,
/// otherwise chosen from the CPU's cache sizes), on the stack up to EIGEN_STACK_ALLOCATION_LIMIT
/// bytes and on the heap above. A product whose K x M and K x N fit under the limit is one
/// product (the reference workload's are); a bigger one is split into pieces of at most 256 along K and
/// limit / 256 along M and N, which fit whatever the layer widths and the caches.
template <bool Add, class S, class Dst, class Lhs, class Rhs>
void product_in_pieces(Dst&& dst, const Lhs& lhs, const Rhs& rhs) {
  constexpr Index limit = static_cast<Index>(EIGEN_STACK_ALLOCATION_LIMIT / sizeof(S));
  const Index M = lhs.rows(), K = lhs.cols(), N = rhs.cols();
  if (M * N * K <= kLazyProduct) {
    // Tiny products (the reference workload's 16 -> 2 output layer): coefficient by coefficient, which skips
    // the GEMM's packing and blocking set-up that would cost more than the arithmetic.
    if constexpr (Add) dst.noalias() += lhs.lazyProduct(rhs);
    else dst.noalias() = lhs.lazyProduct(rhs);
    return;
  }
  if (K * std::max(M, N) <= limit) {
    if constexpr (Add) dst.noalias() += lhs * rhs;
    else dst.noalias() = lhs * rhs;
    return;
  }
  constexpr Index kp = std::min<Index>(256, limit / 64);
  constexpr Index np = limit / kp;
  for (Index i = 0; i < M; i += np) {
    const Index mi = std::min(np, M - i);
    for (Index j = 0; j < N; j += np) {
      const Index nj = std::min(np, N - j);
      for (Index k = 0; k < K; k += kp) {
        const Index kk = std::min(kp, K - k);
        if (Add || k > 0)
          dst.block(i, j, mi, nj).noalias() += lhs.block(i, k, mi, kk) * rhs.block(k, j, kk, nj);
        else
          dst.block(i, j, mi, nj).noalias() = lhs.block(i, k, mi, kk) * rhs.block(k, j, kk, nj);
      }
    }
  }
}

/// Blocks of `block` columns covering n columns.
inline Index num_blocks(Index n, Index block) { return (n + block - 1) / block; }

/// Threads for `blocks` blocks: flowmatch::num_threads(), at most one per block, at least one.
inline int threads_for(Index blocks) {
  return static_cast<int>(std::max<Index>(1, std::min<Index>(num_threads(), blocks)));
}

}  // namespace flowmatch::detail
