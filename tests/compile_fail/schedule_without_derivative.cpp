// A schedule without derivative() is not an AlphaSchedule: GaussianConditionalPath must refuse it.
// Built with FLOWMATCH_SHOULD_FAIL_TO_BUILD defined this must not compile; without it, it must.

#include <flowmatch/distribution/gaussian.hpp>
#include <flowmatch/path/gaussian_conditional_path.hpp>
#include <flowmatch/schedule/linear_beta.hpp>

namespace {

struct IncompleteAlpha {
  double value(double t) const { return t; }
#ifndef FLOWMATCH_SHOULD_FAIL_TO_BUILD
  double derivative(double /*t*/) const { return 1.0; }
#endif
};

}  // namespace

void instantiate() {
  using Path = flowmatch::GaussianConditionalPath<IncompleteAlpha, flowmatch::LinearBeta, flowmatch::Gaussian>;
  Path path(flowmatch::Gaussian::standard(2));
  (void)path.dim();
}
