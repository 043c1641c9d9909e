#pragma once
/// \file
/// Checkpoints of a data-parallel run: rank 0 writes (atomically, as save_checkpoint), rank 0 reads
/// and broadcasts the bytes, every rank loads them; a failure on any rank is every rank's failure.

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "flowmatch/distributed/communicator.hpp"
#include "flowmatch/distributed/data_parallel_trainer.hpp"
#include "flowmatch/io/atomic_file.hpp"
#include "flowmatch/io/checkpoint.hpp"

namespace flowmatch::distributed {

/// The bytes of `file`, read on rank 0 only and broadcast to every rank (the other ranks need not
/// see the file system rank 0 sees). If rank 0 cannot read it, rank 0 rethrows its
/// CheckpointIOError and every other rank throws DistributedError with the same message. Collective.
inline std::vector<unsigned char> read_file_on_root(const Communicator& comm, const std::filesystem::path& file) {
  std::vector<unsigned char> bytes;
  collectively(comm, "reading '" + file.string() + "'", [&] {
    if (comm.is_root()) bytes = flowmatch::detail::read_file_bytes(file, "flowmatch::distributed::read_file_on_root");
  });
  comm.broadcast(bytes);
  return bytes;
}

/// The state `file` holds, read on rank 0 and decoded (fully checked) on every rank. Collective.
inline StateDict read_checkpoint(const Communicator& comm, const std::filesystem::path& file) {
  const std::vector<unsigned char> bytes = read_file_on_root(comm, file);
  StateDict dict;
  collectively(comm, "decoding '" + file.string() + "'", [&] { dict = decode_checkpoint(bytes, file.string()); });
  return dict;
}

/// Loads `parts` on every rank from `file`, which rank 0 reads (see read_file_on_root). A part
/// that refuses the file on any rank makes every rank throw (each restores its parts). Collective.
template <class... Parts>
void load_checkpoint(const Communicator& comm, const std::filesystem::path& file, Parts&&... parts) {
  const std::vector<unsigned char> bytes = read_file_on_root(comm, file);
  collectively(comm, "loading '" + file.string() + "'",
               [&] { flowmatch::load_checkpoint_bytes(bytes, file.string(), parts...); });
}

/// Saves `parts` (replicated on every rank: a model, an EMA) to `file` from rank 0, atomically.
/// A failed write on rank 0 throws on every rank. Collective.
template <class... Parts>
void save_checkpoint(const Communicator& comm, const std::filesystem::path& file, const Parts&... parts) {
  collectively(comm, "writing '" + file.string() + "'", [&] {
    if (comm.is_root()) flowmatch::save_checkpoint(file, parts...);
  });
}

/// Saves a data-parallel run: the trainer (model, optimizer, counters and every shard's stream,
/// gathered first) and any `extra` parts (an EMA), from rank 0, atomically. Collective. Found by
/// argument-dependent lookup, so PeriodicCheckpoint over a DataParallelTrainer saves through it.
template <class P, class M, class O, class... Extra>
void save_checkpoint(const std::filesystem::path& file, DataParallelTrainer<P, M, O>& trainer, const Extra&... extra) {
  trainer.gather_streams();
  save_checkpoint(trainer.comm(), file, trainer, extra...);
}

/// Resumes a data-parallel run from `file` (written by any number of ranks: see ShardStreams for
/// how the streams are spread over this run's ranks), then checks that the replicas agree.
/// Collective.
template <class P, class M, class O, class... Extra>
void load_checkpoint(const std::filesystem::path& file, DataParallelTrainer<P, M, O>& trainer, Extra&&... extra) {
  load_checkpoint(trainer.comm(), file, trainer, std::forward<Extra>(extra)...);
  trainer.check_replicas();
}

}  // namespace flowmatch::distributed
