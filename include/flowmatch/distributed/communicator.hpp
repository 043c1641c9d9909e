#pragma once
/// \file
/// flowmatch over MPI: the environment (MPI_Init / MPI_Finalize), a communicator with the few
/// typed collectives the data-parallel trainer, the collective checkpoints and sharded sampling use,
/// and a guard that turns an exception on one rank into the end of the whole job (with a message
/// naming the rank) instead of a hang in the next collective.
///
/// Part of the optional component `flowmatch::mpi` (CMake: `target_link_libraries(app PRIVATE
/// flowmatch::mpi)`; Debian: libopenmpi-dev, openmpi-bin). Not in <flowmatch.hpp>: include
/// <flowmatch/distributed.hpp>.

// The C API only: Open MPI's and MPICH's deprecated C++ bindings do not compile warning-free.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch::distributed {

/// An MPI call failed, the ranks disagree, or a collective operation failed on some rank (every
/// rank then throws it, with the failing rank's reason).
class DistributedError : public Error {
 public:
  using Error::Error;
};

/// The ranks' copies of the model (or of the optimizer's state) are no longer identical: the
/// data-parallel invariant is broken (a rank changed its weights alone, or memory was corrupted).
class ReplicaDivergenceError : public DistributedError {
 public:
  using DistributedError::DistributedError;
};

namespace detail {

/// The MPI datatype of T.
template <class T>
MPI_Datatype mpi_type() {
  if constexpr (std::is_same_v<T, float>) return MPI_FLOAT;
  else if constexpr (std::is_same_v<T, double>) return MPI_DOUBLE;
  else if constexpr (std::is_same_v<T, std::uint64_t>) return MPI_UINT64_T;
  else if constexpr (std::is_same_v<T, std::int64_t>) return MPI_INT64_T;
  else if constexpr (std::is_same_v<T, long long>) return MPI_LONG_LONG;
  else if constexpr (std::is_same_v<T, int>) return MPI_INT;
  else if constexpr (std::is_same_v<T, unsigned char> || std::is_same_v<T, char>) return MPI_BYTE;
  else static_assert(sizeof(T) == 0, "flowmatch::distributed: no MPI datatype for this type");
}

/// Throws DistributedError naming `what` and MPI's own message if `rc` is not MPI_SUCCESS.
inline void check_mpi(int rc, std::string_view what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(rc, text, &length);
  throw DistributedError("flowmatch::distributed: " + std::string(what) + " failed: " + std::string(text, static_cast<std::size_t>(length)));
}

/// MPI counts are int: large buffers go in pieces of at most 2^30 elements.
inline constexpr long long kMaxCount = 1LL << 30;

}  // namespace detail

/// Whether MPI is initialized (and not yet finalized) in this process.
inline bool mpi_initialized() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized != 0 && finalized == 0;
}

/// MPI for the lifetime of this object: MPI_Init_thread (MPI_THREAD_FUNNELED: flowmatch's worker
/// threads never call MPI) and, at destruction, MPI_Finalize. If MPI is already initialized (by the
/// application), it does neither. Errors of MPI calls on MPI_COMM_WORLD are returned, not fatal, so
/// that flowmatch turns them into DistributedError. A program started without mpirun runs as one
/// rank (MPI's singleton mode).
class Environment {
 public:
  Environment(int& argc, char**& argv) {
    if (mpi_initialized()) return;
    int provided = 0;
    detail::check_mpi(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    owner_ = true;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
  Environment(const Environment&) = delete;
  Environment& operator=(const Environment&) = delete;
  ~Environment() {
    if (owner_ && mpi_initialized()) MPI_Finalize();
  }

 private:
  bool owner_ = false;
};

/// A communicator (MPI_COMM_WORLD by default) with the typed collectives flowmatch needs. Cheap to
/// copy (it does not own the MPI_Comm). Every collective must be called by every rank, in the same
/// order; each throws DistributedError if MPI reports a failure.
class Communicator {
 public:
  /// MPI_COMM_WORLD; throws DistributedError if MPI is not initialized.
  Communicator() : Communicator(world()) {}
  explicit Communicator(MPI_Comm comm) : comm_(comm) {
    if (!mpi_initialized())
      throw DistributedError("flowmatch::distributed::Communicator: MPI is not initialized: create a "
                             "flowmatch::distributed::Environment(argc, argv) first, in main");
    detail::check_mpi(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    detail::check_mpi(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  }

  int rank() const { return rank_; }
  int size() const { return size_; }
  /// Rank 0: the one that writes files and prints.
  bool is_root() const { return rank_ == 0; }
  MPI_Comm native() const { return comm_; }

  /// data := the element-wise sum over the ranks of data (in place, on every rank).
  template <class T>
  void allreduce_sum(T* data, long long count) const { allreduce(data, count, MPI_SUM, "MPI_Allreduce(sum)"); }
  template <class T>
  void allreduce_max(T* data, long long count) const { allreduce(data, count, MPI_MAX, "MPI_Allreduce(max)"); }
  template <class T>
  T sum(T value) const {
    allreduce_sum(&value, 1);
    return value;
  }
  template <class T>
  T max(T value) const {
    allreduce_max(&value, 1);
    return value;
  }

  /// data := root's data, on every rank.
  template <class T>
  void broadcast(T* data, long long count, int root = 0) const {
    for (long long done = 0; done < count; done += detail::kMaxCount)
      detail::check_mpi(MPI_Bcast(data + done, static_cast<int>(std::min(detail::kMaxCount, count - done)),
                                  detail::mpi_type<T>(), root, comm_),
                        "MPI_Bcast");
  }
  /// Root's vector (any size) on every rank.
  template <class T>
  void broadcast(std::vector<T>& data, int root = 0) const {
    long long n = static_cast<long long>(data.size());
    broadcast(&n, 1, root);
    data.resize(static_cast<std::size_t>(n));
    broadcast(data.data(), n, root);
  }
  /// Root's Eigen vector (any size) on every rank.
  template <class S>
  void broadcast(Vector<S>& data, int root = 0) const {
    long long n = static_cast<long long>(data.size());
    broadcast(&n, 1, root);
    data.resize(static_cast<Index>(n));
    broadcast(data.data(), n, root);
  }
  void broadcast(std::string& text, int root = 0) const {
    std::vector<char> bytes(text.begin(), text.end());
    broadcast(bytes, root);
    text.assign(bytes.begin(), bytes.end());
  }

  /// Every rank's `value`, indexed by rank, on every rank.
  template <class T>
  std::vector<T> allgather(const T& value) const {
    std::vector<T> all(static_cast<std::size_t>(size_));
    detail::check_mpi(MPI_Allgather(&value, 1, detail::mpi_type<T>(), all.data(), 1, detail::mpi_type<T>(), comm_),
                      "MPI_Allgather");
    return all;
  }

  /// Every rank's `value`, indexed by rank, into `all` (size() elements; no allocation).
  template <class T>
  void allgather(const T& value, T* all) const {
    detail::check_mpi(MPI_Allgather(&value, 1, detail::mpi_type<T>(), all, 1, detail::mpi_type<T>(), comm_),
                      "MPI_Allgather");
  }

  /// Concatenates each rank's `count_r` elements of `send`, in rank order, into `receive` on every
  /// rank (`counts` holds every rank's count; `receive` their sum).
  template <class T>
  void allgatherv(const T* send, const std::vector<int>& counts, T* receive) const {
    std::vector<int> offsets(counts.size(), 0);
    for (std::size_t r = 1; r < counts.size(); ++r) offsets[r] = offsets[r - 1] + counts[r - 1];
    detail::check_mpi(MPI_Allgatherv(send, counts[static_cast<std::size_t>(rank_)], detail::mpi_type<T>(), receive,
                                     counts.data(), offsets.data(), detail::mpi_type<T>(), comm_),
                      "MPI_Allgatherv");
  }

  /// Concatenates each rank's elements, in rank order, into `receive` on `root` (`counts` as
  /// above; `receive` is only written, and only needs to exist, on root).
  template <class T>
  void gatherv(const T* send, const std::vector<long long>& counts, T* receive, int root = 0) const {
    // In rounds of at most 2^30 elements per rank, so that counts and offsets fit MPI's int.
    std::vector<long long> offsets(counts.size(), 0);
    for (std::size_t r = 1; r < counts.size(); ++r) offsets[r] = offsets[r - 1] + counts[r - 1];
    long long longest = 0;
    for (long long c : counts) longest = std::max(longest, c);
    for (long long done = 0; done < longest; done += detail::kMaxCount) {
      std::vector<int> piece(counts.size()), displ(counts.size());
      long long total = 0;
      for (std::size_t r = 0; r < counts.size(); ++r) {
        piece[r] = static_cast<int>(std::clamp(counts[r] - done, 0LL, detail::kMaxCount));
        total += piece[r];
      }
      if (total > INT_MAX)
        throw DistributedError("flowmatch::distributed::Communicator::gatherv: " + std::to_string(total) +
                               " elements in one round exceed MPI's int count");
      std::vector<T> staging(rank_ == root ? static_cast<std::size_t>(total) : 0);
      for (std::size_t r = 1; r < counts.size(); ++r) displ[r] = displ[r - 1] + piece[r - 1];
      const long long mine = counts[static_cast<std::size_t>(rank_)];
      detail::check_mpi(MPI_Gatherv(send + std::min(done, mine), piece[static_cast<std::size_t>(rank_)],
                                    detail::mpi_type<T>(), staging.data(), piece.data(), displ.data(),
                                    detail::mpi_type<T>(), root, comm_),
                        "MPI_Gatherv");
      if (rank_ == root)
        for (std::size_t r = 0; r < counts.size(); ++r)
          std::copy_n(staging.data() + displ[r], piece[r], receive + offsets[r] + done);
    }
  }

  void barrier() const { detail::check_mpi(MPI_Barrier(comm_), "MPI_Barrier"); }

 private:
  static MPI_Comm world() { return MPI_COMM_WORLD; }

  template <class T>
  void allreduce(T* data, long long count, MPI_Op op, const char* what) const {
    for (long long done = 0; done < count; done += detail::kMaxCount)
      detail::check_mpi(MPI_Allreduce(MPI_IN_PLACE, data + done, static_cast<int>(std::min(detail::kMaxCount, count - done)),
                                      detail::mpi_type<T>(), op, comm_),
                        what);
  }

  MPI_Comm comm_;
  int rank_ = 0;
  int size_ = 1;
};

/// The half-open range [begin, end) of `n` items that rank `rank` of `size` owns: contiguous,
/// in rank order, sizes differing by at most one (the first n % size ranks get one more).
inline std::pair<Index, Index> shard_range(Index n, int rank, int size) {
  const Index base = n / size, extra = n % size, r = rank;
  const Index begin = r * base + std::min<Index>(r, extra);
  return {begin, begin + base + (r < extra ? 1 : 0)};
}

/// Runs `fn` on this rank, a rank-collective step that may fail on some ranks only (a file only
/// root reads, say), and makes the outcome collective: if it threw on any rank, every rank throws
/// DistributedError (or, on the rank that failed, rethrows its own exception) naming the first
/// failing rank and its message. Costs one small broadcast-free allreduce plus, on failure, one
/// broadcast.
template <class F>
void collectively(const Communicator& comm, std::string_view what, F&& fn) {
  std::exception_ptr error;
  std::string message;
  try {
    fn();
  } catch (const std::exception& e) {
    error = std::current_exception();
    message = e.what();
  } catch (...) {
    error = std::current_exception();
    message = "an exception not derived from std::exception";
  }
  // The lowest failing rank, or size() if none failed.
  const int failed = -comm.max(error ? -comm.rank() : -comm.size());
  if (failed == comm.size()) return;
  comm.broadcast(message, failed);
  if (error) std::rethrow_exception(error);
  throw DistributedError("flowmatch::distributed: " + std::string(what) + " failed on rank " + std::to_string(failed) +
                         " of " + std::to_string(comm.size()) + ": " + message);
}

/// Runs `fn()` (the body of a program run under mpirun) and returns its exit code. If it throws on
/// this rank and the job has more than one rank, prints
///   `<program>: rank R of N failed: <message>`
/// on stderr and calls MPI_Abort, which ends every rank of the job at once (instead of leaving the
/// others waiting in their next collective forever); with one rank it rethrows, for the caller's
/// usual error handling. (A rank killed by a signal is seen by mpirun, which then ends the job and
/// names the rank.)
template <class F>
int abort_job_on_exception(const Communicator& comm, std::string_view program, F&& fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    if (comm.size() == 1) throw;
    std::fprintf(stderr, "%.*s: rank %d of %d failed: %s\n", static_cast<int>(program.size()), program.data(),
                 comm.rank(), comm.size(), e.what());
    std::fflush(stderr);
    MPI_Abort(comm.native(), 1);
  }
  return 1;
}

}  // namespace flowmatch::distributed
