// Extending flowmatch: a user-defined optimizer. RMSprop below is written entirely in this file:
// it satisfies the Optimizer concept (optim/concepts.hpp), so it trains an MLPVectorField, and it
// has the state protocol (core/state.hpp), so save_state_parts / load_state_parts (and io/'s
// checkpoint files, which are a StateDict on disk) save and restore it with no change to flowmatch:
// io/ names no optimizer type. It even drops into ScheduledOptimizer, whose state holds it under
// "optimizer.inner.".

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <flowmatch/core/error.hpp>
#include <flowmatch/core/random.hpp>
#include <flowmatch/core/state.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>
#include <flowmatch/optim/concepts.hpp>
#include <flowmatch/optim/lr_schedule.hpp>

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

namespace {

using flowmatch::Index;
using flowmatch::StateReader;
using flowmatch::StateWriter;
using flowmatch::Vector;

/// RMSprop as torch.optim.RMSprop computes it (no momentum, not centered):
///   v <- alpha v + (1 - alpha) g^2,   p <- p - lr g / (sqrt(v) + eps).
template <flowmatch::Real S>
class RMSprop {
 public:
  using Scalar = S;

  explicit RMSprop(double lr = 1e-2, double alpha = 0.99, double eps = 1e-8) : lr_(lr), alpha_(alpha), eps_(eps) {}

  // ---- the Optimizer concept
  double learning_rate() const { return lr_; }
  void set_learning_rate(double lr) { lr_ = lr; }
  long long steps_taken() const { return steps_; }
  void reset(Index n) {
    square_avg_ = Vector<S>::Zero(n);
    steps_ = 0;
  }
  template <class DP, class DG>
  void step(const Eigen::MatrixBase<DP>& params_, const Eigen::MatrixBase<DG>& grads) {
    auto& params = const_cast<Eigen::MatrixBase<DP>&>(params_);
    if (square_avg_.size() != params.size()) reset(params.size());
    const S a = static_cast<S>(alpha_);
    square_avg_.array() = a * square_avg_.array() + (S(1) - a) * grads.array().square();
    params.array() -= static_cast<S>(lr_) * grads.array() / (square_avg_.array().sqrt() + static_cast<S>(eps_));
    ++steps_;
  }

  // ---- the state protocol: a type tag, the settings that must match, what is restored
  static constexpr std::string_view state_scope = "optimizer";
  void save_state(StateWriter& w) const {
    w.text("type", "rmsprop");
    w.real("lr", lr_);
    w.real("alpha", alpha_);
    w.real("eps", eps_);
    w.integer("steps", steps_);
    w.vector("square_avg", square_avg_);
  }
  void load_state(const StateReader& r) {
    r.expect_text("type", "rmsprop", "optimizer type");
    r.expect_real("alpha", alpha_, "RMSprop alpha");
    r.expect_real("eps", eps_, "RMSprop eps");
    const double lr = r.real("lr");
    const long long steps = r.integer("steps");
    if (steps < 0) r.fail("holds a negative step count");
    const std::vector<std::int64_t> shape = r.shape("square_avg");
    if (shape.size() != 1) r.fail("square_avg is not 1-D");
    const auto n = static_cast<Index>(shape[0]);
    Vector<S> v = r.vector<S>("square_avg", n);  // checks dtype and shape
    if (!v.allFinite() || (n > 0 && v.minCoeff() < S(0))) r.fail("square_avg is not finite and >= 0");
    lr_ = lr;  // commit only after every check
    steps_ = steps;
    square_avg_ = std::move(v);
  }

  const Vector<S>& square_avg() const { return square_avg_; }

 private:
  double lr_, alpha_, eps_;
  long long steps_ = 0;
  Vector<S> square_avg_;
};

static_assert(flowmatch::Optimizer<RMSprop<float>> && flowmatch::Stateful<RMSprop<float>>);

using Model = flowmatch::MLPVectorField<float>;

template <class Opt>
void train(Model& model, Opt& opt, std::uint64_t seed, int steps) {
  flowmatch::Rng rng(seed);
  Model::Workspace ws;
  flowmatch::Matrix<float> x(2, 32), u(2, 32);
  Vector<float> t(32);
  for (int k = 0; k < steps; ++k) {
    rng.fill_normal(x);
    rng.fill_uniform(t);
    u = -x;
    model.mse_loss_and_gradient(x, t, u, ws);
    opt.step(model.parameters(), model.gradients());
  }
}

}  // namespace

TEST_CASE("extend: a user-defined optimizer is saved and restored with no change to flowmatch", "[extend][state]") {
  Model model(2, {16}, 1);
  RMSprop<float> opt(3e-3, 0.9);
  train(model, opt, 7, 10);

  flowmatch::StateDict dict;
  flowmatch::save_state_parts(dict, model, opt);  // each under its default scope
  CHECK(*dict.find_attribute("optimizer.type") == "rmsprop");
  CHECK(dict.find_tensor("optimizer.square_avg")->shape == std::vector<std::int64_t>{model.num_parameters()});
  CHECK(dict.find_tensor("model.0.weight") != nullptr);

  Model model2(2, {16}, 2);
  RMSprop<float> opt2(1.0, 0.9);
  flowmatch::load_state_parts(dict, "mem", model2, opt2);
  CHECK(model2.parameters() == model.parameters());
  CHECK(opt2.square_avg() == opt.square_avg());
  CHECK(opt2.learning_rate() == opt.learning_rate());
  CHECK(opt2.steps_taken() == 10);
  train(model, opt, 8, 5);  // both continue identically
  train(model2, opt2, 8, 5);
  CHECK(model2.parameters() == model.parameters());

  // Its own checks, with the rollback of load_state_parts: the model is left as it was too.
  RMSprop<float> other_alpha(3e-3, 0.5);
  Model model3(2, {16}, 3);
  const Vector<float> before = model3.parameters();
  CHECK_THROWS_WITH(flowmatch::load_state_parts(dict, "mem", model3, other_alpha), Catch::Contains("RMSprop alpha"));
  CHECK(model3.parameters() == before);

  // Inside ScheduledOptimizer, under "optimizer.inner.".
  flowmatch::ScheduledOptimizer sched(RMSprop<float>(3e-3, 0.9), flowmatch::WarmupCosineLR(2, 20));
  train(model, sched, 9, 4);
  flowmatch::StateDict d2;
  flowmatch::save_state_parts(d2, sched);
  CHECK(*d2.find_attribute("optimizer.inner.type") == "rmsprop");
  flowmatch::ScheduledOptimizer sched2(RMSprop<float>(1.0, 0.9), flowmatch::WarmupCosineLR(2, 20));
  flowmatch::load_state_parts(d2, "mem", sched2);
  CHECK(sched2.steps_taken() == 4);
  CHECK(sched2.inner().square_avg() == sched.inner().square_avg());
}

}  // namespace FLOWMATCH_TEST_FILE_ID
