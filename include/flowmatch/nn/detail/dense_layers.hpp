#pragma once
/// \file
/// The stack of affine layers that MLP and MLPVectorField share: the layer widths, every parameter
/// in one flat vector (each layer's weight, fan_out x fan_in row-major as PyTorch's nn.Linear, then
/// its bias), the gradients in a second flat vector of the same layout, PyTorch's initialisation,
/// the accessors, and the portable backward steps that both networks take per block of columns.
/// The networks add their inputs (MLPVectorField: a time row), passes and saved-state tags.

#include <cmath>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/random.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/activation.hpp"
#include "flowmatch/nn/detail/blocked_product.hpp"

namespace flowmatch::detail {

template <Real S>
class DenseLayers {
 public:
  using Scalar = S;
  using WeightMap = Eigen::Map<RowMajorMatrix<S>>;
  using ConstWeightMap = Eigen::Map<const RowMajorMatrix<S>>;
  using BiasMap = Eigen::Map<Vector<S>>;
  using ConstBiasMap = Eigen::Map<const Vector<S>>;

  /// Re-draws every weight and bias uniformly in +-1/sqrt(fan_in) (PyTorch's default).
  void reset_parameters(Rng& rng) {
    for (Index l = 0; l < num_layers(); ++l) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in(l)));
      WeightMap w = weight(l);
      for (Index i = 0; i < w.rows(); ++i)
        for (Index k = 0; k < w.cols(); ++k) w(i, k) = static_cast<S>(bound * (2.0 * rng.uniform() - 1.0));
      BiasMap b = bias(l);
      for (Index i = 0; i < b.size(); ++i) b(i) = static_cast<S>(bound * (2.0 * rng.uniform() - 1.0));
    }
  }

  const std::vector<Index>& hidden_widths() const { return hidden_widths_; }
  /// Widths of every layer boundary: the network's input rows, the hidden widths, its outputs.
  const std::vector<Index>& layer_widths() const { return widths_; }
  /// Number of affine layers (hidden layers + 1).
  Index num_layers() const { return static_cast<Index>(widths_.size()) - 1; }
  Index fan_in(Index l) const { return widths_[static_cast<std::size_t>(l)]; }
  Index fan_out(Index l) const { return widths_[static_cast<std::size_t>(l) + 1]; }
  Index num_parameters() const { return parameters_.size(); }

  /// All parameters, flat (layer by layer: weight row-major, then bias).
  Vector<S>& parameters() { return parameters_; }
  const Vector<S>& parameters() const { return parameters_; }
  /// dLoss/dparameters from the last backward(), same layout.
  Vector<S>& gradients() { return gradients_; }
  const Vector<S>& gradients() const { return gradients_; }

  WeightMap weight(Index l) { return WeightMap(parameters_.data() + woff(l), fan_out(l), fan_in(l)); }
  ConstWeightMap weight(Index l) const { return ConstWeightMap(parameters_.data() + woff(l), fan_out(l), fan_in(l)); }
  BiasMap bias(Index l) { return BiasMap(parameters_.data() + boff(l), fan_out(l)); }
  ConstBiasMap bias(Index l) const { return ConstBiasMap(parameters_.data() + boff(l), fan_out(l)); }
  WeightMap weight_gradient(Index l) { return WeightMap(gradients_.data() + woff(l), fan_out(l), fan_in(l)); }
  BiasMap bias_gradient(Index l) { return BiasMap(gradients_.data() + boff(l), fan_out(l)); }

 protected:
  /// Layers from input_dim + extra_rows inputs (extra_rows: rows the network appends itself, such
  /// as MLPVectorField's time) through `hidden` to output_dim outputs, initialised from `rng`.
  /// Throws InvalidArgument, naming `where`, for a dimension or width below 1.
  DenseLayers(const char* where, Index input_dim, Index extra_rows, Index output_dim, std::vector<Index> hidden,
              Rng& rng)
      : hidden_widths_(std::move(hidden)) {
    if (input_dim <= 0) throw_invalid(where, "input_dim", input_dim, "must be at least 1");
    if (output_dim <= 0) throw_invalid(where, "output_dim", output_dim, "must be at least 1");
    for (std::size_t l = 0; l < hidden_widths_.size(); ++l)
      if (hidden_widths_[l] <= 0)
        throw_invalid(where, "hidden_widths[" + std::to_string(l) + "]", hidden_widths_[l],
                      "every hidden width must be at least 1");
    widths_.push_back(input_dim + extra_rows);
    widths_.insert(widths_.end(), hidden_widths_.begin(), hidden_widths_.end());
    widths_.push_back(output_dim);
    Index offset = 0;
    for (Index l = 0; l < num_layers(); ++l) {
      offsets_.push_back(offset);
      offset += fan_out(l) * (fan_in(l) + 1);
    }
    parameters_ = Vector<S>::Zero(offset);
    gradients_ = Vector<S>::Zero(offset);
    reset_parameters(rng);
  }

  /// Throws InvalidArgument unless `ws` holds a forward pass of these layers and grad_out is
  /// output x (that pass's batch size): the arguments of a backward pass.
  template <class DG, class Workspace>
  void check_backward(const char* where, const Eigen::MatrixBase<DG>& grad_out, const Workspace& ws) const {
    if (ws.batch <= 0 || ws.widths != widths_)
      throw InvalidArgument(std::string(where) + ": argument 'ws' holds no forward pass of this model; call forward_train first");
    require_rows(where, "grad_out", grad_out.rows(), widths_.back());
    require_cols(where, "grad_out", grad_out.cols(), ws.batch);
  }

  /// Offsets of layer l's weight and bias in the flat vectors.
  Index woff(Index l) const { return offsets_[static_cast<std::size_t>(l)]; }
  Index boff(Index l) const { return woff(l) + fan_out(l) * fan_in(l); }

  /// Starts a block's backward pass: dz_last = grad_out's columns [j0, j0 + nb), and their row
  /// sums added to the last layer's bias gradient in the flat gradient g.
  template <class DG>
  void output_delta(const Eigen::MatrixBase<DG>& grad_out, Matrix<S>& dz_last, S* g, Index j0, Index nb) const {
    const Index L = num_layers();
    dz_last.leftCols(nb) = grad_out.middleCols(j0, nb).template cast<S>();
    BiasMap(g + boff(L - 1), fan_out(L - 1)) += dz_last.leftCols(nb).rowwise().sum();
  }

  /// dW_l += dz input^T into the flat gradient g (input: layer l's input, fan_in(l) x nb).
  template <class In>
  void add_weight_gradient(Index l, S* g, const Eigen::Ref<const Matrix<S>>& dz, const In& input) const {
    product_in_pieces<true, S>(WeightMap(g + woff(l), fan_out(l), fan_in(l)), dz, input.transpose());
  }

  /// The step from layer l >= 1 back to layer l - 1: prev = (W_l^T dz) .* f'(.) with f = Act, where
  /// `act` / `aux` point at the block's first column of layer l's input and of what f saved for it
  /// (prev.rows() rows a column), and the bias gradient of layer l - 1 in g, in the same pass.
  template <class Act>
  void backprop_hidden(Index l, const Eigen::Ref<const Matrix<S>>& dz, Matrix<S>& prev, S* g, const S* act,
                       const S* aux, Index nb) const {
    product_in_pieces<false, S>(prev.leftCols(nb), weight(l).transpose(), dz);
    BiasMap db(g + boff(l - 1), fan_out(l - 1));
    const Index h = prev.rows();
    for (Index j = 0; j < nb; ++j) {
      S* col = prev.data() + j * h;
      Act::backward(act + j * h, aux ? aux + j * h : nullptr, col, h);
      db += Eigen::Map<const Vector<S>>(col, h);
    }
  }

  std::vector<Index> hidden_widths_;
  std::vector<Index> widths_;
  std::vector<Index> offsets_;  ///< offsets_[l]: layer l's weight in the flat vectors (its bias follows)
  Vector<S> parameters_;
  Vector<S> gradients_;
};

}  // namespace flowmatch::detail
