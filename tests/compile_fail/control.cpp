// The control case: correct code that MUST compile through the same mechanism as the
// compile-fail cases (a `cmake --build` of an EXCLUDE_FROM_ALL target, run by ctest), so that a
// broken mechanism (a wrong target name, missing include directories, bad flags) is noticed
// instead of making every compile-fail test pass for the wrong reason. It instantiates every
// class template the failing cases do, with conforming types (and, kept cheap, no more).

#include <flowmatch.hpp>

int main() {
  using namespace flowmatch;
  using Path = GaussianConditionalPath<LinearAlpha, SquareRootBeta, GaussianMixture>;
  using Model = MLPVectorField<float, SiLU>;
  using Ode = LearnedVectorFieldODE<Model>;
  Path path(GaussianMixture::symmetric_2D(3, 0.5, 4.0));
  Model model(2, {8, 8}, 1);
  Adam<float> adam(1e-3);
  CFMTrainer<Path, Model, Adam<float>> trainer(path, model, adam, 2);
  Ode ode(model);
  EulerSimulator<Ode> simulator(ode);
  return trainer.steps_done() == 0 && simulator.ode().dim() == 2 ? 0 : 1;
}
