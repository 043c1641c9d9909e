// A coupling without pair() is not a Coupling: GaussianConditionalPath must refuse it.
// Built with FLOWMATCH_SHOULD_FAIL_TO_BUILD defined this must not compile; without it, it must.

#include <flowmatch/distribution/gaussian.hpp>
#include <flowmatch/distribution/standard_normal.hpp>
#include <flowmatch/path/gaussian_conditional_path.hpp>
#include <flowmatch/schedule/linear_alpha.hpp>
#include <flowmatch/schedule/linear_beta.hpp>

namespace {

struct IncompleteCoupling {
#ifndef FLOWMATCH_SHOULD_FAIL_TO_BUILD
  template <class D0, class D1>
  void pair(flowmatch::Rng& /*rng*/, const Eigen::MatrixBase<D0>& /*x0*/, const Eigen::MatrixBase<D1>& /*x1*/) const {}
#endif
};

}  // namespace

void instantiate() {
  using Path = flowmatch::GaussianConditionalPath<flowmatch::LinearAlpha, flowmatch::LinearBeta, flowmatch::Gaussian,
                                                  flowmatch::StandardNormal, IncompleteCoupling>;
  Path path(flowmatch::Gaussian::standard(2));
  (void)path.dim();
}
