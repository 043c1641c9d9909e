// An SDE type without diffusion() is not an SDE: EulerMaruyamaSimulator must refuse it.
// Built with FLOWMATCH_SHOULD_FAIL_TO_BUILD defined this must not compile; without it, it must.

#include <flowmatch/core/types.hpp>
#include <flowmatch/sde/euler_maruyama_simulator.hpp>

namespace {

struct IncompleteSde {  // dX = -X dt + dW
  using Scalar = double;
  flowmatch::Index dim() const { return 2; }
  template <class DX, class DO>
  void drift(const Eigen::MatrixBase<DX>& x, double /*t*/, const Eigen::MatrixBase<DO>& out) {
    const_cast<Eigen::MatrixBase<DO>&>(out) = -x;
  }
#ifndef FLOWMATCH_SHOULD_FAIL_TO_BUILD
  template <class DX, class DO>
  void diffusion(const Eigen::MatrixBase<DX>& /*x*/, double /*t*/, const Eigen::MatrixBase<DO>& out) {
    const_cast<Eigen::MatrixBase<DO>&>(out).setOnes();
  }
#endif
};

}  // namespace

void instantiate() {
  IncompleteSde sde;
  flowmatch::EulerMaruyamaSimulator<IncompleteSde> simulator(sde);
  (void)simulator.sde().dim();
}
