// An activation policy without backward() is not an Activation: MLPVectorField must refuse it.
// Built with FLOWMATCH_SHOULD_FAIL_TO_BUILD defined this must not compile; without it, it must.

#include <string_view>

#include <flowmatch/core/types.hpp>
#include <flowmatch/nn/activation.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>

namespace {

struct IncompleteActivation {  // the identity
  static constexpr bool uses_aux = false;
  static constexpr std::string_view name() { return "identity"; }
  template <flowmatch::Real S>
  static void forward(const S* z, S* a, S* /*aux*/, flowmatch::Index n) {
    for (flowmatch::Index i = 0; i < n; ++i) a[i] = z[i];
  }
#ifndef FLOWMATCH_SHOULD_FAIL_TO_BUILD
  template <flowmatch::Real S>
  static void backward(const S* /*a*/, const S* /*aux*/, S* /*g*/, flowmatch::Index /*n*/) {}
#endif
  template <flowmatch::Real S>
  static S value(S z) { return z; }
  template <flowmatch::Real S>
  static S derivative(S /*z*/) { return S(1); }
};

}  // namespace

void instantiate() {
  flowmatch::MLPVectorField<float, IncompleteActivation> model(2, {4});
  (void)model.num_parameters();
}
