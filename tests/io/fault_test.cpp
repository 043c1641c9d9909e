// Faults as they happen in the field (issue 19), each against the real code path: the disk fills
// during a save (a 384 KiB tmpfs in a private mount namespace where the system allows one, and
// always RLIMIT_FSIZE, which makes write() fail with EFBIG), the output folder is read-only, two
// processes save to the same checkpoint at once while a third loads it, and files that another
// process appends to or cuts while they are read. The process killed during a save is in
// checkpoint_test.cpp; the IDX reader's faults (a cut gzip stream, a growing file) in idx_test.cpp.
//
// The faults run in forked children (a child has no threads: only the save, then _exit), which
// report what went wrong in a file the parent reads.

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <flowmatch/io/checkpoint.hpp>
#include <flowmatch/io/csv.hpp>

#include "support/files.hpp"
#include "support/temp_dir.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;
namespace fs = std::filesystem;

namespace {

// A one-layer model whose weights all derive from `seed`; loading checks the widths.
struct FaultModel {
  static constexpr std::string_view state_scope = "model";
  Matrix<float> weight;
  Vector<float> bias;
  FaultModel(Index in, Index out, float seed) : weight(out, in), bias(out) {
    for (Index i = 0; i < weight.size(); ++i) weight(i) = seed + 0.25f * static_cast<float>(i % 97);
    for (Index i = 0; i < bias.size(); ++i) bias(i) = -seed - static_cast<float>(i);
  }
  void save_state(StateWriter& w) const {
    w.text("type", "fault_model");
    w.integers("widths", {weight.cols(), weight.rows()});
    w.matrix("0.weight", weight);
    w.vector("0.bias", bias);
  }
  void load_state(const StateReader& r) {
    r.expect_text("type", "fault_model", "model type");
    if (r.integers("widths") != std::vector<long long>{weight.cols(), weight.rows()}) r.fail("other widths");
    Matrix<float> w = r.matrix<float>("0.weight", weight.rows(), weight.cols());
    Vector<float> b = r.vector<float>("0.bias", bias.size());
    weight = std::move(w);
    bias = std::move(b);
  }
  bool operator==(const FaultModel&) const = default;
};

std::vector<std::string> names_in(const fs::path& folder) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(folder)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Runs `body` in a forked child, which appends a line per problem to `report` and returns its exit
// code (77: the fault cannot be set up here, a skip). Returns the child's exit code, or 128 + the
// signal that killed it.
int in_child(const fs::path& report, const std::function<int(const std::function<void(const std::string&)>&)>& body) {
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int code = 0;
    const auto problem = [&](const std::string& line) {
      std::ofstream(report, std::ios::app) << line << "\n";
      code = code == 0 ? 1 : code;
    };
    try {
      const int rc = body(problem);
      if (rc != 0) code = rc;
    } catch (const std::exception& e) {
      problem(std::string("unexpected exception: ") + e.what());
    } catch (...) {
      problem("unexpected exception of an unknown type");
    }
    ::_exit(code);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string text_of(const fs::path& file) {
  std::ifstream in(file);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The checks after a failed save: `problem` gets a line if `file` is not `old_bytes` loading as
// `old_model`, or if anything but `file` is left in its folder.
void check_old_intact(const fs::path& file, const std::vector<unsigned char>& old_bytes, const FaultModel& old_model,
                      const std::function<void(const std::string&)>& problem) {
  std::ifstream in(file, std::ios::binary);
  const std::vector<unsigned char> now{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (now != old_bytes) problem("the previous checkpoint changed");
  FaultModel loaded(old_model.weight.cols(), old_model.weight.rows(), 9.0f);
  load_checkpoint(file, loaded);
  if (!(loaded == old_model)) problem("the previous checkpoint does not load as the old model");
  const std::vector<std::string> left = names_in(file.parent_path());
  if (left != std::vector<std::string>{file.filename().string()}) {
    std::string all;
    for (const auto& n : left) all += " " + n;
    problem("the folder holds more than the checkpoint:" + all);
  }
}

}  // namespace

TEST_CASE("Fault: the disk fills during a save; the previous checkpoint stays and no temporary file is left",
          "[io][checkpoint][fault]") {
  test::TempDir dir("fault_disk_full");
  const fs::path report = dir / "report.txt";
  FaultModel old_model(256, 256, 1.0f);  // 263 KB on disk: a save writes several 64 KiB chunks
  FaultModel new_model(256, 256, 2.0f);

  SECTION("ENOSPC: a 384 KiB tmpfs holds the old checkpoint but not a second copy") {
    const fs::path small = dir / "small";
    fs::create_directory(small);
    const int rc = in_child(report, [&](const auto& problem) {
      // A private mount namespace, so that the tmpfs is seen by this child alone and vanishes with it.
      if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
          ::mount("flowmatch_test", small.c_str(), "tmpfs", 0, "size=384k") != 0)
        return 77;
      const fs::path file = small / "model.safetensors";
      save_checkpoint(file, old_model);
      std::ifstream in(file, std::ios::binary);
      const std::vector<unsigned char> old_bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
      try {
        save_checkpoint(file, new_model);
        problem("the save into a full file system succeeded");
      } catch (const CheckpointIOError& e) {
        const std::string m = e.what();
        if (m.find(std::strerror(ENOSPC)) == std::string::npos || m.find("model.safetensors") == std::string::npos)
          problem("the message names no ENOSPC or no file: " + m);
      }
      check_old_intact(file, old_bytes, old_model, problem);
      return 0;
    });
    if (rc == 77) {
      WARN("SKIPPED: no private mount namespace or tmpfs here (needs root or CAP_SYS_ADMIN); the RLIMIT_FSIZE "
           "section still runs");
    } else {
      INFO(text_of(report));
      CHECK(rc == 0);
    }
  }
  SECTION("EFBIG: RLIMIT_FSIZE of 128 KiB while the save writes 263 KB") {
    const fs::path file = dir / "model.safetensors";
    save_checkpoint(file, old_model);
    const std::vector<unsigned char> old_bytes = test::read_bytes(file);
    const int rc = in_child(report, [&](const auto& problem) {
      ::signal(SIGXFSZ, SIG_IGN);  // so that write() fails with EFBIG instead of the signal killing us
      const rlimit limit{128 << 10, 128 << 10};
      if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) return 77;
      try {
        save_checkpoint(file, new_model);
        problem("the save beyond RLIMIT_FSIZE succeeded");
      } catch (const CheckpointIOError& e) {
        const std::string m = e.what();
        if (m.find(std::strerror(EFBIG)) == std::string::npos || m.find("model.safetensors") == std::string::npos)
          problem("the message names no EFBIG or no file: " + m);
      }
      return 0;
    });
    INFO(text_of(report));
    REQUIRE(rc != 77);
    CHECK(rc == 0);
    check_old_intact(file, old_bytes, old_model, [](const std::string& p) { FAIL_CHECK(p); });
  }
}

TEST_CASE("Fault: saving into a read-only folder is a CheckpointIOError naming the file", "[io][checkpoint][fault]") {
  test::TempDir dir("fault_read_only");
  const fs::path out = dir / "out";
  fs::create_directory(out);
  fs::permissions(dir.path, fs::perms::others_exec | fs::perms::group_exec, fs::perm_options::add);
  const fs::path file = out / "model.safetensors";
  FaultModel old_model(4, 3, 1.0f), new_model(4, 3, 2.0f);
  save_checkpoint(file, old_model);
  const std::vector<unsigned char> old_bytes = test::read_bytes(file);
  fs::permissions(out, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read | fs::perms::group_exec |
                           fs::perms::others_read | fs::perms::others_exec);  // 0555
  const fs::path report = dir / "report.txt";
  // Root writes into a 0555 folder anyway (CAP_DAC_OVERRIDE), as CI runs: the child then gives up
  // root for the unprivileged user 65534 ("nobody"), which may read the folder but not write it.
  const int rc = in_child(report, [&](const auto& problem) {
    if (::geteuid() == 0 && (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0)) return 77;
    try {
      save_checkpoint(file, new_model);
      problem("the save into a read-only folder succeeded");
    } catch (const CheckpointIOError& e) {
      const std::string m = e.what();
      if (m.find("'" + file.string() + "'") == std::string::npos || m.find(std::strerror(EACCES)) == std::string::npos)
        problem("the message names no file or no reason: " + m);
    }
    return 0;
  });
  fs::permissions(out, fs::perms::owner_all, fs::perm_options::add);
  if (rc == 77) {
    WARN("SKIPPED: running as root and cannot switch to user 65534 to make the folder's permissions count");
    return;
  }
  INFO(text_of(report));
  CHECK(rc == 0);
  check_old_intact(file, old_bytes, old_model, [](const std::string& p) { FAIL_CHECK(p); });
}

TEST_CASE("Fault: two processes saving to one path at once leave one whole file of the two, and no temporary file",
          "[io][checkpoint][fault]") {
  test::TempDir dir("fault_two_writers");
  const fs::path file = dir / "model.safetensors";
  // 64 x 64 floats: 16 KB, so that a save is short and the two writers overlap many times.
  const FaultModel a(64, 64, 1.0f), b(64, 64, 2.0f), first(64, 64, 3.0f);
  const std::vector<unsigned char> bytes_a = encode_checkpoint(a), bytes_b = encode_checkpoint(b);
  save_checkpoint(file, first);
  constexpr int kSaves = 40;
  std::vector<pid_t> writers;
  for (const FaultModel* m : {&a, &b}) {
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int code = 0;
      try {
        for (int k = 0; k < kSaves; ++k) save_checkpoint(file, *m);
      } catch (...) {
        code = 1;
      }
      ::_exit(code);
    }
    writers.push_back(pid);
  }
  // Meanwhile this process loads the file again and again: every load is one whole model.
  long long loads = 0, torn = 0;
  std::vector<int> status(writers.size(), -1);
  for (bool running = true; running;) {
    FaultModel loaded(64, 64, 0.0f);
    try {
      load_checkpoint(file, loaded);
      if (!(loaded == a || loaded == b || loaded == first)) ++torn;
    } catch (const CheckpointError& e) {
      FAIL_CHECK("a load during the saves failed: " << e.what());
      ++torn;
    }
    ++loads;
    running = false;
    for (std::size_t k = 0; k < writers.size(); ++k)
      if (status[k] == -1 && ::waitpid(writers[k], &status[k], WNOHANG) == 0) {
        status[k] = -1;
        running = true;
      }
  }
  for (const int st : status) CHECK((WIFEXITED(st) && WEXITSTATUS(st) == 0));
  INFO(loads << " loads during the saves");
  CHECK(torn == 0);
  const std::vector<unsigned char> after = test::read_bytes(file);
  CHECK((after == bytes_a || after == bytes_b));
  CHECK(names_in(dir.path) == std::vector<std::string>{"model.safetensors"});
}

TEST_CASE("Fault: a file that another process appends to or cuts while it is read", "[io][csv][checkpoint][fault]") {
  test::TempDir dir("fault_changing");
  // The writer: appends `chunk` to `file` `count` times (a short pause between), then, if `cut_to`
  // >= 0, cuts the file to that size. Returns its pid.
  const auto start_writer = [](const fs::path& file, const std::string& chunk, int count, long long cut_to) {
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      const int fd = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
      if (fd < 0) ::_exit(1);
      for (int k = 0; k < count; ++k) {
        if (::write(fd, chunk.data(), chunk.size()) != static_cast<ssize_t>(chunk.size())) ::_exit(1);
        ::usleep(50);
      }
      if (cut_to >= 0 && ::ftruncate(fd, cut_to) != 0) ::_exit(1);
      ::close(fd);
      ::_exit(0);
    }
    return pid;
  };
  const auto finished = [](pid_t pid) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    return r != 0;
  };

  SECTION("CSV: each read is the rows written so far, or a CsvError (a row cut mid-way)") {
    const fs::path file = dir / "data.csv";
    std::ofstream(file) << "x,y\n";
    // Rows "123,123\n" of 8 characters; the writer appends 4000 of them in blocks of 10, then cuts
    // the file after 1000 rows and "123,123" (a last row without its line end).
    std::string block;
    for (int k = 0; k < 10; ++k) block += "123,123\n";
    const pid_t writer = start_writer(file, block, 400, 4 + 8 * 1000 + 7);
    long long reads = 0, errors = 0, rows_seen = 0;
    for (bool done = false; !done;) {
      done = finished(writer);
      try {
        const CsvTable<double> t = read_csv_table(file);
        CHECK(t.names == std::vector<std::string>{"x", "y"});
        // Every row but the last is whole. A write that crosses a page boundary can be seen half
        // done, and a row cut after "123,1" is a valid row: the last may hold a prefix of 123.
        const Index n = t.data.cols();
        CHECK((t.data.leftCols(n - 1).array() == 123.0).all());
        for (Index i = 0; i < 2; ++i) {
          const double v = t.data(i, n - 1);
          CHECK((v == 1.0 || v == 12.0 || v == 123.0));
        }
        rows_seen = std::max<long long>(rows_seen, n);
      } catch (const CsvError& e) {
        ++errors;  // only a row cut by the end of what was read
        const std::string m = e.what();
        const bool expected = m.find("ragged row") != std::string::npos || m.find("empty field") != std::string::npos ||
                              m.find("no data rows") != std::string::npos || m.find("is not a number") != std::string::npos;
        if (!expected) FAIL_CHECK(m);
      }
      ++reads;
    }
    INFO(reads << " reads, " << errors << " CsvErrors, at most " << rows_seen << " rows");
    CHECK(reads > 0);
    // After the cut: 1001 rows (the last without its line end); then a trailing delimiter makes the
    // last row ragged, at line 1002.
    const Matrix<double> last = read_csv(file);
    CHECK(last.cols() == 1001);
    CHECK((last.row(0).array() == 123.0).all());
    const CsvError e = [&] {
      std::ofstream(file, std::ios::app) << ",";
      try {
        (void)read_csv(file);
      } catch (const CsvError& err) {
        return err;
      }
      FAIL("no CsvError");
      return CsvError("", 0, 0, "");
    }();
    CHECK(e.line() == 1002);
  }
  SECTION("checkpoint: each read is the saved model, or a typed error (trailing data, or a file cut short)") {
    const fs::path file = dir / "model.safetensors";
    const FaultModel model(64, 64, 1.0f);
    save_checkpoint(file, model);
    const auto size = static_cast<long long>(fs::file_size(file));
    const pid_t writer = start_writer(file, std::string(512, 'x'), 200, size / 2);
    long long reads = 0, loaded_ok = 0;
    for (bool done = false; !done;) {
      done = finished(writer);
      FaultModel loaded(64, 64, 0.0f);
      try {
        load_checkpoint(file, loaded);
        CHECK(loaded == model);
        ++loaded_ok;
      } catch (const CheckpointTrailingDataError&) {
      } catch (const CheckpointTruncatedError&) {
      } catch (const CheckpointIOError&) {  // the file shrank between its size and its read
      } catch (const CheckpointError& e) {
        FAIL_CHECK("unexpected: " << e.what());
      }
      ++reads;
    }
    INFO(reads << " reads, " << loaded_ok << " loads");
    CHECK(reads > 0);
    FaultModel loaded(64, 64, 0.0f);
    CHECK_THROWS_AS(load_checkpoint(file, loaded), CheckpointTruncatedError);  // cut to half at the end
    CHECK(loaded == FaultModel(64, 64, 0.0f));
  }
}

}  // namespace FLOWMATCH_TEST_FILE_ID
