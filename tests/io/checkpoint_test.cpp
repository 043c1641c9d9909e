// Checkpoints: round trips, bit-identical resume in a fresh process, crashes during a save,
// and every kind of damaged or mismatched file (each flipped byte, each truncation length).

#include <catch2/catch.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <flowmatch/core/threads.hpp>
#include <flowmatch/distribution/gaussian.hpp>
#include <flowmatch/distribution/gaussian_mixture.hpp>
#include <flowmatch/io/checkpoint.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>
#include <flowmatch/ode/euler_simulator.hpp>
#include <flowmatch/ode/learned_vector_field_ode.hpp>
#include <flowmatch/optim/adam.hpp>
#include <flowmatch/optim/sgd.hpp>
#include <flowmatch/path/gaussian_conditional_path.hpp>
#include <flowmatch/schedule/linear_alpha.hpp>
#include <flowmatch/schedule/square_root_beta.hpp>
#include <flowmatch/train/cfm_trainer.hpp>
#include <flowmatch/train/periodic_checkpoint.hpp>

#include "support/temp_dir.hpp"

extern char** environ;

using namespace flowmatch;
namespace fs = std::filesystem;

namespace {

using SeedPath = GaussianConditionalPath<LinearAlpha, SquareRootBeta, GaussianMixture>;
SeedPath seed_path() { return SeedPath(GaussianMixture::symmetric_2D(11, 1.0, 10.0)); }

struct ThreadsGuard {
  int saved = num_threads();
  ~ThreadsGuard() { set_num_threads(saved); }
};


std::vector<unsigned char> read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::vector<unsigned char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const fs::path& file, const std::vector<unsigned char>& bytes) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// A header with correct checksums around any payload: lets a test reach the payload checks.
std::vector<unsigned char> wrap_payload(const std::vector<unsigned char>& payload, std::uint32_t version = kCheckpointVersion) {
  detail::ByteWriter w;
  w.bytes.assign(detail::kCheckpointMagic.begin(), detail::kCheckpointMagic.end());
  w.u32(version);
  w.u32(32);
  w.u64(payload.size());
  w.u32(detail::crc32(0, payload.data(), payload.size()));
  w.u32(detail::crc32(0, w.bytes.data(), 28));
  w.bytes.insert(w.bytes.end(), payload.begin(), payload.end());
  return w.bytes;
}

std::vector<unsigned char> payload_of(const std::vector<unsigned char>& file) {
  return std::vector<unsigned char>(file.begin() + 32, file.end());
}

std::vector<fs::path> files_in(const fs::path& folder) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(folder)) out.push_back(e.path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

template <class Model>
Matrix<float> samples_of(const Model& model, std::uint64_t seed) {
  Rng rng(seed);
  const Matrix<float> x0 = Gaussian::standard(2, 1.0).template sample<float>(64, rng);
  LearnedVectorFieldODE ode(model);
  EulerSimulator simulator(ode);
  return simulator.simulate(x0, linspace(0.0, 1.0, 21));
}

// Everything a load may change, to prove a failed load changed nothing.
template <class Trainer>
struct TrainerSnapshot {
  Vector<float> params, m, v;
  long long adam_steps, steps;
  double lr;
  Rng::State rng;
  explicit TrainerSnapshot(Trainer& t)
      : params(t.model().parameters()),
        m(t.optimizer().first_moment()),
        v(t.optimizer().second_moment()),
        adam_steps(t.optimizer().steps_taken()),
        steps(t.steps_done()),
        lr(t.optimizer().learning_rate()),
        rng(t.rng().state()) {}
  bool operator==(const TrainerSnapshot&) const = default;
};

constexpr const char* kChildIn = "FLOWMATCH_CHECKPOINT_CHILD_IN";
constexpr const char* kChildOut = "FLOWMATCH_CHECKPOINT_CHILD_OUT";
constexpr long long kResumeSteps = 15;
constexpr Index kResumeBatch = 64;

}  // namespace

TEST_CASE("Checkpoint round trip: identical parameters, optimizer state, generator and samples", "[io][checkpoint]") {
  test::TempDir dir("ckpt_roundtrip");
  MLPVectorField<float> model(2, {32, 16}, 1);
  Adam<float> adam(2e-3);
  CFMTrainer trainer(seed_path(), model, adam, 2);
  trainer.train(5, 32);
  save_checkpoint(dir / "a.fmck", trainer);

  MLPVectorField<float> model2(2, {32, 16}, 99);
  Adam<float> adam2(1e-3);
  CFMTrainer trainer2(seed_path(), model2, adam2, 77);
  REQUIRE(model2.parameters() != model.parameters());
  load_checkpoint(dir / "a.fmck", trainer2);
  CHECK(model2.parameters() == model.parameters());
  CHECK(adam2.first_moment() == adam.first_moment());
  CHECK(adam2.second_moment() == adam.second_moment());
  CHECK(adam2.steps_taken() == 5);
  CHECK(adam2.learning_rate() == 2e-3);  // the saved learning rate is restored
  CHECK(trainer2.rng() == trainer.rng());
  CHECK(trainer2.steps_done() == 5);
  CHECK(samples_of(model2, 5) == samples_of(model, 5));
  // The next steps agree too (same batches, same updates).
  CHECK(trainer2.train(3, 32) == trainer.train(3, 32));
  CHECK(model2.parameters() == model.parameters());

  const CheckpointInfo info = read_checkpoint_info(dir / "a.fmck");
  CHECK(info.version == kCheckpointVersion);
  CHECK(info.scalar == "float");
  CHECK(info.activation == "silu");
  CHECK(info.layer_widths == std::vector<Index>{3, 32, 16, 2});
  CHECK(info.num_parameters == model.num_parameters());
  CHECK(info.optimizer == "adam");
  CHECK(info.has_trainer_state);
  CHECK(info.steps_done == 5);

  // A model alone, in double with another activation; and SGD with Nesterov momentum.
  MLPVectorField<double, Tanh> dmodel(2, {8}, 3);
  save_checkpoint(dir / "d.fmck", dmodel);
  MLPVectorField<double, Tanh> dmodel2(2, {8}, 4);
  load_checkpoint(dir / "d.fmck", dmodel2);
  CHECK(dmodel2.parameters() == dmodel.parameters());
  CHECK(read_checkpoint_info(dir / "d.fmck").optimizer.empty());

  SGD<double> sgd(0.01, 0.9, true);
  sgd.step(dmodel.parameters(), Vector<double>::Ones(dmodel.num_parameters()));
  save_checkpoint(dir / "s.fmck", dmodel, sgd);
  SGD<double> sgd2(0.5, 0.9, true);
  load_checkpoint(dir / "s.fmck", dmodel2, sgd2);
  CHECK(dmodel2.parameters() == dmodel.parameters());
  CHECK(sgd2.momentum_buffer() == sgd.momentum_buffer());
  CHECK(sgd2.steps_taken() == 1);
  CHECK(sgd2.learning_rate() == 0.01);
  // Overwriting keeps the folder clean: no temporary files are left behind.
  save_checkpoint(dir / "s.fmck", dmodel, sgd);
  CHECK(files_in(dir.path) == std::vector<fs::path>{"a.fmck", "d.fmck", "s.fmck"});
}

// The child half of the resume test: runs only when started by it (the environment names the files).
TEST_CASE("checkpoint resume child process", "[.][io][checkpoint]") {
  const char* in = std::getenv(kChildIn);
  const char* out = std::getenv(kChildOut);
  if (in == nullptr || out == nullptr) return;
  set_num_threads(1);
  // Other seeds and another learning rate than the parent's: everything must come from the file.
  MLPVectorField<float> model(2, {32, 32}, 1234);
  Adam<float> adam(0.5);
  CFMTrainer trainer(seed_path(), model, adam, 4321);
  load_checkpoint(in, trainer);
  trainer.train(kResumeSteps, kResumeBatch);
  save_checkpoint(out, trainer);
}

TEST_CASE("Checkpoint resume: 2N steps straight equal N steps, save, load in a fresh process, N steps", "[io][checkpoint]") {
  ThreadsGuard guard;
  set_num_threads(1);
  test::TempDir dir("ckpt_resume");
  MLPVectorField<float> straight_model(2, {32, 32}, 7);
  Adam<float> straight_adam(1e-3);
  CFMTrainer straight(seed_path(), straight_model, straight_adam, 8);
  straight.train(2 * kResumeSteps, kResumeBatch);

  MLPVectorField<float> model(2, {32, 32}, 7);
  Adam<float> adam(1e-3);
  CFMTrainer first_half(seed_path(), model, adam, 8);
  first_half.train(kResumeSteps, kResumeBatch);
  const fs::path half = dir / "half.fmck", done = dir / "done.fmck";
  save_checkpoint(half, first_half);

  // A new process image (exec of this test binary), knowing nothing but the file.
  const std::string exe = fs::read_symlink("/proc/self/exe").string();
  std::vector<std::string> env_strings{std::string(kChildIn) + "=" + half.string(),
                                       std::string(kChildOut) + "=" + done.string()};
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  for (char** e = environ; *e != nullptr; ++e) envp.push_back(*e);
  envp.push_back(nullptr);
  std::string arg0 = exe, arg1 = "checkpoint resume child process";
  char* argv[] = {arg0.data(), arg1.data(), nullptr};
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv, envp.data()) == 0);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);

  MLPVectorField<float> resumed_model(2, {32, 32}, 0);
  Adam<float> resumed_adam(1e-3);
  CFMTrainer resumed(seed_path(), resumed_model, resumed_adam, 0);
  load_checkpoint(done, resumed);
  CHECK(resumed.steps_done() == 2 * kResumeSteps);
  CHECK(resumed_adam.steps_taken() == 2 * kResumeSteps);
  CHECK(resumed_model.parameters() == straight_model.parameters());  // bit-identical
  CHECK(resumed_adam.first_moment() == straight_adam.first_moment());
  CHECK(resumed_adam.second_moment() == straight_adam.second_moment());
  CHECK(resumed.rng() == straight.rng());
  // And the first half alone is not the answer (the test can fail).
  CHECK(model.parameters() != straight_model.parameters());
}

namespace {
std::size_t crash_after_bytes = 0;
}  // namespace

TEST_CASE("Checkpoint: a crash or failure during a save leaves the previous checkpoint intact", "[io][checkpoint]") {
  test::TempDir dir("ckpt_crash");
  const fs::path file = dir / "model.fmck";
  MLPVectorField<float> old_model(2, {256, 256}, 1);  // ~67k parameters: a save writes several chunks
  MLPVectorField<float> new_model(2, {256, 256}, 2);
  save_checkpoint(file, old_model);
  const std::vector<unsigned char> old_bytes = read_bytes(file);
  REQUIRE(old_bytes.size() > 3 * (std::size_t{1} << 16));

  const auto check_old_intact = [&] {
    CHECK(read_bytes(file) == old_bytes);
    MLPVectorField<float> loaded(2, {256, 256}, 3);
    load_checkpoint(file, loaded);
    CHECK(loaded.parameters() == old_model.parameters());
  };

  SECTION("an exception between the synced temporary file and the rename") {
    detail::atomic_write_hooks().before_rename = [](const char*) { throw std::runtime_error("simulated failure"); };
    CHECK_THROWS_WITH(save_checkpoint(file, new_model), "simulated failure");
    detail::atomic_write_hooks() = {};
    check_old_intact();
    CHECK(files_in(dir.path) == std::vector<fs::path>{"model.fmck"});  // the temporary file is removed
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
        if (n != "model.fmck") {
          CHECK(n.string().rfind(".model.fmck.tmp-", 0) == 0);
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
    MLPVectorField<float> loaded(2, {256, 256}, 3);
    load_checkpoint(file, loaded);
    CHECK(loaded.parameters() == new_model.parameters());
  }
}

TEST_CASE("Checkpoint: every flipped byte and every truncation is refused and changes nothing", "[io][checkpoint][errors]") {
  test::TempDir dir("ckpt_flip");
  // A small trainer checkpoint: MLP 2-3-1 (13 parameters), Adam moments, trainer state.
  using Path1 = GaussianConditionalPath<LinearAlpha, SquareRootBeta, Gaussian>;
  const Path1 path(Gaussian::standard(1, 1.0));
  MLPVectorField<float> model(1, {3}, 1);
  Adam<float> adam(1e-2);
  CFMTrainer trainer(path, model, adam, 2);
  trainer.train(3, 8);
  const fs::path good = dir / "good.fmck", bad = dir / "bad.fmck";
  save_checkpoint(good, trainer);
  const std::vector<unsigned char> bytes = read_bytes(good);
  INFO("checkpoint of " << bytes.size() << " bytes");

  // The object a failed load must leave unchanged: another model, optimizer and trainer.
  MLPVectorField<float> target_model(1, {3}, 50);
  Adam<float> target_adam(3e-3);
  CFMTrainer target(path, target_model, target_adam, 51);
  target.train(2, 8);
  const TrainerSnapshot before(target);

  long long refused = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    for (const unsigned mask : {0x01u, 0x80u, 0xffu}) {
      std::vector<unsigned char> damaged = bytes;
      damaged[i] = static_cast<unsigned char>(damaged[i] ^ mask);
      write_bytes(bad, damaged);
      bool threw = false;
      try {
        load_checkpoint(bad, target);
      } catch (const CheckpointError&) {
        threw = true;
      }
      if (!threw) FAIL_CHECK("flipping byte " << i << " with mask " << mask << " was not detected");
      refused += threw;
      if (!(TrainerSnapshot(target) == before)) FAIL_CHECK("a failed load at byte " << i << " changed the trainer");
    }
  }
  CHECK(refused == static_cast<long long>(3 * bytes.size()));

  for (std::size_t length = 0; length < bytes.size(); ++length) {
    write_bytes(bad, std::vector<unsigned char>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(length)));
    bool threw = false;
    try {
      load_checkpoint(bad, target);
    } catch (const CheckpointTruncatedError&) {
      threw = true;
    }
    if (!threw) FAIL_CHECK("a file truncated to " << length << " bytes was not refused as truncated");
  }
  CHECK(TrainerSnapshot(target) == before);
  // The undamaged file still loads.
  load_checkpoint(good, target);
  CHECK(target_model.parameters() == model.parameters());
}

TEST_CASE("Checkpoint: each kind of bad file throws its own error and leaves the model unchanged", "[io][checkpoint][errors]") {
  test::TempDir dir("ckpt_bad");
  MLPVectorField<float> model(2, {8, 8}, 1);
  Adam<float> adam(1e-3);
  CFMTrainer trainer(seed_path(), model, adam, 2);
  trainer.train(2, 16);
  const fs::path good = dir / "good.fmck", bad = dir / "bad.fmck";
  save_checkpoint(good, trainer);
  const std::vector<unsigned char> bytes = read_bytes(good);

  MLPVectorField<float> target(2, {8, 8}, 9);
  const Vector<float> before = target.parameters();
  const auto load_bad = [&](const std::vector<unsigned char>& b) {
    write_bytes(bad, b);
    load_checkpoint(bad, target);
  };

  SECTION("a missing file") {
    CHECK_THROWS_AS(load_checkpoint(dir / "missing.fmck", target), CheckpointIOError);
    CHECK_THROWS_WITH(load_checkpoint(dir / "missing.fmck", target), Catch::Contains("missing.fmck"));
    CHECK_THROWS_AS(load_checkpoint(dir.path, target), CheckpointIOError);  // a folder
  }
  SECTION("an empty file and a file shorter than the header") {
    CHECK_THROWS_AS(load_bad({}), CheckpointTruncatedError);
    CHECK_THROWS_AS(load_bad(std::vector<unsigned char>(bytes.begin(), bytes.begin() + 20)), CheckpointTruncatedError);
  }
  SECTION("a wrong magic number: another file type") {
    std::vector<unsigned char> png{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    png.resize(100, 0);
    CHECK_THROWS_AS(load_bad(png), CheckpointMagicError);
    CHECK_THROWS_WITH(load_bad(png), Catch::Contains("not a flowmatch checkpoint"));
    CHECK_THROWS_AS(load_bad({'h', 'e', 'l', 'l', 'o'}), CheckpointMagicError);
  }
  SECTION("an unknown format version, with a correct header checksum") {
    CHECK_THROWS_AS(load_bad(wrap_payload(payload_of(bytes), 2)), CheckpointVersionError);
    CHECK_THROWS_WITH(load_bad(wrap_payload(payload_of(bytes), 2)), Catch::Contains("format version 2"));
    CHECK_NOTHROW(load_bad(wrap_payload(payload_of(bytes), 1)));  // the control: rewrapping is harmless
    target.parameters() = before;
  }
  SECTION("trailing garbage") {
    std::vector<unsigned char> longer = bytes;
    longer.push_back(0);
    CHECK_THROWS_AS(load_bad(longer), CheckpointTrailingDataError);
    longer.resize(bytes.size() + 4096, 'x');
    CHECK_THROWS_AS(load_bad(longer), CheckpointTrailingDataError);
  }
  SECTION("a damaged payload and a damaged header") {
    std::vector<unsigned char> b = bytes;
    b[b.size() / 2] ^= 0x10;
    CHECK_THROWS_AS(load_bad(b), CheckpointChecksumError);
    b = bytes;
    b[24] ^= 0x01;  // the payload checksum itself
    CHECK_THROWS_AS(load_bad(b), CheckpointChecksumError);
    b = bytes;
    b[28] ^= 0x01;  // the header checksum
    CHECK_THROWS_AS(load_bad(b), CheckpointChecksumError);
  }
  SECTION("absurd sizes in a header or payload with correct checksums allocate nothing") {
    // The header declares an exabyte of payload.
    std::vector<unsigned char> b = bytes;
    const std::uint64_t huge = std::uint64_t{1} << 60;
    for (int k = 0; k < 8; ++k) b[16 + static_cast<std::size_t>(k)] = static_cast<unsigned char>(huge >> (8 * k));
    detail::put_u32_at(b, 28, detail::crc32(0, b.data(), 28));
    CHECK_THROWS_AS(load_bad(b), CheckpointTruncatedError);
    // A payload whose widths imply 2^61 parameters; one that declares 2^60 parameters of 4 widths.
    detail::ByteWriter p;
    p.u32(4);
    p.text("silu");
    p.u32(3);
    for (int k = 0; k < 3; ++k) p.u64((std::uint64_t{1} << 31) - 1);
    p.u64(std::uint64_t{1} << 61);
    CHECK_THROWS_AS(load_bad(wrap_payload(p.bytes)), CheckpointCorruptError);
    detail::ByteWriter q;
    q.u32(4);
    q.text("silu");
    q.u32(2);
    q.u64(1u << 30);
    q.u64(1u << 29);
    q.u64((std::uint64_t{1} << 29) * ((std::uint64_t{1} << 30) + 1));
    CHECK_THROWS_AS(load_bad(wrap_payload(q.bytes)), CheckpointCorruptError);
    CHECK_THROWS_WITH(load_bad(wrap_payload(q.bytes)), Catch::Contains("do not fit"));
    // 4 billion layer widths; an activation name of 4 GB.
    detail::ByteWriter r;
    r.u32(4);
    r.text("silu");
    r.u32(0xffffffffu);
    CHECK_THROWS_AS(load_bad(wrap_payload(r.bytes)), CheckpointCorruptError);
    detail::ByteWriter s;
    s.u32(4);
    s.u32(0xffffffffu);
    CHECK_THROWS_AS(load_bad(wrap_payload(s.bytes)), CheckpointCorruptError);
  }
  SECTION("a payload with a NaN parameter, an unknown optimizer or extra bytes, with correct checksums") {
    std::vector<unsigned char> payload = payload_of(bytes);
    // The first parameter: after scalar size (4), name (4 + 4), 4 widths (4 + 32), count (8).
    const std::size_t first_param = 4 + 4 + 4 + 4 + 4 * 8 + 8;
    std::vector<unsigned char> nan = payload;
    const auto qnan = std::bit_cast<std::uint32_t>(std::numeric_limits<float>::quiet_NaN());
    detail::put_u32_at(nan, first_param, qnan);
    CHECK_THROWS_AS(load_bad(wrap_payload(nan)), CheckpointCorruptError);
    CHECK_THROWS_WITH(load_bad(wrap_payload(nan)), Catch::Contains("NaN"));
    std::vector<unsigned char> extra = payload;
    extra.push_back(0);
    CHECK_THROWS_AS(load_bad(wrap_payload(extra)), CheckpointCorruptError);
    const std::size_t optimizer_kind = first_param + static_cast<std::size_t>(model.num_parameters()) * 4;
    std::vector<unsigned char> unknown = payload;
    detail::put_u32_at(unknown, optimizer_kind, 7);
    CHECK_THROWS_AS(load_bad(wrap_payload(unknown)), CheckpointCorruptError);
  }
  SECTION("a valid checkpoint of another architecture, scalar type, activation or optimizer") {
    MLPVectorField<float> wider(2, {8, 9}, 1);
    CHECK_THROWS_AS(load_checkpoint(good, wider), CheckpointMismatchError);
    CHECK_THROWS_WITH(load_checkpoint(good, wider), Catch::Contains("3-8-8-2") && Catch::Contains("3-8-9-2"));
    MLPVectorField<double> in_double(2, {8, 8}, 1);
    CHECK_THROWS_AS(load_checkpoint(good, in_double), CheckpointMismatchError);
    CHECK_THROWS_WITH(load_checkpoint(good, in_double), Catch::Contains("float") && Catch::Contains("double"));
    MLPVectorField<float, ReLU> relu(2, {8, 8}, 1);
    CHECK_THROWS_AS(load_checkpoint(good, relu), CheckpointMismatchError);
    CHECK_THROWS_WITH(load_checkpoint(good, relu), Catch::Contains("relu"));
    SGD<float> sgd(0.1);
    CHECK_THROWS_AS(load_checkpoint(good, target, sgd), CheckpointMismatchError);
    Adam<float> other_betas(1e-3, 0.9, 0.99);
    CHECK_THROWS_AS(load_checkpoint(good, target, other_betas), CheckpointMismatchError);
    CHECK_THROWS_WITH(load_checkpoint(good, target, other_betas), Catch::Contains("beta2"));
    CHECK(other_betas.steps_taken() == 0);
    // A model-only checkpoint cannot restore a trainer.
    save_checkpoint(dir / "model_only.fmck", model);
    MLPVectorField<float> m2(2, {8, 8}, 5);
    Adam<float> a2(1e-3);
    CFMTrainer t2(seed_path(), m2, a2, 6);
    const Vector<float> m2_before = m2.parameters();
    CHECK_THROWS_AS(load_checkpoint(dir / "model_only.fmck", t2), CheckpointMismatchError);
    CHECK(m2.parameters() == m2_before);
    CHECK(a2.steps_taken() == 0);
  }
  SECTION("saving refuses non-finite parameters and unwritable places, and leaves the old file") {
    MLPVectorField<float> broken = model;
    broken.parameters()(3) = std::numeric_limits<float>::infinity();
    CHECK_THROWS_AS(save_checkpoint(good, broken), NumericalError);
    CHECK_THROWS_AS(save_checkpoint(dir / "no_such_folder" / "x.fmck", model), CheckpointIOError);
    CHECK(read_bytes(good) == bytes);
  }
  CHECK(target.parameters() == before);
}

TEST_CASE("PeriodicCheckpoint saves every N steps, keeps the last K files and resumes from the latest", "[io][checkpoint][train]") {
  test::TempDir dir("ckpt_periodic");
  MLPVectorField<float> model(2, {16}, 1);
  Adam<float> adam(1e-3);
  CFMTrainer trainer(seed_path(), model, adam, 2);
  PeriodicCheckpoint checkpoints(trainer, dir.path, 5, 2, "run");
  trainer.train(23, 16, checkpoints);
  const auto found = PeriodicCheckpoint<decltype(trainer)>::list(dir.path, "run");
  REQUIRE(found.size() == 2);
  CHECK(found[0].first == 15);
  CHECK(found[1].first == 20);
  CHECK(found[1].second.filename() == "run-000000000020.fmck");
  CHECK(checkpoints.last_saved() == found[1].second);
  CHECK(PeriodicCheckpoint<decltype(trainer)>::latest(dir.path, "run") == found[1].second);
  CHECK_FALSE(PeriodicCheckpoint<decltype(trainer)>::latest(dir.path, "other").has_value());
  // A save on demand (as on Ctrl-C) at step 23, then a resume from the latest file.
  CHECK(checkpoints.save_now().filename() == "run-000000000023.fmck");
  CHECK(PeriodicCheckpoint<decltype(trainer)>::list(dir.path, "run").size() == 2);
  MLPVectorField<float> model2(2, {16}, 8);
  Adam<float> adam2(1e-3);
  CFMTrainer trainer2(seed_path(), model2, adam2, 9);
  load_checkpoint(*PeriodicCheckpoint<decltype(trainer)>::latest(dir.path, "run"), trainer2);
  CHECK(trainer2.steps_done() == 23);
  CHECK(model2.parameters() == model.parameters());
  CHECK_THROWS_AS(PeriodicCheckpoint(trainer, dir.path, 0, 2), InvalidArgument);
  CHECK_THROWS_AS(PeriodicCheckpoint(trainer, dir.path, 5, 0), InvalidArgument);
}

TEST_CASE("Checkpoint files written by an independent encoder (tests/fuzz/make_corpus.py) load", "[io][checkpoint]") {
  const fs::path corpus = fs::path(__FILE__).parent_path().parent_path() / "fuzz" / "corpus" / "checkpoint";
  if (!fs::exists(corpus)) {
    WARN("seed corpus not found at " << corpus << " (sources moved?): skipped");
    return;
  }
  const CheckpointInfo info = read_checkpoint_info(corpus / "adam_trainer.fmck");
  CHECK(info.layer_widths == std::vector<Index>{3, 2, 2});
  CHECK(info.num_parameters == 14);
  CHECK(info.optimizer == "adam");
  CHECK(info.optimizer_steps == 3);
  CHECK(info.steps_done == 3);
  MLPVectorField<float> model(2, {2}, 1);
  Adam<float> adam(1e-3);
  CFMTrainer trainer(seed_path(), model, adam, 2);
  load_checkpoint(corpus / "adam_trainer.fmck", trainer);
  CHECK(trainer.steps_done() == 3);
  CHECK(adam.first_moment().size() == 14);
  CHECK(model.parameters().cwiseAbs().maxCoeff() <= 1.0f);
  load_checkpoint(corpus / "model_only.fmck", model);
  SGD<float> sgd(0.5, 0.9, true);
  load_checkpoint(corpus / "sgd_nesterov.fmck", model, sgd);
  CHECK(sgd.learning_rate() == 0.01);
  CHECK(sgd.steps_taken() == 2);
  MLPVectorField<double, Tanh> small(1, {3}, 1);
  load_checkpoint(corpus / "double_tanh_model.fmck", small);
  CHECK_THROWS_AS(load_checkpoint(corpus / "adam_trainer.payload", model), CheckpointMagicError);
}
