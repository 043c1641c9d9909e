#pragma once
/// \file
/// The library's exception types and the helpers that build their messages.
///
/// Every error flowmatch reports derives from flowmatch::Error, so a caller can catch them all in
/// one place. Messages name the function, the argument and the offending value.

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace flowmatch {

/// Base class of every exception thrown by flowmatch.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A value passed across an API boundary is out of its domain (batch size 0, t outside [0, 1], ...).
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

/// Shapes that must agree do not (data dimension vs. model dimension, batch sizes, ...).
class DimensionMismatch : public InvalidArgument {
 public:
  using InvalidArgument::InvalidArgument;
};

/// A computation produced a non-finite value (a diverging loss, an infinite vector field).
class NumericalError : public Error {
 public:
  using Error::Error;
};

namespace detail {

template <class T>
std::string to_string_value(const T& value) {
  std::ostringstream os;
  os.precision(9);
  os << value;
  return os.str();
}

/// Throws InvalidArgument: "<where>: argument '<arg>' = <value> is invalid: <requirement>".
template <class T>
[[noreturn]] void throw_invalid(std::string_view where, std::string_view arg, const T& value,
                                std::string_view requirement) {
  std::string msg;
  msg.append(where).append(": argument '").append(arg).append("' = ");
  msg.append(to_string_value(value)).append(" is invalid: ").append(requirement);
  throw InvalidArgument(msg);
}

/// Throws DimensionMismatch: "<where>: argument '<arg>' has <what> <got>, expected <expected>".
[[noreturn]] inline void throw_dimension(std::string_view where, std::string_view arg,
                                         std::string_view what, long long got,
                                         long long expected) {
  std::string msg;
  msg.append(where).append(": argument '").append(arg).append("' has ").append(what).append(" ");
  msg.append(std::to_string(got)).append(", expected ").append(std::to_string(expected));
  throw DimensionMismatch(msg);
}

inline void require_rows(std::string_view where, std::string_view arg, long long got,
                         long long expected) {
  if (got != expected) throw_dimension(where, arg, "rows (dimension)", got, expected);
}

inline void require_cols(std::string_view where, std::string_view arg, long long got,
                         long long expected) {
  if (got != expected) throw_dimension(where, arg, "columns (batch size)", got, expected);
}

inline void require_positive_count(std::string_view where, std::string_view arg, long long value) {
  if (value <= 0) throw_invalid(where, arg, value, "must be at least 1");
}

/// t must be a finite number in [0, 1].
inline void require_unit_time(std::string_view where, std::string_view arg, double t) {
  if (!(t >= 0.0 && t <= 1.0)) throw_invalid(where, arg, t, "time must lie in [0, 1]");
}

}  // namespace detail
}  // namespace flowmatch
