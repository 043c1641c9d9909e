// MLPVectorField<float, SiLU> runs its first two layers through the AVX-512 kernels of
// nn/detail/mlp_avx512.hpp when the build targets a CPU with AVX-512F and the shape fits (fast_path()).
// These tests pin the kernels to the portable double-precision computation on the same
// parameters: outputs, gradients and the fused mse_loss_and_gradient, across shapes (second-layer
// widths 1 to 16, fan-ins 1 to 8, two to four layers), batch sizes across block boundaries and
// thread counts; and they check that shapes outside the kernels' reach take the portable path.

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <cmath>
#include <vector>

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#include <flowmatch/core/threads.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>
#include <flowmatch/nn/detail/mlp_avx512.hpp>

#include "support/compare.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

namespace {

struct ThreadsGuard {
  int saved = num_threads();
  ~ThreadsGuard() { set_num_threads(saved); }
};

struct Shape {
  Index in, out;
  std::vector<Index> hidden;
  bool fast;  // expected fast_path() on an AVX-512 build
};

double rel(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b) {
  return (a - b).norm() / std::max(b.norm(), 1e-30);
}

}  // namespace

TEST_CASE("MLPVectorField float SiLU fast path agrees with the double computation", "[nn][mlp][fast]") {
  ThreadsGuard guard;
  const std::vector<Shape> shapes = {
      {2, 2, {1024, 16}, true},     // the reference workload
      {3, 3, {64, 7}, true},        // second layer narrower than 16 (padded)
      {1, 1, {32, 1}, true},        // fan-in 2, a single second-layer unit
      {7, 2, {48, 16}, true},       // fan-in 8, the largest the kernels take
      {2, 4, {32}, true},           // two layers: the kernels produce the output
      {2, 2, {32, 16, 16}, true},   // four layers: the rest by the portable code
      {2, 17, {32, 16}, true},      // three layers, 17 outputs: the last by the portable code
      {2, 2, {40, 16}, false},      // 40 units: not a multiple of 16
      {8, 2, {64, 16}, false},      // fan-in 9
      {2, 2, {64, 17}, false},      // second layer wider than 16
  };
  for (const Shape& sh : shapes) {
    MLPVectorField<float> mf(sh.in, sh.out, sh.hidden, std::uint64_t{3});
    MLPVectorField<double> md(sh.in, sh.out, sh.hidden, std::uint64_t{3});
    md.parameters() = mf.parameters().cast<double>();
#if defined(__AVX512F__)
    CHECK(mf.fast_path() == sh.fast);
#else
    CHECK_FALSE(mf.fast_path());
#endif
    for (const Index n : {Index{1}, Index{31}, Index{77}, Index{300}}) {
      Rng rng(static_cast<std::uint64_t>(n) + 17);
      Matrix<double> x(sh.in, n), target(sh.out, n);
      RowVector<double> t(n);
      rng.fill_normal(x);
      x *= 4.0;  // the reference workload's data reach |x| of 10 and more
      rng.fill_normal(target);
      rng.fill_uniform(t);
      const Matrix<float> xf = x.cast<float>(), targetf = target.cast<float>();
      const RowVector<float> tf = t.cast<float>();
      // Double reference: output, and the gradient of the mean squared error.
      MLPVectorField<double>::Workspace wd;
      const Matrix<double> out_d = md.forward_train(x, t, wd);
      const double count = static_cast<double>(out_d.size());
      const double loss_d = (out_d - target).squaredNorm() / count;
      md.backward(2.0 / count * (out_d - target), wd);
      const Vector<double> grad_d = md.gradients();
      for (const int threads : {1, 2}) {
        set_num_threads(threads);
        INFO("input " << sh.in << ", output " << sh.out << ", " << sh.hidden.size() << " hidden layers, first "
                      << sh.hidden[0] << ", batch " << n << ", threads " << threads);
        MLPVectorField<float>::Workspace ws;
        Matrix<float> inferred(sh.out, n);
        mf.forward(xf, tf, inferred, ws);
        CHECK(rel(inferred.cast<double>(), out_d) < 2e-6);
        // One time for the whole batch (the sampling case: folded into the first bias).
        const Matrix<double> out_scalar_t = md.forward_train(x, 0.37, wd);
        Matrix<float> inferred_scalar_t(sh.out, n);
        mf.forward(xf, 0.37, inferred_scalar_t, ws);
        CHECK(rel(inferred_scalar_t.cast<double>(), out_scalar_t) < 2e-6);
        const Matrix<float> trained = mf.forward_train(xf, tf, ws);
        CHECK(rel(trained.cast<double>(), out_d) < 2e-6);
        const Matrix<float> gout = (2.0 / count * (out_d - target)).cast<float>();
        mf.backward(gout, ws);
        CHECK(rel(mf.gradients().cast<double>(), grad_d) < 2e-5);
        mf.gradients().setConstant(1e30f);  // overwritten, not accumulated
        MLPVectorField<float>::Workspace wf;
        const double loss_f = mf.mse_loss_and_gradient(xf, tf, targetf, wf);
        CHECK(std::abs(loss_f - loss_d) <= 2e-6 * loss_d);
        CHECK(rel(mf.gradients().cast<double>(), grad_d) < 2e-5);
      }
    }
  }
}

TEST_CASE("MLPVectorField mse_loss_and_gradient equals forward_train then backward in double", "[nn][mlp]") {
  ThreadsGuard guard;
  MLPVectorField<double, Tanh> model(3, {20, 9}, 8);
  Rng rng(4);
  const Index n = 70;
  Matrix<double> x(3, n), target(3, n);
  RowVector<double> t(n);
  rng.fill_normal(x);
  rng.fill_normal(target);
  rng.fill_uniform(t);
  MLPVectorField<double, Tanh>::Workspace ws;
  const Matrix<double> out = model.forward_train(x, t, ws);
  const double count = static_cast<double>(out.size());
  model.backward(2.0 / count * (out - target), ws);
  const Vector<double> expected = model.gradients();
  for (const int threads : {1, 2}) {
    set_num_threads(threads);
    const double loss = model.mse_loss_and_gradient(x, t, target, ws);
    CHECK(std::abs(loss - (out - target).squaredNorm() / count) < 1e-13 * loss);
    CHECK(test::max_abs(model.gradients() - expected) < 1e-13 * (1.0 + test::max_abs(expected)));
  }
  CHECK_THROWS_AS(model.mse_loss_and_gradient(x, t, target.leftCols(5), ws), DimensionMismatch);
  CHECK_THROWS_WITH(model.mse_loss_and_gradient(x, t, target.topRows(2), ws), Catch::Contains("'target'"));
}

TEST_CASE("MLPVectorField passes flush denormals only inside their own scope", "[nn][mlp]") {
#if defined(__SSE__)
  const unsigned before = _mm_getcsr();
  MLPVectorField<float> model(2, {64, 16}, 1);
  MLPVectorField<float>::Workspace ws;
  Matrix<float> x(2, 40), out(2, 40);
  Rng rng(1);
  rng.fill_normal(x);
  x *= 300.0f;  // drives many SiLU units deep into the negative tail (tiny activations)
  model.forward(x, 0.5, out, ws);
  CHECK(out.allFinite());
  const Matrix<float> target = Matrix<float>::Zero(2, 40);
  const double loss = model.mse_loss_and_gradient(x, 0.5, target, ws);
  CHECK(std::isfinite(loss));
  CHECK(model.gradients().allFinite());
  // The caller's floating-point mode is restored (the low six bits are sticky exception flags,
  // which the test's own arithmetic sets).
  CHECK((_mm_getcsr() & ~0x3Fu) == (before & ~0x3Fu));
  // Inside the scope denormals are flushed: a denormal times one is zero.
  volatile float tiny = 1e-40f;
  {
    const detail::FlushDenormals flush;
    volatile float product = tiny * 1.0f;
    CHECK(product == 0.0f);
  }
  volatile float product = tiny * 1.0f;
  CHECK(product != 0.0f);
#else
  SUCCEED("not an x86 build: FlushDenormals is a no-op");
#endif
}

#if !defined(__AVX512F__)
TEST_CASE("AVX-512 kernel tests are skipped in a build without AVX-512F", "[nn][mlp][fast]") {
  // The two kernel-only tests below (silu_log2 against double, the cap-free SiLU against the capped one) need AVX-512F;
  // this build (e.g. FLOWMATCH_NATIVE=OFF, scripts/sanitize.sh) has none, so they are skipped and
  // the tests above check the portable float path instead. What this build can check: no model
  // takes the fast path, not even the reference workload's shape.
  WARN("not an AVX-512F build: the AVX-512 kernel tests are SKIPPED; MLPVectorField<float, SiLU> runs its portable path");
  CHECK_FALSE(MLPVectorField<float>(2, {1024, 16}, std::uint64_t{1}).fast_path());
  CHECK_FALSE(detail::kMLPFastKernels<float, SiLU>);
}
#endif

#if defined(__AVX512F__)

TEST_CASE("The AVX-512 inference SiLU kernel equals t sigmoid(-t ln 2) in double over the float range", "[nn][mlp][fast]") {
  // silu_log2 takes the pre-activation scaled by -log2(e), t = fl(-log2(e) z), and returns
  // h' = t sigmoid(z) with z = -t ln 2 (-log2(e) SiLU(z)). Each input fills all 16 lanes.
  const float w = -1.44269504088896341f;
  std::vector<float> z;
  for (int i = -40000; i <= 40000; ++i) z.push_back(static_cast<float>(i) * 0.005f);  // [-200, 200]
  for (const float e : {1e3f, 1e4f, 1e30f, 1e38f}) {  // |z| < 2.3e38: t = -log2(e) z stays finite
    z.push_back(e);
    z.push_back(-e);
  }
  const Index n = static_cast<Index>(z.size()), ld = 16;
  std::vector<float> h(static_cast<std::size_t>(n * ld));
  {
    const detail::FlushDenormals flush;  // as in MLPVectorField::forward
    for (Index j = 0; j < n; ++j)
      _mm512_storeu_ps(h.data() + j * ld, detail::avx512::silu_log2(_mm512_set1_ps(w * z[static_cast<std::size_t>(j)])));
  }
  double worst = 0.0;
  for (Index j = 0; j < n; ++j) {
    const float t = w * z[static_cast<std::size_t>(j)];
    const double td = t;
    const double expected = td / (1.0 + std::exp2(td));  // t sigmoid(z) with e^-z = 2^t
    for (Index k = 0; k < 16; ++k) {
      const double got = h[static_cast<std::size_t>(j * ld + k)];
      INFO("z = " << z[static_cast<std::size_t>(j)] << ", t = " << t << ", kernel " << got << ", expected " << expected);
      REQUIRE(std::isfinite(got));
      // Relative to the value; values under 2^-126 flush to zero.
      const double err = std::abs(got - expected);
      if (std::abs(expected) > 1e-30) worst = std::max(worst, err / std::abs(expected));
      else REQUIRE(err < 1e-30);
    }
  }
  CHECK(worst < 1e-6);
}
#endif

#if defined(__AVX512F__)
TEST_CASE("The AVX-512 inference SiLU without its cap gives the same bits wherever the cap changes nothing", "[nn][mlp][fast]") {
  const detail::FlushDenormals flush;  // as in MLPVectorField::forward
  int compared = 0;
  for (int i = -40000; i <= 25200; ++i) {  // t in [-200, 126]
    const __m512 t = _mm512_set1_ps(static_cast<float>(i) * 0.005f);
    alignas(64) float capped[16], uncapped[16];
    _mm512_store_ps(capped, detail::avx512::silu_log2<true>(t));
    _mm512_store_ps(uncapped, detail::avx512::silu_log2<false>(t));
    INFO("t = " << static_cast<float>(i) * 0.005f);
    REQUIRE(std::memcmp(capped, uncapped, sizeof capped) == 0);
    ++compared;
  }
  CHECK(compared == 65201);
}
#endif

// Runs on both paths: without AVX-512 it checks the portable float path on the same inputs.
TEST_CASE("MLPVectorField float inference agrees with double where some columns need the SiLU's cap", "[nn][mlp][fast]") {
  // The reference workload's shape. Columns 16-40 are scaled up until the bound on the scaled pre-activations
  // passes the kernel's limit: the groups of 16 holding them run with the cap, the others without.
  ThreadsGuard guard;
  MLPVectorField<float> mf(2, {1024, 16}, std::uint64_t{5});
  MLPVectorField<double> md(2, {1024, 16}, std::uint64_t{5});
  md.parameters() = mf.parameters().cast<double>();
  const Index n = 77;
  Rng rng(9);
  Matrix<double> x(2, n);
  rng.fill_normal(x);
  x *= 4.0;
  x.middleCols(16, 25) *= 500.0;  // |x| up to several thousand: many SiLUs far in either tail
  const Matrix<float> xf = x.cast<float>();
  for (const int threads : {1, 2}) {
    set_num_threads(threads);
    for (const double t : {0.0, 0.37, 1.0}) {
      MLPVectorField<double>::Workspace wd;
      const Matrix<double> expected = md.forward_train(x, t, wd);
      MLPVectorField<float>::Workspace ws;
      Matrix<float> got(2, n);
      mf.forward(xf, t, got, ws);
      REQUIRE(got.allFinite());
      for (Index j = 0; j < n; ++j) {
        INFO("column " << j << ", t " << t << ", threads " << threads << ": " << got.col(j).transpose() << " against "
                       << expected.col(j).transpose());
        CHECK(rel(got.col(j).cast<double>(), expected.col(j)) < 2e-5);
      }
    }
  }
}

}  // namespace FLOWMATCH_TEST_FILE_ID
