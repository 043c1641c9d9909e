#pragma once
/// \file
/// The Gaussian conditional probability path p_t(x | z) = N(alpha_t z, beta_t^2 I), and its
/// generalisation x_t = alpha_t z + beta_t x0 with x0 from any source distribution.

#include <cmath>
#include <concepts>
#include <string>
#include <type_traits>
#include <utility>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/time.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/coupling/concepts.hpp"
#include "flowmatch/coupling/independent.hpp"
#include "flowmatch/distribution/concepts.hpp"
#include "flowmatch/distribution/standard_normal.hpp"
#include "flowmatch/path/time_density.hpp"
#include "flowmatch/path/training_batch.hpp"
#include "flowmatch/schedule/concepts.hpp"

namespace flowmatch {

/// p_t(x | z) = N(alpha_t z, beta_t^2 I) with z ~ p_data: x_t = alpha_t z + beta_t eps,
/// eps ~ N(0, I). At t = 0 it is N(0, I), at t = 1 it is the point z.
///
/// Conditional vector field: u_t(x | z) = (alpha'_t - beta'_t / beta_t alpha_t) z + beta'_t / beta_t x,
/// which along the path equals alpha'_t z + beta'_t eps. Training uses this second form: it has no
/// division, so it is finite wherever the schedules' derivatives are.
///
/// Near t = 1: beta_t -> 0. The reference implementation's form divides by beta_t and returns NaN at t = 1 (the reference implementation
/// adds 1e-4 to beta'_t to hide it). Here:
/// - `sample_training_batch` draws t from the 2^-24 grid on [0, 1) (the law of PyTorch's float
///   `torch.rand`), so t <= 1 - 2^-24 and, for SquareRootBeta, |beta'_t| <= 2^11: every target
///   is finite. (For SquareRootBeta the conditional field genuinely grows like (1 - t)^-1/2.)
/// - `conditional_vector_field(x, z, t)` and `conditional_score` need beta_t > 0 and throw
///   InvalidArgument at a t where beta_t = 0 (x = z there and the field is not determined by x).
/// - `conditional_vector_field_from_noise(z, eps, t)` throws InvalidArgument at a t where a schedule
///   derivative is infinite (t = 1 for SquareRootBeta) instead of returning infinity.
///
/// Other sources. `Source` (default StandardNormal, N(0, I)) is any SampleableDistribution of the
/// data's dimension: x_t = alpha_t z + beta_t x0 with x0 ~ Source bridges two distributions (for
/// example two data sets). What stays valid with a source other than N(0, I):
/// - every schedule still defines a path from the source (t = 0, where alpha_0 = 0 and beta_0 = 1)
///   to the data (t = 1), and the training target u = alpha'_t z + beta'_t x0 and
///   `conditional_vector_field(x, z, t)` (which recovers x0 = (x - alpha_t z) / beta_t) are exact
///   for any source;
/// - `conditional_score` is the score of N(alpha_t z, beta_t^2 I) and exists only for the
///   StandardNormal source (it does not compile otherwise); score-based reasoning (the VP
///   diffusion's SDE, the equivalence of the VP/cosine schedules with diffusion models) assumes
///   a Gaussian source too;
/// - schedules that miss an endpoint by design (VariancePreservingAlpha: alpha_0 > 0, LipmanOTBeta:
///   beta_1 = sigma_min) blur the data or the source by that amount, whatever the source.
///
/// Couplings. `Coup` (default IndependentCoupling) pairs the source and data batches of
/// `sample_training_batch` (e.g. MinibatchOTCoupling). The trainer needs no change: the path hands
/// it coupled batches. `sample_conditional_path` and `sample_marginal_path` draw independent pairs.
/// With the defaults, every member draws exactly the reference implementation's random numbers in the reference implementation's order.
///
/// Training times. `Time` (default UniformTime: t ~ U[0, 1) on the 2^-24 grid) is the density of
/// the t of `sample_training_batch` (path/time_density.hpp; PowerTime skews it toward the data, as
/// FMPE does for posterior estimation). One draw of it replaces the uniform draw, in the same place
/// of the random stream. A WeightedTime density also fills batch.weight with w(t) per sample, and
/// the trainer weights each sample's loss by it.
template <AlphaSchedule Alpha, BetaSchedule Beta, SampleableDistribution Data,
          SampleableDistribution Source = StandardNormal, Coupling Coup = IndependentCoupling,
          TimeDensity Time = UniformTime>
class GaussianConditionalPath {
  // The reference implementation's draw order (t, then eps entry by entry, interleaved) applies to the default source
  // and coupling; other sources are drawn a whole batch at a time.
  static constexpr bool kSeedSampling =
      std::same_as<Source, StandardNormal> && std::same_as<Coup, IndependentCoupling>;
  static constexpr bool kCarriesConditions = ConditionalDistribution<Data> && std::same_as<Coup, IndependentCoupling>;

 public:
  using alpha_type = Alpha;
  using beta_type = Beta;
  using data_type = Data;
  using source_type = Source;
  using coupling_type = Coup;
  using time_density_type = Time;

  /// Checks the schedules' endpoints (alpha_0 = 0, alpha_1 = 1, beta_0 = 1, beta_1 = 0, within
  /// 1e-9 or the schedule's endpoint_tolerance()) and throws InvalidArgument naming the one that
  /// is off. The source is Source(p_data.dim()) (N(0, I) by default), or Source{} if it cannot be
  /// built from a dimension.
  explicit GaussianConditionalPath(Data p_data, Alpha alpha = Alpha{}, Beta beta = Beta{})
      : GaussianConditionalPath(std::move(p_data), std::move(alpha), std::move(beta), default_source{}) {}

  /// The same with an explicit source distribution (its dimension must be the data's; throws
  /// DimensionMismatch otherwise) and coupling.
  GaussianConditionalPath(Data p_data, Alpha alpha, Beta beta, Source source, Coup coupling = Coup{},
                          Time time = Time{})
      : p_data_(std::move(p_data)),
        alpha_(std::move(alpha)),
        beta_(std::move(beta)),
        source_(std::move(source)),
        coupling_(std::move(coupling)),
        time_(std::move(time)) {
    check_construction();
  }

  Index dim() const { return static_cast<Index>(p_data_.dim()); }
  const Data& p_data() const { return p_data_; }
  const Source& source() const { return source_; }
  const Coup& coupling() const { return coupling_; }
  /// The density of the training times.
  const Time& time_density() const { return time_; }
  const Alpha& alpha() const { return alpha_; }
  const Beta& beta() const { return beta_; }

  /// Fills z (dim x n) with samples of p_data.
  template <class DZ>
  void sample_conditioning_variable(Rng& rng, const Eigen::MatrixBase<DZ>& z) const {
    detail::require_rows("flowmatch::GaussianConditionalPath::sample_conditioning_variable", "z",
                         z.rows(), dim());
    p_data_.sample(rng, z);
  }

  /// x_j = alpha_t z_j + beta_t eps_j with eps from `rng`: a sample of p_t(. | z_j) per column.
  /// t is one time in [0, 1] or one per column. With a source other than StandardNormal, eps is a
  /// batch of the source drawn into x first (x must then not alias z).
  template <class DZ, TimeArgument T, class DX>
  void sample_conditional_path(const Eigen::MatrixBase<DZ>& z, const T& t, Rng& rng,
                               const Eigen::MatrixBase<DX>& x_) const {
    constexpr const char* where = "flowmatch::GaussianConditionalPath::sample_conditional_path";
    auto& x = detail::writable(x_);
    check_batch(where, "z", z);
    check_same_shape(where, "x", x, z);
    detail::require_unit_times(where, "t", t, z.cols());
    using S = typename DX::Scalar;
    if constexpr (!std::same_as<Source, StandardNormal>) source_.sample(rng, x);
    for (Index j = 0; j < z.cols(); ++j) {
      const double tj = detail::time_at(t, j);
      const double a = alpha_.value(tj), b = beta_.value(tj);
      for (Index i = 0; i < dim(); ++i)
        x(i, j) = static_cast<S>(a * static_cast<double>(z(i, j)) + b * draw_source(rng, x, i, j));
    }
  }

  /// u_t(x | z) = (alpha'_t - beta'_t / beta_t alpha_t) z + beta'_t / beta_t x (the reference implementation's form).
  /// Needs beta_t > 0: throws InvalidArgument at a t where beta_t = 0.
  template <class DX, class DZ, TimeArgument T, class DU>
  void conditional_vector_field(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DZ>& z,
                                const T& t, const Eigen::MatrixBase<DU>& u_) const {
    constexpr const char* where = "flowmatch::GaussianConditionalPath::conditional_vector_field";
    auto& u = detail::writable(u_);
    check_batch(where, "x", x);
    check_same_shape(where, "z", z, x);
    check_same_shape(where, "u", u, x);
    detail::require_unit_times(where, "t", t, x.cols());
    using S = typename DU::Scalar;
    for (Index j = 0; j < x.cols(); ++j) {
      const double tj = detail::time_at(t, j);
      const double a = alpha_.value(tj), b = beta_.value(tj);
      require_positive_beta(where, tj, b);
      const double da = alpha_.derivative(tj), db = beta_.derivative(tj);
      const double cz = da - db / b * a, cx = db / b;
      for (Index i = 0; i < dim(); ++i)
        u(i, j) = static_cast<S>(cz * static_cast<double>(z(i, j)) + cx * static_cast<double>(x(i, j)));
    }
  }

  /// u_t(x | z) for x = alpha_t z + beta_t eps, in the division-free form alpha'_t z + beta'_t eps.
  /// Throws InvalidArgument where alpha'_t or beta'_t is not finite (t = 1 for SquareRootBeta).
  template <class DZ, class DE, TimeArgument T, class DU>
  void conditional_vector_field_from_noise(const Eigen::MatrixBase<DZ>& z,
                                           const Eigen::MatrixBase<DE>& eps, const T& t,
                                           const Eigen::MatrixBase<DU>& u_) const {
    constexpr const char* where = "flowmatch::GaussianConditionalPath::conditional_vector_field_from_noise";
    auto& u = detail::writable(u_);
    check_batch(where, "z", z);
    check_same_shape(where, "eps", eps, z);
    check_same_shape(where, "u", u, z);
    detail::require_unit_times(where, "t", t, z.cols());
    using S = typename DU::Scalar;
    for (Index j = 0; j < z.cols(); ++j) {
      const double tj = detail::time_at(t, j);
      const double da = alpha_.derivative(tj), db = beta_.derivative(tj);
      if (!std::isfinite(da) || !std::isfinite(db))
        detail::throw_invalid(where, "t", tj,
                              "a schedule derivative is not finite there (alpha'_t = " +
                                  detail::to_string_value(da) + ", beta'_t = " + detail::to_string_value(db) +
                                  "): the conditional vector field is unbounded");
      for (Index i = 0; i < dim(); ++i)
        u(i, j) = static_cast<S>(da * static_cast<double>(z(i, j)) + db * static_cast<double>(eps(i, j)));
    }
  }

  /// Score of the conditional path: grad_x log p_t(x | z) = -(x - alpha_t z) / beta_t^2.
  /// Needs beta_t > 0: throws InvalidArgument at a t where beta_t = 0. Only for the StandardNormal
  /// source (p_t(x | z) is not Gaussian otherwise).
  template <class DX, class DZ, TimeArgument T, class DS>
    requires std::same_as<Source, StandardNormal>
  void conditional_score(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DZ>& z, const T& t,
                         const Eigen::MatrixBase<DS>& score_) const {
    constexpr const char* where = "flowmatch::GaussianConditionalPath::conditional_score";
    auto& score = detail::writable(score_);
    check_batch(where, "x", x);
    check_same_shape(where, "z", z, x);
    check_same_shape(where, "score", score, x);
    detail::require_unit_times(where, "t", t, x.cols());
    using S = typename DS::Scalar;
    for (Index j = 0; j < x.cols(); ++j) {
      const double tj = detail::time_at(t, j);
      const double a = alpha_.value(tj), b = beta_.value(tj);
      require_positive_beta(where, tj, b);
      const double inv_var = 1.0 / (b * b);
      for (Index i = 0; i < dim(); ++i)
        score(i, j) = static_cast<S>(-(static_cast<double>(x(i, j)) - a * static_cast<double>(z(i, j))) * inv_var);
    }
  }

  /// Samples of the marginal path p_t = E_z[p_t(. | z)]: z ~ p_data, then x ~ p_t(. | z).
  /// The batch size is x.cols(); t is one time in [0, 1] or one per column. (With a source other
  /// than StandardNormal it allocates a buffer for the source batch.)
  template <TimeArgument T, class DX>
  void sample_marginal_path(const T& t, Rng& rng, const Eigen::MatrixBase<DX>& x_) const {
    constexpr const char* where = "flowmatch::GaussianConditionalPath::sample_marginal_path";
    auto& x = detail::writable(x_);
    detail::require_rows(where, "x", x.rows(), dim());
    detail::require_unit_times(where, "t", t, x.cols());
    using S = typename DX::Scalar;
    if constexpr (!std::same_as<Source, StandardNormal>) {
      Matrix<S> z(dim(), x.cols());
      p_data_.sample(rng, z);
      sample_conditional_path(z, t, rng, x);
      return;
    }
    p_data_.sample(rng, x);  // z, then x = alpha z + beta eps in place
    for (Index j = 0; j < x.cols(); ++j) {
      const double tj = detail::time_at(t, j);
      const double a = alpha_.value(tj), b = beta_.value(tj);
      for (Index i = 0; i < dim(); ++i)
        x(i, j) = static_cast<S>(a * static_cast<double>(x(i, j)) + b * rng.normal());
    }
  }

  /// Fills a training batch: z ~ p_data, t ~ U{0, 2^-24, ..., 1 - 2^-24} per column, eps ~ N(0, I),
  /// x = alpha_t z + beta_t eps and u = alpha'_t z + beta'_t eps. Allocates nothing (a coupling
  /// sizes its buffers on its first call at a batch size). Every entry is finite for schedules
  /// whose derivatives are finite on [0, 1).
  ///
  /// With another source or coupling: z ~ p_data, then x0 ~ source (a whole batch, held in
  /// batch.x), then the coupling reorders z against x0, then t per column, x = alpha_t z + beta_t x0
  /// and u = alpha'_t z + beta'_t x0.
  ///
  /// Conditions: when the data are (z, condition) pairs (a ConditionalDistribution: labelled toy
  /// data, an Empirical with labels or context vectors, ...) and the coupling is the independent
  /// one, z is drawn with `p_data().sample_with_condition` and batch.condition holds each column's
  /// condition (all present): the very draws of the unconditional call, so that conditional and
  /// unconditional training see the same random numbers. Otherwise batch.condition is cleared
  /// (kind None): a minibatch OT coupling pairs across conditions and reorders z without them.
  template <Real S>
  void sample_training_batch(Rng& rng, TrainingBatch<S>& batch) const {
    detail::require_rows("flowmatch::GaussianConditionalPath::sample_training_batch", "batch.z",
                         batch.z.rows(), dim());
    if constexpr (kCarriesConditions) {
      p_data_.sample_with_condition(rng, batch.z, batch.condition);
    } else {
      p_data_.sample(rng, batch.z);
      batch.condition.clear();
    }
    complete_training_batch(rng, batch);
  }

  /// Whether sample_training_batch fills batch.condition (conditional data, independent coupling).
  static constexpr bool carries_conditions() { return kCarriesConditions; }

 private:
  // Everything after z: x0 (or eps), the coupling, t, x and u. For the reference workload's N(0, I) source
  // with the independent coupling, eps is drawn entry by entry in the reference implementation's order; otherwise the
  // source batch is drawn (and paired with z by the coupling) first, into x, and read back.
  template <Real S>
  void complete_training_batch(Rng& rng, TrainingBatch<S>& batch) const {
    if constexpr (!kSeedSampling) {
      source_.sample(rng, batch.x);
      coupling_.pair(rng, batch.x, batch.z);
    }
    if constexpr (WeightedTimeDensity<Time>) {
      if (batch.weight.size() != batch.size()) batch.weight.resize(batch.size());  // first batch of a size only
    } else if (batch.weight.size() != 0) {
      batch.weight.resize(0);
    }
    for (Index j = 0; j < batch.size(); ++j) {
      const double tj = time_.sample(rng);
      const double a = alpha_.value(tj), b = beta_.value(tj);
      const double da = alpha_.derivative(tj), db = beta_.derivative(tj);
      batch.t(j) = static_cast<S>(tj);
      if constexpr (WeightedTimeDensity<Time>) batch.weight(j) = static_cast<S>(time_.weight(tj));
      for (Index i = 0; i < dim(); ++i) {
        const double zi = static_cast<double>(batch.z(i, j));
        double x0;
        if constexpr (kSeedSampling) {
          x0 = rng.normal();
        } else {
          x0 = static_cast<double>(batch.x(i, j));
        }
        batch.x(i, j) = static_cast<S>(a * zi + b * x0);
        batch.u(i, j) = static_cast<S>(da * zi + db * x0);
      }
    }
  }

  struct default_source {};
  GaussianConditionalPath(Data p_data, Alpha alpha, Beta beta, default_source)
      : p_data_(std::move(p_data)),
        alpha_(std::move(alpha)),
        beta_(std::move(beta)),
        source_(make_default_source(p_data_)),
        coupling_() {
    check_construction();
  }
  static Source make_default_source(const Data& p_data) {
    if constexpr (std::constructible_from<Source, Index>) {
      detail::require_positive_count("flowmatch::GaussianConditionalPath::GaussianConditionalPath", "p_data.dim()",
                                     static_cast<long long>(p_data.dim()));
      return Source(static_cast<Index>(p_data.dim()));
    } else {
      return Source{};
    }
  }

  void check_construction() const {
    constexpr const char* where = "flowmatch::GaussianConditionalPath::GaussianConditionalPath";
    detail::require_positive_count(where, "p_data.dim()", static_cast<long long>(p_data_.dim()));
    if (static_cast<Index>(source_.dim()) != dim())
      detail::throw_dimension(where, "source", "dimension", static_cast<long long>(source_.dim()), dim());
    const double ta = detail::endpoint_tolerance(alpha_), tb = detail::endpoint_tolerance(beta_);
    const auto check = [&](const char* name, double got, double want, double tol) {
      if (!(std::abs(got - want) <= tol))
        detail::throw_invalid(where, name, got, "a schedule must satisfy alpha_0 = 0, alpha_1 = 1, beta_0 = 1, beta_1 = 0");
    };
    check("alpha.value(0)", alpha_.value(0.0), 0.0, ta);
    check("alpha.value(1)", alpha_.value(1.0), 1.0, ta);
    check("beta.value(0)", beta_.value(0.0), 1.0, tb);
    check("beta.value(1)", beta_.value(1.0), 0.0, tb);
  }

  // The source draw for entry (i, j): a fresh normal for the reference workload's N(0, I) (drawn in place, in
  // the reference implementation's order), else the entry of the source batch already drawn into `x`.
  template <class DX>
  double draw_source(Rng& rng, const Eigen::MatrixBase<DX>& x, Index i, Index j) const {
    if constexpr (std::same_as<Source, StandardNormal>) {
      (void)x, (void)i, (void)j;
      return rng.normal();
    } else {
      return static_cast<double>(x(i, j));
    }
  }

  template <class D>
  void check_batch(const char* where, const char* arg, const Eigen::MatrixBase<D>& m) const {
    detail::require_rows(where, arg, m.rows(), dim());
  }
  template <class D, class E>
  static void check_same_shape(const char* where, const char* arg, const Eigen::MatrixBase<D>& m,
                               const Eigen::MatrixBase<E>& ref) {
    detail::require_rows(where, arg, m.rows(), ref.rows());
    detail::require_cols(where, arg, m.cols(), ref.cols());
  }
  static void require_positive_beta(const char* where, double t, double b) {
    if (!(b > 0.0))
      detail::throw_invalid(where, "t", t,
                            "beta_t = " + detail::to_string_value(b) +
                                " there: the reference implementation's form divides by beta_t (use "
                                "conditional_vector_field_from_noise, or t < 1)");
  }

  Data p_data_;
  Alpha alpha_;
  Beta beta_;
  Source source_;
  Coup coupling_;
  Time time_;
};

}  // namespace flowmatch
