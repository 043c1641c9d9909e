// Data-parallel training over MPI ranks, timed: flowmatch::distributed::DataParallelTrainer on
// MPI_COMM_WORLD, for the seed problem (MLP 3-1024-16-2, SiLU, 11-mode GMM, Adam 1e-3, global batch
// 1000) or the Fashion-MNIST model of examples/fashion (class-conditional MLP over 784 pixels,
// hidden 1024-1024, 8 Fourier frequencies, 10 classes, label dropout 0.1, Adam 1e-3, batch 128) on
// synthetic 28 x 28 images of the right shape (the real data set is not needed for timing).
//
//   mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2
//       build/benchmarks/flowmatch_mpi_scaling --model seed --threads 1 --steps 300 --warmup 30
//   (one command line)
//   mpirun ... -np 2 build/benchmarks/flowmatch_mpi_scaling --model fashion --allreduce-only
//
// Rank 0 prints one line:
//   MPI_SCALING model=seed ranks=2 threads=1 batch=1000 params=20530 ms_step_median=...
//     ms_step_p25=... ms_step_p75=... allreduce_ms_median=... loss_first=... loss_last=...
// ms_step: steady_clock around each timed trainer.step(batch) on rank 0 (every step ends in
// collectives, so rank 0's step time is the job's). allreduce_ms: the per-step difference of the
// trainer's allreduce_seconds() on rank 0 (the gradient's MPI_Allreduce only; the 1-element loss
// allreduce before it, which is where the ranks wait for each other, is not in it).
// loss_first: the loss of the first step (warm-up included); loss_last: the mean loss of the
// last min(10, steps) timed steps.
//
// --allreduce-only times MPI_Allreduce(MPI_IN_PLACE, sum, float) of the model's gradient size
// alone (a barrier before each call; median of --reps calls after --warmup) and of one double
// (the loss allreduce), and prints
//   MPI_ALLREDUCE model=seed ranks=2 count=20530 bytes=82120 allreduce_ms_median=... allreduce1_us_median=...

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <numbers>
#include <stdexcept>
#include <string>
#include <vector>

#include <flowmatch.hpp>
#include <flowmatch/distributed.hpp>

namespace fm = flowmatch;
namespace dist = flowmatch::distributed;

namespace {

struct Options {
  std::string model = "seed";
  int threads = 1;
  long long steps = -1;   // -1: the model's default
  long long warmup = -1;  // -1: the model's default
  long long batch = -1;   // -1: the model's default (1000 seed, 128 fashion)
  int shards = 0;         // 0: one per rank
  long long check_every = 0;
  bool allreduce_only = false;
  long long reps = 200;
  std::uint64_t seed = 0;
};

[[noreturn]] void usage(const char* prog, const std::string& why) {
  if (!why.empty()) std::fprintf(stderr, "%s: %s\n", prog, why.c_str());
  std::fprintf(stderr,
               "usage: %s [--model seed|fashion] [--threads K] [--steps N] [--warmup W] [--batch B]\n"
               "          [--shards S] [--check-every C] [--seed X] [--allreduce-only [--reps R]]\n"
               "defaults: seed: --steps 300 --warmup 30 --batch 1000; fashion: --steps 30 --warmup 5 --batch 128;\n"
               "          --threads 1, --shards 0 (one per rank), --check-every 0 (no replica check), --reps 200\n",
               prog);
  std::exit(2);
}

long long parse_int(const char* prog, const std::string& flag, const char* text, long long min) {
  char* end = nullptr;
  const long long v = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || v < min)
    usage(prog, "bad value '" + std::string(text) + "' for " + flag + " (an integer >= " + std::to_string(min) + ")");
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage(argv[0], a + " needs a value");
      return argv[++i];
    };
    if (a == "--model") {
      o.model = value();
      if (o.model != "seed" && o.model != "fashion") usage(argv[0], "--model must be seed or fashion");
    } else if (a == "--threads") o.threads = static_cast<int>(parse_int(argv[0], a, value(), 1));
    else if (a == "--steps") o.steps = parse_int(argv[0], a, value(), 1);
    else if (a == "--warmup") o.warmup = parse_int(argv[0], a, value(), 0);
    else if (a == "--batch") o.batch = parse_int(argv[0], a, value(), 1);
    else if (a == "--shards") o.shards = static_cast<int>(parse_int(argv[0], a, value(), 0));
    else if (a == "--check-every") o.check_every = parse_int(argv[0], a, value(), 0);
    else if (a == "--reps") o.reps = parse_int(argv[0], a, value(), 1);
    else if (a == "--seed") o.seed = static_cast<std::uint64_t>(parse_int(argv[0], a, value(), 0));
    else if (a == "--allreduce-only") o.allreduce_only = true;
    else if (a == "--help" || a == "-h") usage(argv[0], "");
    else usage(argv[0], "unknown argument '" + a + "'");
  }
  const bool seed = o.model == "seed";
  if (o.steps < 0) o.steps = seed ? 300 : 30;
  if (o.warmup < 0) o.warmup = seed ? 30 : 5;
  if (o.batch < 0) o.batch = seed ? 1000 : 128;
  return o;
}

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const auto hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

// Synthetic stand-in for Fashion-MNIST (as examples/fashion/fashion_model.hpp's synthetic_images,
// which needs zlib's flowmatch::idx to include): 28 x 28 images in [-1, 1], class c a bright bar at
// c * 18 degrees through the centre, jittered, with pixel noise.
fm::Empirical synthetic_fashion(fm::Index per_class, fm::Index classes, std::uint64_t seed) {
  fm::Matrix<double> images(784, per_class * classes);
  fm::Vector<fm::Index> labels(per_class * classes);
  fm::Rng rng(seed);
  for (fm::Index j = 0; j < images.cols(); ++j) {
    const fm::Index c = j % classes;
    labels(j) = c;
    const double angle = std::numbers::pi * static_cast<double>(c) / static_cast<double>(classes);
    const double dx = rng.normal(), dy = rng.normal();
    for (int r = 0; r < 28; ++r)
      for (int q = 0; q < 28; ++q) {
        const double x = q - 13.5 - dx, y = r - 13.5 - dy;
        const double d = std::abs(-std::sin(angle) * x + std::cos(angle) * y);
        const double v = (d < 3.0 && x * x + y * y < 121.0 ? 0.9 : -0.9) + 0.1 * rng.normal();
        images(r * 28 + q, j) = std::clamp(v, -1.0, 1.0);
      }
  }
  return fm::Empirical::with_labels(std::move(images), std::move(labels), classes);
}

// Times the gradient-sized float allreduce and the 1-element double allreduce alone.
int allreduce_only(const dist::Communicator& comm, const Options& o, long long count) {
  std::vector<float> buffer(static_cast<std::size_t>(count), 1.0f);
  std::vector<double> big, small;
  double one = 1.0;
  for (long long k = 0; k < o.warmup + o.reps; ++k) {
    comm.barrier();
    auto t0 = std::chrono::steady_clock::now();
    comm.allreduce_sum(buffer.data(), count);
    auto t1 = std::chrono::steady_clock::now();
    comm.barrier();
    auto t2 = std::chrono::steady_clock::now();
    one = comm.sum(one) / comm.size();
    auto t3 = std::chrono::steady_clock::now();
    if (k >= o.warmup) {
      big.push_back(std::chrono::duration<double>(t1 - t0).count());
      small.push_back(std::chrono::duration<double>(t3 - t2).count());
    }
    // Keep the values bounded (the sum of ones grows as size^k).
    if (k % 8 == 7) std::fill(buffer.begin(), buffer.end(), 1.0f);
  }
  if (comm.is_root())
    std::printf("MPI_ALLREDUCE model=%s ranks=%d count=%lld bytes=%lld reps=%lld allreduce_ms_median=%.4f "
                "allreduce_ms_p25=%.4f allreduce_ms_p75=%.4f allreduce1_us_median=%.2f\n",
                o.model.c_str(), comm.size(), count, count * 4, o.reps, 1e3 * quantile(big, 0.5),
                1e3 * quantile(big, 0.25), 1e3 * quantile(big, 0.75), 1e6 * quantile(small, 0.5));
  return 0;
}

template <class Path, class Model>
int train(const dist::Communicator& comm, const Options& o, Path path, Model& model, fm::TrainerOptions topt) {
  if (o.allreduce_only) return allreduce_only(comm, o, static_cast<long long>(model.num_parameters()));
  fm::Adam<float> adam(1e-3);
  dist::DataParallelOptions dp;
  dp.shards = o.shards;
  dp.check_every = o.check_every;
  dist::DataParallelTrainer trainer(comm, std::move(path), model, adam, o.seed, topt, dp);
  const auto batch = static_cast<fm::Index>(o.batch);
  std::vector<double> step_s, allreduce_s, losses;
  double loss_first = 0.0;
  comm.barrier();
  for (long long k = 0; k < o.warmup + o.steps; ++k) {
    const double a0 = trainer.allreduce_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    const double loss = trainer.step(batch);
    const auto t1 = std::chrono::steady_clock::now();
    if (k == 0) loss_first = loss;
    if (k >= o.warmup) {
      step_s.push_back(std::chrono::duration<double>(t1 - t0).count());
      allreduce_s.push_back(trainer.allreduce_seconds() - a0);
      losses.push_back(loss);
    }
  }
  const std::size_t tail = std::min<std::size_t>(10, losses.size());
  double loss_last = 0.0;
  for (std::size_t i = losses.size() - tail; i < losses.size(); ++i) loss_last += losses[i] / static_cast<double>(tail);
  if (comm.is_root())
    std::printf("MPI_SCALING model=%s ranks=%d threads=%d batch=%lld shards=%lld params=%lld steps=%lld warmup=%lld "
                "ms_step_median=%.4f ms_step_p25=%.4f ms_step_p75=%.4f allreduce_ms_median=%.4f loss_first=%.5f "
                "loss_last=%.5f\n",
                o.model.c_str(), comm.size(), fm::num_threads(), o.batch, static_cast<long long>(trainer.num_shards()),
                static_cast<long long>(model.num_parameters()), o.steps, o.warmup, 1e3 * quantile(step_s, 0.5),
                1e3 * quantile(step_s, 0.25), 1e3 * quantile(step_s, 0.75), 1e3 * quantile(allreduce_s, 0.5),
                loss_first, loss_last);
  return 0;
}

int run(const dist::Communicator& comm, const Options& o) {
  fm::set_num_threads(o.threads);
  if (o.model == "seed") {
    fm::GaussianConditionalPath path(fm::GaussianMixture::symmetric_2D(11, 1.0, 10.0), fm::LinearAlpha{},
                                     fm::SquareRootBeta{});
    fm::MLPVectorField<float, fm::SiLU> model(2, {1024, 16}, o.seed);
    return train(comm, o, std::move(path), model, {});
  }
  // examples/fashion's model: ModelConfig{hidden {1024, 1024}, 8 frequencies}, TrainConfig{batch
  // 128, lr 1e-3, label dropout 0.1}; its warm-up/cosine schedule and EMA are left out (the EMA is
  // one more pass over the parameters per step, outside the trainer).
  fm::GaussianConditionalPath path(synthetic_fashion(100, 10, 7), fm::LinearAlpha{}, fm::LinearBeta{});
  fm::ClassConditionalVectorField<float, fm::SiLU> model(784, 10, {1024, 1024}, o.seed, 8);
  fm::TrainerOptions topt;
  topt.condition_dropout = 0.1;
  return train(comm, o, std::move(path), model, topt);
}

}  // namespace

int main(int argc, char** argv) {
  dist::Environment env(argc, argv);
  const Options o = parse(argc, argv);
  const dist::Communicator comm;
  return dist::abort_job_on_exception(comm, "flowmatch_mpi_scaling", [&] { return run(comm, o); });
}
