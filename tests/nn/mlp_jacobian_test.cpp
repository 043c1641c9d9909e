// MLPJacobian: Jacobian-vector and vector-Jacobian products and the exact divergence of an MLP
// against central differences in double, for SiLU and Tanh; Hutchinson's estimator is unbiased
// within its standard error.

#include <catch2/catch.hpp>

#include <cmath>

#include <flowmatch/core/random.hpp>
#include <flowmatch/nn/activation.hpp>
#include <flowmatch/nn/mlp_jacobian.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>
#include <flowmatch/ode/log_likelihood.hpp>

#include "support/compare.hpp"
#include "support/gradient_check.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

// (u(x + h V) - u(x - h V)) / (2h) column by column: the directional derivative J V.
template <class Model>
Matrix<double> fd_directional(const Model& model, const Matrix<double>& x, double t, const Matrix<double>& v, double h = 1e-5) {
  return (model(Matrix<double>(x + h * v), t) - model(Matrix<double>(x - h * v), t)) / (2.0 * h);
}

template <class Act>
void check_derivatives(Index d, std::vector<Index> hidden, std::uint64_t seed) {
  const MLPVectorField<double, Act> model(d, hidden, seed);
  MLPJacobian<double, Act> jac(model);
  Rng rng(seed + 100);
  const Index n = 6;
  Matrix<double> x(d, n), v(d, n), w(d, n), jv(d, n), jtw(d, n), u(d, n);
  rng.fill_normal(x);
  rng.fill_normal(v);
  rng.fill_normal(w);
  for (const double t : {0.0, 0.37, 1.0}) {
    jac.jvp(x, t, v, u, jv);
    CHECK(test::max_abs(u - model(x, t)) < 1e-12);
    const Matrix<double> fd = fd_directional(model, x, t, v);
    INFO(Act::name() << " d=" << d << " t=" << t);
    CHECK(test::max_abs(jv - fd) < 1e-7 * (1.0 + test::max_abs(fd)));
    // J^T w: its dot with any v equals w . (J v).
    jac.vjp(w, jtw);
    for (Index j = 0; j < n; ++j) CHECK(jtw.col(j).dot(v.col(j)) == Approx(w.col(j).dot(fd.col(j))).epsilon(1e-6).margin(1e-9));
    // Divergence: sum_k d u_k / d x_k by central differences.
    Vector<double> div(n);
    jac.divergence(div);
    for (Index j = 0; j < n; ++j) {
      double numeric = 0.0;
      for (Index k = 0; k < d; ++k) {
        Matrix<double> xc = x.col(j);
        const auto f = [&] { return model(xc, t)(k, 0); };
        numeric += test::central_difference(f, xc(k, 0), 1e-5);
      }
      CHECK(div(j) == Approx(numeric).epsilon(1e-6).margin(1e-8));
    }
  }
}

}  // namespace

TEST_CASE("MLPJacobian JVP VJP and divergence match central differences", "[nn][jacobian]") {
  check_derivatives<SiLU>(2, {16, 8}, 1);
  check_derivatives<SiLU>(3, {32}, 2);
  check_derivatives<Tanh>(4, {12, 12, 6}, 3);
}

TEST_CASE("MLPJacobian works in float close to double", "[nn][jacobian]") {
  const MLPVectorField<double, SiLU> md(2, {64, 16}, 5);
  MLPVectorField<float, SiLU> mf(2, {64, 16}, 5);
  mf.parameters() = md.parameters().cast<float>();
  MLPJacobian<double, SiLU> jd(md);
  MLPJacobian<float, SiLU> jf(mf);
  Rng rng(1);
  Matrix<double> x(2, 40);
  rng.fill_normal(x);
  Vector<double> dd(40);
  Vector<float> df(40);
  jd.linearize(x, 0.5);
  jd.divergence(dd);
  jf.linearize(x.cast<float>(), 0.5);
  jf.divergence(df);
  CHECK(test::max_abs(dd - df.cast<double>()) < 1e-4 * (1.0 + test::max_abs(dd)));
}

TEST_CASE("Hutchinson's estimate is unbiased: its mean over many probes is the exact divergence within its standard error",
          "[nn][jacobian][hutchinson]") {
  const MLPVectorField<double, SiLU> model(3, {32, 16}, 9);
  MLPJacobian<double, SiLU> jac(model);
  Rng rng(4);
  const Index n = 5, probes = 4000;
  Matrix<double> x(3, n), u(3, n);
  rng.fill_normal(x);
  Vector<double> exact(n);
  jac.exact_divergence(x, 0.6, u, exact);
  for (const ProbeKind kind : {ProbeKind::rademacher, ProbeKind::gaussian}) {
    HutchinsonDivergence<MLPJacobian<double, SiLU>> hutch(jac, probes, kind);
    hutch.draw_probes(rng, n);
    Vector<double> est(n);
    hutch.evaluate(x, 0.6, u, est);
    CHECK(test::max_abs(u - model(x, 0.6)) < 1e-12);
    // Per-probe values v^T J v, for the standard error of their mean.
    const Matrix<double>& v = hutch.probe_vectors();
    Matrix<double> jv(3, n);
    jac.linearize(x, 0.6);
    for (Index j = 0; j < n; ++j) {
      double sum = 0.0, sum2 = 0.0;
      for (Index p = 0; p < probes; ++p) {
        jac.jvp(v.middleCols(p * n, n), jv);
        const double e = v.col(p * n + j).dot(jv.col(j));
        sum += e;
        sum2 += e * e;
      }
      const double mean = sum / probes, se = std::sqrt((sum2 / probes - mean * mean) / probes);
      INFO((kind == ProbeKind::rademacher ? "rademacher" : "gaussian") << " column " << j << ": estimate " << est(j)
                                                                        << ", exact " << exact(j) << ", standard error " << se);
      CHECK(est(j) == Approx(mean).epsilon(1e-10));
      CHECK(std::abs(est(j) - exact(j)) < 4.0 * se);
    }
  }
}

TEST_CASE("MLPJacobian refuses calls before linearize and shapes that do not fit", "[nn][jacobian][errors]") {
  const MLPVectorField<double, SiLU> model(2, {8}, 1);
  MLPJacobian<double, SiLU> jac(model);
  Matrix<double> v(2, 3), out(2, 3);
  CHECK_THROWS_WITH(jac.jvp(v, out), Catch::Contains("linearize"));
  jac.linearize(Matrix<double>::Zero(2, 3), 0.5);
  CHECK_THROWS_AS(jac.jvp(Matrix<double>::Zero(2, 4), out), DimensionMismatch);
  CHECK_THROWS_AS(jac.linearize(Matrix<double>::Zero(3, 3), 0.5), DimensionMismatch);
  CHECK_THROWS_WITH(jac.linearize(Matrix<double>::Zero(2, 3), 1.5), Catch::Contains("argument 't'"));
  CHECK_THROWS_WITH((HutchinsonDivergence<MLPJacobian<double, SiLU>>(jac, 0)), Catch::Contains("argument 'probes'"));
}

}  // namespace FLOWMATCH_TEST_FILE_ID
