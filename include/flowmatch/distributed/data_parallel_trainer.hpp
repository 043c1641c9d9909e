#pragma once
/// \file
/// Data-parallel conditional flow matching over MPI: one model trained by many processes, each
/// drawing a part of the global batch, with the gradients averaged by one MPI_Allreduce per step.

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/state.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/distributed/communicator.hpp"
#include "flowmatch/train/cfm_trainer.hpp"

namespace flowmatch::distributed {

/// Settings of a DataParallelTrainer.
struct DataParallelOptions {
  /// The number of shards the global batch is split into, each drawn from its own random stream
  /// (0: the number of ranks). Each rank takes a contiguous run of shards, so it must be at least
  /// the number of ranks. The run depends on the seed and the number of shards, not on how the
  /// shards are spread over ranks: a run of S shards on 1, 2, ..., S ranks draws the same batches
  /// and takes the same steps (see DataParallelTrainer).
  int shards = 0;
  /// Every this many steps, check that all ranks hold the same parameters (a 64-bit hash of their
  /// bits, gathered); a disagreement throws ReplicaDivergenceError on every rank. 0: never.
  long long check_every = 100;
};

/// The per-shard random streams of a data-parallel run (scope "data_parallel"): attribute
/// `shards` (S) and the tensor "rng" (U64, shape [S, 4]: each shard's Rng::state()). Shard 0's
/// stream is the trainer's own generator (CFMTrainer::rng(), saved under "trainer.rng" too), so a
/// one-shard run is a CFMTrainer run and the two kinds of checkpoint load into each other: a
/// CFMTrainer's file (no "data_parallel" scope) resumes as one shard; a data-parallel file loads
/// into a CFMTrainer, which goes on with shard 0's stream. Every rank keeps all S states, but only
/// those of its own shards advance; DataParallelTrainer::gather_streams brings every rank up to date
/// before a save.
///
/// Streams: shard s of a run seeded with `seed` starts at Rng(seed) advanced by s jump()s (2^128
/// draws each: the streams never overlap). Loading S streams on M ranks: if M <= S, the run goes
/// on exactly (each rank takes S / M shards, give or take one); if M > S, the shards become M and
/// shard s >= S starts from shard (s mod S)'s saved state advanced by floor(s / S) long_jump()s
/// (2^192 draws each), a fixed rule, so that such a resume is reproducible too.
class ShardStreams {
 public:
  static constexpr const char* state_scope = "data_parallel";

  /// `shards` streams whose first is `*first` (seeded already), the others jumps from it.
  ShardStreams(Rng& first, int shards, int ranks) : first_(&first), ranks_(ranks) {
    Rng r = first;
    for (int s = 1; s < shards; ++s) {
      r.jump();
      rest_.push_back(r);
    }
  }
  ShardStreams(const ShardStreams&) = delete;
  ShardStreams& operator=(const ShardStreams&) = delete;

  Index size() const { return 1 + static_cast<Index>(rest_.size()); }
  Rng& operator[](Index s) { return s == 0 ? *first_ : rest_[static_cast<std::size_t>(s - 1)]; }
  const Rng& operator[](Index s) const { return s == 0 ? *first_ : rest_[static_cast<std::size_t>(s - 1)]; }

  void save_state(StateWriter& w) const {
    w.integer("shards", static_cast<long long>(size()));
    std::vector<std::uint64_t> flat;
    flat.reserve(static_cast<std::size_t>(4 * size()));
    for (Index s = 0; s < size(); ++s) flat.insert(flat.end(), (*this)[s].state().begin(), (*this)[s].state().end());
    w.tensor("rng", flat.data(), {static_cast<long long>(size()), 4});
  }

  /// Loads after the trainer's part (shard 0 is its generator); a file without this scope (a
  /// CFMTrainer's) is one shard.
  void load_state(const StateReader& r) {
    std::vector<Rng> loaded;
    if (!r.has_attribute("shards")) {
      loaded.push_back(*first_);
    } else {
      const long long shards = r.integer("shards");
      if (shards < 1 || shards > (1LL << 24))
        r.fail("holds shards = " + std::to_string(shards) + " at '" + r.prefix() + "shards' (must lie in [1, 2^24])");
      std::vector<std::uint64_t> flat(static_cast<std::size_t>(4 * shards));
      r.read("rng", {shards, 4}, flat.data());
      loaded.resize(static_cast<std::size_t>(shards));
      for (long long s = 0; s < shards; ++s) {
        Rng::State st{};
        std::memcpy(st.data(), flat.data() + 4 * s, sizeof st);
        if (st[0] == 0 && st[1] == 0 && st[2] == 0 && st[3] == 0)
          r.fail("holds the all-zero generator state of shard " + std::to_string(s) + " at '" + r.prefix() + "rng'");
        loaded[static_cast<std::size_t>(s)].set_state(st);
      }
    }
    if (ranks_ > static_cast<int>(loaded.size())) {
      const std::size_t old = loaded.size();
      loaded.resize(static_cast<std::size_t>(ranks_));
      for (std::size_t s = old; s < loaded.size(); ++s) {
        loaded[s] = loaded[s % old];
        for (std::size_t k = 0; k < s / old; ++k) loaded[s].long_jump();
      }
    }
    *first_ = loaded.front();
    rest_.assign(loaded.begin() + 1, loaded.end());
  }

 private:
  Rng* first_;
  std::vector<Rng> rest_;
  int ranks_;
};

/// A 64-bit FNV-1a-style hash of a vector's bits (equal vectors, equal hashes; any flipped bit
/// changes it with overwhelming probability).
template <class S>
std::uint64_t hash_bits(const Vector<S>& v) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  const auto* bytes = reinterpret_cast<const unsigned char*>(v.data());
  const std::size_t n = static_cast<std::size_t>(v.size()) * sizeof(S);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t word;
    std::memcpy(&word, bytes + i, 8);
    h = (h ^ word) * 0x100000001b3ULL;
    h ^= h >> 29;
  }
  for (; i < n; ++i) h = (h ^ bytes[i]) * 0x100000001b3ULL;
  return h;
}

/// Conditional flow matching over MPI ranks (data parallelism): every rank holds the whole model
/// and optimizer; each step the global batch of B samples is split into S shards (sizes B / S,
/// the first B % S one larger), each drawn from its own random stream (ShardStreams), each rank
/// computes the loss and gradient of its shards, and the gradients, weighted by shard size / B,
/// are summed over the ranks by one MPI_Allreduce (the loss, a double, by one more of one
/// element, before it). Every rank then holds the gradient of the global batch's mean loss and
/// takes the same optimizer step: the replicas stay identical (checked every
/// options.check_every steps).
///
/// What is the same as in one process: everything the CFMTrainer does, on the global batch: the
/// loss reported is the global mean; a non-finite loss on any rank makes the global loss
/// non-finite, so every rank throws NumericalError or skips the batch together (no rank steps
/// alone); the gradient-norm check and clipping use the global gradient's norm; condition dropout
/// is drawn from each shard's stream. With S = 1 (one rank, default shards) the run is the
/// CFMTrainer's with the same seed, bit for bit.
///
/// Reproducibility: a run is defined by the seed and S. The same S on a different number of ranks
/// draws the same batches; with two ranks (one addition, which commutes) the steps are bit-identical
/// to one rank processing both shards; with more, the order of MPI's sum may differ from the
/// sequential one, so results agree to float rounding.
///
/// The constructor broadcasts rank 0's parameters to every rank (the replicas start equal whatever
/// each rank initialised). Collective: construction, step(), train(), gather_streams() and the
/// checkpoint functions (distributed/checkpoint.hpp) must be called by every rank, in the same
/// order. After the first step at a batch size, a step allocates nothing in flowmatch.
template <ConditionalPath Path, class Model, Optimizer Opt>
  requires TrainableVectorField<Model> || TrainableConditionalField<Model>
class DataParallelTrainer {
 public:
  using Inner = CFMTrainer<Path, Model, Opt>;
  using Scalar = typename Inner::Scalar;

  DataParallelTrainer(const DataParallelTrainer&) = delete;
  DataParallelTrainer& operator=(const DataParallelTrainer&) = delete;

  DataParallelTrainer(Communicator comm, Path path, Model& model, Opt& optimizer, std::uint64_t seed = 0,
                      TrainerOptions options = {}, DataParallelOptions dp = {})
      : comm_(comm), inner_(std::move(path), model, optimizer, seed, options), dp_(dp),
        streams_(inner_.rng(), dp.shards > 0 ? dp.shards : comm.size(), comm.size()) {
    constexpr const char* where = "flowmatch::distributed::DataParallelTrainer::DataParallelTrainer";
    if (dp.shards < 0) flowmatch::detail::throw_invalid(where, "options.shards", dp.shards, "must be >= 0 (0: one per rank)");
    if (dp.shards > 0 && dp.shards < comm_.size())
      flowmatch::detail::throw_invalid(where, "options.shards", dp.shards,
                                       "must be at least the number of ranks (" + std::to_string(comm_.size()) + ")");
    if (dp.check_every < 0) flowmatch::detail::throw_invalid(where, "options.check_every", dp.check_every, "must be >= 0");
    hashes_.resize(static_cast<std::size_t>(comm_.size()));
    Vector<Scalar>& p = model.parameters();
    comm_.broadcast(p.data(), static_cast<long long>(p.size()));
  }

  /// One step on a global batch of `batch_size` samples (at least the number of shards); returns
  /// the global mean loss (NaN if the batch was skipped). Collective.
  double step(Index batch_size) {
    constexpr const char* where = "flowmatch::distributed::DataParallelTrainer::step";
    const Index shards = num_shards();
    if (batch_size < shards)
      flowmatch::detail::throw_invalid(where, "batch_size", batch_size,
                                       "must be at least the number of shards (" + std::to_string(shards) + ")");
    const auto [first, last] = shard_range(shards, comm_.rank(), comm_.size());
    Vector<Scalar>& grad = inner_.model().gradients();
    double local_loss = 0.0;
    for (Index s = first; s < last; ++s) {
      const Index n = batch_size / shards + (s < batch_size % shards ? 1 : 0);
      const double loss = inner_.loss_and_gradient(n, streams_[s]);
      const double w = static_cast<double>(n) / static_cast<double>(batch_size);
      // Each shard's weighted loss and gradient are rounded on their own before they are summed
      // (volatile, and two passes over the gradient: no fused multiply-add), as they are when the
      // shards sit on different ranks and MPI sums them: so one rank with two shards is bit-identical
      // to two ranks with one each.
      const volatile double part = w * loss;
      local_loss += part;
      grad *= static_cast<Scalar>(w);
      if (last - first > 1) {
        if (s == first) {
          if (accumulated_.size() != grad.size()) accumulated_.resize(grad.size());
          accumulated_ = grad;
        } else {
          accumulated_ += grad;
        }
      }
    }
    if (last - first > 1) grad = accumulated_;
    const double loss = comm_.sum(local_loss);
    if (std::isfinite(loss)) {
      const auto t0 = std::chrono::steady_clock::now();
      comm_.allreduce_sum(grad.data(), static_cast<long long>(grad.size()));
      allreduce_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    // Every rank has the same loss and gradient: apply_update throws, skips or steps on all alike.
    const double result = inner_.apply_update(loss);
    if (dp_.check_every > 0 && inner_.steps_done() % dp_.check_every == 0) check_replicas();
    return result;
  }

  /// `num_steps` steps at the global batch `batch_size`, with callbacks, as CFMTrainer::train.
  /// Collective: every rank gets the same losses, and the callbacks run on every rank (print or
  /// write files on comm().is_root() only).
  template <class... Callbacks>
  std::vector<double> train(long long num_steps, Index batch_size, Callbacks&&... callbacks) {
    return flowmatch::detail::train_loop(*this, "flowmatch::distributed::DataParallelTrainer::train", num_steps,
                                         batch_size, callbacks...);
  }

  /// Throws ReplicaDivergenceError on every rank, naming the ranks and the step, if the ranks'
  /// parameters are not bit-identical. Collective.
  void check_replicas() {
    const std::uint64_t mine = hash_bits(inner_.model().parameters());
    comm_.allgather(mine, hashes_.data());
    std::string differ;
    for (std::size_t r = 1; r < hashes_.size(); ++r)
      if (hashes_[r] != hashes_[0]) differ += (differ.empty() ? "" : ", ") + std::to_string(r);
    if (!differ.empty())
      throw ReplicaDivergenceError("flowmatch::distributed::DataParallelTrainer: at step " +
                                   std::to_string(inner_.steps_done()) + " the parameters of rank(s) " + differ +
                                   " differ from rank 0's (the replicas diverged: a rank changed its model alone, "
                                   "or its memory was corrupted); stop and resume from the last checkpoint");
  }

  /// Brings every rank's copy of every shard's generator state up to date (each rank advanced
  /// only its own shards'). Collective; the checkpoint functions call it before saving.
  void gather_streams() {
    const Index shards = streams_.size();
    std::vector<int> counts(static_cast<std::size_t>(comm_.size()));
    for (int r = 0; r < comm_.size(); ++r) {
      const auto [a, b] = shard_range(shards, r, comm_.size());
      counts[static_cast<std::size_t>(r)] = static_cast<int>(4 * (b - a));
    }
    const auto [first, last] = shard_range(shards, comm_.rank(), comm_.size());
    std::vector<std::uint64_t> mine, all(static_cast<std::size_t>(4 * shards));
    for (Index s = first; s < last; ++s) {
      const Rng::State& st = streams_[s].state();
      mine.insert(mine.end(), st.begin(), st.end());
    }
    comm_.allgatherv(mine.data(), counts, all.data());
    for (Index s = 0; s < shards; ++s) {
      Rng::State st{};
      std::memcpy(st.data(), all.data() + 4 * s, sizeof st);
      streams_[s].set_state(st);
    }
  }

  /// The parts a checkpoint saves: the model, the optimizer, the trainer's counters and the shard
  /// streams (call gather_streams() first on every rank; distributed::save_checkpoint does).
  auto state_parts() {
    return std::tuple_cat(inner_.state_parts(), std::make_tuple(state_part("data_parallel", streams_)));
  }

  /// Whether this rank writes files (rank 0): PeriodicCheckpoint prunes old files on it only.
  bool writes_files() const { return comm_.is_root(); }

  const Communicator& comm() const { return comm_; }
  Inner& inner() { return inner_; }
  const Inner& inner() const { return inner_; }
  Model& model() { return inner_.model(); }
  Opt& optimizer() { return inner_.optimizer(); }
  /// The number of shards the global batch is split into.
  Index num_shards() const { return streams_.size(); }
  /// The shards' random streams (every rank's copy; see gather_streams()).
  const ShardStreams& streams() const { return streams_; }
  long long steps_done() const { return inner_.steps_done(); }
  long long skipped_steps() const { return inner_.skipped_steps(); }
  long long clipped_steps() const { return inner_.clipped_steps(); }
  const TrainerOptions& options() const { return inner_.options(); }
  /// Wall time spent in the gradient's MPI_Allreduce over this trainer's lifetime (this rank).
  double allreduce_seconds() const { return allreduce_seconds_; }

 private:
  Communicator comm_;
  Inner inner_;
  DataParallelOptions dp_;
  ShardStreams streams_;
  Vector<Scalar> accumulated_;
  std::vector<std::uint64_t> hashes_;
  double allreduce_seconds_ = 0.0;
};

}  // namespace flowmatch::distributed
