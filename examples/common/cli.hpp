#pragma once
// Command-line handling shared by the examples, over CLI11 (Debian's libcli11-dev): typed options,
// --help, and errors that name the option and the value.

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <exception>
#include <sstream>
#include <string>
#include <utility>

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

/// Help texts and limits of the options every training example has; the defaults fit most.
struct CommonHelp {
  std::string steps = "training steps";
  long long min_steps = 1;
  std::string lr = "Adam learning rate";
  std::string seed = "random seed";
};

/// Adds --steps, --batch, --lr, --seed, --threads, --hidden and --out, bound to the example's own
/// fields (their current values are the defaults --help shows).
template <class Hidden>
void add_common_options(CLI::App& app, long long& steps, long long& batch, double& lr, long long& seed,
                        long long& threads, Hidden& hidden, std::string& out, const CommonHelp& help = {}) {
  app.add_option("--steps", steps, help.steps)->check(at_least(help.min_steps))->capture_default_str();
  app.add_option("--batch", batch, "training batch size")->check(at_least(1))->capture_default_str();
  app.add_option("--lr", lr, help.lr)->check(positive_finite())->capture_default_str();
  app.add_option("--seed", seed, help.seed)->capture_default_str();
  app.add_option("--threads", threads, "threads (default: every core)")->check(at_least(1))->capture_default_str();
  app.add_option("--hidden", hidden, "hidden layer widths")->check(at_least(1))->capture_default_str();
  app.add_option("--out", out, "output folder")->capture_default_str();
}

/// Parses the command line, then calls run(): --help and bad options exit as CLI11 says (code 0
/// or 105-109), an exception from run() prints "<name>: error: <what>" and returns 1.
template <class Run>
int parse_and_run(CLI::App& app, int argc, char** argv, const char* name, Run&& run) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return std::forward<Run>(run)();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", name, e.what());
    return 1;
  }
}

}  // namespace flowmatch::examples
