// The README's usage snippet, compiled by the build so that it stays true.
#include <flowmatch.hpp>
#include <iostream>

int main() {
  using namespace flowmatch;
  // p_data: 11 Gaussians on a circle; path x_t = t z + sqrt(1 - t) eps.
  GaussianConditionalPath path(GaussianMixture::symmetric_2D(11, /*std=*/1.0, /*scale=*/10.0),
                               LinearAlpha{}, SquareRootBeta{});
  MLPVectorField<float, SiLU> model(/*dim=*/2, /*hidden_widths=*/{1024, 16}, /*seed=*/0);
  Adam<float> adam(/*lr=*/1e-3);
  CFMTrainer trainer(path, model, adam, /*seed=*/0);
  std::vector<double> losses = trainer.train(/*num_steps=*/2000, /*batch_size=*/1000);

  Rng rng(1);  // sample: integrate dx/dt = u_theta(x, t) from N(0, I) at t = 0 to t = 1
  Matrix<float> x0 = Gaussian::standard(2).sample<float>(1000, rng);
  LearnedVectorFieldODE ode(model);
  EulerSimulator simulator(ode);
  Matrix<float> x1 = simulator.simulate(x0, linspace(0.0, 1.0, 300));  // 2 x 1000

  const auto& p_data = path.p_data();
  std::cout << "final loss " << losses.back() << ", modes covered " << p_data.modes_covered(x1)
            << " of 11, mean log-density " << p_data.log_density(x1).mean() << "\n";
}
