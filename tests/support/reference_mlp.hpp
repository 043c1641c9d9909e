#pragma once
// An independent, deliberately plain forward pass of MLPVectorField (and of the time-free MLP), in double, from the model's
// weight(l) / bias(l) views and the activation's scalar value(): the reference the tests compare
// the optimised forward pass with. It also reports every hidden pre-activation, so that ReLU
// gradient checks can stay away from the kink.

#include <cmath>
#include <limits>
#include <vector>

#include <Eigen/Core>

namespace flowmatch::test {

struct ReferenceForward {
  Eigen::MatrixXd out;                   ///< d x n
  std::vector<Eigen::MatrixXd> pre;      ///< pre-activations of every hidden layer
  double min_abs_pre = std::numeric_limits<double>::infinity();  ///< min |pre-activation|
};

template <class Model>
ReferenceForward reference_layers(const Model& model, Eigen::MatrixXd a);

/// u(x, t) with one time per column.
template <class Model>
ReferenceForward reference_forward(const Model& model, const Eigen::MatrixXd& x, const Eigen::RowVectorXd& t) {
  const Eigen::Index n = x.cols(), d = x.rows();
  Eigen::MatrixXd a(d + 1, n);
  for (Eigen::Index j = 0; j < n; ++j) {
    for (Eigen::Index i = 0; i < d; ++i) a(i, j) = x(i, j);
    a(d, j) = t(j);  // the time is the last input, after x
  }
  return reference_layers(model, a);
}

/// A time-free MLP's output (MLP<S, Act>): the layers applied to x itself.
template <class Model>
ReferenceForward reference_forward(const Model& model, const Eigen::MatrixXd& x) {
  return reference_layers(model, x);
}

/// The layers of `model` applied to the input columns a (every input row, time included).
template <class Model>
ReferenceForward reference_layers(const Model& model, Eigen::MatrixXd a) {
  using Act = typename Model::activation_type;
  const Eigen::Index n = a.cols();
  ReferenceForward r;
  const Eigen::Index L = model.num_layers();
  for (Eigen::Index l = 0; l < L; ++l) {
    const auto W = model.weight(l);
    const auto b = model.bias(l);
    Eigen::MatrixXd z(W.rows(), n);
    for (Eigen::Index j = 0; j < n; ++j)
      for (Eigen::Index i = 0; i < W.rows(); ++i) {
        double s = static_cast<double>(b(i));
        for (Eigen::Index k = 0; k < W.cols(); ++k) s += static_cast<double>(W(i, k)) * a(k, j);
        z(i, j) = s;
      }
    if (l + 1 == L) {
      r.out = z;
    } else {
      r.pre.push_back(z);
      r.min_abs_pre = std::min(r.min_abs_pre, z.cwiseAbs().minCoeff());
      a = z.unaryExpr([](double v) { return Act::template value<double>(v); });
    }
  }
  return r;
}

}  // namespace flowmatch::test
