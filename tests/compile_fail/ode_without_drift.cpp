// An ODE type without drift() is not an ODE: EulerSimulator must refuse it.
// Built with FLOWMATCH_SHOULD_FAIL_TO_BUILD defined this must not compile; without it, it must.

#include <flowmatch/core/types.hpp>
#include <flowmatch/ode/euler_simulator.hpp>

namespace {

struct IncompleteOde {  // dx/dt = -x
  using Scalar = double;
  flowmatch::Index dim() const { return 2; }
#ifndef FLOWMATCH_SHOULD_FAIL_TO_BUILD
  template <class DX, class DO>
  void drift(const Eigen::MatrixBase<DX>& x, double /*t*/, const Eigen::MatrixBase<DO>& out) {
    const_cast<Eigen::MatrixBase<DO>&>(out) = -x;
  }
#endif
};

}  // namespace

void instantiate() {
  IncompleteOde ode;
  flowmatch::EulerSimulator<IncompleteOde> simulator(ode);
  (void)simulator.ode().dim();
}
