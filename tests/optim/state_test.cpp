// The state protocol (core/state.hpp) of the optimizers, the learning-rate schedules,
// ScheduledOptimizer and the EMA: names, bit-exact round trips in float and double, every kind of
// mismatch refused with a useful message before the part changes, and resume exactness of a whole
// training loop (model + optimizer + EMA + generator) saved half way and restored into fresh objects.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>

#include <flowmatch/core/random.hpp>
#include <flowmatch/core/state.hpp>
#include <flowmatch/nn/mlp_vector_field.hpp>
#include <flowmatch/optim/adam.hpp>
#include <flowmatch/optim/adamw.hpp>
#include <flowmatch/optim/concepts.hpp>
#include <flowmatch/optim/ema.hpp>
#include <flowmatch/optim/lr_schedule.hpp>
#include <flowmatch/optim/sgd.hpp>

#include "support/state_edit.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;
using flowmatch::test::same_state;
using flowmatch::test::state_of;
using flowmatch::test::with_attribute;
using flowmatch::test::with_element;
using flowmatch::test::with_tensor;
using flowmatch::test::without;

namespace {

/// A schedule without the state protocol: ScheduledOptimizer saves its position alone.
struct HalfLR {
  double operator()(long long /*k*/) const { return 0.5; }
};

static_assert(Stateful<Adam<float>> && Stateful<SGD<double>> && Stateful<AdamW<float>>);
static_assert(Stateful<ExponentialMovingAverage<double>>);
static_assert(Stateful<ConstantLR> && Stateful<WarmupCosineLR> && !Stateful<HalfLR>);
static_assert(Stateful<ScheduledOptimizer<AdamW<float>, WarmupCosineLR>>);
static_assert(Stateful<ScheduledOptimizer<Adam<double>, HalfLR>>);

/// Runs `steps` updates of `opt` on params from fixed pseudo-random gradients.
template <class Opt>
void run_steps(Opt& opt, Vector<typename Opt::Scalar>& params, int steps, std::uint64_t seed) {
  using S = typename Opt::Scalar;
  Rng rng(seed);
  Vector<S> g(params.size());
  for (int k = 0; k < steps; ++k) {
    rng.fill_normal(g);
    opt.step(params, g);
  }
}

/// Saves `src` (after a few steps), loads the state into `dst` (built with the same settings but
/// another learning rate, and never stepped), and checks that both now save the same state bit
/// for bit and take the same next step.
template <class Opt>
void check_round_trip(Opt src, Opt dst) {
  using S = typename Opt::Scalar;
  Vector<S> p(7), q;
  Rng(3).fill_normal(p);
  run_steps(src, p, 5, 11);
  const StateDict saved = state_of(src);
  load_state_parts(saved, "mem", dst);
  CHECK(same_state(state_of(dst), saved));
  CHECK(dst.learning_rate() == src.learning_rate());
  CHECK(dst.steps_taken() == src.steps_taken());
  q = p;
  run_steps(src, p, 3, 12);
  run_steps(dst, q, 3, 12);
  CHECK(p == q);
}

/// Loading `d` into `part` throws CheckpointMismatchError whose message holds every `needle`, and
/// leaves `part` as it was: through load_state_parts (with its rollback) and, when `direct`, when
/// the part's own load_state is called alone (it checks before it changes anything).
template <class P>
void check_refused(P& part, const StateDict& d, std::initializer_list<std::string_view> needles, bool direct = true) {
  const StateDict before = state_of(part);
  try {
    load_state_parts(d, "bad.safetensors", part);
    FAIL("load_state_parts did not throw");
  } catch (const CheckpointMismatchError& e) {
    const std::string what = e.what();
    CHECK_THAT(what, Catch::Contains("bad.safetensors"));
    for (std::string_view needle : needles) CHECK_THAT(what, Catch::Contains(std::string(needle)));
  }
  CHECK(same_state(state_of(part), before));
  if (direct) {
    CHECK_THROWS_AS(part.load_state(StateReader(d, "mem", std::string(P::state_scope) + ".")), CheckpointMismatchError);
    CHECK(same_state(state_of(part), before));
  }
}

template <class Opt>
Opt stepped(Opt opt, int steps = 3) {
  Vector<typename Opt::Scalar> p = Vector<typename Opt::Scalar>::Ones(5);
  run_steps(opt, p, steps, 5);
  return opt;
}

}  // namespace

TEMPLATE_TEST_CASE("optimizer state: every optimizer round-trips bit for bit", "[optim][state]", float, double) {
  using S = TestType;
  SECTION("Adam") { check_round_trip(Adam<S>(1e-2, 0.8, 0.99, 1e-6), Adam<S>(5e-3, 0.8, 0.99, 1e-6)); }
  SECTION("SGD") { check_round_trip(SGD<S>(0.1), SGD<S>(0.2)); }
  SECTION("SGD with momentum") { check_round_trip(SGD<S>(0.1, 0.9), SGD<S>(0.3, 0.9)); }
  SECTION("SGD with Nesterov momentum") { check_round_trip(SGD<S>(0.1, 0.5, true), SGD<S>(0.3, 0.5, true)); }
  SECTION("AdamW") { check_round_trip(AdamW<S>(1e-2, 0.1), AdamW<S>(1e-3, 0.1)); }
  SECTION("ScheduledOptimizer<AdamW, WarmupCosineLR>") {
    using Opt = ScheduledOptimizer<AdamW<S>, WarmupCosineLR>;
    check_round_trip(Opt(AdamW<S>(1e-2), WarmupCosineLR(2, 9, 0.1)), Opt(AdamW<S>(3e-2), WarmupCosineLR(2, 9, 0.1)));
  }
  SECTION("ScheduledOptimizer<SGD, ConstantLR>") {
    using Opt = ScheduledOptimizer<SGD<S>, ConstantLR>;
    check_round_trip(Opt(SGD<S>(0.1, 0.9), ConstantLR{}), Opt(SGD<S>(0.2, 0.9), ConstantLR{}));
  }
  SECTION("ScheduledOptimizer with a schedule that has no state protocol") {
    using Opt = ScheduledOptimizer<Adam<S>, HalfLR>;
    check_round_trip(Opt(Adam<S>(1e-2), HalfLR{}), Opt(Adam<S>(1e-1), HalfLR{}));
    const StateDict d = state_of(stepped(Opt(Adam<S>(1e-2), HalfLR{})));
    CHECK(*d.find_attribute("optimizer.steps") == "3");
    for (const auto& [key, value] : d.attributes()) CHECK_FALSE(key.starts_with("optimizer.schedule."));
  }
  SECTION("ExponentialMovingAverage") {
    ExponentialMovingAverage<S> a(0.9), b(0.9);
    Vector<S> p(6);
    Rng rng(4);
    for (int k = 0; k < 4; ++k) {
      rng.fill_normal(p);
      a.update(p);
    }
    const StateDict saved = state_of(a);
    load_state_parts(saved, "mem", b);
    CHECK(same_state(state_of(b), saved));
    CHECK(b.updates() == 4);
    CHECK(b.average() == a.average());
    // A fresh EMA (no update yet) round-trips too.
    ExponentialMovingAverage<S> fresh(0.9);
    load_state_parts(state_of(fresh), "mem", b);
    CHECK(b.updates() == 0);
    CHECK(b.average().size() == 0);
  }
  SECTION("a fresh optimizer (no moments yet) round-trips") {
    Adam<S> a(1e-3);
    Adam<S> b = stepped(Adam<S>(1e-3));
    load_state_parts(state_of(a), "mem", b);
    CHECK(b.steps_taken() == 0);
    CHECK(b.first_moment().size() == 0);
  }
}

TEST_CASE("optimizer state: the fixed names, types and shapes", "[optim][state]") {
  const StateDict adam = state_of(stepped(Adam<float>(1e-3, 0.9, 0.999, 1e-8)));
  CHECK(*adam.find_attribute("optimizer.type") == "adam");
  CHECK(*adam.find_attribute("optimizer.lr") == "0.001");
  CHECK(*adam.find_attribute("optimizer.beta1") == "0.9");
  CHECK(*adam.find_attribute("optimizer.beta2") == "0.999");
  CHECK(*adam.find_attribute("optimizer.eps") == "1e-08");
  CHECK(*adam.find_attribute("optimizer.steps") == "3");
  for (const char* name : {"optimizer.exp_avg", "optimizer.exp_avg_sq"}) {
    REQUIRE(adam.find_tensor(name) != nullptr);
    CHECK(adam.find_tensor(name)->dtype == DType::F32);
    CHECK(adam.find_tensor(name)->shape == std::vector<std::int64_t>{5});
  }
  CHECK(adam.tensors().size() == 2);
  CHECK(adam.attributes().size() == 6);
  CHECK(state_of(Adam<double>()).find_tensor("optimizer.exp_avg")->shape == std::vector<std::int64_t>{0});

  const StateDict sgd = state_of(stepped(SGD<double>(0.1, 0.9, true)));
  CHECK(*sgd.find_attribute("optimizer.type") == "sgd");
  CHECK(*sgd.find_attribute("optimizer.momentum") == "0.9");
  CHECK(*sgd.find_attribute("optimizer.nesterov") == "true");
  CHECK(*sgd.find_attribute("optimizer.steps") == "3");
  CHECK(sgd.find_tensor("optimizer.momentum_buffer")->dtype == DType::F64);
  CHECK(sgd.find_tensor("optimizer.momentum_buffer")->shape == std::vector<std::int64_t>{5});
  CHECK(state_of(stepped(SGD<float>(0.1))).find_tensor("optimizer.momentum_buffer")->shape ==
        std::vector<std::int64_t>{0});

  const StateDict adamw = state_of(stepped(AdamW<float>(1e-3, 0.05)));
  CHECK(*adamw.find_attribute("optimizer.type") == "adamw");
  CHECK(*adamw.find_attribute("optimizer.weight_decay") == "0.05");
  for (const char* name : {"optimizer.lr", "optimizer.beta1", "optimizer.beta2", "optimizer.eps", "optimizer.steps"})
    CHECK(adamw.find_attribute(name) != nullptr);
  CHECK(adamw.find_tensor("optimizer.exp_avg") != nullptr);
  CHECK(adamw.find_tensor("optimizer.exp_avg_sq") != nullptr);

  const StateDict sched =
      state_of(stepped(ScheduledOptimizer(AdamW<float>(2e-3), WarmupCosineLR(2, 10, 0.25)), 4));
  CHECK(*sched.find_attribute("optimizer.type") == "scheduled");
  CHECK(*sched.find_attribute("optimizer.base_lr") == "0.002");
  CHECK(*sched.find_attribute("optimizer.steps") == "4");
  CHECK(*sched.find_attribute("optimizer.inner.type") == "adamw");
  CHECK(*sched.find_attribute("optimizer.inner.steps") == "4");
  CHECK(sched.find_tensor("optimizer.inner.exp_avg") != nullptr);
  CHECK(*sched.find_attribute("optimizer.schedule.type") == "warmup_cosine");
  CHECK(*sched.find_attribute("optimizer.schedule.warmup_steps") == "2");
  CHECK(*sched.find_attribute("optimizer.schedule.total_steps") == "10");
  CHECK(*sched.find_attribute("optimizer.schedule.final_factor") == "0.25");
  CHECK(*state_of(ScheduledOptimizer(Adam<float>(), ConstantLR{})).find_attribute("optimizer.schedule.type") ==
        "constant");

  ExponentialMovingAverage<float> ema(0.99);
  ema.update(Vector<float>::Ones(4));
  const StateDict e = state_of(ema);
  CHECK(*e.find_attribute("ema.type") == "ema");
  CHECK(*e.find_attribute("ema.decay") == "0.99");
  CHECK(*e.find_attribute("ema.updates") == "1");
  CHECK(e.find_tensor("ema.average")->shape == std::vector<std::int64_t>{4});
}

TEST_CASE("optimizer state: Adam refuses every mismatch and leaves itself unchanged", "[optim][state]") {
  const StateDict good = state_of(stepped(Adam<float>(1e-3, 0.9, 0.999, 1e-8)));
  Adam<float> dst = stepped(Adam<float>(2e-3, 0.9, 0.999, 1e-8), 2);
  SECTION("another optimizer type") {
    check_refused(dst, state_of(stepped(SGD<float>(0.1, 0.9))), {"optimizer type 'sgd'", "'adam'"});
  }
  SECTION("other betas or eps") {
    check_refused(dst, state_of(stepped(Adam<float>(1e-3, 0.8))), {"beta1 = 0.8", "optimizer.beta1", "0.9"});
    check_refused(dst, state_of(stepped(Adam<float>(1e-3, 0.9, 0.99))), {"beta2 = 0.99"});
    check_refused(dst, state_of(stepped(Adam<float>(1e-3, 0.9, 0.999, 1e-7))), {"eps = 1e-07"});
  }
  SECTION("another scalar type") {
    check_refused(dst, state_of(stepped(Adam<double>(1e-3))), {"optimizer.exp_avg", "F64", "F32"});
  }
  SECTION("a negative step count") {
    check_refused(dst, with_attribute(good, "optimizer.steps", "-1"), {"negative step count -1"});
  }
  SECTION("a step count that is not an integer") {
    check_refused(dst, with_attribute(good, "optimizer.steps", "3.5"), {"'optimizer.steps'", "not an integer"});
  }
  SECTION("a learning rate that is not > 0") {
    check_refused(dst, with_attribute(good, "optimizer.lr", "0"), {"learning rate 0"});
    check_refused(dst, with_attribute(good, "optimizer.lr", "inf"), {"learning rate inf"});
  }
  SECTION("a NaN or an infinity in a moment") {
    check_refused(dst, with_element(good, "optimizer.exp_avg", 2, std::numeric_limits<float>::quiet_NaN()),
                  {"'optimizer.exp_avg' holds a NaN"});
    check_refused(dst, with_element(good, "optimizer.exp_avg_sq", 0, std::numeric_limits<float>::infinity()),
                  {"'optimizer.exp_avg_sq' holds a NaN or an infinity"});
  }
  SECTION("a negative second moment") {
    check_refused(dst, with_element(good, "optimizer.exp_avg_sq", 4, -1e-3f), {"negative second moment"});
  }
  SECTION("a missing tensor") {
    check_refused(dst, without(good, "optimizer.exp_avg_sq"), {"no tensor 'optimizer.exp_avg_sq'"});
    check_refused(dst, without(good, "optimizer.beta2"), {"no attribute 'optimizer.beta2'"});
  }
  SECTION("moments of different sizes") {
    const StateDict other = state_of(stepped(Adam<float>(1e-3)));
    Tensor t = *other.find_tensor("optimizer.exp_avg_sq");
    t.shape = {4};
    t.bytes.resize(16);
    check_refused(dst, with_tensor(good, "optimizer.exp_avg_sq", t), {"shape [4]", "[5]"});
  }
  SECTION("steps without moments") {
    check_refused(dst, with_attribute(state_of(Adam<float>(1e-3)), "optimizer.steps", "2"), {"2 Adam steps but no moments"});
  }
  SECTION("a left-over tensor or attribute (checked by load_state_parts)") {
    Tensor extra = *good.find_tensor("optimizer.exp_avg");
    check_refused(dst, with_tensor(good, "optimizer.max_exp_avg_sq", extra), {"'optimizer.max_exp_avg_sq'"}, false);
    check_refused(dst, with_attribute(good, "optimizer.amsgrad", "true"), {"'optimizer.amsgrad'"}, false);
  }
}

TEST_CASE("optimizer state: SGD, AdamW, schedules and the EMA refuse mismatches", "[optim][state]") {
  SECTION("SGD: momentum, Nesterov flag, a buffer without momentum, a NaN, another type") {
    const StateDict good = state_of(stepped(SGD<double>(0.1, 0.9)));
    SGD<double> dst = stepped(SGD<double>(0.2, 0.9), 1);
    check_refused(dst, state_of(stepped(SGD<double>(0.1, 0.5))), {"momentum = 0.5", "0.9"});
    check_refused(dst, state_of(stepped(SGD<double>(0.1, 0.9, true))), {"nesterov = true", "false"});
    check_refused(dst, with_element(good, "optimizer.momentum_buffer", 1, std::nan("")), {"momentum_buffer' holds a NaN"});
    check_refused(dst, with_attribute(good, "optimizer.nesterov", "1"), {"neither true nor false"});
    check_refused(dst, state_of(stepped(Adam<double>())), {"optimizer type 'adam'", "'sgd'"});
    check_refused(dst, with_attribute(state_of(SGD<double>(0.1, 0.9)), "optimizer.steps", "4"),
                  {"4 SGD momentum steps but no buffer"});
    SGD<double> plain = stepped(SGD<double>(0.1), 1);
    check_refused(plain, with_attribute(good, "optimizer.momentum", "0"), {"SGD without momentum has no buffer"});
  }
  SECTION("AdamW: weight decay, Adam's fields, another type") {
    const StateDict good = state_of(stepped(AdamW<float>(1e-3, 0.01)));
    AdamW<float> dst = stepped(AdamW<float>(1e-3, 0.01), 1);
    check_refused(dst, state_of(stepped(AdamW<float>(1e-3, 0.02))), {"weight_decay = 0.02", "0.01"});
    check_refused(dst, state_of(stepped(AdamW<float>(1e-3, 0.01, 0.5))), {"beta1 = 0.5"});
    check_refused(dst, state_of(stepped(Adam<float>(1e-3))), {"optimizer type 'adam'", "'adamw'"});
    check_refused(dst, with_element(good, "optimizer.exp_avg_sq", 0, -2.0f), {"negative second moment"});
    Adam<float> adam = stepped(Adam<float>(1e-3), 1);
    check_refused(adam, good, {"optimizer type 'adamw'", "'adam'"});
  }
  SECTION("ScheduledOptimizer: the schedule's settings, the inner optimizer, its own fields") {
    using Opt = ScheduledOptimizer<AdamW<float>, WarmupCosineLR>;
    const StateDict good = state_of(stepped(Opt(AdamW<float>(1e-3), WarmupCosineLR(2, 40))));
    Opt dst = stepped(Opt(AdamW<float>(1e-3), WarmupCosineLR(2, 40)), 1);
    check_refused(dst, state_of(stepped(Opt(AdamW<float>(1e-3), WarmupCosineLR(2, 50)))),
                  {"total_steps = 50", "optimizer.schedule.total_steps", "40"});
    check_refused(dst, state_of(stepped(Opt(AdamW<float>(1e-3), WarmupCosineLR(3, 40)))), {"warmup_steps = 3"});
    check_refused(dst, state_of(stepped(Opt(AdamW<float>(1e-3), WarmupCosineLR(2, 40, 0.5)))), {"final_factor = 0.5"});
    check_refused(dst, state_of(stepped(ScheduledOptimizer(AdamW<float>(1e-3), ConstantLR{}))),
                  {"learning-rate schedule 'constant'", "'warmup_cosine'"});
    check_refused(dst, state_of(stepped(ScheduledOptimizer(Adam<float>(1e-3), WarmupCosineLR(2, 40)))),
                  {"optimizer.inner.type", "'adam'"});
    check_refused(dst, with_attribute(good, "optimizer.steps", "-3"), {"negative step count -3"});
    check_refused(dst, with_attribute(good, "optimizer.base_lr", "-1"), {"base learning rate -1"});
    check_refused(dst, with_element(good, "optimizer.inner.exp_avg", 0, std::numeric_limits<float>::infinity()),
                  {"'optimizer.inner.exp_avg' holds a NaN or an infinity"});
    check_refused(dst, state_of(stepped(AdamW<float>(1e-3))), {"optimizer type 'adamw'", "'scheduled'"});
  }
  SECTION("EMA: decay, update count, NaN, an average that does not fit the count") {
    ExponentialMovingAverage<float> src(0.99), dst(0.99);
    src.update(Vector<float>::Ones(3));
    src.update(Vector<float>::Zero(3));
    dst.update(Vector<float>::Constant(3, 2.0f));
    const StateDict good = state_of(src);
    ExponentialMovingAverage<float> other(0.999);
    other.update(Vector<float>::Ones(3));
    check_refused(dst, state_of(other), {"decay = 0.999", "0.99"});
    check_refused(dst, with_attribute(good, "ema.updates", "-1"), {"negative update count -1"});
    check_refused(dst, with_attribute(good, "ema.updates", "0"), {"0 EMA updates and an average of 3 values"});
    check_refused(dst, with_element(good, "ema.average", 2, std::numeric_limits<float>::quiet_NaN()),
                  {"'ema.average' holds a NaN"});
    check_refused(dst, with_attribute(good, "ema.type", "swa"), {"type 'swa'"});
    ExponentialMovingAverage<double> wide(0.99);
    wide.update(Vector<double>::Ones(3));
    check_refused(dst, state_of(wide), {"'ema.average' holds F64 elements"});
  }
}

// ------------------------------------------------------------------------------------------------
// Resume exactness: a training loop run 40 steps straight, and run 20 steps, saved (model,
// optimizer, EMA and the generator that draws the batches), restored into fresh objects and run
// 20 more, ends with the same parameters, optimizer state and EMA bit for bit.

namespace {

/// The generator that draws the batches, saved as the trainer saves its own (tensor "rng").
struct BatchRng {
  static constexpr std::string_view state_scope = "trainer";
  Rng rng;
  void save_state(StateWriter& w) const { w.tensor("rng", rng.state().data(), {4}); }
  void load_state(const StateReader& r) {
    Rng::State s{};
    r.read<std::uint64_t>("rng", {4}, s.data());
    if (s == Rng::State{}) r.fail("tensor 'rng' holds the all-zero state");
    rng.set_state(s);
  }
};

using Model = MLPVectorField<float>;

/// `steps` flow-matching updates on batches drawn from `batches`, then an EMA update each.
template <class Opt>
void train(Model& model, Opt& opt, ExponentialMovingAverage<float>& ema, BatchRng& batches, int steps) {
  constexpr Index n = 48;
  Model::Workspace ws;
  Matrix<float> x0(2, n), x1(2, n), xt(2, n), u(2, n);
  Vector<float> t(n);
  for (int k = 0; k < steps; ++k) {
    batches.rng.fill_normal(x0);
    batches.rng.fill_normal(x1);
    x1.array() = 0.5f * x1.array() + 2.0f;
    batches.rng.fill_uniform(t);
    u = x1 - x0;
    for (Index j = 0; j < n; ++j) xt.col(j) = (1.0f - t(j)) * x0.col(j) + t(j) * x1.col(j);
    const double loss = model.mse_loss_and_gradient(xt, t, u, ws);
    REQUIRE(std::isfinite(loss));
    opt.step(model.parameters(), model.gradients());
    ema.update(model.parameters());
  }
}

template <class MakeOpt>
void check_resume(MakeOpt make_opt) {
  const auto fresh_model = [](std::uint64_t seed) { return Model(2, {32, 16}, seed); };
  // Straight.
  Model m1 = fresh_model(1);
  auto o1 = make_opt();
  ExponentialMovingAverage<float> e1(0.9);
  BatchRng b1{Rng(77)};
  train(m1, o1, e1, b1, 40);
  // 20, save, restore into fresh objects (another initialisation and generator seed), 20.
  Model m2 = fresh_model(1);
  auto o2 = make_opt();
  ExponentialMovingAverage<float> e2(0.9);
  BatchRng b2{Rng(77)};
  train(m2, o2, e2, b2, 20);
  StateDict saved;
  save_state_parts(saved, m2, o2, e2, b2);
  Model m3 = fresh_model(99);
  auto o3 = make_opt();
  ExponentialMovingAverage<float> e3(0.9);
  BatchRng b3{Rng(5)};
  REQUIRE(m3.parameters() != m2.parameters());
  load_state_parts(saved, "mem", m3, o3, e3, b3);
  train(m3, o3, e3, b3, 20);
  CHECK(m3.parameters() == m1.parameters());
  CHECK(e3.average() == e1.average());
  CHECK(o3.steps_taken() == 40);
  StateDict straight, resumed;
  save_state_parts(straight, m1, o1, e1, b1);
  save_state_parts(resumed, m3, o3, e3, b3);
  CHECK(same_state(straight, resumed));
  // And the run did learn something: the state after 40 steps is not the state after 20.
  CHECK_FALSE(same_state(straight, saved));
}

}  // namespace

TEST_CASE("resume: 40 steps straight == 20 + save + restore into fresh objects + 20, bit for bit",
          "[optim][state][resume]") {
  SECTION("Adam") { check_resume([] { return Adam<float>(3e-3); }); }
  SECTION("SGD with momentum") { check_resume([] { return SGD<float>(0.02, 0.9); }); }
  SECTION("AdamW") { check_resume([] { return AdamW<float>(3e-3, 0.05); }); }
  SECTION("ScheduledOptimizer<AdamW, WarmupCosineLR> + EMA") {
    check_resume([] { return ScheduledOptimizer(AdamW<float>(5e-3, 0.05), WarmupCosineLR(8, 40, 0.1)); });
  }
}

}  // namespace FLOWMATCH_TEST_FILE_ID
