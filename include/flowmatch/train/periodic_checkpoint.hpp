#pragma once
/// \file
/// A training callback that saves a checkpoint every N steps and keeps the last K files.

#include <algorithm>
#include <cctype>
#include <concepts>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <tuple>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/io/checkpoint.hpp"

namespace flowmatch {

/// A trainer PeriodicCheckpoint can save: it counts its steps (and has the state protocol of
/// core/state.hpp, as a composite with state_parts() or a part with a state_scope).
template <class T>
concept StepCountingTrainer = requires(const T& t) {
  { t.steps_done() } -> std::convertible_to<long long>;
};

/// Saves `trainer` (its state_parts(): model, optimizer, step count, generator) and any `extra`
/// parts (an EMA: state_part("ema", ema)) to `folder/<prefix>-<step>.safetensors` whenever the
/// trainer's lifetime step count is a multiple of `every`, and then deletes all but the `keep`
/// newest such files. Use it as (or inside) a CFMTrainer::train callback:
///
///     PeriodicCheckpoint checkpoints(trainer, "ckpt", 500, 3);
///     trainer.train(10000, 1000, checkpoints);
///
/// Each file is written atomically (save_checkpoint), so a crash at any moment leaves the newest
/// complete checkpoint loadable; resume with load_checkpoint(*PeriodicCheckpoint<...>::latest(...),
/// trainer, extra...). Allocates only on the steps that save. `Extra` holds references to the
/// parts passed as lvalues and copies of the NamedParts passed as temporaries.
template <StepCountingTrainer Trainer, class... Extra>
class PeriodicCheckpoint {
 public:
  PeriodicCheckpoint(Trainer& trainer, std::filesystem::path folder, long long every, int keep = 3,
                     std::string prefix = "checkpoint", Extra... extra)
      : trainer_(trainer), extra_(std::forward<Extra>(extra)...), folder_(std::move(folder)), every_(every),
        keep_(keep), prefix_(std::move(prefix)) {
    constexpr const char* where = "flowmatch::PeriodicCheckpoint::PeriodicCheckpoint";
    if (every_ < 1) detail::throw_invalid(where, "every", every_, "must be at least 1");
    if (keep_ < 1) detail::throw_invalid(where, "keep", keep_, "must be at least 1");
    if (prefix_.empty() || prefix_.find('/') != std::string::npos)
      detail::throw_invalid(where, "prefix", prefix_, "must be a non-empty file name prefix without '/'");
    std::error_code ec;
    std::filesystem::create_directories(folder_, ec);
    if (ec)
      throw CheckpointIOError(std::string(where) + ": cannot create the folder '" + folder_.string() + "': " +
                              ec.message());
  }

  /// The train() callback: saves when the step count is a multiple of `every`. Returns true
  /// (never stops training).
  /// (Any progress argument: a TrainProgress from CFMTrainer::train.)
  template <class Progress>
  bool operator()(const Progress&) {
    if (trainer_.steps_done() > 0 && trainer_.steps_done() % every_ == 0 && trainer_.steps_done() != last_step_)
      save_now();
    return true;
  }

  /// Saves at the current step now (for example on a stop request) and prunes old files; returns
  /// the file written.
  std::filesystem::path save_now() {
    const std::filesystem::path file = path_for(trainer_.steps_done());
    std::apply([&](const auto&... extra) { save_checkpoint(file, trainer_, extra...); }, extra_);
    last_step_ = trainer_.steps_done();
    last_saved_ = file;
    // A data-parallel trainer saves collectively from rank 0; only that rank prunes.
    if constexpr (requires { trainer_.writes_files(); })
      if (!trainer_.writes_files()) return file;
    prune();
    return file;
  }

  /// `folder/<prefix>-<step, 12 digits>.safetensors`
  std::filesystem::path path_for(long long step) const { return folder_ / file_name(prefix_, step); }
  const std::filesystem::path& last_saved() const { return last_saved_; }

  /// The checkpoint files `prefix-<step>.safetensors` in `folder`, oldest step first (and the
  /// format-1 files `prefix-<step>.fmck` of earlier releases).
  static std::vector<std::pair<long long, std::filesystem::path>> list(const std::filesystem::path& folder,
                                                                       const std::string& prefix = "checkpoint") {
    std::vector<std::pair<long long, std::filesystem::path>> found;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      const std::string head = prefix + "-";
      const std::string tail = name.ends_with(".fmck") ? ".fmck" : ".safetensors";
      if (name.size() <= head.size() + tail.size() || name.compare(0, head.size(), head) != 0 ||
          name.compare(name.size() - tail.size(), tail.size(), tail) != 0)
        continue;
      const std::string digits = name.substr(head.size(), name.size() - head.size() - tail.size());
      if (digits.size() > 18 || !std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c); }))
        continue;
      found.emplace_back(std::stoll(digits), it->path());
    }
    std::sort(found.begin(), found.end());
    return found;
  }

  /// The newest checkpoint file in `folder`, if any.
  static std::optional<std::filesystem::path> latest(const std::filesystem::path& folder,
                                                     const std::string& prefix = "checkpoint") {
    auto found = list(folder, prefix);
    if (found.empty()) return std::nullopt;
    return found.back().second;
  }

 private:
  static std::string file_name(const std::string& prefix, long long step) {
    char digits[32];
    std::snprintf(digits, sizeof digits, "%012lld", step);
    return prefix + "-" + digits + ".safetensors";
  }

  void prune() const {
    auto found = list(folder_, prefix_);
    const std::size_t keep = static_cast<std::size_t>(keep_);
    for (std::size_t i = 0; i + keep < found.size(); ++i) {
      std::error_code ec;
      std::filesystem::remove(found[i].second, ec);  // best effort: a leftover file harms nothing
    }
  }

  Trainer& trainer_;
  std::tuple<Extra...> extra_;
  std::filesystem::path folder_;
  long long every_;
  int keep_;
  std::string prefix_;
  long long last_step_ = -1;
  std::filesystem::path last_saved_;
};

template <class T>
PeriodicCheckpoint(T&, std::filesystem::path, long long) -> PeriodicCheckpoint<T>;
template <class T>
PeriodicCheckpoint(T&, std::filesystem::path, long long, int) -> PeriodicCheckpoint<T>;
template <class T, class... E>
PeriodicCheckpoint(T&, std::filesystem::path, long long, int, std::string, E&&...) -> PeriodicCheckpoint<T, E...>;

}  // namespace flowmatch
