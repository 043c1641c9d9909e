// SGD: plain, momentum and Nesterov against PyTorch's formulas written out by hand.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include <flowmatch/optim/concepts.hpp>
#include <flowmatch/optim/sgd.hpp>

#include "support/compare.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

static_assert(Optimizer<SGD<float>>);
static_assert(Optimizer<SGD<double>>);

namespace {

Vector<double> gradient_at(int k) {
  Vector<double> g(4);
  g << std::sin(0.7 * k), 1.0 / k, -2.0 + 0.3 * k, (k == 2 ? 0.0 : 1.5);
  return g;
}

Vector<double> start() {
  Vector<double> p(4);
  p << 1.0, -1.0, 0.25, 4.0;
  return p;
}

}  // namespace

TEST_CASE("SGD without momentum: p <- p - lr g", "[optim][sgd]") {
  SGD<double> sgd(0.1);
  Vector<double> p = start(), q = start();
  for (int k = 1; k <= 4; ++k) {
    sgd.step(p, gradient_at(k));
    q -= 0.1 * gradient_at(k);
    CHECK(test::max_abs(p - q) < 1e-15);
    CHECK(sgd.steps_taken() == k);
  }
  CHECK(sgd.momentum() == 0.0);
  CHECK(sgd.momentum_buffer().size() == 0);
}

TEST_CASE("SGD with momentum: PyTorch's buf = g at the first step, then mu buf + g", "[optim][sgd]") {
  const double lr = 0.05, mu = 0.9;
  SGD<double> sgd(lr, mu);
  Vector<double> p = start(), q = start(), buf;
  for (int k = 1; k <= 5; ++k) {
    INFO("step " << k);
    const Vector<double> g = gradient_at(k);
    sgd.step(p, g);
    // torch.optim.SGD (dampening 0): buf = clone(g) if first step else mu * buf + g; p -= lr * buf.
    buf = k == 1 ? g : Vector<double>(mu * buf + g);
    q -= lr * buf;
    CHECK(test::max_abs(p - q) < 1e-14);
    CHECK(test::max_abs(sgd.momentum_buffer() - buf) < 1e-14);
  }
  // The first step is a plain step lr g: the buffer starts at g, not at (1 - mu) g.
  SGD<double> first(0.1, 0.5);
  Vector<double> r = Vector<double>::Zero(4);
  first.step(r, gradient_at(1));
  CHECK(test::max_abs(r + 0.1 * gradient_at(1)) < 1e-16);
}

TEST_CASE("SGD with Nesterov momentum: p <- p - lr (g + mu buf)", "[optim][sgd]") {
  const double lr = 0.02, mu = 0.8;
  SGD<double> sgd(lr, mu, true);
  Vector<double> p = start(), q = start(), buf;
  for (int k = 1; k <= 5; ++k) {
    INFO("step " << k);
    const Vector<double> g = gradient_at(k);
    sgd.step(p, g);
    buf = k == 1 ? g : Vector<double>(mu * buf + g);
    q -= lr * (g + mu * buf);
    CHECK(test::max_abs(p - q) < 1e-14);
  }
}

TEST_CASE("SGD reset() restarts the momentum buffer and float follows double", "[optim][sgd]") {
  SGD<double> sgd(0.1, 0.9);
  Vector<double> p = start();
  sgd.step(p, gradient_at(1));
  sgd.step(p, gradient_at(2));
  sgd.reset(4);
  CHECK(sgd.steps_taken() == 0);
  const Vector<double> before = p;
  sgd.step(p, gradient_at(3));  // a first step again: buf = g
  CHECK(test::max_abs(p - (before - 0.1 * gradient_at(3))) < 1e-15);

  SGD<float> sf(0.1, 0.9, true);
  SGD<double> sd(0.1, 0.9, true);
  Vector<float> pf = start().cast<float>();
  Vector<double> pd = start();
  for (int k = 1; k <= 10; ++k) {
    sf.step(pf, gradient_at(k).cast<float>());
    sd.step(pd, gradient_at(k));
  }
  CHECK(test::max_abs(pf.cast<double>() - pd) < 1e-5);
}

TEST_CASE("SGD minimises a quadratic with momentum", "[optim][sgd]") {
  Vector<double> a(3), c(3);
  a << 1.0, 5.0, 20.0;
  c << 2.0, -1.0, 0.5;
  Vector<double> p = Vector<double>::Zero(3);
  SGD<double> sgd(0.02, 0.9);
  for (int k = 0; k < 1000; ++k) sgd.step(p, (a.array() * (p - c).array()).matrix());
  CHECK(test::max_abs(p - c) < 1e-8);
}

TEST_CASE("SGD refuses bad hyper-parameters and shapes, naming them", "[optim][sgd][errors]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (double lr : {0.0, -0.1, nan, inf, -inf}) {
    INFO("lr = " << lr);
    CHECK_THROWS_AS(SGD<float>(lr), InvalidArgument);
    CHECK_THROWS_WITH(SGD<float>(lr), Catch::Contains("argument 'lr'"));
  }
  SGD<float> s(0.1);
  CHECK_THROWS_WITH(s.set_learning_rate(-1.0), Catch::Contains("argument 'lr'"));
  CHECK_THROWS_WITH(s.set_learning_rate(inf), Catch::Contains("argument 'lr'"));
  CHECK(s.learning_rate() == Approx(0.1));
  CHECK_THROWS_WITH(SGD<float>(0.1, 1.0), Catch::Contains("argument 'momentum'"));
  CHECK_THROWS_WITH(SGD<float>(0.1, -0.5), Catch::Contains("argument 'momentum'"));
  CHECK_THROWS_WITH(SGD<float>(0.1, nan), Catch::Contains("argument 'momentum'"));
  CHECK_THROWS_WITH(SGD<float>(0.1, 0.0, true), Catch::Contains("argument 'momentum'"));  // Nesterov needs momentum
  Vector<double> p = Vector<double>::Zero(3);
  SGD<double> d(0.1, 0.5);
  CHECK_THROWS_AS(d.step(p, Vector<double>::Zero(2)), DimensionMismatch);
  CHECK_THROWS_WITH(d.step(p, Vector<double>::Zero(2)), Catch::Contains("argument 'grads'"));
}

}  // namespace FLOWMATCH_TEST_FILE_ID
