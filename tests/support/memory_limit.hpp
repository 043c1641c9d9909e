#pragma once
// Runs a reader in a forked child whose address space is capped (RLIMIT_AS) at the parent's
// current size plus a budget: the child exits 0 if the reader threw the expected exception type,
// 3 on std::bad_alloc (it tried to allocate what the file only claims), 2 on another exception,
// 4 if nothing was thrown; a kill by the kernel shows as a signal. Issue 19: a size written in a
// file is a claim, not a size to allocate.
//
// Address-space limits and sanitizers do not mix (their shadow memory reserves terabytes):
// FLOWMATCH_TEST_UNDER_SANITIZER is defined there, and tests using this should skip.

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <new>
#include <string>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FLOWMATCH_TEST_UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define FLOWMATCH_TEST_UNDER_SANITIZER 1
#endif
#endif

namespace flowmatch::test {

/// What happened to the child: exited (with its code) or killed (with the signal).
struct ChildOutcome {
  bool exited = false;
  int code = -1;    ///< exit code when exited: 0 expected exception, 2 other, 3 bad_alloc, 4 none
  int signal = 0;   ///< the signal when killed
  std::string describe() const {
    if (!exited) return "killed by signal " + std::to_string(signal);
    switch (code) {
      case 0: return "threw the expected error";
      case 2: return "threw another exception";
      case 3: return "threw std::bad_alloc";
      case 4: return "threw nothing";
      case 10: return "could not set RLIMIT_AS";
      default: return "exited with code " + std::to_string(code);
    }
  }
};

/// Runs `read()` in a child with at most `budget_mb` MiB of address space beyond the parent's
/// current size; returns what happened. Expected: the exception type E.
template <class E, class F>
ChildOutcome run_with_address_space_budget(long long budget_mb, F&& read) {
  long long pages = 0;
  {
    std::ifstream statm("/proc/self/statm");
    statm >> pages;
  }
  const auto limit = static_cast<rlim_t>(pages) * static_cast<rlim_t>(sysconf(_SC_PAGESIZE)) +
                     (static_cast<rlim_t>(budget_mb) << 20);
  const pid_t pid = fork();
  if (pid < 0) return {};
  if (pid == 0) {
    const rlimit r{limit, limit};
    if (pages <= 0 || setrlimit(RLIMIT_AS, &r) != 0) _exit(10);
    int code = 4;
    try {
      read();
    } catch (const E&) {
      code = 0;
    } catch (const std::bad_alloc&) {
      code = 3;
    } catch (...) {
      code = 2;
    }
    _exit(code);
  }
  int status = 0;
  ChildOutcome out;
  if (waitpid(pid, &status, 0) != pid) return out;
  out.exited = WIFEXITED(status);
  if (out.exited) out.code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) out.signal = WTERMSIG(status);
  return out;
}

}  // namespace flowmatch::test
