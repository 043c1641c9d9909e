#pragma once
/// \file
/// Conditions as data: what a conditional model is conditioned on, one per sample (column) of a
/// batch. Distributions of (x, condition) pairs fill it, training batches carry it, conditional
/// vector fields read it, and classifier-free guidance flips its presence mask.

#include <cstdint>
#include <string>
#include <string_view>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch {

/// What a sample is conditioned on: nothing, a class label, or a real context vector.
enum class ConditionKind : std::uint8_t { None, Label, Vector };

/// "none", "labels" or "vector" (the name checkpoints store).
inline constexpr std::string_view condition_kind_name(ConditionKind k) {
  return k == ConditionKind::Label ? "labels" : k == ConditionKind::Vector ? "vector" : "none";
}

/// The condition of each of the n samples of a batch:
/// - kind None: no condition (the buffers are not used);
/// - kind Label: `labels(j)` in [0, num_classes) is the class of sample j;
/// - kind Vector: column j of the c x n matrix `context` is the context vector of sample j.
/// `present(j)` is 1 where sample j's condition is given and 0 where it is dropped (condition
/// dropout in training, the unconditional branch of classifier-free guidance): a model sees no
/// condition there, whatever labels(j) or context.col(j) hold.
///
/// Shared context (kind Vector, `shared` true): one context vector, column 0 of a c x 1 `context`,
/// is the condition of all n samples (present.size() = n). Sampling many values for one
/// observation (posterior estimation: many theta for one x_o) conditions the whole batch on it
/// without n copies: set_shared_context(c, n). Readers take a sample's context with
/// context_col(j).
///
/// The buffers are resized in place (set_labels / set_context / set_shared_context): after the
/// first batch of a size, filling a batch allocates nothing.
template <Real S = float>
struct ConditionBatch {
  ConditionKind kind = ConditionKind::None;
  Vector<Index> labels;  ///< n class labels (kind Label)
  Matrix<S> context;     ///< c x n context vectors, one per column (kind Vector)
  RowVector<S> present;  ///< 1 x n: 1 = condition given, 0 = dropped
  bool shared = false;   ///< kind Vector: context has one column, the context of every sample

  ConditionBatch() = default;

  /// Kind None; the buffers keep their memory.
  void clear() { kind = ConditionKind::None; }
  /// Kind Label for n samples, every condition present (labels left to the caller).
  void set_labels(Index n) {
    kind = ConditionKind::Label;
    labels.resize(n);
    present.setOnes(n);
  }
  /// Kind Vector with c-dimensional contexts for n samples, every condition present.
  void set_context(Index c, Index n) {
    kind = ConditionKind::Vector;
    shared = false;
    context.resize(c, n);
    present.setOnes(n);
  }
  /// Kind Vector for n samples that all have the context vector `c` (one column, stored once),
  /// every condition present.
  template <class D>
  void set_shared_context(const Eigen::MatrixBase<D>& c, Index n) {
    if (c.cols() != 1)
      detail::throw_invalid("flowmatch::ConditionBatch::set_shared_context", "c.cols()", static_cast<long long>(c.cols()),
                            "a shared context is one column vector");
    detail::require_positive_count("flowmatch::ConditionBatch::set_shared_context", "n", n);
    kind = ConditionKind::Vector;
    shared = true;
    context = c.template cast<S>();
    present.setOnes(n);
  }
  /// The context of sample j (kind Vector): column j, or column 0 of a shared context.
  auto context_col(Index j) const { return context.col(shared ? 0 : j); }

  bool empty() const { return kind == ConditionKind::None; }
  /// The number of samples (0 for kind None).
  Index size() const {
    return kind == ConditionKind::Label    ? labels.size()
           : kind == ConditionKind::Vector ? (shared ? present.size() : context.cols())
                                           : 0;
  }
  /// The context dimension c (kind Vector), else 0.
  Index context_dim() const { return kind == ConditionKind::Vector ? context.rows() : 0; }
  /// Whether sample j's condition is given.
  bool is_present(Index j) const { return present(j) != S(0); }
};

namespace detail {

/// Checks that `c` is a condition of kind `kind` for `n` samples whose presence mask holds only 0
/// and 1 (and, for labels, that every present label lies in [0, num_classes), or equals
/// num_classes, the "empty" label, which counts as dropped; for vectors, that the context has
/// `dim` rows). Throws InvalidArgument / DimensionMismatch naming `where`.
template <Real S>
void check_condition(const char* where, const ConditionBatch<S>& c, ConditionKind kind, Index n, Index size) {
  if (c.kind != kind)
    throw_invalid(where, "condition.kind", std::string(condition_kind_name(c.kind)),
                  "the model takes a condition of kind '" + std::string(condition_kind_name(kind)) + "'");
  if (c.present.size() != n) throw_dimension(where, "condition.present", "size", c.present.size(), n);
  for (Index j = 0; j < n; ++j)
    if (c.present(j) != S(0) && c.present(j) != S(1))
      throw_invalid(where, "condition.present[" + std::to_string(j) + "]", static_cast<double>(c.present(j)),
                    "must be 0 (dropped) or 1 (given)");
  if (kind == ConditionKind::Label) {
    if (c.labels.size() != n) throw_dimension(where, "condition.labels", "size", c.labels.size(), n);
    for (Index j = 0; j < n; ++j) {
      const auto y = static_cast<long long>(c.labels(j));
      if (c.present(j) != S(0) && (y < 0 || y > size))
        throw_invalid(where, "labels[" + std::to_string(j) + "]", y,
                      "a class label must lie in [0, " + std::to_string(size - 1) + "], or be " +
                          std::to_string(size) + " (the empty label)");
    }
  } else if (kind == ConditionKind::Vector) {
    require_rows(where, "condition.context", c.context.rows(), size);
    require_cols(where, "condition.context", c.context.cols(), c.shared ? 1 : n);
  }
}

}  // namespace detail

}  // namespace flowmatch
