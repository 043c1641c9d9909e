// A stepper in float cannot integrate an ODE in double: ODESimulator must refuse the pair.
// Built with FLOWMATCH_SHOULD_FAIL_TO_BUILD defined this must not compile; without it, it must.

#include <flowmatch/core/types.hpp>
#include <flowmatch/ode/explicit_steppers.hpp>
#include <flowmatch/ode/simulator.hpp>

namespace {

struct DecayOde {  // dx/dt = -x
  using Scalar = double;
  flowmatch::Index dim() const { return 2; }
  template <class DX, class DO>
  void drift(const Eigen::MatrixBase<DX>& x, double /*t*/, const Eigen::MatrixBase<DO>& out) {
    const_cast<Eigen::MatrixBase<DO>&>(out) = -x;
  }
};

#ifdef FLOWMATCH_SHOULD_FAIL_TO_BUILD
using StepperScalar = float;
#else
using StepperScalar = double;
#endif

}  // namespace

void instantiate() {
  DecayOde ode;
  flowmatch::ODESimulator<DecayOde, flowmatch::RK4Stepper<StepperScalar>> simulator(ode);
  (void)simulator.ode().dim();
}
