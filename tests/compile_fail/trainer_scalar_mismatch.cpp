// A CFMTrainer whose model computes in double and whose optimizer updates floats must be refused
// by CFMTrainer's static_assert, with its whole-sentence message.
// Built with FLOWMATCH_SHOULD_FAIL_TO_BUILD defined this must not compile; without it, it must.

#include <flowmatch/distribution/gaussian.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>
#include <flowmatch/optim/adam.hpp>
#include <flowmatch/path/gaussian_conditional_path.hpp>
#include <flowmatch/schedule/linear_alpha.hpp>
#include <flowmatch/schedule/linear_beta.hpp>
#include <flowmatch/train/cfm_trainer.hpp>

#ifdef FLOWMATCH_SHOULD_FAIL_TO_BUILD
using OptimizerScalar = float;
#else
using OptimizerScalar = double;
#endif

void instantiate() {
  using namespace flowmatch;
  using Path = GaussianConditionalPath<LinearAlpha, LinearBeta, Gaussian>;
  Path path(Gaussian::standard(2));
  MLPVectorField<double> model(2, {4});
  Adam<OptimizerScalar> adam;
  CFMTrainer<Path, MLPVectorField<double>, Adam<OptimizerScalar>> trainer(path, model, adam);
  (void)trainer.steps_done();
}
