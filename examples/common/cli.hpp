#pragma once
// Command-line handling shared by the examples, over CLI11 (Debian's libcli11-dev): typed options,
// --help, and errors that name the option and the value.

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

// The default of --out: CMake defines it per example as <build>/out/<name> (flowmatch_add_example).
#ifndef FLOWMATCH_DEFAULT_OUT
#define FLOWMATCH_DEFAULT_OUT "out"
#endif

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

/// The options every training example has. An example's Options derives from it, giving its own
/// defaults through the base's designated initializers (`Options() : CommonOptions{.steps = 3000}
/// {}`), and add_common_options() registers their flags.
struct CommonOptions {
  long long steps = 5000;  ///< --steps: training steps
  long long batch = 1000;  ///< --batch: training batch size
  double lr = 1e-3;        ///< --lr: (peak) learning rate
  long long seed = 0;      ///< --seed: random seed
  long long threads = std::max(1u, std::thread::hardware_concurrency());  ///< --threads (default: every core)
  std::vector<long long> hidden{1024, 16};  ///< --hidden: hidden layer widths
  std::string out = FLOWMATCH_DEFAULT_OUT;  ///< --out: output folder
};

/// Help texts and limits of the common options; the defaults fit most.
struct CommonHelp {
  std::string steps = "training steps";
  long long min_steps = 1;
  std::string lr = "Adam learning rate";
  std::string seed = "random seed";
};

/// Adds --steps, --batch, --lr, --seed, --threads, --hidden and --out, bound to `opt`'s fields
/// (their current values are the defaults --help shows).
inline void add_common_options(CLI::App& app, CommonOptions& opt, const CommonHelp& help = {}) {
  app.add_option("--steps", opt.steps, help.steps)->check(at_least(help.min_steps))->capture_default_str();
  app.add_option("--batch", opt.batch, "training batch size")->check(at_least(1))->capture_default_str();
  app.add_option("--lr", opt.lr, help.lr)->check(positive_finite())->capture_default_str();
  app.add_option("--seed", opt.seed, help.seed)->capture_default_str();
  app.add_option("--threads", opt.threads, "threads (default: every core)")->check(at_least(1))->capture_default_str();
  app.add_option("--hidden", opt.hidden, "hidden layer widths")->check(at_least(1))->capture_default_str();
  app.add_option("--out", opt.out, "output folder")->capture_default_str();
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
