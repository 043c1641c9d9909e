// The program both consumer projects build: trains a tiny flow-matching model for 3 steps, runs the
// learned flow, and prints OK. It includes only the umbrella header, as a user would.

#include <cmath>
#include <cstdio>
#include <vector>

#include <flowmatch.hpp>

int main() {
  using namespace flowmatch;
  using Path = GaussianConditionalPath<LinearAlpha, LinearBeta, GaussianMixture>;
  using Model = MLPVectorField<float>;

  Path path(GaussianMixture::symmetric_2D(4, 0.5, 5.0));
  Model model(2, {16, 16}, 1);
  Adam<float> adam(1e-3);
  CFMTrainer<Path, Model, Adam<float>> trainer(path, model, adam, 2);
  const std::vector<double> losses = trainer.train(3, 32);
  if (losses.size() != 3 || trainer.steps_done() != 3) {
    std::printf("FAILED: expected 3 training steps, took %zu\n", losses.size());
    return 1;
  }
  for (double loss : losses) {
    if (!std::isfinite(loss)) {
      std::printf("FAILED: a training loss is not finite\n");
      return 1;
    }
  }

  LearnedVectorFieldODE<Model> ode(model);
  EulerSimulator<LearnedVectorFieldODE<Model>> simulator(ode);
  Rng rng(3);
  const Matrix<float> x0 = Gaussian::standard(2).sample<float>(16, rng);
  const Matrix<float> x1 = simulator.simulate(x0, linspace(0.0, 1.0, 5));
  if (x1.rows() != 2 || x1.cols() != 16 || !x1.allFinite()) {
    std::printf("FAILED: the simulated samples are not a finite 2 x 16 batch\n");
    return 1;
  }
  std::printf("flowmatch consumer: 3 training steps (loss %.4f -> %.4f), 16 samples: OK\n", losses.front(),
              losses.back());
  return 0;
}
