#pragma once
// The examples under mpirun: built with flowmatch::mpi (CMake defines FLOWMATCH_EXAMPLES_MPI=1
// where MPI is found), an example trains with flowmatch::distributed::DataParallelTrainer over all
// ranks (`--batch` is the global batch), only rank 0 prints and writes files, a failure on any
// rank ends the job naming the rank, and Ctrl-C stops every rank at the same step. Run without
// mpirun (or built without MPI) it is one rank: DataParallelTrainer with one rank and one shard is
// CFMTrainer, bit for bit, so the results are those of the plain build.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <utility>

#include <flowmatch.hpp>
#include <flowmatch/io/checkpoint.hpp>

#if FLOWMATCH_EXAMPLES_MPI
#include <flowmatch/distributed.hpp>
#endif

namespace flowmatch::examples {

class Job {
 public:
  /// Starts MPI (when built with it); on ranks other than 0, standard output goes to /dev/null
  /// (errors still reach standard error).
  Job(int& argc, char**& argv)
#if FLOWMATCH_EXAMPLES_MPI
      : env_(argc, argv), comm_() {
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, comm_.rank(), MPI_INFO_NULL, &local);
    MPI_Comm_size(local, &local_size_);
    MPI_Comm_free(&local);
    if (!comm_.is_root() && std::freopen("/dev/null", "w", stdout) == nullptr) std::perror("freopen");
  }
#else
  {
    (void)argc;
    (void)argv;
  }
#endif

#if FLOWMATCH_EXAMPLES_MPI
  int rank() const { return comm_.rank(); }
  int size() const { return comm_.size(); }
#else
  int rank() const { return 0; }
  int size() const { return 1; }
#endif
  bool is_root() const { return rank() == 0; }

  /// The default --threads: every core this rank's share of the machine has (the cores divided
  /// among the ranks on this node).
  long long default_threads() const {
    return std::max(1LL, static_cast<long long>(std::max(1u, std::thread::hardware_concurrency())) / local_size_);
  }

  /// Whether `flag` is true on any rank (collective; a plain read with one rank).
  bool any(bool flag) const {
#if FLOWMATCH_EXAMPLES_MPI
    if (size() > 1) return comm_.max(flag ? 1 : 0) != 0;
#endif
    return flag;
  }

  /// Rank 0's `value` on every rank (collective; the value itself with one rank): for decisions
  /// every rank must take alike, such as a time budget read off rank 0's clock.
  template <class T>
  T from_root(T value) const {
#if FLOWMATCH_EXAMPLES_MPI
    if (size() > 1) comm_.broadcast(&value, 1);
#endif
    return value;
  }

  /// fn(columns) for the columns of rank 0's `x` spread over the ranks, gathered on rank 0
  /// (distributed::map_columns: `x` matters on rank 0 only; the other ranks get an empty matrix);
  /// fn(x) with one rank. fn must treat columns independently and keep their number and `rows`.
  template <class S, class F>
  Matrix<S> map_columns(const Matrix<S>& x, Index rows, F&& fn) const {
#if FLOWMATCH_EXAMPLES_MPI
    if (size() > 1) return distributed::map_columns<S>(comm_, x, rows, std::forward<F>(fn));
#endif
    (void)rows;
    return std::forward<F>(fn)(x);
  }

  /// The trainer: a DataParallelTrainer over every rank (with MPI) or a CFMTrainer.
  template <class Path, class Model, class Opt>
  auto make_trainer(const Path& path, Model& model, Opt& optimizer, std::uint64_t seed, TrainerOptions options = {}) const {
#if FLOWMATCH_EXAMPLES_MPI
    return distributed::DataParallelTrainer(comm_, path, model, optimizer, seed, options);
#else
    return CFMTrainer(path, model, optimizer, seed, options);
#endif
  }

  /// Loads a checkpoint into `parts` (the trainer first): with MPI, rank 0 reads and broadcasts.
  template <class Trainer, class... Parts>
  void load(const std::filesystem::path& file, Trainer& trainer, Parts&&... parts) const {
#if FLOWMATCH_EXAMPLES_MPI
    distributed::load_checkpoint(file, trainer, std::forward<Parts>(parts)...);
#else
    load_checkpoint(file, trainer, std::forward<Parts>(parts)...);
#endif
  }
  /// Saves a checkpoint of `trainer` and `parts`: with MPI, collectively, written by rank 0.
  template <class Trainer, class... Parts>
  void save(const std::filesystem::path& file, Trainer& trainer, const Parts&... parts) const {
#if FLOWMATCH_EXAMPLES_MPI
    distributed::save_checkpoint(file, trainer, parts...);
#else
    save_checkpoint(file, trainer, parts...);
#endif
  }

  /// Runs the example's body: with several ranks, an exception on one rank prints
  /// "<name>: rank R of N failed: ..." and ends the whole job (MPI_Abort); otherwise it propagates.
  template <class F>
  int guard(const char* name, F&& body) const {
#if FLOWMATCH_EXAMPLES_MPI
    return distributed::abort_job_on_exception(comm_, name, std::forward<F>(body));
#else
    (void)name;
    return std::forward<F>(body)();
#endif
  }

 private:
#if FLOWMATCH_EXAMPLES_MPI
  distributed::Environment env_;
  distributed::Communicator comm_;
#endif
  int local_size_ = 1;
};

}  // namespace flowmatch::examples
