#pragma once
/// \file
/// Times given to the library: one time for the whole batch (a number) or one per sample (an Eigen
/// vector with one entry per column of the batch); and time grids for simulators.

#include <cmath>
#include <concepts>
#include <string_view>
#include <type_traits>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch {

/// One time per sample: any Eigen vector expression (row or column, including blocks such as
/// `t.segment(j, n)`), indexed by one coordinate.
template <class T>
concept TimeVector = !std::is_arithmetic_v<T> && requires(const T& t, Index j) {
  typename T::Scalar;
  { t.size() } -> std::convertible_to<Index>;
  { t(j) } -> std::convertible_to<double>;
};

/// A time argument: a single number for the whole batch, or a TimeVector.
template <class T>
concept TimeArgument = std::is_arithmetic_v<T> || TimeVector<T>;

/// `n` points evenly spaced from `start` to `stop` inclusive (numpy/torch linspace).
inline Vector<double> linspace(double start, double stop, Index n) {
  constexpr const char* where = "flowmatch::linspace";
  if (n < 1) detail::throw_invalid(where, "n", n, "must be at least 1");
  if (!std::isfinite(start)) detail::throw_invalid(where, "start", start, "must be finite");
  if (!std::isfinite(stop)) detail::throw_invalid(where, "stop", stop, "must be finite");
  Vector<double> ts(n);
  for (Index i = 0; i < n; ++i)
    ts(i) = n == 1 ? start : start + (stop - start) * static_cast<double>(i) / static_cast<double>(n - 1);
  if (n > 1) ts(n - 1) = stop;
  return ts;
}

namespace detail {

template <TimeArgument T>
double time_at(const T& t, Index j) {
  if constexpr (std::is_arithmetic_v<T>) {
    (void)j;
    return static_cast<double>(t);
  } else {
    return static_cast<double>(t(j));
  }
}

/// Checks that `t` supplies a time in [0, 1] for each of `n` samples.
template <TimeArgument T>
void require_unit_times(std::string_view where, std::string_view arg, const T& t, Index n) {
  if constexpr (std::is_arithmetic_v<T>) {
    require_unit_time(where, arg, static_cast<double>(t));
  } else {
    if (t.size() != n) throw_dimension(where, arg, "size", t.size(), n);
    for (Index j = 0; j < n; ++j) {
      const double v = static_cast<double>(t(j));
      if (!(v >= 0.0 && v <= 1.0)) {
        std::string name(arg);
        name.append("[").append(std::to_string(j)).append("]");
        throw_invalid(where, name, v, "time must lie in [0, 1]");
      }
    }
  }
}

/// A time grid for a simulator: at least one point, finite, strictly increasing.
template <class D>
void require_time_grid(std::string_view where, std::string_view arg, const Eigen::MatrixBase<D>& ts) {
  if (ts.size() < 1) throw_invalid(where, std::string(arg) + ".size()", ts.size(), "a time grid needs at least one point");
  const auto element = [&](Index i) { return std::string(arg) + "[" + std::to_string(i) + "]"; };
  for (Index i = 0; i < ts.size(); ++i) {  // names are built only on failure: checking allocates nothing
    const double v = static_cast<double>(ts(i));
    if (!std::isfinite(v)) throw_invalid(where, element(i), v, "times must be finite");
    if (i > 0 && !(v > static_cast<double>(ts(i - 1))))
      throw_invalid(where, element(i), v,
                    "the time grid must be strictly increasing (previous point " +
                        to_string_value(static_cast<double>(ts(i - 1))) + ")");
  }
}

}  // namespace detail
}  // namespace flowmatch
