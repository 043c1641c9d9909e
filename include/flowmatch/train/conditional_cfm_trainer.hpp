#pragma once
/// \file
/// Class-conditional flow matching with label dropout (for classifier-free guidance), on top of
/// CFMTrainer.

#include <cmath>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/optim/concepts.hpp"
#include "flowmatch/path/training_batch.hpp"
#include "flowmatch/train/cfm_trainer.hpp"

namespace flowmatch {

/// Trains u_theta(x, t | y) on a path whose data has classes (its sample_training_batch takes a
/// label vector, as GaussianConditionalPath does for data with sample_labelled). Each step draws a
/// labelled batch, replaces each label by the model's empty label with probability
/// `label_dropout` (so the same network also learns the unconditional field), and takes one
/// CFMTrainer step: the same loss, checks and optimizer update, with the labels handed to the model.
///
/// It is a CFMTrainer over two private adapters that share the batch's labels (the path adapter
/// writes them, the model adapter reads them), so everything CFMTrainer does applies unchanged.
/// Holds references to the model and the optimizer, which must outlive it; not copyable.
template <class Path, class Model, Optimizer Opt>
class ConditionalCFMTrainer {
  struct Labels {
    Vector<Index> values;
  };

  class LabelledPath {
   public:
    LabelledPath(Path path, Labels* labels, double dropout, Index empty)
        : path_(std::move(path)), labels_(labels), dropout_(dropout), empty_(empty) {}
    Index dim() const { return static_cast<Index>(path_.dim()); }
    template <Real S>
    void sample_training_batch(Rng& rng, TrainingBatch<S>& batch) const {
      path_.sample_training_batch(rng, batch, labels_->values);
      for (Index j = 0; j < labels_->values.size(); ++j)
        if (rng.uniform() < dropout_) labels_->values(j) = empty_;
    }
    const Path& path() const { return path_; }

   private:
    Path path_;
    Labels* labels_;
    double dropout_;
    Index empty_;
  };

  class LabelledModel {
   public:
    using Scalar = typename Model::Scalar;
    using Workspace = typename Model::Workspace;
    LabelledModel(Model& model, const Labels* labels) : model_(model), labels_(labels) {}
    Index dim() const { return static_cast<Index>(model_.dim()); }
    template <class DX, class T, class DO>
    void forward(const Eigen::MatrixBase<DX>& x, const T& t, const Eigen::MatrixBase<DO>& out, Workspace& ws) const {
      model_.forward(x, t, labels_->values, out, ws);
    }
    template <class DX, class T>
    const Matrix<Scalar>& forward_train(const Eigen::MatrixBase<DX>& x, const T& t, Workspace& ws) const {
      return model_.forward_train(x, t, labels_->values, ws);
    }
    template <class DG>
    void backward(const Eigen::MatrixBase<DG>& grad_out, Workspace& ws) {
      model_.backward(grad_out, ws);
    }
    template <class DX, class T, class DU>
      requires requires(Model& m, const Eigen::MatrixBase<DX>& x, const T& t, const Vector<Index>& y,
                        const Eigen::MatrixBase<DU>& u, Workspace& ws) { m.mse_loss_and_gradient(x, t, y, u, ws); }
    double mse_loss_and_gradient(const Eigen::MatrixBase<DX>& x, const T& t, const Eigen::MatrixBase<DU>& target,
                                 Workspace& ws) {
      return model_.mse_loss_and_gradient(x, t, labels_->values, target, ws);
    }
    Vector<Scalar>& parameters() { return model_.parameters(); }
    Vector<Scalar>& gradients() { return model_.gradients(); }

   private:
    Model& model_;
    const Labels* labels_;
  };

  static double checked_dropout(double p) {
    if (!(p >= 0.0 && p < 1.0))
      detail::throw_invalid("flowmatch::ConditionalCFMTrainer::ConditionalCFMTrainer", "label_dropout", p,
                            "must lie in [0, 1)");
    return p;
  }

 public:
  using Scalar = typename Model::Scalar;

  /// label_dropout in [0, 1) (0.1 - 0.2 is usual for guidance). Throws InvalidArgument otherwise,
  /// and DimensionMismatch if the data's number of classes (when it says) is not the model's.
  ConditionalCFMTrainer(Path path, Model& model, Opt& optimizer, double label_dropout = 0.1, std::uint64_t seed = 0)
      : labels_(std::make_unique<Labels>()),
        model_(model, labels_.get()),
        trainer_(LabelledPath(std::move(path), labels_.get(), checked_dropout(label_dropout),
                              static_cast<Index>(model.empty_label())),
                 model_, optimizer, seed),
        dropout_(label_dropout) {
    if constexpr (requires(const Path& p) { p.p_data().num_classes(); }) {
      const auto classes = static_cast<long long>(trainer_.path().path().p_data().num_classes());
      if (classes != static_cast<long long>(model.num_classes()))
        detail::throw_dimension("flowmatch::ConditionalCFMTrainer::ConditionalCFMTrainer", "model",
                                "number of classes", static_cast<long long>(model.num_classes()), classes);
    }
  }
  ConditionalCFMTrainer(const ConditionalCFMTrainer&) = delete;
  ConditionalCFMTrainer& operator=(const ConditionalCFMTrainer&) = delete;

  /// One training step on a fresh labelled batch; returns its loss (see CFMTrainer::step).
  double step(Index batch_size) { return trainer_.step(batch_size); }

  /// `num_steps` steps; the callback as in CFMTrainer::train.
  template <class Callback = std::nullptr_t>
  std::vector<double> train(long long num_steps, Index batch_size, Callback&& callback = nullptr) {
    return trainer_.train(num_steps, batch_size, std::forward<Callback>(callback));
  }

  double label_dropout() const { return dropout_; }
  const Path& path() const { return trainer_.path().path(); }
  /// The labels of the last batch, after dropout (the empty label where dropped).
  const Vector<Index>& last_labels() const { return labels_->values; }
  const TrainingBatch<Scalar>& last_batch() const { return trainer_.last_batch(); }
  Rng& rng() { return trainer_.rng(); }
  long long steps_done() const { return trainer_.steps_done(); }

 private:
  std::unique_ptr<Labels> labels_;
  LabelledModel model_;
  CFMTrainer<LabelledPath, LabelledModel, Opt> trainer_;
  double dropout_;
};

}  // namespace flowmatch
