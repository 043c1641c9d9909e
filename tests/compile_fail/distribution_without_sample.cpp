// A distribution without sample() is not a SampleableDistribution: GaussianConditionalPath must
// refuse it as its data distribution.
// Built with FLOWMATCH_SHOULD_FAIL_TO_BUILD defined this must not compile; without it, it must.

#include <flowmatch/core/random.hpp>
#include <flowmatch/core/types.hpp>
#include <flowmatch/path/gaussian_conditional_path.hpp>
#include <flowmatch/schedule/linear_alpha.hpp>
#include <flowmatch/schedule/linear_beta.hpp>

namespace {

struct IncompleteData {  // the point mass at 0
  flowmatch::Index dim() const { return 2; }
#ifndef FLOWMATCH_SHOULD_FAIL_TO_BUILD
  template <class D>
  void sample(flowmatch::Rng& /*rng*/, const Eigen::MatrixBase<D>& out) const {
    const_cast<Eigen::MatrixBase<D>&>(out).setZero();
  }
#endif
};

}  // namespace

void instantiate() {
  using Path = flowmatch::GaussianConditionalPath<flowmatch::LinearAlpha, flowmatch::LinearBeta, IncompleteData>;
  Path path{IncompleteData{}};
  (void)path.dim();
}
