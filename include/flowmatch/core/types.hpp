#pragma once
/// \file
/// Matrix aliases and the scalar concept shared by every part of the library.
///
/// A batch is a matrix with one sample per column (column-major, contiguous): a batch of n points
/// in R^d is a d x n matrix. Times for a batch are a vector of n entries.

#include <Eigen/Core>
#include <concepts>

namespace flowmatch {

using Index = Eigen::Index;

/// The floating-point types the library computes in: float (the default, for speed) or double.
template <class S>
concept Real = std::same_as<S, float> || std::same_as<S, double>;

template <class S>
using Matrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>;
template <class S>
using RowMajorMatrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class S>
using Vector = Eigen::Matrix<S, Eigen::Dynamic, 1>;
template <class S>
using RowVector = Eigen::Matrix<S, 1, Eigen::Dynamic>;

namespace detail {

/// Eigen's documented idiom for writing into an expression passed as `const MatrixBase<D>&`
/// (a block, a map or a plain matrix): see Eigen's "Writing Functions Taking Eigen Types".
template <class Derived>
Eigen::MatrixBase<Derived>& writable(const Eigen::MatrixBase<Derived>& out) {
  return const_cast<Eigen::MatrixBase<Derived>&>(out);
}

/// Number of entries of a vector-shaped expression (row or column).
template <class Derived>
Index vector_size(const Eigen::MatrixBase<Derived>& v) {
  return v.size();
}

/// T, but a dependent type inside a template of U. A non-template inline function in a header is
/// compiled in every translation unit that includes it, with every Eigen template it uses (an
/// eigen-solver costs seconds); made `template <class Void = void>` and naming its heavy types as
/// dependent_t<T, Void>, it is compiled only in the files that call it (issue 20).
template <class T, class U>
struct dependent_type {
  using type = T;
};
template <class T, class U>
using dependent_t = typename dependent_type<T, U>::type;

}  // namespace detail
}  // namespace flowmatch
