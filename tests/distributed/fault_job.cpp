// A data-parallel training job with an injected failure, for tests/distributed/fault_test.cmake:
// under mpirun, rank R throws (or is killed by SIGKILL) at step K; the job must end within seconds
// naming the rank and the reason, and its last periodic checkpoint must resume (on any number of
// ranks).
//   fault_job DIR STEPS [throw|kill|none] [RANK] [STEP]
// Resumes from DIR's newest checkpoint when there is one; prints "RESUMED from step S" and, at the
// end, "DONE steps=N loss=L" (rank 0).

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

#include <flowmatch.hpp>
#include <flowmatch/distributed.hpp>
#include <flowmatch/train/periodic_checkpoint.hpp>

namespace fm = flowmatch;
namespace dist = flowmatch::distributed;

int main(int argc, char** argv) {
  dist::Environment mpi(argc, argv);
  const dist::Communicator comm;
  if (argc < 3) {
    std::fprintf(stderr, "usage: fault_job DIR STEPS [throw|kill|none] [RANK] [STEP]\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  const long long steps = std::atoll(argv[2]);
  const std::string fault = argc > 3 ? argv[3] : "none";
  const int fault_rank = argc > 4 ? std::atoi(argv[4]) : 1;
  const long long fault_step = argc > 5 ? std::atoll(argv[5]) : 1;
  return dist::abort_job_on_exception(comm, "fault_job", [&] {
    fm::set_num_threads(1);
    const fm::GaussianConditionalPath path(fm::GaussianMixture::symmetric_2D(11, 1.0, 10.0), fm::LinearAlpha{},
                                           fm::SquareRootBeta{});
    fm::MLPVectorField<float> model(2, {64, 16}, 1);
    fm::Adam<float> adam(1e-3);
    dist::DataParallelTrainer trainer(comm, path, model, adam, 2);
    using Checkpoints = fm::PeriodicCheckpoint<decltype(trainer)>;
    if (const auto latest = Checkpoints::latest(dir, "job")) {
      dist::load_checkpoint(*latest, trainer);
      if (comm.is_root()) std::printf("RESUMED from step %lld on %d rank(s)\n", trainer.steps_done(), comm.size());
    }
    Checkpoints checkpoints(trainer, dir, 10, 2, "job");
    const std::vector<double> losses =
        trainer.train(steps - trainer.steps_done(), 200, checkpoints, [&](const fm::TrainProgress& p) {
          if (comm.rank() == fault_rank && p.steps_done == fault_step) {
            if (fault == "kill") std::raise(SIGKILL);
            if (fault == "throw")
              throw std::runtime_error("injected failure at step " + std::to_string(p.steps_done));
          }
        });
    if (comm.is_root())
      std::printf("DONE steps=%lld loss=%.5f\n", trainer.steps_done(), losses.empty() ? 0.0 : losses.back());
    return 0;
  });
}
