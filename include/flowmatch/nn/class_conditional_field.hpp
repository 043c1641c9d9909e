#pragma once
/// \file
/// A class-conditional vector field u_theta(x, t | y) for classifier-free guidance: the
/// ConditionalVectorField for class labels, with its familiar constructor.

#include <cstdint>
#include <utility>
#include <vector>

#include "flowmatch/core/condition.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/activation.hpp"
#include "flowmatch/nn/conditional_field.hpp"

namespace flowmatch {

/// u_theta(x, t | y) = MLP([x; fourier(t); onehot(y); t]) for labels y in {0, ..., C - 1}, and the
/// unconditional u_theta(x, t | empty) for a dropped condition or the empty label y = C (an
/// all-zero one-hot), which condition dropout trains (TrainerOptions::condition_dropout). A
/// ConditionalVectorField of kind Label (same layout and state): labels are given in the
/// ConditionBatch of a training batch, or directly as any integer Eigen vector with one entry per
/// column; a label outside [0, C] throws InvalidArgument naming its position.
template <Real S = float, Activation Act = SiLU>
class ClassConditionalVectorField : public ConditionalVectorField<S, Act> {
 public:
  /// dim >= 1, num_classes >= 1, num_frequencies >= 0 (0: raw t only), hidden widths as
  /// MLPVectorField. Throws InvalidArgument otherwise.
  ClassConditionalVectorField(Index dim, Index num_classes, std::vector<Index> hidden, std::uint64_t seed = 0,
                              Index num_frequencies = 0)
      : ConditionalVectorField<S, Act>(dim, ConditionKind::Label, num_classes, std::move(hidden), seed,
                                       num_frequencies) {}
};

}  // namespace flowmatch
