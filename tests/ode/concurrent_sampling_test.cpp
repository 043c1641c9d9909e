// The forward pass of a const model is thread-safe: several threads sampling one trained model at
// once (each with its own ODE, hence its own workspace) get exactly the serial results.

#include <catch2/catch.hpp>

#include <thread>
#include <vector>

#include <flowmatch/core/threads.hpp>
#include <flowmatch/distribution/gaussian.hpp>
#include <flowmatch/distribution/gaussian_mixture.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>
#include <flowmatch/ode/euler_simulator.hpp>
#include <flowmatch/ode/learned_vector_field_ode.hpp>
#include <flowmatch/optim/adam.hpp>
#include <flowmatch/path/gaussian_conditional_path.hpp>
#include <flowmatch/schedule/linear_alpha.hpp>
#include <flowmatch/schedule/square_root_beta.hpp>
#include <flowmatch/train/cfm_trainer.hpp>

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

TEST_CASE("Sampling one const model from several threads at once equals sampling serially", "[ode][threads]") {
  MLPVectorField<float> trained(2, {64, 32}, 1);
  Adam<float> adam(1e-3);
  CFMTrainer trainer(GaussianConditionalPath<LinearAlpha, SquareRootBeta, GaussianMixture>(
                         GaussianMixture::symmetric_2D(11, 1.0, 10.0)),
                     trained, adam, 2);
  trainer.train(20, 128);
  const MLPVectorField<float>& model = trained;
  const Vector<double> ts = linspace(0.0, 1.0, 41);
  constexpr int kThreads = 4;
  const auto sample = [&](int k) {
    Rng rng(100 + static_cast<std::uint64_t>(k));
    Matrix<float> x = Gaussian::standard(2, 1.0).sample<float>(300, rng);
    LearnedVectorFieldODE ode(model);
    EulerSimulator simulator(ode);
    simulator.simulate_inplace(x, ts);
    return x;
  };
  for (const int pool_threads : {1, 2}) {
    const int saved = num_threads();
    set_num_threads(pool_threads);
    std::vector<Matrix<float>> serial, parallel(kThreads);
    for (int k = 0; k < kThreads; ++k) serial.push_back(sample(k));
    for (int round = 0; round < 3; ++round) {
      std::vector<std::thread> workers;
      for (int k = 0; k < kThreads; ++k) workers.emplace_back([&, k] { parallel[static_cast<std::size_t>(k)] = sample(k); });
      for (auto& w : workers) w.join();
      for (int k = 0; k < kThreads; ++k) {
        INFO("pool threads " << pool_threads << ", round " << round << ", sampler " << k);
        CHECK(parallel[static_cast<std::size_t>(k)] == serial[static_cast<std::size_t>(k)]);
      }
    }
    CHECK(serial[0] != serial[1]);
    set_num_threads(saved);
  }
}

}  // namespace FLOWMATCH_TEST_FILE_ID
