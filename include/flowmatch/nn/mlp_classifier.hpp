#pragma once
/// \file
/// An MLP classifier trained with softmax cross-entropy: the "judge" of the quality measures
/// (classification accuracy of generated samples, Frechet distance in its last hidden layer).

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/metrics/frechet.hpp"
#include "flowmatch/nn/activation.hpp"
#include "flowmatch/nn/mlp_vector_field.hpp"
#include "flowmatch/nn/softmax_cross_entropy.hpp"
#include "flowmatch/optim/adam.hpp"

namespace flowmatch {

/// logits(x) = W_L f(... f(W_1 x + b_1) ...) + b_L: an MLP from input_dim features to num_classes
/// logits, with SiLU hidden activations and the hand-written backward pass of MLPVectorField, on
/// which it is built (the network's time input is held at t = 0, so its weights never see a
/// non-zero input and never receive a gradient). SiLU rather than ReLU: it is smooth, so the
/// double-precision gradient checks have no kinks to straddle, and it is the activation the
/// library's fast kernels and flow models use. Inputs are columns (input_dim x n); labels are
/// vectors of n class indices in [0, num_classes).
///
/// parameters() / gradients() are flat vectors (layout: MLPVectorField's), so any optimizer of
/// optim/ trains it, and save_checkpoint / load_checkpoint (io/checkpoint.hpp) store it.
template <Real S = float>
class MLPClassifier {
 public:
  using Scalar = S;
  using activation_type = SiLU;
  using Network = MLPVectorField<S, SiLU>;

  /// Buffers of one caller; sized on the first call at a batch size and reused (no allocation
  /// after that). One per concurrent caller.
  struct Workspace {
    typename Network::Workspace mlp;  ///< the network's buffers (activations, deltas)
    Matrix<S> logits;                 ///< C x n: logits of predict()
    Matrix<S> grad;                   ///< C x n: dLoss/dlogits of loss_and_gradient()
  };

  /// Hidden widths non-empty, every width >= 1, input_dim >= 1, num_classes >= 2; weights drawn
  /// as PyTorch's nn.Linear from `seed`. Throws InvalidArgument otherwise.
  MLPClassifier(Index input_dim, Index num_classes, std::vector<Index> hidden, std::uint64_t seed = 0)
      : net_(checked_input_dim(input_dim), checked_num_classes(num_classes), checked_hidden(std::move(hidden)),
             seed) {}

  Index input_dim() const { return net_.input_dim(); }
  Index num_classes() const { return net_.dim(); }
  /// Width of the last hidden layer: the rows of features().
  Index feature_dim() const { return net_.fan_in(net_.num_layers() - 1); }
  const std::vector<Index>& hidden_widths() const { return net_.hidden_widths(); }
  /// The network's layer widths: input_dim() + 1 (the inert time row), the hidden widths,
  /// num_classes(). What a checkpoint records.
  const std::vector<Index>& layer_widths() const { return net_.layer_widths(); }
  Index num_parameters() const { return net_.num_parameters(); }

  Vector<S>& parameters() { return net_.parameters(); }
  const Vector<S>& parameters() const { return net_.parameters(); }
  /// dLoss/dparameters from the last loss_and_gradient().
  const Vector<S>& gradients() const { return net_.gradients(); }

  /// The underlying network (weight(l), bias(l), layer_widths(), ...).
  Network& network() { return net_; }
  const Network& network() const { return net_; }

  /// Mean softmax cross-entropy of the classifier on the batch x (input_dim x n) against
  /// `labels` (n class indices); writes its gradient into gradients(). The parameters are not
  /// touched. Throws DimensionMismatch / InvalidArgument for bad shapes or labels (naming the
  /// position and value), NumericalError when the logits are not finite.
  template <class DX, class DY>
  double loss_and_gradient(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& labels, Workspace& ws) {
    constexpr const char* where = "flowmatch::MLPClassifier::loss_and_gradient";
    const Index n = check_x(where, x);
    detail::require_label_vector(where, "labels", labels, n);
    for (Index j = 0; j < n; ++j) detail::class_label(where, "labels", labels, j, num_classes());
    const Matrix<S>& out = net_.forward_train(x, 0.0, ws.mlp);
    if (ws.grad.rows() != num_classes() || ws.grad.cols() != n) ws.grad.resize(num_classes(), n);
    const double loss = detail::softmax_cross_entropy_impl<true>(where, out, labels, &ws.grad);
    net_.backward(ws.grad, ws.mlp);
    return loss;
  }

  /// The logits (num_classes x n) of the batch x into `out`.
  template <class DX, class DO>
  void logits(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DO>& out, Workspace& ws) const {
    constexpr const char* where = "flowmatch::MLPClassifier::logits";
    const Index n = check_x(where, x);
    detail::require_rows(where, "out", out.rows(), num_classes());
    detail::require_cols(where, "out", out.cols(), n);
    net_.forward(x, 0.0, out, ws.mlp);
  }

  /// The last hidden layer's activations (feature_dim x n) of the batch x into `out`: the
  /// embedding in which the Frechet distance compares sample sets.
  template <class DX, class DO>
  void features(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DO>& out_, Workspace& ws) const {
    auto& out = detail::writable(out_);
    constexpr const char* where = "flowmatch::MLPClassifier::features";
    const Index n = check_x(where, x);
    detail::require_rows(where, "out", out.rows(), feature_dim());
    detail::require_cols(where, "out", out.cols(), n);
    net_.forward_train(x, 0.0, ws.mlp);
    // ws.mlp.a[l] holds the input of layer l: the last hidden layer's output is the input of the
    // output layer. Its buffer may have padding rows below (the AVX-512 kernels' layout).
    const Matrix<S>& a = ws.mlp.a[static_cast<std::size_t>(net_.num_layers() - 1)];
    out = a.topRows(feature_dim()).template cast<typename DO::Scalar>();
  }

  /// The most likely class (argmax of the logits; the first on ties) of each column of x into
  /// `labels_out` (a vector of x.cols() entries of any arithmetic type).
  template <class DX, class DY>
  void predict(const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& labels_out_, Workspace& ws) const {
    auto& labels_out = detail::writable(labels_out_);
    constexpr const char* where = "flowmatch::MLPClassifier::predict";
    const Index n = check_x(where, x);
    detail::require_label_vector(where, "labels_out", labels_out, n);
    if (ws.logits.rows() != num_classes() || ws.logits.cols() != n) ws.logits.resize(num_classes(), n);
    net_.forward(x, 0.0, ws.logits, ws.mlp);
    for (Index j = 0; j < n; ++j) {
      Index best = 0;
      ws.logits.col(j).maxCoeff(&best);
      labels_out(j) = static_cast<typename DY::Scalar>(best);
    }
  }

 private:
  template <class DX>
  Index check_x(const char* where, const Eigen::MatrixBase<DX>& x) const {
    detail::require_rows(where, "x", x.rows(), input_dim());
    if (x.cols() < 1) detail::throw_invalid(where, "x.cols() (batch size)", x.cols(), "must be at least 1");
    return x.cols();
  }
  static constexpr const char* kCtor = "flowmatch::MLPClassifier::MLPClassifier";
  static Index checked_input_dim(Index d) {
    if (d < 1) detail::throw_invalid(kCtor, "input_dim", d, "must be at least 1");
    return d;
  }
  static Index checked_num_classes(Index c) {
    if (c < 2) detail::throw_invalid(kCtor, "num_classes", c, "a classifier needs at least 2 classes");
    return c;
  }
  static std::vector<Index> checked_hidden(std::vector<Index> hidden) {
    if (hidden.empty())
      detail::throw_invalid(kCtor, "hidden.size()", 0, "needs at least one hidden layer (its output is the features)");
    for (std::size_t l = 0; l < hidden.size(); ++l)
      if (hidden[l] < 1)
        detail::throw_invalid(kCtor, "hidden[" + std::to_string(l) + "]", hidden[l], "every hidden width must be at least 1");
    return hidden;
  }

  Network net_;
};

/// Fraction in [0, 1] of the columns of x that `clf` assigns to their label, evaluated `batch`
/// columns at a time (memory bounded whatever x.cols()). Labels are checked as in training.
template <Real S, class DX, class DY>
double classification_accuracy(const MLPClassifier<S>& clf, const Eigen::MatrixBase<DX>& x,
                               const Eigen::MatrixBase<DY>& labels, Index batch = 1000) {
  constexpr const char* where = "flowmatch::classification_accuracy";
  detail::require_rows(where, "x", x.rows(), clf.input_dim());
  const Index n = x.cols();
  if (n < 1) detail::throw_invalid(where, "x.cols() (number of samples)", n, "must be at least 1");
  if (batch < 1) detail::throw_invalid(where, "batch", batch, "must be at least 1");
  detail::require_label_vector(where, "labels", labels, n);
  for (Index j = 0; j < n; ++j) detail::class_label(where, "labels", labels, j, clf.num_classes());
  typename MLPClassifier<S>::Workspace ws;
  const Index b = std::min(batch, n);
  Matrix<S> logits(clf.num_classes(), b);
  Index correct = 0;
  for (Index j0 = 0; j0 < n; j0 += b) {
    const Index nb = std::min(b, n - j0);
    clf.logits(x.middleCols(j0, nb), logits.leftCols(nb), ws);
    for (Index j = 0; j < nb; ++j) {
      Index best = 0;
      logits.col(j).maxCoeff(&best);
      if (best == detail::class_label(where, "labels", labels, j0 + j, clf.num_classes())) ++correct;
    }
  }
  return static_cast<double>(correct) / static_cast<double>(n);
}

/// Mean and covariance (gaussian_moments) of the classifier's features() of the columns of x,
/// computed `batch` columns at a time: the statistics a Frechet distance compares.
template <Real S, class DX>
GaussianMoments feature_moments(const MLPClassifier<S>& clf, const Eigen::MatrixBase<DX>& x, Index batch = 1000) {
  constexpr const char* where = "flowmatch::feature_moments";
  detail::require_rows(where, "x", x.rows(), clf.input_dim());
  const Index n = x.cols();
  if (n < 2) detail::throw_invalid(where, "x.cols() (number of samples)", n, "a covariance needs at least 2 samples");
  if (batch < 1) detail::throw_invalid(where, "batch", batch, "must be at least 1");
  typename MLPClassifier<S>::Workspace ws;
  const Index b = std::min(batch, n);
  Matrix<S> f(clf.feature_dim(), b);
  MomentAccumulator acc(clf.feature_dim());
  for (Index j0 = 0; j0 < n; j0 += b) {
    const Index nb = std::min(b, n - j0);
    clf.features(x.middleCols(j0, nb), f.leftCols(nb), ws);
    acc.add(f.leftCols(nb));
  }
  return acc.moments();
}

/// Options of train_classifier.
struct ClassifierTrainingOptions {
  Index epochs = 10;            ///< passes over the data (>= 0)
  Index batch = 128;            ///< minibatch size (>= 1; the last minibatch of an epoch may be smaller)
  double learning_rate = 1e-3;  ///< Adam's learning rate
  std::uint64_t seed = 0;       ///< seed of the shuffles
};

namespace detail {
/// The default epoch callback of train_classifier: does nothing.
struct NoEpochCallback {
  void operator()(Index /*epoch*/, double /*mean_loss*/) const {}
};
}  // namespace detail

/// Trains `clf` on the columns of x (input_dim x n) and their labels with Adam on softmax
/// cross-entropy: each epoch visits every sample once, in minibatches of a fresh random order
/// (core/random.hpp Rng seeded by opt.seed, so a run is reproducible for a given thread count).
/// After each epoch calls on_epoch(epoch, mean_loss) with epoch = 1, 2, ... and the epoch's mean
/// loss over its samples. Throws as loss_and_gradient (labels are checked before the first step)
/// and InvalidArgument for bad options.
template <Real S, class DX, class DY, class Callback = detail::NoEpochCallback>
void train_classifier(MLPClassifier<S>& clf, const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& labels,
                      const ClassifierTrainingOptions& opt, Callback on_epoch = {}) {
  constexpr const char* where = "flowmatch::train_classifier";
  detail::require_rows(where, "x", x.rows(), clf.input_dim());
  const Index n = x.cols();
  if (n < 1) detail::throw_invalid(where, "x.cols() (number of samples)", n, "must be at least 1");
  detail::require_label_vector(where, "labels", labels, n);
  if (opt.epochs < 0) detail::throw_invalid(where, "opt.epochs", opt.epochs, "must be >= 0");
  if (opt.batch < 1) detail::throw_invalid(where, "opt.batch", opt.batch, "must be at least 1");
  std::vector<Index> y(static_cast<std::size_t>(n));
  for (Index j = 0; j < n; ++j) y[static_cast<std::size_t>(j)] = detail::class_label(where, "labels", labels, j, clf.num_classes());
  Adam<S> adam(opt.learning_rate);
  Rng rng(opt.seed);
  const Index b = std::min(opt.batch, n);
  Matrix<S> xb(clf.input_dim(), b);
  Eigen::Matrix<Index, Eigen::Dynamic, 1> yb(b);
  // Two workspaces: full minibatches and the last, smaller one never resize each other's buffers.
  typename MLPClassifier<S>::Workspace ws_full, ws_tail;
  std::vector<Index> order(static_cast<std::size_t>(n));
  for (Index j = 0; j < n; ++j) order[static_cast<std::size_t>(j)] = j;
  for (Index epoch = 1; epoch <= opt.epochs; ++epoch) {
    for (Index i = n - 1; i > 0; --i)  // Fisher-Yates
      std::swap(order[static_cast<std::size_t>(i)],
                order[static_cast<std::size_t>(rng.below(static_cast<std::uint64_t>(i) + 1))]);
    double sum = 0.0;
    for (Index j0 = 0; j0 < n; j0 += b) {
      const Index nb = std::min(b, n - j0);
      for (Index j = 0; j < nb; ++j) {
        const Index src = order[static_cast<std::size_t>(j0 + j)];
        xb.col(j) = x.col(src).template cast<S>();
        yb(j) = y[static_cast<std::size_t>(src)];
      }
      const double loss = clf.loss_and_gradient(xb.leftCols(nb), yb.head(nb), nb == b ? ws_full : ws_tail);
      adam.step(clf.parameters(), clf.gradients());
      sum += loss * static_cast<double>(nb);
    }
    on_epoch(epoch, sum / static_cast<double>(n));
  }
}

}  // namespace flowmatch
