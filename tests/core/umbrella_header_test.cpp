// The umbrella header alone is enough to use the whole library but checkpoints and the PyTorch
// importer (opt-in since issue 20: nlohmann::json) and the two domain headers <flowmatch/sbi.hpp>
// and <flowmatch/evaluation.hpp> (also issue 20: compile time): this file includes nothing else
// from flowmatch (and nothing from Eigen or the standard library directly).

#include <flowmatch.hpp>

#include <catch2/catch.hpp>

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

namespace fm = flowmatch;

using Path = fm::GaussianConditionalPath<fm::LinearAlpha, fm::SquareRootBeta, fm::GaussianMixture>;
using Model = fm::MLPVectorField<float, fm::SiLU>;
static_assert(fm::ConditionalPath<Path>);
static_assert(fm::TrainableVectorField<Model>);
static_assert(fm::Optimizer<fm::Adam<float>>);
static_assert(fm::Optimizer<fm::SGD<float>>);
static_assert(fm::ODE<fm::LearnedVectorFieldODE<Model>>);
static_assert(fm::SampleableDistribution<fm::Gaussian>);
static_assert(fm::DensityDistribution<fm::GaussianMixture>);

TEST_CASE("<flowmatch.hpp> alone: train a few steps and simulate", "[umbrella]") {
  const auto p_data = fm::GaussianMixture::symmetric_2D(3, 0.5, 4.0);
  Model model(2, {8}, 1);
  fm::Adam<float> adam(1e-2);
  fm::CFMTrainer trainer(Path(p_data), model, adam, 2);
  const auto losses = trainer.train(3, 16);
  REQUIRE(losses.size() == 3);
  fm::LearnedVectorFieldODE ode(model);
  fm::EulerSimulator sim(ode);
  fm::Rng rng(3);
  const auto x0 = fm::Gaussian::standard(2).sample<float>(4, rng);
  const auto x1 = sim.simulate(x0, fm::linspace(0.0, 1.0, 5));
  CHECK(x1.rows() == 2);
  CHECK(x1.cols() == 4);
  CHECK(x1.allFinite());
  CHECK_FALSE(x1.isApprox(x0));
}

}  // namespace FLOWMATCH_TEST_FILE_ID
