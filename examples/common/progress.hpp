#pragma once
// Training progress for the examples: a live bar with the loss and steps per second when stdout is
// a terminal, plain lines every so often otherwise (logs, CI, pipes).

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include <flowmatch/train/cfm_trainer.hpp>

namespace flowmatch::examples {

class ProgressReporter {
 public:
  explicit ProgressReporter(long long plain_every = 500)
      : tty_(isatty(STDOUT_FILENO) == 1), plain_every_(std::max(1LL, plain_every)) {}

  void operator()(const TrainProgress& p) {
    const double rate = p.seconds > 0.0 ? static_cast<double>(p.step) / p.seconds : 0.0;
    if (tty_) {
      // Redraw at most ~20 times a second, and always at the end.
      if (p.step != p.num_steps && p.seconds - last_draw_ < 0.05) return;
      last_draw_ = p.seconds;
      constexpr int kWidth = 30;
      const int filled = p.num_steps > 0 ? static_cast<int>(kWidth * p.step / p.num_steps) : kWidth;
      std::string bar(static_cast<std::size_t>(filled), '#');
      bar.resize(kWidth, '.');
      std::printf("\r[%s] %lld/%lld  loss %9.4f  %7.1f steps/s", bar.c_str(), p.step, p.num_steps,
                  p.loss, rate);
      if (p.step == p.num_steps) std::printf("\n");
      std::fflush(stdout);
    } else if (p.step % plain_every_ == 0 || p.step == p.num_steps) {
      std::printf("step %lld/%lld  loss %.4f  %.1f steps/s\n", p.step, p.num_steps, p.loss, rate);
      std::fflush(stdout);
    }
  }

 private:
  bool tty_;
  long long plain_every_;
  double last_draw_ = -1.0;
};

}  // namespace flowmatch::examples
