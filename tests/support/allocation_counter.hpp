#pragma once
// The allocation counter of the allocation tests: replaces the global operator new / new[] /
// delete / delete[] (every sized, aligned and nothrow variant) with counting versions and, on
// glibc, interposes malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign, valloc and
// pvalloc. Program-wide: include it in exactly one translation unit of a test binary of its own
// (tests/alloc/allocation_test.cpp, tests/distributed/allocation_test.cpp).
#include <catch2/catch.hpp>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <vector>

#if defined(__GLIBC__)
#include <execinfo.h>
#include <unistd.h>
#define FLOWMATCH_ALLOC_TEST_COUNTS_MALLOC 1
#else
#define FLOWMATCH_ALLOC_TEST_COUNTS_MALLOC 0
#endif

#include <flowmatch.hpp>

// ------------------------------------------------------------------------------------------------
// The counter.
namespace alloc_count {
namespace {

std::atomic<long long> operator_new_calls{0};  // every operator new / new[] variant
std::atomic<long long> malloc_calls{0};        // malloc and friends called directly (Eigen, C libraries)
std::atomic<bool> armed{false};
thread_local bool in_hook = false;  // guards the backtrace (which may allocate) against recursion

bool trace_requested() {
  static const bool value = [] {
    const char* v = std::getenv("FLOWMATCH_ALLOC_TRACE");
    return v != nullptr && *v != '\0' && *v != '0';
  }();
  return value;
}

}  // namespace
}  // namespace alloc_count

// A function to break on in a debugger: called for every allocation made while a measurement is
// armed (`break flowmatch_alloc_test_armed_allocation`, then `bt`).
extern "C" __attribute__((noinline)) void flowmatch_alloc_test_armed_allocation(std::size_t bytes) {
  asm volatile("" : : "r"(bytes) : "memory");
#if FLOWMATCH_ALLOC_TEST_COUNTS_MALLOC
  if (alloc_count::in_hook || !alloc_count::trace_requested()) return;
  alloc_count::in_hook = true;
  void* frames[48];
  const int n = backtrace(frames, 48);
  char header[96];
  const int len =
      std::snprintf(header, sizeof header, "\n[allocation_test] allocation of %zu bytes while armed:\n", bytes);
  if (len > 0) (void)!write(2, header, static_cast<std::size_t>(len));
  backtrace_symbols_fd(frames, n, 2);
  alloc_count::in_hook = false;
#endif
}

namespace alloc_count {
namespace {

inline void note(std::atomic<long long>& counter, std::size_t bytes) {
  counter.fetch_add(1, std::memory_order_relaxed);
  if (armed.load(std::memory_order_relaxed) && !in_hook) flowmatch_alloc_test_armed_allocation(bytes);
}

struct Counts {
  long long operator_new = 0;
  long long malloc = 0;
  long long total() const { return operator_new + malloc; }
};

Counts snapshot() { return {operator_new_calls.load(), malloc_calls.load()}; }

// Allocations made (by any thread) while f() runs.
template <class F>
Counts count_allocations(F&& f) {
  const Counts before = snapshot();
  armed.store(true);
  f();
  armed.store(false);
  const Counts after = snapshot();
  return {after.operator_new - before.operator_new, after.malloc - before.malloc};
}

}  // namespace
}  // namespace alloc_count

// ------------------------------------------------------------------------------------------------
// malloc and friends (glibc): forward to glibc's own implementation, counting each call.
#if FLOWMATCH_ALLOC_TEST_COUNTS_MALLOC
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void __libc_free(void*);
void* __libc_memalign(std::size_t, std::size_t);
void* __libc_valloc(std::size_t);
void* __libc_pvalloc(std::size_t);

void* malloc(std::size_t bytes) noexcept {
  alloc_count::note(alloc_count::malloc_calls, bytes);
  return __libc_malloc(bytes);
}
void* calloc(std::size_t count, std::size_t bytes) noexcept {
  alloc_count::note(alloc_count::malloc_calls, count * bytes);
  return __libc_calloc(count, bytes);
}
void* realloc(void* p, std::size_t bytes) noexcept {
  alloc_count::note(alloc_count::malloc_calls, bytes);
  return __libc_realloc(p, bytes);
}
void free(void* p) noexcept { __libc_free(p); }
int posix_memalign(void** out, std::size_t alignment, std::size_t bytes) noexcept {
  alloc_count::note(alloc_count::malloc_calls, bytes);
  if (alignment % sizeof(void*) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
  void* p = __libc_memalign(alignment, bytes);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
void* aligned_alloc(std::size_t alignment, std::size_t bytes) noexcept {
  alloc_count::note(alloc_count::malloc_calls, bytes);
  return __libc_memalign(alignment, bytes);
}
void* memalign(std::size_t alignment, std::size_t bytes) noexcept {
  alloc_count::note(alloc_count::malloc_calls, bytes);
  return __libc_memalign(alignment, bytes);
}
void* valloc(std::size_t bytes) noexcept {
  alloc_count::note(alloc_count::malloc_calls, bytes);
  return __libc_valloc(bytes);
}
void* pvalloc(std::size_t bytes) noexcept {
  alloc_count::note(alloc_count::malloc_calls, bytes);
  return __libc_pvalloc(bytes);
}
}  // extern "C"

namespace alloc_count {
namespace {
inline void* raw_allocate(std::size_t bytes) { return __libc_malloc(bytes == 0 ? 1 : bytes); }
inline void* raw_allocate_aligned(std::size_t bytes, std::size_t alignment) {
  return __libc_memalign(alignment, bytes == 0 ? 1 : bytes);
}
inline void raw_free(void* p) { __libc_free(p); }
}  // namespace
}  // namespace alloc_count
#else
namespace alloc_count {
namespace {
inline void* raw_allocate(std::size_t bytes) { return std::malloc(bytes == 0 ? 1 : bytes); }
inline void* raw_allocate_aligned(std::size_t bytes, std::size_t alignment) {
  // aligned_alloc wants a multiple of the alignment.
  return std::aligned_alloc(alignment, (bytes + alignment - 1) / alignment * alignment + (bytes == 0 ? alignment : 0));
}
inline void raw_free(void* p) { std::free(p); }
}  // namespace
}  // namespace alloc_count
#endif

// ------------------------------------------------------------------------------------------------
// The global operator new / delete, every variant.
namespace alloc_count {
namespace {
void* counted_new(std::size_t bytes) {
  note(operator_new_calls, bytes);
  for (;;) {
    if (void* p = raw_allocate(bytes)) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}
void* counted_new(std::size_t bytes, std::align_val_t alignment) {
  note(operator_new_calls, bytes);
  const auto align = static_cast<std::size_t>(alignment);
  for (;;) {
    if (void* p = raw_allocate_aligned(bytes, align < sizeof(void*) ? sizeof(void*) : align)) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}
}  // namespace
}  // namespace alloc_count

void* operator new(std::size_t bytes) { return alloc_count::counted_new(bytes); }
void* operator new[](std::size_t bytes) { return alloc_count::counted_new(bytes); }
void* operator new(std::size_t bytes, const std::nothrow_t&) noexcept {
  try {
    return alloc_count::counted_new(bytes);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t bytes, const std::nothrow_t&) noexcept {
  try {
    return alloc_count::counted_new(bytes);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(std::size_t bytes, std::align_val_t alignment) { return alloc_count::counted_new(bytes, alignment); }
void* operator new[](std::size_t bytes, std::align_val_t alignment) {
  return alloc_count::counted_new(bytes, alignment);
}
void* operator new(std::size_t bytes, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  try {
    return alloc_count::counted_new(bytes, alignment);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t bytes, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  try {
    return alloc_count::counted_new(bytes, alignment);
  } catch (...) {
    return nullptr;
  }
}

void operator delete(void* p) noexcept { alloc_count::raw_free(p); }
void operator delete[](void* p) noexcept { alloc_count::raw_free(p); }
void operator delete(void* p, std::size_t) noexcept { alloc_count::raw_free(p); }
void operator delete[](void* p, std::size_t) noexcept { alloc_count::raw_free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { alloc_count::raw_free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { alloc_count::raw_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { alloc_count::raw_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { alloc_count::raw_free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { alloc_count::raw_free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { alloc_count::raw_free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { alloc_count::raw_free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { alloc_count::raw_free(p); }

