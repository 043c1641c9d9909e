#pragma once
// Command-line handling shared by the examples, over CLI11 (Debian's libcli11-dev): typed options,
// --help, and errors that name the option and the value.

#include <CLI/CLI.hpp>

#include <cmath>
#include <sstream>
#include <string>

namespace flowmatch::examples {

/// Validator: an integer >= min, with a message naming the value.
inline CLI::Validator at_least(long long min) {
  return CLI::Validator(
      [min](std::string& value) -> std::string {
        std::istringstream is(value);
        long long v = 0;
        if (!(is >> v) || !is.eof()) return "'" + value + "' is not an integer";
        if (v < min) return "value " + value + " is invalid: must be at least " + std::to_string(min);
        return {};
      },
      ">=" + std::to_string(min));
}

/// Validator: a finite real number > 0, with a message naming the value.
inline CLI::Validator positive_finite() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        std::istringstream is(value);
        double v = 0;
        if (!(is >> v) || !is.eof()) return "'" + value + "' is not a number";
        if (!(std::isfinite(v) && v > 0.0)) return "value " + value + " is invalid: must be finite and > 0";
        return {};
      },
      ">0");
}

}  // namespace flowmatch::examples
