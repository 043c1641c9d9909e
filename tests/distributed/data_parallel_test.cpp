// flowmatch::distributed under mpirun (CTest runs this file's binary on 1, 2 and 3 ranks): the
// data-parallel trainer against the same run on one rank (MPI_COMM_SELF: every rank computes the
// one-process reference itself), checkpoints across rank counts, the NaN policy when only one rank
// sees a NaN, clipping, conditional training, other optimizers, the replica check, sharded sampling
// and likelihoods, and collective failures.
//
// Every rank runs every test case in the same order, and the cases use CHECK, not REQUIRE, around
// collectives: a failure on one rank must not skip a collective the others are waiting in.

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <flowmatch/distributed.hpp>
#include <flowmatch/distribution/gaussian.hpp>
#include <flowmatch/distribution/gaussian_mixture.hpp>
#include <flowmatch/nn/conditional_field.hpp>
#include <flowmatch/nn/mlp_jacobian.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>
#include <flowmatch/ode/explicit_steppers.hpp>
#include <flowmatch/ode/learned_vector_field_ode.hpp>
#include <flowmatch/ode/log_likelihood.hpp>
#include <flowmatch/ode/simulator.hpp>
#include <flowmatch/optim/adam.hpp>
#include <flowmatch/optim/adamw.hpp>
#include <flowmatch/optim/ema.hpp>
#include <flowmatch/optim/sgd.hpp>
#include <flowmatch/path/gaussian_conditional_path.hpp>
#include <flowmatch/schedule/linear_alpha.hpp>
#include <flowmatch/schedule/linear_beta.hpp>
#include <flowmatch/schedule/square_root_beta.hpp>
#include <flowmatch/train/periodic_checkpoint.hpp>

using namespace flowmatch;
namespace dist = flowmatch::distributed;

namespace {

using SeedPath = GaussianConditionalPath<LinearAlpha, SquareRootBeta, GaussianMixture>;
SeedPath seed_path() { return SeedPath(GaussianMixture::symmetric_2D(11, 1.0, 10.0)); }

dist::Communicator world() { return dist::Communicator(); }
dist::Communicator self() { return dist::Communicator(MPI_COMM_SELF); }

struct Run {
  std::vector<double> losses;
  Vector<float> params;
};

// `steps` steps of the seed workload (small MLP) at global batch `batch` over `comm` with `shards`.
template <class Opt = Adam<float>>
Run train_run(const dist::Communicator& comm, int shards, long long steps, Index batch, TrainerOptions options = {},
              Opt opt = Opt(1e-2)) {
  MLPVectorField<float> model(2, {32, 32}, 3);
  dist::DataParallelOptions dp;
  dp.shards = shards;
  dp.check_every = 5;
  dist::DataParallelTrainer trainer(comm, seed_path(), model, opt, 11, options, dp);
  Run r;
  r.losses = trainer.train(steps, batch);
  r.params = model.parameters();
  return r;
}

double max_abs_diff(const Vector<float>& a, const Vector<float>& b) {
  return (a.cast<double>() - b.cast<double>()).cwiseAbs().maxCoeff();
}

// A scratch folder shared by all ranks (named by rank 0's process id, broadcast).
std::filesystem::path shared_scratch(const std::string& name) {
  const dist::Communicator comm = world();
  long long id = static_cast<long long>(::getpid());
  comm.broadcast(&id, 1);
  const auto dir = std::filesystem::temp_directory_path() / ("flowmatch_mpi_" + std::to_string(id) + "_" + name);
  if (comm.is_root()) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  comm.barrier();
  return dir;
}

// A data distribution that gives NaN samples on one rank for a range of its calls.
class PoisonOnRank : public DistributionBase<PoisonOnRank> {
 public:
  PoisonOnRank(int rank, int first, int last) : rank_(rank), first_(first), last_(last), calls_(std::make_shared<int>(0)) {}
  Index dim() const { return 2; }

 private:
  friend DistributionBase<PoisonOnRank>;
  template <class Derived>
  void sample_impl(Rng& rng, const Eigen::MatrixBase<Derived>& out, Index* labels) const {
    mixture_.sample(rng, out);
    (void)labels;
    const int call = (*calls_)++;
    if (world().rank() == rank_ && call >= first_ && call <= last_)
      const_cast<Eigen::MatrixBase<Derived>&>(out).setConstant(std::numeric_limits<typename Derived::Scalar>::quiet_NaN());
  }
  GaussianMixture mixture_ = GaussianMixture::symmetric_2D(11, 1.0, 10.0);
  int rank_, first_, last_;
  std::shared_ptr<int> calls_;
};

}  // namespace

TEST_CASE("shard_range splits n items into contiguous runs differing by at most one", "[distributed]") {
  for (Index n : {0, 1, 5, 60, 61, 1000})
    for (int size : {1, 2, 3, 7}) {
      Index expect = 0, smallest = n, largest = 0;
      for (int r = 0; r < size; ++r) {
        const auto [a, b] = dist::shard_range(n, r, size);
        CHECK(a == expect);
        expect = b;
        smallest = std::min(smallest, b - a);
        largest = std::max(largest, b - a);
      }
      CHECK(expect == n);
      CHECK(largest - smallest <= 1);
    }
}

TEST_CASE("One rank, one shard: the data-parallel trainer is the CFMTrainer, bit for bit", "[distributed]") {
  MLPVectorField<float> a(2, {32, 32}, 3), b = a;
  Adam<float> adam_a(1e-2), adam_b(1e-2);
  CFMTrainer plain(seed_path(), a, adam_a, 11);
  dist::DataParallelTrainer dp(self(), seed_path(), b, adam_b, 11);
  CHECK(dp.num_shards() == 1);
  CHECK(plain.train(20, 64) == dp.train(20, 64));
  CHECK(a.parameters() == b.parameters());
}

TEST_CASE("N ranks x batch B/N = one rank drawing the same N shards of batch B", "[distributed]") {
  const dist::Communicator comm = world();
  const int n = comm.size();
  for (Index batch : {Index{60}, Index{61}}) {
    const Run ranks = train_run(comm, n, 25, batch);
    const Run one = train_run(self(), n, 25, batch);
    INFO("ranks = " << n << ", batch = " << batch);
    if (n <= 2) {
      // One addition (which commutes) per element: bit-identical.
      CHECK(ranks.losses == one.losses);
      CHECK(ranks.params == one.params);
    } else {
      for (std::size_t k = 0; k < one.losses.size(); ++k) CHECK(ranks.losses[k] == Approx(one.losses[k]).epsilon(1e-4));
      CHECK(max_abs_diff(ranks.params, one.params) < 1e-4);
    }
    // The loss reported is the global mean: the same on every rank.
    CHECK(comm.max(ranks.losses.back()) == ranks.losses.back());
  }
}

TEST_CASE("Data-parallel: clipping by the global norm, AdamW and SGD match the one-rank run", "[distributed]") {
  const dist::Communicator comm = world();
  TrainerOptions clip;
  clip.max_grad_norm = 0.5;
  const double tol = comm.size() <= 2 ? 0.0 : 1e-4;
  const Run a = train_run(comm, comm.size(), 15, 48, clip), b = train_run(self(), comm.size(), 15, 48, clip);
  CHECK(max_abs_diff(a.params, b.params) <= tol);
  const Run c = train_run<AdamW<float>>(comm, comm.size(), 15, 48, {}, AdamW<float>(1e-2, 0.1));
  const Run d = train_run<AdamW<float>>(self(), comm.size(), 15, 48, {}, AdamW<float>(1e-2, 0.1));
  CHECK(max_abs_diff(c.params, d.params) <= tol);
  const Run e = train_run<SGD<float>>(comm, comm.size(), 15, 48, {}, SGD<float>(1e-2, 0.9));
  const Run f = train_run<SGD<float>>(self(), comm.size(), 15, 48, {}, SGD<float>(1e-2, 0.9));
  CHECK(max_abs_diff(e.params, f.params) <= tol);
}

TEST_CASE("Data-parallel conditional training with condition dropout matches the one-rank run", "[distributed]") {
  const dist::Communicator comm = world();
  const auto run = [&](const dist::Communicator& c) {
    const GaussianConditionalPath path(GaussianMixture::symmetric_2D(4, 0.5, 3.0), LinearAlpha{}, LinearBeta{});
    ConditionalVectorField<float> model(2, ConditionKind::Label, 4, {24}, 2);
    Adam<float> adam(1e-2);
    TrainerOptions options;
    options.condition_dropout = 0.2;
    dist::DataParallelTrainer trainer(c, path, model, adam, 5, options, {.shards = comm.size()});
    trainer.train(12, 40);
    return Vector<float>(model.parameters());
  };
  CHECK(max_abs_diff(run(comm), run(self())) <= (comm.size() <= 2 ? 0.0 : 1e-4));
}

TEST_CASE("A NaN on one rank only: every rank throws at that step, or every rank skips it", "[distributed][guards]") {
  const dist::Communicator comm = world();
  const int bad_rank = comm.size() - 1;
  using Path = GaussianConditionalPath<LinearAlpha, SquareRootBeta, PoisonOnRank>;
  {
    MLPVectorField<float> model(2, {16}, 1);
    Adam<float> adam(1e-2);
    dist::DataParallelTrainer trainer(comm, Path(PoisonOnRank(bad_rank, 3, 3)), model, adam, 2);
    trainer.train(3, 30);
    const Vector<float> after3 = model.parameters();
    bool threw = false;
    try {
      trainer.step(30);
    } catch (const NumericalError& e) {
      threw = true;
      CHECK_THAT(e.what(), Catch::Contains("loss is nan at step 4"));
    }
    CHECK(comm.sum(threw ? 1 : 0) == comm.size());  // on every rank
    CHECK(model.parameters() == after3);
    CHECK(adam.steps_taken() == 3);
    CHECK(std::isfinite(trainer.step(30)));
    CHECK_NOTHROW(trainer.check_replicas());
  }
  MLPVectorField<float> model(2, {16}, 1);
  Adam<float> adam(1e-2);
  TrainerOptions options;
  options.on_non_finite = NonFinitePolicy::SkipBatch;
  options.max_grad_norm = 1.0;
  dist::DataParallelTrainer trainer(comm, Path(PoisonOnRank(bad_rank, 2, 3)), model, adam, 2, options);
  const std::vector<double> losses = trainer.train(6, 30);
  CHECK(std::isnan(losses[2]));
  CHECK(std::isnan(losses[3]));
  CHECK(trainer.skipped_steps() == 2);
  CHECK(adam.steps_taken() == 4);
  CHECK(comm.sum(trainer.skipped_steps()) == 2LL * comm.size());
  CHECK(model.parameters().allFinite());
  CHECK_NOTHROW(trainer.check_replicas());
}

TEST_CASE("Replicas that disagree are caught, naming the rank", "[distributed]") {
  const dist::Communicator comm = world();
  MLPVectorField<float> model(2, {8}, comm.rank() + 1);  // different on every rank ...
  Adam<float> adam(1e-2);
  dist::DataParallelTrainer trainer(comm, seed_path(), model, adam, 2);  // ... until rank 0's are broadcast
  CHECK_NOTHROW(trainer.check_replicas());
  trainer.train(3, 32);
  if (comm.size() > 1 && comm.rank() == 1) model.parameters()(0) += 1e-3f;
  if (comm.size() > 1) {
    CHECK_THROWS_AS(trainer.check_replicas(), dist::ReplicaDivergenceError);
    CHECK_THROWS_WITH(trainer.check_replicas(), Catch::Contains("rank(s) 1 differ from rank 0's"));
  } else {
    CHECK_NOTHROW(trainer.check_replicas());
  }
}

TEST_CASE("Checkpoints: written by N ranks, resumed on one rank (and back), exactly", "[distributed][checkpoint]") {
  const dist::Communicator comm = world();
  const int n = comm.size();
  const std::filesystem::path dir = shared_scratch("resume");
  const std::filesystem::path file = dir / "run.safetensors";
  // N ranks: 10 steps, save, 10 more; with an EMA in the file.
  MLPVectorField<float> model(2, {32, 32}, 3);
  Adam<float> adam(1e-2);
  ExponentialMovingAverage<float> ema(0.9);
  dist::DataParallelTrainer trainer(comm, seed_path(), model, adam, 11, {}, {.shards = n});
  trainer.train(10, 60, [&](const TrainProgress&) { ema.update(model.parameters()); });
  dist::save_checkpoint(file, trainer, state_part("ema", ema));
  const std::vector<double> continued = trainer.train(10, 60);
  const Vector<float> final_params = model.parameters();

  // Every rank alone (one rank, N shards from the file) resumes and takes the same 10 steps.
  MLPVectorField<float> m1(2, {32, 32}, 99);
  Adam<float> a1(1e-2);
  ExponentialMovingAverage<float> e1(0.9);
  dist::DataParallelTrainer alone(self(), seed_path(), m1, a1, 0);
  dist::load_checkpoint(file, alone, state_part("ema", e1));
  CHECK(alone.num_shards() == n);
  CHECK(alone.steps_done() == 10);
  CHECK(e1.average() == ema.average());
  const std::vector<double> resumed = alone.train(10, 60);
  if (n <= 2) {
    CHECK(resumed == continued);
    CHECK(m1.parameters() == final_params);
  } else {
    CHECK(max_abs_diff(m1.parameters(), final_params) < 1e-4);
  }

  // And back: a one-rank run of N shards (rank 0 alone) resumed on N ranks.
  const std::filesystem::path file1 = dir / "one.safetensors";
  Vector<float> one_final;
  if (comm.is_root()) {
    MLPVectorField<float> m(2, {32, 32}, 3);
    Adam<float> a(1e-2);
    dist::DataParallelTrainer t(self(), seed_path(), m, a, 11, {}, {.shards = n});
    t.train(10, 60);
    dist::save_checkpoint(file1, t);
    t.train(10, 60);
    one_final = m.parameters();
  }
  comm.broadcast(one_final);
  MLPVectorField<float> m2(2, {32, 32}, 7);
  Adam<float> a2(1e-2);
  dist::DataParallelTrainer back(comm, seed_path(), m2, a2, 0);
  dist::load_checkpoint(file1, back);
  back.train(10, 60);
  CHECK(max_abs_diff(m2.parameters(), one_final) <= (n <= 2 ? 0.0 : 1e-4));

  // A one-shard file on N > 1 ranks: the shards become N by the documented long-jump rule.
  const std::filesystem::path file2 = dir / "one_shard.safetensors";
  if (comm.is_root()) {
    MLPVectorField<float> m(2, {8}, 3);
    Adam<float> a(1e-2);
    dist::DataParallelTrainer t(self(), seed_path(), m, a, 11);
    t.train(4, 60);
    dist::save_checkpoint(file2, t);
  }
  comm.barrier();
  MLPVectorField<float> m3(2, {8}, 3);
  Adam<float> a3(1e-2);
  dist::DataParallelTrainer more(comm, seed_path(), m3, a3, 0);
  dist::load_checkpoint(file2, more);
  CHECK(more.num_shards() == n);
  const StateDict saved = dist::read_checkpoint(comm, file2);
  const Tensor* rng = saved.find_tensor("data_parallel.rng");
  CHECK(rng != nullptr);
  if (rng != nullptr && n > 1) {
    Rng expect;
    Rng::State st{};
    std::memcpy(st.data(), rng->bytes.data(), sizeof st);
    expect.set_state(st);
    expect.long_jump();
    CHECK(more.streams()[1] == expect);
  }
  CHECK_NOTHROW(more.train(3, 60));
  comm.barrier();
  if (comm.is_root()) std::filesystem::remove_all(dir);
}

TEST_CASE("PeriodicCheckpoint over a data-parallel trainer: rank 0 writes and prunes, every rank resumes", "[distributed][checkpoint]") {
  const dist::Communicator comm = world();
  const std::filesystem::path dir = shared_scratch("periodic");
  MLPVectorField<float> model(2, {16}, 3);
  Adam<float> adam(1e-2);
  dist::DataParallelTrainer trainer(comm, seed_path(), model, adam, 4);
  PeriodicCheckpoint checkpoints(trainer, dir, 5, 2, "dp");
  trainer.train(20, 30, checkpoints);
  comm.barrier();
  const auto files = PeriodicCheckpoint<decltype(trainer)>::list(dir, "dp");
  CHECK(files.size() == 2);
  CHECK((!files.empty() && files.back().first == 20));
  MLPVectorField<float> m(2, {16}, 8);
  Adam<float> a(1e-2);
  dist::DataParallelTrainer resumed(comm, seed_path(), m, a, 0);
  if (!files.empty()) dist::load_checkpoint(files.back().second, resumed);
  CHECK(m.parameters() == model.parameters());
  CHECK(resumed.train(5, 30) == trainer.train(5, 30));
  comm.barrier();
  if (comm.is_root()) std::filesystem::remove_all(dir);
}

TEST_CASE("A file only rank 0 reads: a missing one fails on every rank with rank 0's reason", "[distributed][checkpoint]") {
  const dist::Communicator comm = world();
  bool failed = false;
  try {
    (void)dist::read_file_on_root(comm, "/nonexistent/flowmatch/run.safetensors");
  } catch (const Error& e) {
    failed = true;
    CHECK_THAT(e.what(), Catch::Contains("/nonexistent/flowmatch/run.safetensors"));
    if (!comm.is_root()) CHECK_THAT(e.what(), Catch::Contains("failed on rank 0"));
  }
  CHECK(failed);
  // A failure on the last rank only, in a collective step.
  bool threw = false;
  try {
    dist::collectively(comm, "a step", [&] {
      if (comm.rank() == comm.size() - 1) throw InvalidArgument("bad value on the last rank");
    });
  } catch (const Error& e) {
    threw = true;
    CHECK_THAT(e.what(), Catch::Contains("bad value on the last rank"));
  }
  CHECK(threw);
}

TEST_CASE("Sharded sampling and likelihoods: gathered on rank 0 in order, equal to one process", "[distributed][sampling]") {
  const dist::Communicator comm = world();
  MLPVectorField<float> model(2, {32, 32}, 5);
  Rng rng(9);
  const Matrix<float> x0 = Gaussian::standard(2, 1.0).sample<float>(1001, rng);  // the same on every rank
  LearnedVectorFieldODE ode(model);
  ODESimulator<decltype(ode), HeunStepper<float>> simulator(ode);
  const Vector<double> ts = linspace(0.0, 1.0, 21);
  const Matrix<float> sharded = dist::simulate_sharded(comm, simulator, comm.is_root() ? x0 : Matrix<float>(), ts);
  if (comm.is_root()) {
    const Matrix<float> single = simulator.simulate(x0, ts);
    CHECK(sharded.rows() == 2);
    CHECK(sharded.cols() == 1001);
    CHECK(sharded == single);
  } else {
    CHECK(sharded.size() == 0);
  }

  MLPVectorField<double, SiLU> field(2, {16, 16}, 5);
  MLPJacobian<double, SiLU> jac(field);
  ExactDivergence div(jac);
  const Gaussian p0 = Gaussian::standard(2, 1.0);
  const Matrix<double> x1 = x0.cast<double>().leftCols(301);
  const Vector<double> lp = dist::log_likelihood_sharded(comm, div, p0, comm.is_root() ? x1 : Matrix<double>(), 8);
  if (comm.is_root()) {
    const Vector<double> single = log_likelihood(div, p0, x1, 8).log_density;
    CHECK(lp.size() == 301);
    CHECK(lp == single);
  }
}

TEST_CASE("A CFMTrainer's checkpoint resumes as one shard, and a one-shard file resumes in a CFMTrainer", "[distributed][checkpoint]") {
  const dist::Communicator comm = world();
  const std::filesystem::path dir = shared_scratch("plain");
  // Rank 0 alone: a plain run, saved at step 8; the plain run goes on to 16.
  if (comm.is_root()) {
    MLPVectorField<float> model(2, {16}, 3);
    Adam<float> adam(1e-2);
    CFMTrainer plain(seed_path(), model, adam, 4);
    plain.train(8, 40);
    save_checkpoint(dir / "plain.safetensors", plain);
    plain.train(8, 40);
    save_checkpoint(dir / "plain16.safetensors", model);
  }
  comm.barrier();
  MLPVectorField<float> m(2, {16}, 9), expect(2, {16}, 9);
  Adam<float> a(1e-2);
  dist::DataParallelTrainer resumed(self(), seed_path(), m, a, 0);
  dist::load_checkpoint(dir / "plain.safetensors", resumed);
  CHECK(resumed.num_shards() == 1);
  resumed.train(8, 40);
  load_checkpoint(dir / "plain16.safetensors", expect);
  CHECK(m.parameters() == expect.parameters());
  // Back: the data-parallel file (one shard) into a plain trainer, which goes on identically.
  comm.barrier();
  if (comm.is_root()) dist::save_checkpoint(dir / "dp.safetensors", resumed);
  comm.barrier();
  MLPVectorField<float> m2(2, {16}, 1);
  Adam<float> a2(1e-2);
  CFMTrainer plain2(seed_path(), m2, a2, 0);
  load_checkpoint(dir / "dp.safetensors", plain2);
  CHECK(plain2.train(5, 40) == resumed.train(5, 40));
  CHECK(m2.parameters() == m.parameters());
  comm.barrier();
  if (comm.is_root()) std::filesystem::remove_all(dir);
}
