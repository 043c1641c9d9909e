// An optimizer without step() is not an Optimizer: CFMTrainer must refuse it.
// Built with FLOWMATCH_SHOULD_FAIL_TO_BUILD defined this must not compile; without it, it must.

#include <flowmatch/core/types.hpp>
#include <flowmatch/distribution/gaussian.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>
#include <flowmatch/path/gaussian_conditional_path.hpp>
#include <flowmatch/schedule/linear_alpha.hpp>
#include <flowmatch/schedule/linear_beta.hpp>
#include <flowmatch/train/cfm_trainer.hpp>

namespace {

struct IncompleteOptimizer {
  using Scalar = float;
#ifndef FLOWMATCH_SHOULD_FAIL_TO_BUILD
  template <class DP, class DG>
  void step(const Eigen::MatrixBase<DP>& /*params*/, const Eigen::MatrixBase<DG>& /*grads*/) {}
#endif
  void reset(flowmatch::Index /*n*/) {}
  double learning_rate() const { return 1e-3; }
  void set_learning_rate(double /*lr*/) {}
  long long steps_taken() const { return 0; }
};

}  // namespace

void instantiate() {
  using namespace flowmatch;
  using Path = GaussianConditionalPath<LinearAlpha, LinearBeta, Gaussian>;
  Path path(Gaussian::standard(2));
  MLPVectorField<float> model(2, {4});
  IncompleteOptimizer opt;
  CFMTrainer<Path, MLPVectorField<float>, IncompleteOptimizer> trainer(path, model, opt);
  (void)trainer.steps_done();
}
