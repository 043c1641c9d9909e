// Adam against PyTorch's update formula written out by hand, its first step, state handling,
// argument checks, and minimising a quadratic.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include <flowmatch/optim/adam.hpp>
#include <flowmatch/optim/concepts.hpp>

#include "support/compare.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

static_assert(Optimizer<Adam<float>>);
static_assert(Optimizer<Adam<double>>);

namespace {

// The gradient at step k (1-based): changing in size and sign, with an exact zero in entry 3.
Vector<double> gradient_at(int k) {
  Vector<double> g(5);
  g << std::cos(1.0 + k), -0.5 * k, 1e-3 * k * k, 0.0, (k % 2 == 0 ? 2.0 : -3.0);
  return g;
}

// torch.optim.Adam, step k (no weight decay, no amsgrad), transcribed:
//   exp_avg = beta1 * exp_avg + (1 - beta1) * grad
//   exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad * grad
//   bias_correction1 = 1 - beta1 ** k;  bias_correction2 = 1 - beta2 ** k
//   step_size = lr / bias_correction1
//   denom = sqrt(exp_avg_sq) / sqrt(bias_correction2) + eps
//   param = param - step_size * exp_avg / denom
struct HandAdam {
  double lr, beta1, beta2, eps;
  std::vector<double> m, v;
  int k = 0;
  void step(Vector<double>& p, const Vector<double>& g) {
    if (m.empty()) m.assign(std::size_t(p.size()), 0.0), v.assign(std::size_t(p.size()), 0.0);
    ++k;
    const double bc1 = 1.0 - std::pow(beta1, k);
    const double bc2 = 1.0 - std::pow(beta2, k);
    for (Index i = 0; i < p.size(); ++i) {
      const auto u = std::size_t(i);
      m[u] = beta1 * m[u] + (1.0 - beta1) * g(i);
      v[u] = beta2 * v[u] + (1.0 - beta2) * g(i) * g(i);
      const double denom = std::sqrt(v[u]) / std::sqrt(bc2) + eps;
      p(i) -= lr / bc1 * m[u] / denom;
    }
  }
};

Vector<double> start() {
  Vector<double> p(5);
  p << 0.5, -1.2, 2.0, 0.0, 3.0;
  return p;
}

}  // namespace

TEST_CASE("Adam matches a hand-computed sequence of PyTorch updates", "[optim][adam]") {
  struct Config {
    double lr, beta1, beta2, eps;
  };
  // The defaults, and a configuration where eps and the bias corrections weigh more.
  for (const Config c : {Config{1e-3, 0.9, 0.999, 1e-8}, Config{0.05, 0.8, 0.99, 1e-2}, Config{0.1, 0.0, 0.5, 1e-8}}) {
    INFO("lr " << c.lr << " betas " << c.beta1 << ", " << c.beta2 << " eps " << c.eps);
    Adam<double> adam(c.lr, c.beta1, c.beta2, c.eps);
    HandAdam hand{c.lr, c.beta1, c.beta2, c.eps, {}, {}};
    Vector<double> p = start(), q = start();
    for (int k = 1; k <= 5; ++k) {
      INFO("step " << k);
      adam.step(p, gradient_at(k));
      hand.step(q, gradient_at(k));
      CHECK(test::max_abs(p - q) < 1e-12);
      CHECK(adam.steps_taken() == k);
      for (Index i = 0; i < 5; ++i) {
        CHECK(adam.first_moment()(i) == Approx(hand.m[std::size_t(i)]).epsilon(1e-14).margin(1e-300));
        CHECK(adam.second_moment()(i) == Approx(hand.v[std::size_t(i)]).epsilon(1e-14).margin(1e-300));
      }
    }
    CHECK(p(3) == 0.0);  // a zero gradient never moves its parameter
    CHECK(test::max_abs(p - start()) > 0.0);
  }
}

TEST_CASE("The first Adam step moves each parameter by lr times sign(g)", "[optim][adam]") {
  // After one step m / bc1 = g and sqrt(v / bc2) = |g|: the update is lr g / (|g| + eps).
  const double lr = 0.01;
  Adam<double> adam(lr);
  Vector<double> p = Vector<double>::Zero(6), g(6);
  g << 3.0, -0.02, 1e-2, -1e3, 0.0, 1e-9;
  adam.step(p, g);
  for (Index i = 0; i < 6; ++i) {
    INFO("g = " << g(i));
    const double expected = -lr * g(i) / (std::abs(g(i)) + 1e-8);
    CHECK(p(i) == Approx(expected).epsilon(1e-12).margin(1e-18));
    if (std::abs(g(i)) >= 1e-2) CHECK(std::abs(p(i) + lr * (g(i) > 0 ? 1.0 : -1.0)) <= lr * 1e-6);
  }
  CHECK(p(4) == 0.0);
  CHECK(std::abs(p(5)) < lr * 0.1);  // |g| = 1e-9 < eps: the step is damped by eps, not lr
}

TEST_CASE("Adam<float> follows Adam<double>", "[optim][adam]") {
  Adam<float> af(0.01);
  Adam<double> ad(0.01);
  Vector<float> pf = start().cast<float>();
  Vector<double> pd = start();
  for (int k = 1; k <= 20; ++k) {
    af.step(pf, gradient_at(k).cast<float>());
    ad.step(pd, gradient_at(k));
  }
  CHECK(test::max_abs(pf.cast<double>() - pd) < 1e-5);
}

TEST_CASE("Adam state: set_state continues exactly and reset forgets", "[optim][adam]") {
  Adam<double> a(0.02, 0.85, 0.995, 1e-6);
  Vector<double> p = start();
  for (int k = 1; k <= 3; ++k) a.step(p, gradient_at(k));
  Adam<double> b(0.02, 0.85, 0.995, 1e-6);
  b.set_state(a.first_moment(), a.second_moment(), a.steps_taken());
  Vector<double> q = p;
  for (int k = 4; k <= 6; ++k) {
    a.step(p, gradient_at(k));
    b.step(q, gradient_at(k));
  }
  CHECK(p == q);
  CHECK(b.steps_taken() == 6);

  // reset(): the next step is a first step again (bias correction restarts).
  Adam<double> c(0.01);
  Vector<double> r = Vector<double>::Zero(5);
  c.step(r, gradient_at(1));
  c.step(r, gradient_at(2));
  c.reset(5);
  CHECK(c.steps_taken() == 0);
  CHECK(c.first_moment().isZero(0.0));
  Vector<double> s = Vector<double>::Zero(5), before = s;
  c.step(s, gradient_at(3));
  Adam<double> fresh(0.01);
  fresh.step(before, gradient_at(3));
  CHECK(s == before);

  CHECK_THROWS_AS(c.set_state(Vector<double>::Zero(3), Vector<double>::Zero(4), 1), DimensionMismatch);
  CHECK_THROWS_WITH(c.set_state(Vector<double>::Zero(3), Vector<double>::Zero(4), 1), Catch::Contains("argument 'v'"));
  CHECK_THROWS_WITH(c.set_state(Vector<double>::Zero(3), Vector<double>::Zero(3), -1), Catch::Contains("argument 'steps'"));
}

TEST_CASE("Adam refuses bad hyper-parameters and shapes, naming them", "[optim][adam][errors]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (double lr : {0.0, -1e-3, nan, inf}) {
    INFO("lr = " << lr);
    CHECK_THROWS_AS(Adam<float>(lr), InvalidArgument);
    CHECK_THROWS_WITH(Adam<float>(lr), Catch::Contains("argument 'lr'"));
  }
  Adam<float> a(1e-3);
  CHECK_THROWS_WITH(a.set_learning_rate(0.0), Catch::Contains("argument 'lr'"));
  CHECK_THROWS_WITH(a.set_learning_rate(nan), Catch::Contains("argument 'lr'"));
  CHECK(a.learning_rate() == 1e-3);  // unchanged by a refused value
  a.set_learning_rate(0.5);
  CHECK(a.learning_rate() == 0.5);
  CHECK_THROWS_WITH(Adam<float>(1e-3, 1.0), Catch::Contains("argument 'beta1'"));
  CHECK_THROWS_WITH(Adam<float>(1e-3, -0.1), Catch::Contains("argument 'beta1'"));
  CHECK_THROWS_WITH(Adam<float>(1e-3, 0.9, 1.0), Catch::Contains("argument 'beta2'"));
  CHECK_THROWS_WITH(Adam<float>(1e-3, 0.9, nan), Catch::Contains("argument 'beta2'"));
  CHECK_THROWS_WITH(Adam<float>(1e-3, 0.9, 0.999, 0.0), Catch::Contains("argument 'eps'"));
  CHECK_THROWS_WITH(Adam<float>(1e-3, 0.9, 0.999, inf), Catch::Contains("argument 'eps'"));

  Adam<double> b;
  CHECK(b.learning_rate() == 1e-3);
  CHECK(b.beta1() == 0.9);
  CHECK(b.beta2() == 0.999);
  CHECK(b.eps() == 1e-8);
  Vector<double> p = Vector<double>::Zero(4);
  CHECK_THROWS_AS(b.step(p, Vector<double>::Zero(3)), DimensionMismatch);
  CHECK_THROWS_WITH(b.step(p, Vector<double>::Zero(3)), Catch::Contains("argument 'grads'"));
  b.step(p, Vector<double>::Ones(4));
  Vector<double> other = Vector<double>::Zero(6);  // a different parameter vector mid-run
  CHECK_THROWS_AS(b.step(other, Vector<double>::Ones(6)), DimensionMismatch);
  CHECK_THROWS_WITH(b.step(other, Vector<double>::Ones(6)), Catch::Contains("argument 'params'"));
}

TEST_CASE("Adam minimises an ill-conditioned quadratic", "[optim][adam]") {
  // f(p) = 1/2 sum_i a_i (p_i - c_i)^2 with curvatures from 1 to 1000.
  Vector<double> a(4), c(4);
  a << 1.0, 10.0, 100.0, 1000.0;
  c << 1.0, -2.0, 0.5, 3.0;
  const auto f = [&](const Vector<double>& p) { return 0.5 * (a.array() * (p - c).array().square()).sum(); };
  Vector<double> p = Vector<double>::Zero(4);
  const double f0 = f(p);
  Adam<double> adam(0.05);
  for (int k = 0; k < 3000; ++k) {
    if (k == 2000) adam.set_learning_rate(0.005);  // a smaller step to settle
    const Vector<double> g = (a.array() * (p - c).array()).matrix();
    adam.step(p, g);
  }
  INFO("f0 = " << f0 << ", f = " << f(p) << ", p = " << p.transpose());
  CHECK(f(p) < 1e-8 * f0);
  CHECK(test::max_abs(p - c) < 1e-3);
}

}  // namespace FLOWMATCH_TEST_FILE_ID
