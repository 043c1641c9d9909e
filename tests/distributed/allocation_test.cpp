// Heap allocations of the data-parallel training step: after the first step, flowmatch allocates
// nothing in a DataParallelTrainer step (the shards' loss and gradient, the update, the replica
// check), on any number of ranks, with one or several shards per rank. Open MPI itself mallocs
// inside MPI_Allreduce (the temporary buffers of its recursive-doubling and ring algorithms, about
// one per call; FLOWMATCH_ALLOC_TRACE=1 shows them), so the test counts every allocation of K steps
// (support/allocation_counter.hpp) and compares it with the allocations of the same K steps' MPI
// calls made bare, with the same buffers: the steps may not allocate more (give or take Open MPI's
// free lists growing once). One allocation of ours per step would exceed that by K.

#include "support/allocation_counter.hpp"

#include <flowmatch/distributed.hpp>

using namespace flowmatch;
namespace dist = flowmatch::distributed;

TEST_CASE("DataParallelTrainer::step allocates nothing after the first step", "[distributed][alloc]") {
  const dist::Communicator comm;
  set_num_threads(1);
  for (const int shards_per_rank : {1, 2}) {
    MLPVectorField<float, SiLU> model(2, {1024, 16}, 0);
    Adam<float> adam(1e-3);
    TrainerOptions options;
    options.max_grad_norm = 1.0;  // the global-norm clipping too
    dist::DataParallelOptions dp;
    dp.shards = shards_per_rank * comm.size();
    dp.check_every = 2;  // the replica check inside the measured steps
    dist::DataParallelTrainer trainer(
        comm, GaussianConditionalPath(GaussianMixture::symmetric_2D(11, 1.0, 10.0), LinearAlpha{}, SquareRootBeta{}),
        model, adam, 1, options, dp);
    trainer.step(1000);
    trainer.step(1000);
    constexpr int kSteps = 8;
    const alloc_count::Counts steps = alloc_count::count_allocations([&] {
      for (int k = 0; k < kSteps; ++k) trainer.step(1000);
    });
    // The same MPI calls, bare: per step the loss (one double) and the gradient allreduces, and
    // every dp.check_every steps the replica check's allgather.
    Vector<float> grad = model.gradients();
    std::vector<std::uint64_t> hashes(static_cast<std::size_t>(comm.size()));
    const alloc_count::Counts mpi = alloc_count::count_allocations([&] {
      for (int k = 0; k < kSteps; ++k) {
        (void)comm.sum(1.0);
        comm.allreduce_sum(grad.data(), static_cast<long long>(grad.size()));
        if (k % 2 == 1) comm.allgather(static_cast<std::uint64_t>(k), hashes.data());
      }
    });
    INFO("rank " << comm.rank() << " of " << comm.size() << ", " << shards_per_rank << " shard(s) per rank, "
                 << kSteps << " steps: operator new " << steps.operator_new << ", malloc " << steps.malloc
                 << "; the same MPI calls alone: operator new " << mpi.operator_new << ", malloc " << mpi.malloc);
    CHECK(steps.operator_new == 0);
    CHECK(steps.total() <= mpi.total() + 2);
    if (comm.size() == 1) CHECK(steps.total() == 0);  // no MPI traffic at all on one rank
  }
}
