#pragma once
/// \file
/// Derivatives of an MLPVectorField with respect to its input x: Jacobian-vector products (forward
/// mode), vector-Jacobian products (reverse mode) and the exact Jacobian trace (divergence), all on
/// batches, written by hand from the model's public weights, biases and activation policy.

#include <algorithm>
#include <string>
#include <vector>

#include "flowmatch/core/error.hpp"
#include "flowmatch/core/time.hpp"
#include "flowmatch/core/types.hpp"
#include "flowmatch/nn/activation.hpp"
#include "flowmatch/nn/mlp_vector_field.hpp"

namespace flowmatch {

/// For u(x, t) = W_{L-1} f(... f(W_0 [x; t] + b_0) ...) + b_{L-1} with x in R^d (the first d
/// inputs of layer 0; the last input is t), the Jacobian J = du/dx of one column is
///   J = W_{L-1} D_{L-1} W_{L-2} ... D_1 W_0[:, :d],  D_l = diag(f'(z_l)),
/// z_l the pre-activation of hidden layer l. `linearize(x, t)` runs the forward pass and keeps
/// every f'(z_l); then, for every column at once,
/// - `jvp(v, out)`: out = J v (forward mode, the cost of one forward pass);
/// - `vjp(w, out)`: out = J^T w (reverse mode, one backward pass);
/// - `divergence(out)`: out_j = trace J = sum_k e_k^T J e_k (d forward-mode passes; cheap for
///   small d), exact up to rounding.
/// The one-call forms `jvp(x, t, v, u, jv)` and `exact_divergence(x, t, u, div)` linearize first.
/// Holds a reference to the model (which must outlive it) and its own buffers (sized once per
/// batch size). The activation's derivative comes from its policy's forward/backward pair.
template <Real S, Activation Act>
class MLPJacobian {
 public:
  using Scalar = S;
  using Model = MLPVectorField<S, Act>;

  explicit MLPJacobian(const Model& model) : model_(model) {
    const std::vector<Index>& w = model_.layer_widths();
    if (static_cast<Index>(w.size()) < 2 || w.front() - 1 != w.back())
      detail::throw_invalid("flowmatch::MLPJacobian::MLPJacobian", "model.layer_widths().front()", w.front(),
                            "the input must be [x; t] with x of the output's dimension (a square Jacobian)");
    if (w.size() < 3)
      detail::throw_invalid("flowmatch::MLPJacobian::MLPJacobian", "model.layer_widths().size()",
                            static_cast<long long>(w.size()), "needs at least one hidden layer");
  }

  Index dim() const { return model_.dim(); }
  const Model& model() const { return model_; }

  /// Forward pass at (x, t): keeps f'(z_l) of every hidden layer and the output u (output()).
  template <class DX>
  void linearize(const Eigen::MatrixBase<DX>& x, double t) {
    constexpr const char* where = "flowmatch::MLPJacobian::linearize";
    const Index d = dim(), n = x.cols();
    detail::require_rows(where, "x", x.rows(), d);
    if (n < 1) detail::throw_invalid(where, "x.cols() (batch size)", n, "must be at least 1");
    detail::require_unit_time(where, "t", t);
    resize(n);
    const Index L = layers();
    // z = W_0 [x; t] + b_0 = W_0[:, :d] x + (W_0[:, d] t + b_0).
    Matrix<S>& z0 = a_[1];
    z0.noalias() = model_.weight(0).leftCols(d) * x.template cast<S>();
    shift_.noalias() = model_.weight(0).col(d) * static_cast<S>(t) + model_.bias(0);
    z0.colwise() += shift_;
    activate(1);
    for (Index l = 1; l + 1 < L; ++l) {
      const auto ul = static_cast<std::size_t>(l);
      a_[ul + 1].noalias() = model_.weight(l) * a_[ul];
      a_[ul + 1].colwise() += model_.bias(l);
      activate(l + 1);
    }
    u_.noalias() = model_.weight(L - 1) * a_[static_cast<std::size_t>(L) - 1];
    u_.colwise() += model_.bias(L - 1);
    linearized_ = n;
  }

  /// u(x, t) of the last linearize().
  const Matrix<S>& output() const { return u_; }

  /// out = J v for each column (v: d x n).
  template <class DV, class DO>
  void jvp(const Eigen::MatrixBase<DV>& v, const Eigen::MatrixBase<DO>& out_) {
    auto& out = detail::writable(out_);
    require_linearized("jvp", v.rows(), v.cols());
    tan_[0].topRows(width(1)).noalias() = model_.weight(0).leftCols(dim()) * v.template cast<S>();
    propagate_tangent(out);
  }

  /// out = J^T w for each column (w: d x n).
  template <class DW, class DO>
  void vjp(const Eigen::MatrixBase<DW>& w, const Eigen::MatrixBase<DO>& out_) {
    auto& out = detail::writable(out_);
    require_linearized("vjp", w.rows(), w.cols());
    const Index L = layers();
    // g: dLoss/d(a_l), the input of layer l; through f' it becomes dLoss/d(z_l).
    adj_[0].topRows(width(L - 1)).noalias() = model_.weight(L - 1).transpose() * w.template cast<S>();
    std::size_t cur = 0;
    for (Index l = L - 1; l >= 1; --l) {
      Eigen::Block<Matrix<S>> g = adj_[cur].topRows(width(l));
      g.array() *= fp_[static_cast<std::size_t>(l)].array();
      if (l == 1) {
        out.noalias() = (model_.weight(0).leftCols(dim()).transpose() * g).template cast<typename DO::Scalar>();
      } else {
        adj_[1 - cur].topRows(width(l - 1)).noalias() = model_.weight(l - 1).transpose() * g;
        cur = 1 - cur;
      }
    }
  }

  /// out_j = trace of the Jacobian at column j (out: n entries).
  template <class DO>
  void divergence(const Eigen::MatrixBase<DO>& out_) {
    auto& out = detail::writable(out_);
    require_linearized("divergence", dim(), linearized_);
    if (out.size() != linearized_) detail::throw_dimension("flowmatch::MLPJacobian::divergence", "out", "size", out.size(), linearized_);
    out.setZero();
    const Index h = width(1);
    for (Index k = 0; k < dim(); ++k) {
      // Tangent of a_1 for the direction e_k: f'(z_1) * W_0[:, k] in every column (fused).
      tan_[0].topRows(h).array() = fp_[1].array().colwise() * model_.weight(0).col(k).array();
      propagate_tangent(jv_, 2);
      for (Index j = 0; j < linearized_; ++j) out(j) += static_cast<typename DO::Scalar>(jv_(k, j));
    }
  }

  /// u = u(x, t) and jv = J v in one call.
  template <class DX, class DV, class DU, class DJ>
  void jvp(const Eigen::MatrixBase<DX>& x, double t, const Eigen::MatrixBase<DV>& v, const Eigen::MatrixBase<DU>& u,
           const Eigen::MatrixBase<DJ>& jv) {
    linearize(x, t);
    detail::writable(u) = u_.template cast<typename DU::Scalar>();
    this->jvp(v, jv);
  }

  /// u = u(x, t) and div = trace J in one call.
  template <class DX, class DU, class DD>
  void exact_divergence(const Eigen::MatrixBase<DX>& x, double t, const Eigen::MatrixBase<DU>& u,
                        const Eigen::MatrixBase<DD>& div) {
    linearize(x, t);
    detail::writable(u) = u_.template cast<typename DU::Scalar>();
    divergence(div);
  }

 private:
  Index layers() const { return static_cast<Index>(model_.layer_widths().size()) - 1; }
  Index width(Index l) const { return model_.layer_widths()[static_cast<std::size_t>(l)]; }

  void resize(Index n) {
    const Index L = layers();
    if (batch_ == n && static_cast<Index>(a_.size()) == L) return;
    a_.assign(static_cast<std::size_t>(L), Matrix<S>());
    fp_.assign(static_cast<std::size_t>(L), Matrix<S>());
    aux_.assign(static_cast<std::size_t>(L), Matrix<S>());
    tan_.assign(2, Matrix<S>());
    adj_.assign(2, Matrix<S>());
    Index widest = 1;
    for (Index l = 1; l < L; ++l) {
      const auto ul = static_cast<std::size_t>(l);
      a_[ul].resize(width(l), n);
      fp_[ul].resize(width(l), n);
      aux_[ul].resize(width(l), n);
      widest = std::max(widest, width(l));
    }
    for (auto& m : tan_) m.resize(widest, n);
    for (auto& m : adj_) m.resize(widest, n);
    u_.resize(dim(), n);
    jv_.resize(dim(), n);
    batch_ = n;
    linearized_ = 0;
  }

  /// a_[l] holds z_l on entry: applies f in place and stores f'(z_l) in fp_[l].
  void activate(Index l) {
    const auto ul = static_cast<std::size_t>(l);
    Matrix<S>& a = a_[ul];
    const Index count = a.size();
    Act::forward(a.data(), a.data(), aux_[ul].data(), count);
    fp_[ul].setOnes();
    Act::backward(a.data(), aux_[ul].data(), fp_[ul].data(), count);  // 1 * f'(z)
  }

  /// tan_[0] holds the tangent of z_1 (first = 1: W_0 v) or already of a_1 (first = 2): runs it
  /// through the rest of the network into out.
  template <class DO>
  void propagate_tangent(DO& out, int first = 1) {
    const Index L = layers();
    std::size_t cur = 0;
    for (Index l = 1; l < L; ++l) {
      const auto ul = static_cast<std::size_t>(l);
      const Index h = width(l);
      Eigen::Block<Matrix<S>> dz = tan_[cur].topRows(h);
      if (l > 1 || first == 1) dz.array() *= fp_[ul].array();
      if (l + 1 < L) {
        tan_[1 - cur].topRows(width(l + 1)).noalias() = model_.weight(l) * dz;
        cur = 1 - cur;
      } else {
        out.noalias() = (model_.weight(L - 1) * dz).template cast<typename DO::Scalar>();
      }
    }
  }

  void require_linearized(const char* fn, Index rows, Index cols) const {
    const std::string where = std::string("flowmatch::MLPJacobian::") + fn;
    if (linearized_ == 0) throw InvalidArgument(where + ": call linearize(x, t) first");
    detail::require_rows(where, "v", rows, dim());
    detail::require_cols(where, "v", cols, linearized_);
  }

  const Model& model_;
  std::vector<Matrix<S>> a_, fp_, aux_, tan_, adj_;
  Matrix<S> u_, jv_;
  Vector<S> shift_;
  Index batch_ = 0;
  Index linearized_ = 0;
};

}  // namespace flowmatch
