// The program that wrote the format-1 checkpoints in this folder (v1_*.fmck) and their expected
// values (v1_expected.json), with the format-1 writer of io/checkpoint.hpp as it was at commit
// ae4abaa (the last commit with that writer; it does not compile against later commits and is not
// built). Kept as the record of what the files hold; tests/io/checkpoint_v1_test.cpp checks that
// they still load, with these values, through io/checkpoint_v1.hpp.
//
//   g++ -std=c++20 -O1 -I include -I /usr/include/eigen3 -pthread tests/io/data/make_v1_files.cpp -o mk
//   (cd tests/io/data && ../../../mk > v1_expected.json)
#include <cstdio>
#include <string>
#include <vector>

#include <flowmatch/distribution/gaussian_mixture.hpp>
#include <flowmatch/io/checkpoint.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>
#include <flowmatch/optim/adam.hpp>
#include <flowmatch/optim/sgd.hpp>
#include <flowmatch/path/gaussian_conditional_path.hpp>
#include <flowmatch/schedule/linear_alpha.hpp>
#include <flowmatch/schedule/square_root_beta.hpp>
#include <flowmatch/train/cfm_trainer.hpp>

using namespace flowmatch;

template <class V>
std::string list(const V& v) {
  std::string s = "[";
  char buf[64];
  for (Index i = 0; i < static_cast<Index>(v.size()); ++i) {
    std::snprintf(buf, sizeof buf, "%.17g", static_cast<double>(v[i]));
    s.append(i ? ", " : "").append(buf);
  }
  return s + "]";
}

int main() {
  using Path = GaussianConditionalPath<LinearAlpha, SquareRootBeta, GaussianMixture>;
  // 1. A float SiLU MLP 3-8-2 trained 4 steps with Adam: model, Adam state and trainer state.
  MLPVectorField<float> model(2, {8}, 11);
  Adam<float> adam(2e-3, 0.9, 0.99, 1e-7);
  CFMTrainer trainer(Path(GaussianMixture::symmetric_2D(5, 1.0, 4.0)), model, adam, 12);
  trainer.train(4, 16);
  save_checkpoint("v1_adam_trainer_float_silu.fmck", trainer);
  // 2. A double tanh MLP 2-5-4-1 with SGD (momentum 0.9, Nesterov) after 2 steps: model and SGD.
  MLPVectorField<double, Tanh> dmodel(1, {5, 4}, 21);
  SGD<double> sgd(0.05, 0.9, true);
  for (int k = 0; k < 2; ++k) {
    Vector<double> g(dmodel.num_parameters());
    for (Index i = 0; i < g.size(); ++i) g[i] = 0.01 * static_cast<double>(i % 7) - 0.03 + 0.1 * k;
    sgd.step(dmodel.parameters(), g);
  }
  save_checkpoint("v1_sgd_double_tanh.fmck", dmodel, sgd);
  // 3. A float ReLU model alone (no optimizer, no trainer): MLP 2-3-1.
  MLPVectorField<float, ReLU> rmodel(1, {3}, 31);
  save_checkpoint("v1_model_only_float_relu.fmck", rmodel);

  const auto& rng = trainer.rng().state();
  std::printf("{\n  \"v1_adam_trainer_float_silu.fmck\": {\"widths\": [3, 8, 2], \"parameters\": %s,\n",
              list(model.parameters()).c_str());
  std::printf("    \"exp_avg\": %s,\n    \"exp_avg_sq\": %s,\n", list(adam.first_moment()).c_str(),
              list(adam.second_moment()).c_str());
  std::printf("    \"lr\": 0.002, \"beta1\": 0.9, \"beta2\": 0.99, \"eps\": 1e-7, \"steps\": %lld, \"steps_done\": %lld,\n",
              adam.steps_taken(), trainer.steps_done());
  std::printf("    \"rng\": [\"%llu\", \"%llu\", \"%llu\", \"%llu\"]},\n", (unsigned long long)rng[0],
              (unsigned long long)rng[1], (unsigned long long)rng[2], (unsigned long long)rng[3]);
  std::printf("  \"v1_sgd_double_tanh.fmck\": {\"widths\": [2, 5, 4, 1], \"parameters\": %s,\n",
              list(dmodel.parameters()).c_str());
  std::printf("    \"momentum_buffer\": %s,\n    \"lr\": 0.05, \"momentum\": 0.9, \"nesterov\": true, \"steps\": %lld},\n",
              list(sgd.momentum_buffer()).c_str(), sgd.steps_taken());
  std::printf("  \"v1_model_only_float_relu.fmck\": {\"widths\": [2, 3, 1], \"parameters\": %s}\n}\n",
              list(rmodel.parameters()).c_str());
}
