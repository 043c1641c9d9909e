#pragma once
/// \file
/// An empirical distribution: uniform over a fixed set of points (a data set in a matrix or a CSV
/// file), sampled with replacement, optionally paired with a condition per point (a class label or
/// a context vector) that is sampled together with its point.

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "flowmatch/core/condition.hpp"
#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/distribution/concepts.hpp"
#include "flowmatch/io/csv.hpp"

namespace flowmatch {

/// Which fields of a CSV file hold each row's condition (Empirical::from_csv). Fields are named by
/// their 0-based position (negative: from the end, -1 is the last field) or by their column name
/// (the file then needs a header line). Every other field is a coordinate of the point.
struct CsvCondition {
  ConditionKind kind = ConditionKind::None;
  std::vector<long long> fields;   ///< positions of the condition fields (when `names` is empty)
  std::vector<std::string> names;  ///< or their column names
  Index num_classes = 0;           ///< labels: the number of classes (0: the largest label + 1)

  /// No condition: every field is a coordinate.
  static CsvCondition none() { return {}; }
  /// One field of integer class labels 0, 1, ..., at position `field`.
  static CsvCondition label(long long field, Index num_classes = 0) {
    return {ConditionKind::Label, {field}, {}, num_classes};
  }
  /// One field of integer class labels, by column name.
  static CsvCondition label(std::string name, Index num_classes = 0) {
    return {ConditionKind::Label, {}, {std::move(name)}, num_classes};
  }
  /// Context vectors made of the fields at these positions, in this order.
  static CsvCondition vector(std::vector<long long> fields) { return {ConditionKind::Vector, std::move(fields), {}, 0}; }
  /// Context vectors made of the fields of these column names, in this order.
  static CsvCondition vector(std::vector<std::string> names) { return {ConditionKind::Vector, {}, std::move(names), 0}; }
};

/// The uniform distribution over the n columns of a d x n matrix: each draw is column
/// rng.below(n), independently (with replacement). With a condition (with_labels, with_context,
/// or from_csv with condition fields) it is a distribution of (point, condition) pairs: a draw of
/// column k comes with label k or context column k (sample_labelled, sample_with_context,
/// sample_with_condition), with the same random numbers as sample().
///
/// The data are shared, read-only, between copies (a path and a trainer hold copies): copying an
/// Empirical costs nothing whatever the size of the data set.
class Empirical : public DistributionBase<Empirical> {
 public:
  /// points: d x n, one point per column, d >= 1, n >= 1, every entry finite. Throws
  /// InvalidArgument otherwise.
  explicit Empirical(Matrix<double> points) : Empirical(std::move(points), {}, {}, ConditionKind::None, 0) {}

  /// Points with a class label each: labels(k) in [0, num_classes) is the class of column k
  /// (num_classes = 0: the largest label + 1). Throws InvalidArgument for a label out of range,
  /// DimensionMismatch unless there is one label per point.
  static Empirical with_labels(Matrix<double> points, Vector<Index> labels, Index num_classes = 0) {
    if (num_classes == 0 && labels.size() > 0) num_classes = labels.maxCoeff() + 1;
    return Empirical(std::move(points), std::move(labels), {}, ConditionKind::Label, num_classes);
  }
  /// Points with a context vector each: column k of the c x n matrix `context` goes with column k
  /// of `points`. Every entry finite (InvalidArgument), one column per point (DimensionMismatch).
  static Empirical with_context(Matrix<double> points, Matrix<double> context) {
    return Empirical(std::move(points), {}, std::move(context), ConditionKind::Vector, 0);
  }

  /// Reads a CSV file with one point per line and one coordinate per field, with io/csv.hpp's
  /// read_csv (a first line of names is a header; blank and '#' lines are skipped; a ragged,
  /// empty or non-numeric file throws CsvError naming file:line:column). The fields named by
  /// `condition` are each row's condition (a label field must hold integers >= 0: CsvError
  /// naming the data row otherwise; an unknown field or name throws InvalidArgument). If
  /// `expected_dim` > 0, the number of the other fields must equal it: throws DimensionMismatch
  /// naming the file otherwise.
  /// (A template of nothing, called as a function: as a plain member it compiled the whole CSV
  /// reader into every file that included <flowmatch.hpp>; now only into those that call it.)
  template <class Void = void>
  static Empirical from_csv(const std::string& file, Index expected_dim = 0, const CsvCondition& condition = {}) {
    constexpr const char* where = "flowmatch::Empirical::from_csv";
    CsvTable<double> table = read_csv_table<double>(file);
    const Index width = table.data.rows();
    std::vector<Index> cond;  // the condition's fields, 0-based
    if (condition.kind != ConditionKind::None) {
      if (condition.names.empty() == condition.fields.empty())
        detail::throw_invalid(where, "condition", std::string(condition_kind_name(condition.kind)),
                              "name the condition's fields by position or by column name (one of the two)");
      for (const std::string& name : condition.names) {
        Index found = -1;
        for (std::size_t c = 0; c < table.names.size(); ++c)
          if (table.names[c] == name) found = static_cast<Index>(c);
        if (found < 0)
          detail::throw_invalid(where, "condition column", name,
                                "'" + file + "' has no such column" + (table.names.empty() ? " (it has no header)" : ""));
        cond.push_back(found);
      }
      for (long long f : condition.fields) {
        const long long k = f < 0 ? f + width : f;
        if (k < 0 || k >= width)
          detail::throw_invalid(where, "condition field", f, "'" + file + "' has " + std::to_string(width) + " fields");
        cond.push_back(static_cast<Index>(k));
      }
      for (std::size_t a = 0; a < cond.size(); ++a)
        for (std::size_t b = a + 1; b < cond.size(); ++b)
          if (cond[a] == cond[b]) detail::throw_invalid(where, "condition field", cond[a], "is named twice");
      if (condition.kind == ConditionKind::Label && cond.size() != 1)
        detail::throw_invalid(where, "condition", cond.size(), "a label condition is one field");
    }
    std::vector<bool> is_cond(static_cast<std::size_t>(width), false);
    for (Index c : cond) is_cond[static_cast<std::size_t>(c)] = true;
    const Index dim = width - static_cast<Index>(cond.size());
    if (expected_dim > 0 && dim != expected_dim)
      detail::throw_dimension(where, "'" + file + "'", "fields (dimension)", dim, expected_dim);
    if (dim < 1) detail::throw_invalid(where, "'" + file + "' fields", width, "leave no field for the points");
    Matrix<double> points(dim, table.data.cols());
    for (Index c = 0, i = 0; c < width; ++c)
      if (!is_cond[static_cast<std::size_t>(c)]) points.row(i++) = table.data.row(c);
    if (condition.kind == ConditionKind::Label) {
      Vector<Index> labels(table.data.cols());
      for (Index j = 0; j < labels.size(); ++j) {
        const double v = table.data(cond[0], j);
        if (!(v >= 0.0 && v == std::floor(v) && v < 9.0e15))
          throw CsvError(file, 0, static_cast<long long>(cond[0]) + 1,
                         "data row " + std::to_string(j + 1) + ": the label " + detail::to_string_value(v) +
                             " is not an integer >= 0");
        labels(j) = static_cast<Index>(v);
      }
      return with_labels(std::move(points), std::move(labels), condition.num_classes);
    }
    if (condition.kind == ConditionKind::Vector) {
      Matrix<double> context(static_cast<Index>(cond.size()), table.data.cols());
      for (std::size_t i = 0; i < cond.size(); ++i) context.row(static_cast<Index>(i)) = table.data.row(cond[i]);
      return with_context(std::move(points), std::move(context));
    }
    return Empirical(std::move(points));
  }

  Index dim() const { return data_->points.rows(); }
  Index size() const { return data_->points.cols(); }
  const Matrix<double>& points() const { return data_->points; }

  /// None, Label (with_labels) or Vector (with_context).
  ConditionKind condition_kind() const { return data_->kind; }
  /// The number of classes (0 without labels).
  Index num_classes() const { return data_->classes; }
  /// The context dimension c (0 without context vectors).
  Index condition_dim() const { return data_->kind == ConditionKind::Vector ? data_->context.rows() : 0; }
  /// The label of each point (empty without labels).
  const Vector<Index>& labels() const { return data_->labels; }
  /// The context of each point, one per column (empty without context vectors).
  const Matrix<double>& context() const { return data_->context; }

  /// The draws of sample(), also writing each draw's context vector into the c x n `context`
  /// (resized). Throws InvalidArgument if the points have no context vectors.
  template <class DO, class DC>
  void sample_with_context(Rng& rng, const Eigen::MatrixBase<DO>& out, Eigen::PlainObjectBase<DC>& context) const {
    if (data_->kind != ConditionKind::Vector)
      detail::throw_invalid("flowmatch::Empirical::sample_with_context", "condition",
                            std::string(condition_kind_name(data_->kind)), "these points have no context vectors");
    context.resize(condition_dim(), out.cols());
    draw(rng, out, nullptr, &context.derived());
  }

  /// The draws of sample(), also writing each draw's condition into `condition` (kind None, Label
  /// or Vector as the points have; every condition present), resized in place.
  template <class DO, Real S>
  void sample_with_condition(Rng& rng, const Eigen::MatrixBase<DO>& out, ConditionBatch<S>& condition) const {
    switch (data_->kind) {
      case ConditionKind::None: condition.clear(); draw(rng, out, nullptr, static_cast<Matrix<S>*>(nullptr)); break;
      case ConditionKind::Label: condition.set_labels(out.cols()); draw(rng, out, condition.labels.data(), static_cast<Matrix<S>*>(nullptr)); break;
      case ConditionKind::Vector: condition.set_context(condition_dim(), out.cols()); draw(rng, out, nullptr, &condition.context); break;
    }
  }

 private:
  friend DistributionBase<Empirical>;

  struct Data {
    Matrix<double> points;
    Vector<Index> labels;
    Matrix<double> context;
    ConditionKind kind = ConditionKind::None;
    Index classes = 0;
  };

  Empirical(Matrix<double> points, Vector<Index> labels, Matrix<double> context, ConditionKind kind, Index classes) {
    constexpr const char* where = "flowmatch::Empirical::Empirical";
    detail::require_positive_count(where, "points.rows() (dimension)", points.rows());
    detail::require_positive_count(where, "points.cols() (number of points)", points.cols());
    for (Index j = 0; j < points.cols(); ++j)
      for (Index i = 0; i < points.rows(); ++i)
        if (!std::isfinite(points(i, j)))
          detail::throw_invalid(where, "points(" + std::to_string(i) + ", " + std::to_string(j) + ")", points(i, j),
                                "every entry must be finite");
    if (kind == ConditionKind::Label) {
      if (labels.size() != points.cols()) detail::throw_dimension(where, "labels", "size", labels.size(), points.cols());
      detail::require_positive_count(where, "num_classes", classes);
      for (Index j = 0; j < labels.size(); ++j)
        if (labels(j) < 0 || labels(j) >= classes)
          detail::throw_invalid(where, "labels[" + std::to_string(j) + "]", labels(j),
                                "a label must lie in [0, " + std::to_string(classes - 1) + "]");
    }
    if (kind == ConditionKind::Vector) {
      detail::require_positive_count(where, "context.rows() (condition dimension)", context.rows());
      detail::require_cols(where, "context", context.cols(), points.cols());
      for (Index j = 0; j < context.cols(); ++j)
        for (Index i = 0; i < context.rows(); ++i)
          if (!std::isfinite(context(i, j)))
            detail::throw_invalid(where, "context(" + std::to_string(i) + ", " + std::to_string(j) + ")",
                                  context(i, j), "every entry must be finite");
    }
    data_ = std::make_shared<const Data>(Data{std::move(points), std::move(labels), std::move(context), kind, classes});
  }

  template <class DO>
  void sample_impl(Rng& rng, const Eigen::MatrixBase<DO>& out, Index* labels) const {
    if (labels && data_->kind != ConditionKind::Label)
      detail::throw_invalid("flowmatch::Empirical::sample_labelled", "condition",
                            std::string(condition_kind_name(data_->kind)), "these points have no class labels");
    draw(rng, out, labels, static_cast<Matrix<typename DO::Scalar>*>(nullptr));
  }

  // Column k = rng.below(n) per draw; its label or context alongside when asked for.
  template <class DO, class Ctx>
  void draw(Rng& rng, const Eigen::MatrixBase<DO>& out_, Index* labels, Ctx* context) const {
    auto& out = detail::writable(out_);
    detail::require_rows("flowmatch::Empirical::sample", "out", out.rows(), dim());
    using S = typename DO::Scalar;
    using C = typename Ctx::Scalar;
    const Data& d = *data_;
    const auto n = static_cast<std::uint64_t>(size());
    for (Index j = 0; j < out.cols(); ++j) {
      const auto k = static_cast<Index>(rng.below(n));
      for (Index i = 0; i < dim(); ++i) out(i, j) = static_cast<S>(d.points(i, k));
      if (labels) labels[j] = d.labels(k);
      if (context)
        for (Index i = 0; i < d.context.rows(); ++i) (*context)(i, j) = static_cast<C>(d.context(i, k));
    }
  }

  std::shared_ptr<const Data> data_;
};

}  // namespace flowmatch
