#pragma once
/// \file
/// Concepts for distributions (something that samples batches, something with a log-density,
/// something that samples (x, condition) pairs) and DistributionBase, the one sampling convention
/// every distribution of flowmatch follows.

#include <concepts>

#include "flowmatch/core/condition.hpp"
#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch {

/// Valid expressions, for `const D d`, `Rng rng` and a writable `dim x n` matrix `out` of float or
/// double: `d.dim()` -> Index; `d.sample(rng, out)` fills the n columns of `out` with independent
/// draws (one sample per column), using only `rng` for randomness.
template <class D>
concept SampleableDistribution =
    std::copy_constructible<D> &&
    requires(const D& d, Rng& rng, Matrix<float>& out_f, Matrix<double>& out_d) {
      { d.dim() } -> std::convertible_to<Index>;
      d.sample(rng, out_f);
      d.sample(rng, out_d);
    };

/// Valid expressions, for `const D d`, a `dim x n` batch `x` and a writable vector `out` of n
/// entries: `d.log_density(x, out)` writes log p(x_j) for each column j.
template <class D>
concept DensityDistribution =
    requires(const D& d, const Matrix<double>& x, Vector<double>& out) {
      { d.dim() } -> std::convertible_to<Index>;
      d.log_density(x, out);
    };

/// A distribution of (x, condition) pairs. Additionally, for a `ConditionBatch<S> c`:
/// `d.condition_kind()` -> ConditionKind (Label or Vector; an Empirical without a condition says
/// None); `d.sample_with_condition(rng, out, c)` fills `out` as `sample` does (the same draws) and
/// each column's condition into `c` (kind, labels or context, presence all 1), resizing c's
/// buffers in place. Labelled ones say `d.num_classes()`, vector ones `d.condition_dim()`.
template <class D>
concept ConditionalDistribution =
    SampleableDistribution<D> &&
    requires(const D& d, Rng& rng, Matrix<float>& out_f, Matrix<double>& out_d, ConditionBatch<float>& c_f,
             ConditionBatch<double>& c_d) {
      { d.condition_kind() } -> std::same_as<ConditionKind>;
      d.sample_with_condition(rng, out_f, c_f);
      d.sample_with_condition(rng, out_d, c_d);
    };

/// A conditional distribution whose conditions are class labels 0 .. num_classes() - 1, also
/// sampled as `d.sample_labelled(rng, out, labels)` (labels: an Index vector, resized to n).
template <class D>
concept LabelledDistribution =
    ConditionalDistribution<D> && requires(const D& d, Rng& rng, Matrix<float>& out, Vector<Index>& labels) {
      { d.num_classes() } -> std::convertible_to<Index>;
      d.sample_labelled(rng, out, labels);
    };

/// A conditional distribution whose conditions are condition_dim()-dimensional vectors.
template <class D>
concept ContextDistribution = ConditionalDistribution<D> && requires(const D& d) {
  { d.condition_dim() } -> std::convertible_to<Index>;
};

/// The sampling convention of every distribution, by CRTP: a distribution `D` derives from
/// `DistributionBase<D>` and writes one private member
///
///     template <class Derived>
///     void sample_impl(Rng& rng, const Eigen::MatrixBase<Derived>& out, Index* labels) const;
///
/// which fills the dim x n matrix `out` with n independent draws and, when `labels` is not null,
/// each draw's class into labels[0 .. n). The base gives, from it alone:
/// - `sample(rng, out)` and `sample<S>(n, rng)` (a new dim x n matrix);
/// - for a distribution with classes (one that says `num_classes()`): `sample_labelled(rng, out,
///   labels)` and `sample_with_condition(rng, out, condition)` (kind Label), with the very draws of
///   `sample`, so that labelled and unlabelled training see the same random numbers.
/// (Declare `friend DistributionBase<D>;` to keep sample_impl private.)
template <class D>
class DistributionBase {
 public:
  /// Fills the dim x n matrix `out` with n independent draws.
  template <class Derived>
  void sample(Rng& rng, const Eigen::MatrixBase<Derived>& out) const {
    self().sample_impl(rng, out, static_cast<Index*>(nullptr));
  }

  /// n draws as a new dim x n matrix.
  template <Real S = float>
  Matrix<S> sample(Index n, Rng& rng) const {
    if (n < 0) detail::throw_invalid("flowmatch::DistributionBase::sample", "n", n, "must be >= 0");
    Matrix<S> out(self().dim(), n);
    sample(rng, out);
    return out;
  }

  /// The draws of sample(), also writing each one's class into `labels` (resized to n).
  // (The constraints name DD, not D, so that they are checked at the call, where D is complete:
  // clang checks a constraint on D itself when the base is instantiated, with D incomplete.)
  template <class Derived, class Labels, class DD = D>
    requires requires(const DD& d) { d.num_classes(); }
  void sample_labelled(Rng& rng, const Eigen::MatrixBase<Derived>& out, Labels& labels) const {
    labels.resize(out.cols());
    self().sample_impl(rng, out, labels.data());
  }

  /// The draws of sample(), also writing each one's class into `condition` (kind Label, all present).
  template <class Derived, Real S, class DD = D>
    requires requires(const DD& d) { d.num_classes(); }
  void sample_with_condition(Rng& rng, const Eigen::MatrixBase<Derived>& out, ConditionBatch<S>& condition) const {
    condition.set_labels(out.cols());
    self().sample_impl(rng, out, condition.labels.data());
  }

  /// ConditionKind::Label for a distribution with classes.
  template <class DD = D>
    requires requires(const DD& d) { d.num_classes(); }
  ConditionKind condition_kind() const {
    return ConditionKind::Label;
  }

 private:
  const D& self() const { return static_cast<const D&>(*this); }
};

}  // namespace flowmatch
