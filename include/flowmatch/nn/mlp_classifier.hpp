#pragma once
/// \file
/// An MLP classifier with a softmax cross-entropy head: the "judge" of the quality measures
/// (classification accuracy of generated samples, Frechet distance in its last hidden layer).
/// The model only: train/classifier_trainer.hpp trains it with any optimizer,
/// metrics/classification.hpp measures it (classification_accuracy, feature_moments).

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/activation.hpp"
#include "flowmatch/nn/mlp.hpp"
#include "flowmatch/nn/softmax_cross_entropy.hpp"

namespace flowmatch {

/// logits(x) = W_L f(... f(W_1 x + b_1) ...) + b_L: an MLP<S, SiLU> (nn/mlp.hpp) from input_dim
/// features to num_classes logits, trained on softmax cross-entropy. SiLU rather than ReLU: it is
/// smooth, so the double-precision gradient checks have no kinks to straddle. Inputs are columns
/// (input_dim x n); labels are vectors of n class indices in [0, num_classes).
///
/// parameters() / gradients() are the network's flat vectors (MLP's layout), so any optimizer of
/// optim/ trains it. State (core/state.hpp, default scope "model"): attribute type =
/// "mlp_classifier", and the network's state (MLP's: type "mlp", widths, "0.weight", "0.bias",
/// "2.weight", ...) under the scope "net": keys "net.0.weight", ..., as the state_dict() of a
/// PyTorch module holding its nn.Sequential as `self.net`.
template <Real S = float>
class MLPClassifier {
 public:
  using Scalar = S;
  using activation_type = SiLU;
  using Network = MLP<S, SiLU>;
  static constexpr std::string_view state_scope = "model";

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
  Index num_classes() const { return net_.output_dim(); }
  /// Width of the last hidden layer: the rows of features().
  Index feature_dim() const { return net_.fan_in(net_.num_layers() - 1); }
  const std::vector<Index>& hidden_widths() const { return net_.hidden_widths(); }
  /// The network's layer widths: input_dim(), the hidden widths, num_classes().
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
    const Matrix<S>& out = net_.forward_train(x, ws.mlp);
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
    net_.forward(x, out, ws.mlp);
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
    net_.forward_train(x, ws.mlp);
    // ws.mlp.a[l] holds the input of layer l: the last hidden layer's output is the input of the
    // output layer.
    out = ws.mlp.a[static_cast<std::size_t>(net_.num_layers() - 1)].template cast<typename DO::Scalar>();
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
    net_.forward(x, ws.logits, ws.mlp);
    for (Index j = 0; j < n; ++j) {
      Index best = 0;
      ws.logits.col(j).maxCoeff(&best);
      labels_out(j) = static_cast<typename DY::Scalar>(best);
    }
  }

  /// Writes type = "mlp_classifier" and the network's state under "net".
  void save_state(StateWriter& w) const {
    w.text("type", "mlp_classifier");
    StateWriter net = w.scope("net");
    net_.save_state(net);
  }
  /// Reads that state (the network checks its own; nothing changes unless all of it fits).
  void load_state(const StateReader& r) {
    r.expect_text("type", "mlp_classifier", "model type");
    net_.load_state(r.scope("net"));
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

}  // namespace flowmatch
