// Checkpoint files of any parts (io/checkpoint.hpp), with small test-only parts that implement the
// state protocol: round trips of bare, named and composite parts, read_checkpoint_info, mismatches,
// rollback of every part when one refuses, crashes and failures during a save (atomic write), and
// PeriodicCheckpoint. The real parts' own round trips live with them (tests/nn, tests/optim, ...).

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include <flowmatch/core/random.hpp>
#include <flowmatch/io/checkpoint.hpp>
#include <flowmatch/train/periodic_checkpoint.hpp>

#include "support/files.hpp"
#include "support/temp_dir.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;
namespace fs = std::filesystem;

namespace {

// A model: one layer, weight [out, in] and bias [out]; reads are checked before anything changes.
struct TinyModel {
  static constexpr std::string_view state_scope = "model";
  Matrix<float> weight;
  Vector<float> bias;
  TinyModel(Index in, Index out, float seed) : weight(out, in), bias(out) {
    for (Index i = 0; i < weight.size(); ++i) weight(i) = seed + 0.25f * static_cast<float>(i);
    for (Index i = 0; i < bias.size(); ++i) bias(i) = -seed - static_cast<float>(i);
  }
  void save_state(StateWriter& w) const {
    w.text("type", "tiny_model");
    w.integers("widths", {weight.cols(), weight.rows()});
    w.matrix("0.weight", weight);
    w.vector("0.bias", bias);
  }
  void load_state(const StateReader& r) {
    r.expect_text("type", "tiny_model", "model type");
    const std::vector<long long> widths = r.integers("widths");
    if (widths != std::vector<long long>{weight.cols(), weight.rows()})
      r.fail("holds a model of other widths than the model passed");
    Matrix<float> w = r.matrix<float>("0.weight", weight.rows(), weight.cols());
    Vector<float> b = r.vector<float>("0.bias", bias.size());
    weight = std::move(w);
    bias = std::move(b);
  }
  bool operator==(const TinyModel&) const = default;
};

// An optimizer: a learning rate, a step count, a buffer of 0 or n elements (n before the first step).
struct TinyOptimizer {
  static constexpr std::string_view state_scope = "optimizer";
  double lr = 0.1;
  long long steps = 0;
  Vector<double> buffer;
  void save_state(StateWriter& w) const {
    w.text("type", "tiny_sgd");
    w.real("lr", lr);
    w.integer("steps", steps);
    w.vector("buffer", buffer);
  }
  void load_state(const StateReader& r) {
    r.expect_text("type", "tiny_sgd", "optimizer type");
    const double new_lr = r.real("lr");
    const long long new_steps = r.integer("steps");
    if (new_steps < 0) r.fail("negative step count");
    const std::vector<std::int64_t> shape = r.shape("buffer");
    if (shape.size() != 1) r.fail("buffer is not a vector");
    buffer = r.vector<double>("buffer", shape[0]);
    lr = new_lr;
    steps = new_steps;
  }
  bool operator==(const TinyOptimizer&) const = default;
};

// The trainer's own counters: a step count and a generator.
struct TinyCounters {
  long long steps_done = 0;
  Rng rng{5};
  void save_state(StateWriter& w) const {
    w.integer("steps_done", steps_done);
    w.tensor("rng", rng.state().data(), {4});
  }
  void load_state(const StateReader& r) {
    const long long steps = r.integer("steps_done");
    if (steps < 0) r.fail("steps_done is negative");
    Rng::State s{};
    r.read("rng", {4}, s.data());
    if (s == Rng::State{}) r.fail("the generator state is all zeros");
    steps_done = steps;
    rng.set_state(s);
  }
  bool operator==(const TinyCounters& o) const { return steps_done == o.steps_done && rng.state() == o.rng.state(); }
};

// A composite, as CFMTrainer is: model, optimizer and its own counters, each under its scope.
struct TinyTrainer {
  TinyModel model{3, 2, 1.0f};
  TinyOptimizer optimizer;
  TinyCounters counters;
  auto state_parts() {
    return std::tuple(state_part("model", model), state_part("optimizer", optimizer), state_part("trainer", counters));
  }
  long long steps_done() const { return counters.steps_done; }
  void step() {  // changes everything a checkpoint holds
    ++counters.steps_done;
    const double u = counters.rng.uniform();
    model.weight.array() += static_cast<float>(u);
    model.bias.array() -= 0.5f;
    if (optimizer.buffer.size() == 0) optimizer.buffer = Vector<double>::Zero(8);
    optimizer.buffer.array() += u;
    ++optimizer.steps;
  }
  bool operator==(const TinyTrainer& o) const {
    return model == o.model && optimizer == o.optimizer && counters == o.counters;
  }
};

using test::read_bytes;

std::vector<fs::path> files_in(const fs::path& folder) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(folder)) out.push_back(e.path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("Checkpoint round trip: a composite, bare parts and named parts, any combination", "[io][checkpoint]") {
  test::TempDir dir("ckpt_roundtrip");
  TinyTrainer trainer;
  for (int k = 0; k < 3; ++k) trainer.step();
  TinyModel ema(3, 2, 7.0f);
  save_checkpoint(dir / "run.safetensors", trainer, state_part("ema", ema));

  TinyTrainer other;
  TinyModel other_ema(3, 2, 0.0f);
  REQUIRE_FALSE(other == trainer);
  load_checkpoint(dir / "run.safetensors", other, state_part("ema", other_ema));
  CHECK(other == trainer);
  CHECK(other_ema == ema);

  // Parts alone from the same file: the state of other scopes is ignored.
  TinyModel model(3, 2, 9.0f);
  load_checkpoint(dir / "run.safetensors", model);
  CHECK(model == trainer.model);
  TinyModel as_ema(3, 2, 9.0f);
  load_checkpoint(dir / "run.safetensors", state_part("ema", as_ema));
  CHECK(as_ema == ema);
  TinyOptimizer opt;
  load_checkpoint(dir / "run.safetensors", model, opt);
  CHECK(opt == trainer.optimizer);

  // What the file holds, without loading it.
  const CheckpointInfo info = read_checkpoint_info(dir / "run.safetensors");
  CHECK(info.format_version == 2);
  REQUIRE(info.attribute("model.type") != nullptr);
  CHECK(*info.attribute("model.type") == "tiny_model");
  CHECK(*info.attribute("model.widths") == "[3,2]");
  CHECK(*info.attribute("trainer.steps_done") == "3");
  CHECK(info.attribute("model.nothing") == nullptr);
  CHECK(info.tensors.at("model.0.weight").shape == std::vector<std::int64_t>{2, 3});
  CHECK(info.tensors.at("model.0.weight").dtype == DType::F32);
  CHECK(info.tensors.at("trainer.rng").dtype == DType::U64);
  CHECK(info.has_scope("ema"));
  CHECK(info.has_scope("optimizer"));
  CHECK_FALSE(info.has_scope("em"));
  CHECK_FALSE(info.has_scope("scheduler"));

  // read_checkpoint / save_state_dict: the same state as a StateDict, written back byte-identically.
  const StateDict dict = read_checkpoint(dir / "run.safetensors");
  save_state_dict(dir / "copy.safetensors", dict);
  CHECK(read_bytes(dir / "copy.safetensors") == read_bytes(dir / "run.safetensors"));
  CHECK(encode_checkpoint(trainer, state_part("ema", ema)) == read_bytes(dir / "run.safetensors"));
  // Saving twice over the same file leaves no temporary file behind.
  save_checkpoint(dir / "run.safetensors", trainer, state_part("ema", ema));
  CHECK(files_in(dir.path) == std::vector<fs::path>{"copy.safetensors", "run.safetensors"});
}

TEST_CASE("Checkpoint: a part that does not fit the file throws CheckpointMismatchError, and nothing changes",
          "[io][checkpoint][errors]") {
  test::TempDir dir("ckpt_mismatch");
  TinyTrainer trainer;
  trainer.step();
  const fs::path file = dir / "run.safetensors";
  save_checkpoint(file, trainer);

  TinyModel wider(4, 2, 3.0f);
  const TinyModel wider_before = wider;
  CHECK_THROWS_AS(load_checkpoint(file, wider), CheckpointMismatchError);
  CHECK_THROWS_WITH(load_checkpoint(file, wider), Catch::Contains("run.safetensors") && Catch::Contains("widths"));
  CHECK(wider == wider_before);
  TinyModel missing(3, 2, 3.0f);
  CHECK_THROWS_WITH(load_checkpoint(file, state_part("ema", missing)), Catch::Contains("ema.type"));
  // A file with more state under a scope than the part reads: refused, not silently dropped.
  StateDict extra = read_checkpoint(file);
  extra.put_attribute("model.dropout", "0.1");
  save_state_dict(dir / "extra.safetensors", extra);
  CHECK_THROWS_WITH(load_checkpoint(dir / "extra.safetensors", missing), Catch::Contains("model.dropout"));
  CHECK_THROWS_AS(load_checkpoint(dir / "nothing_here.safetensors", missing), CheckpointIOError);
  CHECK_THROWS_AS(load_checkpoint(dir.path, missing), CheckpointIOError);  // a folder
}

TEST_CASE("Checkpoint: when one part refuses its state, every part is restored", "[io][checkpoint][errors]") {
  test::TempDir dir("ckpt_rollback");
  TinyTrainer saved;
  for (int k = 0; k < 2; ++k) saved.step();
  // A valid file whose last part (the trainer's counters) holds a negative step count: the model
  // and optimizer load first, then the counters refuse.
  StateDict dict;
  save_state_parts(dict, saved);
  StateDict bad;
  for (const auto& [name, t] : dict.tensors()) bad.put_tensor(name, t);
  for (const auto& [name, v] : dict.attributes()) bad.put_attribute(name, name == "trainer.steps_done" ? "-1" : v);
  save_state_dict(dir / "bad.safetensors", bad);

  TinyTrainer target;
  target.step();
  const TinyTrainer before = target;
  TinyModel ema(3, 2, 4.0f);
  const TinyModel ema_before = ema;
  REQUIRE_FALSE(before == saved);
  CHECK_THROWS_AS(load_checkpoint(dir / "bad.safetensors", state_part("ema", ema), target), CheckpointMismatchError);
  CHECK(target == before);
  CHECK(ema == ema_before);
  CHECK_THROWS_WITH(load_checkpoint(dir / "bad.safetensors", target), Catch::Contains("steps_done is negative"));
  CHECK(target == before);
  // The same through bytes, and a control: the good state loads.
  CHECK_THROWS_AS(load_checkpoint_bytes(encode_safetensors(bad), "bytes", target), CheckpointMismatchError);
  CHECK(target == before);
  load_checkpoint_bytes(encode_safetensors(dict), "bytes", target);
  CHECK(target == saved);
}

TEST_CASE("Checkpoint: non-finite values are refused at save and the old file stays", "[io][checkpoint][errors]") {
  test::TempDir dir("ckpt_nonfinite");
  const fs::path file = dir / "model.safetensors";
  TinyModel model(3, 2, 1.0f);
  save_checkpoint(file, model);
  const std::vector<unsigned char> before = read_bytes(file);
  TinyModel broken = model;
  broken.bias(1) = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_AS(save_checkpoint(file, broken), NumericalError);
  CHECK_THROWS_WITH(save_checkpoint(file, broken), Catch::Contains("model.0.bias"));
  CHECK(read_bytes(file) == before);
  CHECK_THROWS_AS(save_checkpoint(dir / "no_such_folder" / "x.safetensors", model), CheckpointIOError);
  CHECK(files_in(dir.path) == std::vector<fs::path>{"model.safetensors"});
}

namespace {
std::size_t crash_after_bytes = 0;
}  // namespace

TEST_CASE("Checkpoint: a crash or failure during a save leaves the previous checkpoint intact", "[io][checkpoint]") {
  test::TempDir dir("ckpt_crash");
  const fs::path file = dir / "model.safetensors";
  TinyModel old_model(256, 256, 1.0f);  // 65,792 floats: a save writes several 64 KiB chunks
  TinyModel new_model(256, 256, 2.0f);
  save_checkpoint(file, old_model);
  const std::vector<unsigned char> old_bytes = read_bytes(file);
  REQUIRE(old_bytes.size() > 3 * (std::size_t{1} << 16));

  const auto check_old_intact = [&] {
    CHECK(read_bytes(file) == old_bytes);
    TinyModel loaded(256, 256, 3.0f);
    load_checkpoint(file, loaded);
    CHECK(loaded == old_model);
  };

  SECTION("an exception between the synced temporary file and the rename") {
    detail::atomic_write_hooks().before_rename = [](const char*) { throw std::runtime_error("simulated failure"); };
    CHECK_THROWS_WITH(save_checkpoint(file, new_model), "simulated failure");
    detail::atomic_write_hooks() = {};
    check_old_intact();
    CHECK(files_in(dir.path) == std::vector<fs::path>{"model.safetensors"});  // the temporary file is removed
  }
  SECTION("a process killed in the middle of writing, and one killed just before the rename") {
    for (const bool mid_write : {true, false}) {
      INFO((mid_write ? "killed after the first 64 KiB chunk" : "killed before the rename"));
      crash_after_bytes = mid_write ? 1 : 0;
      const pid_t pid = fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {  // the child: no threads, only the save; it never returns
        if (crash_after_bytes != 0)
          detail::atomic_write_hooks().after_chunk = [](std::size_t) { ::raise(SIGKILL); };
        else
          detail::atomic_write_hooks().before_rename = [](const char*) { ::raise(SIGKILL); };
        try {
          save_checkpoint(file, new_model);
        } catch (...) {
        }
        ::_exit(0);  // not reached if the hook fired
      }
      int status = 0;
      REQUIRE(waitpid(pid, &status, 0) == pid);
      REQUIRE(WIFSIGNALED(status));
      CHECK(WTERMSIG(status) == SIGKILL);
      check_old_intact();
      // The dead process left its partial temporary file next to the checkpoint, never in its place.
      const auto names = files_in(dir.path);
      CHECK(names.size() == 2);
      for (const auto& n : names)
        if (n != "model.safetensors") {
          CHECK(n.string().rfind(".model.safetensors.tmp-", 0) == 0);
          const auto size = fs::file_size(dir.path / n);
          if (mid_write)
            CHECK(size < old_bytes.size());
          else
            CHECK(size == old_bytes.size());
          fs::remove(dir.path / n);
        }
    }
    // A later save succeeds and replaces the file.
    save_checkpoint(file, new_model);
    TinyModel loaded(256, 256, 3.0f);
    load_checkpoint(file, loaded);
    CHECK(loaded == new_model);
  }
}

TEST_CASE("PeriodicCheckpoint saves every N steps, keeps the last K files and resumes from the latest",
          "[io][checkpoint][train]") {
  test::TempDir dir("ckpt_periodic");
  TinyTrainer trainer;
  TinyModel ema(3, 2, 2.0f);
  PeriodicCheckpoint checkpoints(trainer, dir.path, 5, 2, "run", state_part("ema", ema));
  using PC = PeriodicCheckpoint<TinyTrainer>;
  for (int k = 0; k < 23; ++k) {
    trainer.step();
    ema.bias.array() += 1.0f;
    CHECK(checkpoints(k));  // any progress argument; never stops training
  }
  const auto found = PC::list(dir.path, "run");
  REQUIRE(found.size() == 2);
  CHECK(found[0].first == 15);
  CHECK(found[1].first == 20);
  CHECK(found[1].second.filename() == "run-000000000020.safetensors");
  CHECK(checkpoints.last_saved() == found[1].second);
  CHECK(PC::latest(dir.path, "run") == found[1].second);
  CHECK_FALSE(PC::latest(dir.path, "other").has_value());
  // A save on demand (as on Ctrl-C) at step 23, then a resume from the latest file.
  CHECK(checkpoints.save_now().filename() == "run-000000000023.safetensors");
  CHECK(PC::list(dir.path, "run").size() == 2);
  TinyTrainer resumed;
  TinyModel resumed_ema(3, 2, 0.0f);
  load_checkpoint(*PC::latest(dir.path, "run"), resumed, state_part("ema", resumed_ema));
  CHECK(resumed.steps_done() == 23);
  CHECK(resumed == trainer);
  CHECK(resumed_ema == ema);
  // Without extra parts; the arguments are checked.
  PeriodicCheckpoint plain(trainer, dir / "plain", 1);
  CHECK(plain.save_now().filename() == "checkpoint-000000000023.safetensors");
  CHECK_THROWS_AS(PeriodicCheckpoint(trainer, dir.path, 0, 2), InvalidArgument);
  CHECK_THROWS_AS(PeriodicCheckpoint(trainer, dir.path, 5, 0), InvalidArgument);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
