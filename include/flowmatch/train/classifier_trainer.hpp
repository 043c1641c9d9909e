#pragma once
/// \file
/// Supervised training of a classifier (MLPClassifier, or any type with input_dim(),
/// num_classes(), parameters(), gradients(), loss_and_gradient(x, labels, ws) and Workspace) on
/// softmax cross-entropy, in shuffled minibatches, with any optimizer of optim/.

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/softmax_cross_entropy.hpp"
#include "flowmatch/optim/adam.hpp"
#include "flowmatch/optim/concepts.hpp"

namespace flowmatch {

/// Options of train_classifier.
struct ClassifierTrainingOptions {
  Index epochs = 10;            ///< passes over the data (>= 0)
  Index batch = 128;            ///< minibatch size (>= 1; the last minibatch of an epoch may be smaller)
  double learning_rate = 1e-3;  ///< the learning rate of the overload without an optimizer (Adam)
  std::uint64_t seed = 0;       ///< seed of the shuffles
};

namespace detail {
/// The default epoch callback of train_classifier: does nothing.
struct NoEpochCallback {
  void operator()(Index /*epoch*/, double /*mean_loss*/) const {}
};
}  // namespace detail

/// Trains `clf` on the columns of x (input_dim x n) and their labels with `optimizer` (any
/// Optimizer of optim/ over the classifier's Scalar) on softmax cross-entropy: each epoch visits
/// every sample once, in minibatches of a fresh random order (core/random.hpp Rng seeded by
/// opt.seed, so a run is reproducible for a given thread count). After each epoch calls
/// on_epoch(epoch, mean_loss) with epoch = 1, 2, ... and the epoch's mean loss over its samples.
/// opt.learning_rate is not used (the optimizer has its own). Throws as loss_and_gradient (labels
/// are checked before the first step) and InvalidArgument for bad options.
template <class Clf, Optimizer O, class DX, class DY, class Callback = detail::NoEpochCallback>
  requires std::same_as<typename O::Scalar, typename Clf::Scalar>
void train_classifier(Clf& clf, O& optimizer, const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& labels,
                      const ClassifierTrainingOptions& opt, Callback on_epoch = {}) {
  using S = typename Clf::Scalar;
  constexpr const char* where = "flowmatch::train_classifier";
  detail::require_rows(where, "x", x.rows(), clf.input_dim());
  const Index n = x.cols();
  if (n < 1) detail::throw_invalid(where, "x.cols() (number of samples)", n, "must be at least 1");
  detail::require_label_vector(where, "labels", labels, n);
  if (opt.epochs < 0) detail::throw_invalid(where, "opt.epochs", opt.epochs, "must be >= 0");
  if (opt.batch < 1) detail::throw_invalid(where, "opt.batch", opt.batch, "must be at least 1");
  std::vector<Index> y(static_cast<std::size_t>(n));
  for (Index j = 0; j < n; ++j) y[static_cast<std::size_t>(j)] = detail::class_label(where, "labels", labels, j, clf.num_classes());
  Rng rng(opt.seed);
  const Index b = std::min(opt.batch, n);
  Matrix<S> xb(clf.input_dim(), b);
  Eigen::Matrix<Index, Eigen::Dynamic, 1> yb(b);
  // Two workspaces: full minibatches and the last, smaller one never resize each other's buffers.
  typename Clf::Workspace ws_full, ws_tail;
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
      optimizer.step(clf.parameters(), clf.gradients());
      sum += loss * static_cast<double>(nb);
    }
    on_epoch(epoch, sum / static_cast<double>(n));
  }
}


/// The same with Adam at opt.learning_rate (PyTorch's defaults otherwise).
template <class Clf, class DX, class DY, class Callback = detail::NoEpochCallback>
void train_classifier(Clf& clf, const Eigen::MatrixBase<DX>& x, const Eigen::MatrixBase<DY>& labels,
                      const ClassifierTrainingOptions& opt, Callback on_epoch = {}) {
  Adam<typename Clf::Scalar> adam(opt.learning_rate);
  train_classifier(clf, adam, x, labels, opt, std::move(on_epoch));
}

}  // namespace flowmatch
