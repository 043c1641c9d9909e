// Micro-benchmarks of flowmatch's hot paths on the reference workload, and sweeps showing how the cost
// grows with batch size, hidden width, data dimension and threads.
//
//   build/benchmarks/flowmatch_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Every benchmark reports items_per_second (samples) and GFLOP/s of matrix products
// (2 * M * N * K summed over the products, as in ../shared/peers/torch_seed.py).

#include <benchmark/benchmark.h>

#include <vector>

#include <flowmatch.hpp>

namespace fm = flowmatch;

namespace {

using Model = fm::MLPVectorField<float, fm::SiLU>;

// Widths of the layer boundaries: d + 1, hidden..., d.
std::vector<fm::Index> layer_widths(fm::Index dim, const std::vector<fm::Index>& hidden) {
  std::vector<fm::Index> w{dim + 1};
  w.insert(w.end(), hidden.begin(), hidden.end());
  w.push_back(dim);
  return w;
}

// Multiply-accumulates of one forward pass per sample.
double forward_macs(const std::vector<fm::Index>& w) {
  double mac = 0;
  for (std::size_t l = 0; l + 1 < w.size(); ++l) mac += static_cast<double>(w[l] * w[l + 1]);
  return mac;
}

// GEMM FLOPs of one training step (forward, weight gradients, input gradients of layers > 0).
double train_flops(const std::vector<fm::Index>& w, fm::Index batch) {
  const double mac = forward_macs(w);
  const double first = static_cast<double>(w[0] * w[1]);
  return 2.0 * static_cast<double>(batch) * (2.0 * mac + (mac - first));
}

void set_counters(benchmark::State& state, double flops_per_iter, fm::Index samples_per_iter) {
  state.counters["GFLOP/s"] = benchmark::Counter(flops_per_iter * static_cast<double>(state.iterations()) * 1e-9,
                                                 benchmark::Counter::kIsRate);
  state.SetItemsProcessed(state.iterations() * samples_per_iter);
}

// One CFM training step of the reference workload: batch sampling, forward, loss, backward, Adam.
// Args: batch, hidden width (first layer; the second is 16 as in the seed), data dim, threads.
void BM_TrainStep(benchmark::State& state) {
  const fm::Index batch = state.range(0), width = state.range(1), dim = state.range(2);
  fm::set_num_threads(static_cast<int>(state.range(3)));
  const std::vector<fm::Index> hidden{width, 16};
  fm::Matrix<double> means = fm::Matrix<double>::Zero(dim, 11);
  const fm::GaussianMixture ring2d = fm::GaussianMixture::symmetric_2D(11, 1.0, 10.0);
  means.topRows(2) = ring2d.means();
  const fm::GaussianMixture data(means, fm::Matrix<double>::Ones(dim, 11), fm::Vector<double>::Ones(11));
  const fm::GaussianConditionalPath path(data, fm::LinearAlpha{}, fm::SquareRootBeta{});
  Model model(dim, hidden, 0);
  fm::Adam<float> adam(1e-3);
  fm::CFMTrainer trainer(path, model, adam, 0);
  for (int i = 0; i < 5; ++i) trainer.step(batch);  // size every buffer
  for (auto _ : state) benchmark::DoNotOptimize(trainer.step(batch));
  set_counters(state, train_flops(layer_widths(dim, hidden), batch), batch);
  fm::set_num_threads(1);
}

// Inference forward pass (one Euler step's drift). Args: batch, width, dim, threads.
void BM_Forward(benchmark::State& state) {
  const fm::Index batch = state.range(0), width = state.range(1), dim = state.range(2);
  fm::set_num_threads(static_cast<int>(state.range(3)));
  const std::vector<fm::Index> hidden{width, 16};
  Model model(dim, hidden, 0);
  fm::Rng rng(1);
  fm::Matrix<float> x(dim, batch), out(dim, batch);
  rng.fill_normal(x);
  Model::Workspace ws;
  model.forward(x, 0.5, out, ws);
  for (auto _ : state) {
    model.forward(x, 0.5, out, ws);
    benchmark::DoNotOptimize(out.data());
  }
  set_counters(state, 2.0 * static_cast<double>(batch) * forward_macs(layer_widths(dim, hidden)), batch);
  fm::set_num_threads(1);
}

// Backward pass alone, after one forward_train. Args: batch, width, dim, threads.
void BM_Backward(benchmark::State& state) {
  const fm::Index batch = state.range(0), width = state.range(1), dim = state.range(2);
  fm::set_num_threads(static_cast<int>(state.range(3)));
  const std::vector<fm::Index> hidden{width, 16};
  Model model(dim, hidden, 0);
  fm::Rng rng(1);
  fm::Matrix<float> x(dim, batch), g(dim, batch);
  fm::RowVector<float> t(batch);
  rng.fill_normal(x);
  rng.fill_normal(g);
  rng.fill_uniform(t);
  Model::Workspace ws;
  model.forward_train(x, t, ws);
  for (auto _ : state) {
    model.backward(g, ws);
    benchmark::DoNotOptimize(model.gradients().data());
  }
  const std::vector<fm::Index> w = layer_widths(dim, hidden);
  set_counters(state, train_flops(w, batch) - 2.0 * static_cast<double>(batch) * forward_macs(w), batch);
  fm::set_num_threads(1);
}

// Euler sampling: `samples` x `steps` steps of the reference workload's model. Args: samples, steps, threads.
void BM_EulerSample(benchmark::State& state) {
  const fm::Index samples = state.range(0), steps = state.range(1);
  fm::set_num_threads(static_cast<int>(state.range(2)));
  Model model(2, {1024, 16}, 0);
  fm::Rng rng(1);
  const fm::Matrix<float> x0 = fm::Gaussian::standard(2).sample<float>(samples, rng);
  const fm::Vector<double> ts = fm::linspace(0.0, 1.0, steps + 1);
  fm::LearnedVectorFieldODE ode(model);
  fm::EulerSimulator sim(ode);
  fm::Matrix<float> x = x0;
  sim.simulate_inplace(x, ts.head(2));  // size the buffers
  for (auto _ : state) {
    x = x0;
    sim.simulate_inplace(x, ts);
    benchmark::DoNotOptimize(x.data());
  }
  set_counters(state, 2.0 * static_cast<double>(samples * steps) * forward_macs(layer_widths(2, {1024, 16})),
               samples * steps);
  fm::set_num_threads(1);
}

// Batch sampling of the path alone (data, t, eps, x and the target).
void BM_TrainingBatch(benchmark::State& state) {
  const fm::Index batch = state.range(0);
  const fm::GaussianConditionalPath path(fm::GaussianMixture::symmetric_2D(11, 1.0, 10.0), fm::LinearAlpha{},
                                         fm::SquareRootBeta{});
  fm::TrainingBatch<float> b(2, batch);
  fm::Rng rng(0);
  for (auto _ : state) {
    path.sample_training_batch(rng, b);
    benchmark::DoNotOptimize(b.u.data());
  }
  state.SetItemsProcessed(state.iterations() * batch);
}

constexpr auto kMs = benchmark::kMillisecond;

}  // namespace

// The reference workload, at 1 and 2 threads.
BENCHMARK(BM_TrainStep)->ArgNames({"batch", "width", "dim", "threads"})->Args({1000, 1024, 2, 1})->Args({1000, 1024, 2, 2})->Unit(kMs)->UseRealTime();
BENCHMARK(BM_Forward)->ArgNames({"batch", "width", "dim", "threads"})->Args({1000, 1024, 2, 1})->Args({1000, 1024, 2, 2})->Unit(kMs)->UseRealTime();
BENCHMARK(BM_Backward)->ArgNames({"batch", "width", "dim", "threads"})->Args({1000, 1024, 2, 1})->Args({1000, 1024, 2, 2})->Unit(kMs)->UseRealTime();
BENCHMARK(BM_EulerSample)->ArgNames({"samples", "steps", "threads"})->Args({1000, 299, 1})->Args({1000, 299, 2})->Args({100000, 100, 1})->Args({100000, 100, 2})->Unit(kMs)->UseRealTime()->Iterations(3);
BENCHMARK(BM_TrainingBatch)->Arg(1000)->Unit(benchmark::kMicrosecond);

// Sweeps (training step): batch, hidden width, data dimension, threads.
BENCHMARK(BM_TrainStep)->Name("sweep/batch")->ArgNames({"batch", "width", "dim", "threads"})
    ->ArgsProduct({{250, 500, 1000, 2000, 4000, 8000, 16000}, {1024}, {2}, {1, 2}})->Unit(kMs)->UseRealTime();
BENCHMARK(BM_TrainStep)->Name("sweep/width")->ArgNames({"batch", "width", "dim", "threads"})
    ->ArgsProduct({{1000}, {64, 128, 256, 512, 1024, 2048, 4096}, {2}, {1, 2}})->Unit(kMs)->UseRealTime();
BENCHMARK(BM_TrainStep)->Name("sweep/dim")->ArgNames({"batch", "width", "dim", "threads"})
    ->ArgsProduct({{1000}, {1024}, {2, 4, 8, 16, 32, 64, 128, 256}, {1, 2}})->Unit(kMs)->UseRealTime();

BENCHMARK_MAIN();
