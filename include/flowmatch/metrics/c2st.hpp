#pragma once
/// \file
/// C2ST, the classifier two-sample test, with the protocol of the sbibm benchmark (Lueckmann et al.,
/// AISTATS 2021; sbibm/metrics/c2st.py): the accuracy with which a small neural network, trained
/// by cross-validation, tells samples of one distribution from samples of another. 0.5 means the
/// two sets are indistinguishable to the classifier, 1 means they are disjoint.
///
/// The protocol, reproduced here without Python:
///  - z-score both sets with the reference set's mean and its unbiased (n - 1) standard deviation;
///  - label the reference 0 and the samples 1, and split the union into `folds` folds after one
///    shuffle (scikit-learn's KFold(shuffle=True): the first n % folds folds get one extra sample);
///  - on each fold, train scikit-learn's default MLPClassifier as sbibm configures it: two hidden
///    ReLU layers of 10 x dim units, one logistic output, log-loss plus the L2 penalty
///    alpha / 2 * sum(W^2) / batch (weights only, not biases), Glorot-uniform initialisation of
///    weights and biases with bound sqrt(6 / (fan_in + fan_out)), minibatches of min(200, n)
///    drawn from a fresh shuffle every epoch, and scikit-learn's Adam
///      m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2,
///      p <- p - lr sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
///    (eps outside the bias correction, unlike PyTorch's Adam in optim/adam.hpp);
///    training stops once the epoch's mean training loss has failed to improve on the best so far
///    by more than tol for more than n_iter_no_change consecutive epochs (scikit-learn's test
///    `count > n_iter_no_change`), or after max_epochs epochs;
///  - predict class 1 where the output probability exceeds 0.5, and average the folds' accuracies.
///
/// Everything is computed in float (as scikit-learn does for sbibm's float32 samples). Random
/// streams (shuffles, folds, initialisation) are flowmatch's own Rng, so results agree with
/// scikit-learn's in distribution, not digit for digit: about +-0.01 at 10,000 vs 10,000 samples.
/// Folds are independent, so they run in parallel, each with its own stream: the result depends on
/// the seed only, never on the thread count. A training step does not allocate.
///
/// Cost at 10,000 vs 10,000 samples on one core: about 0.2 s at d = 2, 5-6 s at d = 5 and 25-35 s
/// at d = 10, where scikit-learn's stopping rule lets the classifier train (and overfit) for about
/// 500 epochs a fold; benchmarks/README.md compares accuracy and time with scikit-learn.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/thread_pool.hpp"
#include "flowmatch/core/types.hpp"

namespace flowmatch {

/// Settings of c2st. The defaults are sbibm's (and scikit-learn's MLPClassifier defaults).
struct C2STOptions {
  std::uint64_t seed = 1;          ///< shuffles, folds and initialisation
  int folds = 5;                   ///< number of cross-validation folds, at least 2
  bool z_score = true;             ///< with the reference's mean and (n - 1) standard deviation
  int threads = 1;                 ///< folds run in parallel on up to this many threads (0 = hardware)
  long long max_epochs = 10000;    ///< scikit-learn's max_iter (epochs)
  double tol = 1e-4;               ///< required improvement of the training loss
  int n_iter_no_change = 10;       ///< epochs without improvement tolerated before stopping
  long long batch_size = 200;      ///< minibatch size, clipped to the training-set size
  double learning_rate = 1e-3;     ///< scikit-learn's learning_rate_init
  double alpha = 1e-4;             ///< L2 penalty strength
  double beta1 = 0.9;              ///< Adam's first-moment decay
  double beta2 = 0.999;            ///< Adam's second-moment decay
  double epsilon = 1e-8;           ///< Adam's denominator offset
  long long hidden = 0;            ///< units of each of the two hidden layers; 0 = 10 x dim (sbibm)
};

/// What c2st_detailed reports.
struct C2STResult {
  double accuracy;                    ///< mean of fold_accuracy
  std::vector<double> fold_accuracy;  ///< test accuracy of each fold's classifier
  long long epochs_total;             ///< epochs trained, summed over the folds
};

namespace detail {

/// The sbibm classifier: dim -> h -> h -> 1, ReLU hidden layers, logistic output, trained by
/// scikit-learn's Adam on one fold. Every buffer is sized in the constructor.
/// A template of nothing (C2STClassifier below) so that its Eigen code is compiled only in the
/// files that call c2st, not in every file that includes <flowmatch.hpp> (issue 20).
template <class Void = void>
class BasicC2STClassifier {
  using F = dependent_t<float, Void>;

 public:
  BasicC2STClassifier(Index dim, Index hidden, Index batch)
      : d_(dim), h_(hidden), b_(batch),
        n_params_(h_ * d_ + h_ + h_ * h_ + h_ + h_ + 1),
        params_(n_params_), grads_(n_params_), m_(Vector<F>::Zero(n_params_)),
        v_(Vector<F>::Zero(n_params_)),
        xb_(d_, b_), yb_(1, b_), a1_(h_, b_), a2_(h_, b_), z3_(1, b_), d1_(h_, b_), d2_(h_, b_),
        d3_(1, b_) {}

  /// Glorot-uniform weights and biases, bound sqrt(6 / (fan_in + fan_out)) for each layer.
  void initialise(Rng& rng) {
    const auto fill = [&](float* p, Index count, Index fan_in, Index fan_out) {
      const double bound = std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
      for (Index i = 0; i < count; ++i) p[i] = static_cast<F>(bound * (2.0 * rng.uniform() - 1.0));
    };
    float* p = params_.data();
    fill(p, h_ * d_ + h_, d_, h_);  // W1, b1
    p += h_ * d_ + h_;
    fill(p, h_ * h_ + h_, h_, h_);  // W2, b2
    p += h_ * h_ + h_;
    fill(p, h_ + 1, h_, 1);         // W3, b3
    m_.setZero();
    v_.setZero();
    t_ = 0;
  }

  /// Trains on the columns `index` of (x, y) until the loss stalls or max_epochs; returns epochs.
  long long train(const Matrix<F>& x, const RowVector<F>& y, std::vector<Index>& index,
                  const C2STOptions& o, Rng& rng) {
    const Index n = static_cast<Index>(index.size());
    const Index bs = std::min<Index>(b_, n);
    double best = std::numeric_limits<double>::infinity();
    int no_improvement = 0;
    long long epoch = 0;
    while (epoch < o.max_epochs) {
      // Fisher-Yates shuffle of the training indices (scikit-learn shuffles every epoch).
      for (Index i = n - 1; i > 0; --i)
        std::swap(index[static_cast<std::size_t>(i)],
                  index[static_cast<std::size_t>(rng.below(static_cast<std::uint64_t>(i + 1)))]);
      double accumulated = 0.0;
      for (Index j0 = 0; j0 < n; j0 += bs) {
        const Index nb = std::min(bs, n - j0);
        for (Index j = 0; j < nb; ++j) {
          const Index c = index[static_cast<std::size_t>(j0 + j)];
          xb_.col(j) = x.col(c);
          yb_(j) = y(c);
        }
        accumulated += step(nb, o) * static_cast<double>(nb);
      }
      ++epoch;
      const double loss = accumulated / static_cast<double>(n);
      // A NaN loss would never count as "no improvement": stop here (scikit-learn raises too).
      if (!std::isfinite(loss) || !params_.allFinite())
        throw NumericalError("flowmatch::c2st: training diverged (epoch " + std::to_string(epoch) +
                             " mean loss = " + detail::to_string_value(loss) +
                             "); try a smaller options.learning_rate");
      if (loss > best - o.tol)
        ++no_improvement;
      else
        no_improvement = 0;
      if (loss < best) best = loss;
      if (no_improvement > o.n_iter_no_change) break;
    }
    return epoch;
  }

  /// Number of the columns `index` of (x, y) classified correctly (class 1 where p > 0.5).
  Index correct(const Matrix<F>& x, const RowVector<F>& y, const std::vector<Index>& index) {
    const Index n = static_cast<Index>(index.size());
    Index right = 0;
    for (Index j0 = 0; j0 < n; j0 += b_) {
      const Index nb = std::min(b_, n - j0);
      for (Index j = 0; j < nb; ++j) xb_.col(j) = x.col(index[static_cast<std::size_t>(j0 + j)]);
      forward(nb);
      for (Index j = 0; j < nb; ++j) {
        // p > 0.5 computed in float as in training (for tiny z > 0, p rounds to 0.5: class 0).
        const float p = 1.0f / (1.0f + std::exp(-z3_(j)));
        const float label = p > 0.5f ? 1.0f : 0.0f;
        if (label == y(index[static_cast<std::size_t>(j0 + j)])) ++right;
      }
    }
    return right;
  }

 private:
  using MapM = Eigen::Map<Matrix<F>>;
  using MapV = Eigen::Map<Vector<F>>;
  using MapR = Eigen::Map<RowVector<F>>;

  MapM w1(Vector<F>& p) const { return MapM(p.data(), h_, d_); }
  MapV b1(Vector<F>& p) const { return MapV(p.data() + h_ * d_, h_); }
  MapM w2(Vector<F>& p) const { return MapM(p.data() + h_ * d_ + h_, h_, h_); }
  MapV b2(Vector<F>& p) const { return MapV(p.data() + h_ * d_ + h_ + h_ * h_, h_); }
  MapR w3(Vector<F>& p) const { return MapR(p.data() + h_ * d_ + 2 * h_ + h_ * h_, h_); }
  float& b3(Vector<F>& p) const { return p(n_params_ - 1); }

  /// [a > 0] as 0 / 1 for ReLU outputs a >= 0, in arithmetic Eigen vectorises (a select does not):
  /// any a > 0, even the least subnormal 2^-149, becomes >= 1 (or inf) after * 2^75 * 2^74.
  template <class A>
  static auto relu_mask(const A& a) {
    return ((a.array() * 0x1p75f) * 0x1p74f).min(1.0f);
  }

  void forward(Index nb) {
    auto x = xb_.leftCols(nb);
    auto a1 = a1_.leftCols(nb);
    auto a2 = a2_.leftCols(nb);
    auto z3 = z3_.leftCols(nb);
    a1.noalias() = w1(params_) * x;
    a1 = (a1.colwise() + b1(params_)).cwiseMax(0.0f);
    a2.noalias() = w2(params_) * a1;
    a2 = (a2.colwise() + b2(params_)).cwiseMax(0.0f);
    z3.noalias() = w3(params_) * a2;
    z3.array() += b3(params_);
  }

  /// One minibatch of nb columns already in xb_ / yb_: forward, loss, backward, Adam update.
  /// Returns the batch's loss (mean log-loss plus the L2 term), as scikit-learn computes it.
  double step(Index nb, const C2STOptions& o) {
    forward(nb);
    auto x = xb_.leftCols(nb);
    auto a1 = a1_.leftCols(nb);
    auto a2 = a2_.leftCols(nb);
    auto z3 = z3_.leftCols(nb);
    auto yb = yb_.leftCols(nb);
    auto d1 = d1_.leftCols(nb);
    auto d2 = d2_.leftCols(nb);
    auto d3 = d3_.leftCols(nb);
    // Output: p = sigmoid(z), loss = -mean(y log p + (1 - y) log(1 - p)) with p clipped to
    // [eps, 1 - eps] (float's eps, as scikit-learn's binary_log_loss); delta = p - y.
    // Vectorised over the batch; d3 holds p until it becomes the delta.
    constexpr float clip = std::numeric_limits<F>::epsilon();
    d3.array() = 1.0f / (1.0f + (-z3.array()).exp());
    const auto pc = d3.array().max(clip).min(1.0f - clip);
    const double log_loss =
        -static_cast<double>((yb.array() * pc.log() + (1.0f - yb.array()) * (1.0f - pc).log()).sum());
    d3 -= yb;
    const double inv_n = 1.0 / static_cast<double>(nb);
    const double l2 = static_cast<double>(w1(params_).squaredNorm()) +
                      static_cast<double>(w2(params_).squaredNorm()) +
                      static_cast<double>(w3(params_).squaredNorm());
    const double loss = log_loss * inv_n + 0.5 * o.alpha * l2 * inv_n;

    const float alpha = static_cast<F>(o.alpha), inv = static_cast<F>(inv_n);
    // Layer 3: gW = (delta a2^T + alpha W) / n, gb = mean(delta).
    w3(grads_).noalias() = d3 * a2.transpose();
    w3(grads_) = (w3(grads_) + alpha * w3(params_)) * inv;
    b3(grads_) = d3.sum() * inv;
    // Layer 2.
    d2.noalias() = w3(params_).transpose() * d3;
    d2.array() *= relu_mask(a2);
    w2(grads_).noalias() = d2 * a1.transpose();
    w2(grads_) = (w2(grads_) + alpha * w2(params_)) * inv;
    b2(grads_) = d2.rowwise().sum() * inv;
    // Layer 1.
    d1.noalias() = w2(params_).transpose() * d2;
    d1.array() *= relu_mask(a1);
    w1(grads_).noalias() = d1 * x.transpose();
    w1(grads_) = (w1(grads_) + alpha * w1(params_)) * inv;
    b1(grads_) = d1.rowwise().sum() * inv;

    // scikit-learn's Adam.
    ++t_;
    const float b1c = static_cast<F>(o.beta1), b2c = static_cast<F>(o.beta2);
    const double td = static_cast<double>(t_);
    const float lr = static_cast<F>(o.learning_rate * std::sqrt(1.0 - std::pow(o.beta2, td)) /
                                        (1.0 - std::pow(o.beta1, td)));
    const float eps = static_cast<F>(o.epsilon);
    m_.array() = b1c * m_.array() + (1.0f - b1c) * grads_.array();
    v_.array() = b2c * v_.array() + (1.0f - b2c) * grads_.array().square();
    params_.array() -= lr * m_.array() / (v_.array().sqrt() + eps);
    return loss;
  }

  Index d_, h_, b_, n_params_;
  Vector<F> params_, grads_, m_, v_;  // [W1 (h x d), b1, W2 (h x h), b2, W3 (1 x h), b3]
  Matrix<F> xb_;
  RowVector<F> yb_;
  Matrix<F> a1_, a2_;
  RowVector<F> z3_;
  Matrix<F> d1_, d2_;
  RowVector<F> d3_;
  long long t_ = 0;
};
using C2STClassifier = BasicC2STClassifier<>;

inline void check_c2st_options(const char* where, const C2STOptions& o) {
  if (o.folds < 2) throw_invalid(where, "options.folds", o.folds, "must be at least 2");
  if (o.threads < 0) throw_invalid(where, "options.threads", o.threads, "must be >= 0 (0 = every core)");
  if (o.max_epochs < 1) throw_invalid(where, "options.max_epochs", o.max_epochs, "must be at least 1");
  if (!(o.tol >= 0.0 && std::isfinite(o.tol))) throw_invalid(where, "options.tol", o.tol, "must be finite and >= 0");
  if (o.n_iter_no_change < 1)
    throw_invalid(where, "options.n_iter_no_change", o.n_iter_no_change, "must be at least 1");
  if (o.batch_size < 1) throw_invalid(where, "options.batch_size", o.batch_size, "must be at least 1");
  if (!(o.learning_rate > 0.0 && std::isfinite(o.learning_rate)))
    throw_invalid(where, "options.learning_rate", o.learning_rate, "must be finite and > 0");
  if (!(o.alpha >= 0.0 && std::isfinite(o.alpha)))
    throw_invalid(where, "options.alpha", o.alpha, "must be finite and >= 0");
  if (!(o.beta1 >= 0.0 && o.beta1 < 1.0)) throw_invalid(where, "options.beta1", o.beta1, "must lie in [0, 1)");
  if (!(o.beta2 >= 0.0 && o.beta2 < 1.0)) throw_invalid(where, "options.beta2", o.beta2, "must lie in [0, 1)");
  if (!(o.epsilon > 0.0 && std::isfinite(o.epsilon)))
    throw_invalid(where, "options.epsilon", o.epsilon, "must be finite and > 0");
  if (o.hidden < 0) throw_invalid(where, "options.hidden", o.hidden, "must be >= 0 (0 = 10 x dim)");
}

template <class D>
void require_finite_samples(const char* where, const char* arg, const Eigen::MatrixBase<D>& x) {
  for (Index j = 0; j < x.cols(); ++j)
    for (Index i = 0; i < x.rows(); ++i)
      if (!std::isfinite(static_cast<double>(x(i, j))))
        throw_invalid(where, std::string(arg) + "(" + std::to_string(i) + ", " + std::to_string(j) + ")",
                      static_cast<double>(x(i, j)), "every sample must be finite");
}

}  // namespace detail

/// C2ST accuracy with its per-fold details: `reference` is d x n (one sample per column, label 0),
/// `samples` d x m (label 1). Throws InvalidArgument for invalid options, empty or non-finite
/// input, fewer samples in all than folds, or (with z_score) a reference of fewer than 2 samples
/// or with a constant coordinate; DimensionMismatch if the two sets differ in dimension;
/// NumericalError if training diverges (a non-finite loss or weight).
template <class DR, class DS>
C2STResult c2st_detailed(const Eigen::MatrixBase<DR>& reference, const Eigen::MatrixBase<DS>& samples,
                         const C2STOptions& options = {}) {
  constexpr const char* where = "flowmatch::c2st";
  detail::check_c2st_options(where, options);
  const Index d = reference.rows(), n = reference.cols(), m = samples.cols();
  if (d < 1) detail::throw_invalid(where, "reference.rows() (dimension)", d, "must be at least 1");
  if (n < 1) detail::throw_invalid(where, "reference.cols() (number of samples)", n, "must be at least 1");
  detail::require_rows(where, "samples", samples.rows(), d);
  if (m < 1) detail::throw_invalid(where, "samples.cols() (number of samples)", m, "must be at least 1");
  const Index total = n + m;
  if (total < options.folds)
    detail::throw_invalid(where, "reference.cols() + samples.cols()", total,
                          "must be at least options.folds = " + std::to_string(options.folds));
  detail::require_finite_samples(where, "reference", reference);
  detail::require_finite_samples(where, "samples", samples);

  // The data set: reference then samples, z-scored with the reference's statistics (in double).
  Vector<double> mean = Vector<double>::Zero(d), scale = Vector<double>::Ones(d);
  if (options.z_score) {
    if (n < 2)
      detail::throw_invalid(where, "reference.cols() (number of samples)", n,
                            "z-scoring needs at least 2 reference samples");
    for (Index j = 0; j < n; ++j) mean += reference.col(j).template cast<double>();
    mean /= static_cast<double>(n);
    Vector<double> var = Vector<double>::Zero(d);
    for (Index j = 0; j < n; ++j) var += (reference.col(j).template cast<double>() - mean).cwiseAbs2();
    var /= static_cast<double>(n - 1);
    for (Index i = 0; i < d; ++i) {
      scale(i) = std::sqrt(var(i));
      if (!(scale(i) > 0.0) || !std::isfinite(1.0 / scale(i)))
        detail::throw_invalid(where, "reference row " + std::to_string(i) + " standard deviation", scale(i),
                              "z-scoring needs every coordinate of the reference to vary");
    }
  }
  Matrix<float> x(d, total);
  RowVector<float> y(total);
  for (Index j = 0; j < n; ++j) {
    x.col(j) = ((reference.col(j).template cast<double>() - mean).cwiseQuotient(scale)).template cast<float>();
    y(j) = 0.0f;
  }
  for (Index j = 0; j < m; ++j) {
    x.col(n + j) = ((samples.col(j).template cast<double>() - mean).cwiseQuotient(scale)).template cast<float>();
    y(n + j) = 1.0f;
  }

  // KFold(shuffle=True): one permutation, cut into folds of total / folds (+1 for the first
  // total % folds) consecutive entries.
  Rng rng(options.seed);
  std::vector<Index> perm(static_cast<std::size_t>(total));
  std::iota(perm.begin(), perm.end(), Index{0});
  for (Index i = total - 1; i > 0; --i)
    std::swap(perm[static_cast<std::size_t>(i)],
              perm[static_cast<std::size_t>(rng.below(static_cast<std::uint64_t>(i + 1)))]);
  const int k = options.folds;
  std::vector<Index> start(static_cast<std::size_t>(k) + 1, 0);
  for (int f = 0; f < k; ++f)
    start[static_cast<std::size_t>(f) + 1] =
        start[static_cast<std::size_t>(f)] + total / k + (f < total % k ? 1 : 0);

  const Index hidden = options.hidden > 0 ? static_cast<Index>(options.hidden) : 10 * d;
  std::vector<double> accuracy(static_cast<std::size_t>(k), 0.0);
  std::vector<long long> epochs(static_cast<std::size_t>(k), 0);
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(k));
  auto body = [&](Index fold, int) {
    const auto f = static_cast<std::size_t>(fold);
    try {
      std::vector<Index> test(perm.begin() + start[f], perm.begin() + start[f + 1]);
      std::vector<Index> train;
      train.reserve(static_cast<std::size_t>(total - static_cast<Index>(test.size())));
      train.insert(train.end(), perm.begin(), perm.begin() + start[f]);
      train.insert(train.end(), perm.begin() + start[f + 1], perm.end());
      // Each fold's stream depends on the seed and the fold only: any thread count, same result.
      std::uint64_t s = options.seed ^ (0x632be59bd9b4e019ULL * (static_cast<std::uint64_t>(fold) + 1));
      Rng fold_rng(detail::splitmix64(s));
      detail::C2STClassifier clf(d, hidden,
                                 static_cast<Index>(std::min<long long>(options.batch_size,
                                                                        static_cast<long long>(train.size()))));
      clf.initialise(fold_rng);
      epochs[f] = clf.train(x, y, train, options, fold_rng);
      accuracy[f] = static_cast<double>(clf.correct(x, y, test)) / static_cast<double>(test.size());
    } catch (...) {
      errors[f] = std::current_exception();
    }
  };
  int threads = options.threads == 0 ? static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))
                                     : options.threads;
  detail::ThreadPool::global().run(static_cast<Index>(k), threads, body);
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);

  C2STResult result{0.0, accuracy, 0};
  for (int f = 0; f < k; ++f) {
    result.accuracy += accuracy[static_cast<std::size_t>(f)];
    result.epochs_total += epochs[static_cast<std::size_t>(f)];
  }
  result.accuracy /= static_cast<double>(k);
  return result;
}

/// C2ST accuracy of `samples` (d x m) against `reference` (d x n), one sample per column:
/// 0.5 = indistinguishable, 1 = disjoint. See c2st_detailed for the protocol and the errors.
template <class DR, class DS>
double c2st(const Eigen::MatrixBase<DR>& reference, const Eigen::MatrixBase<DS>& samples,
            const C2STOptions& options = {}) {
  return c2st_detailed(reference, samples, options).accuracy;
}

}  // namespace flowmatch
