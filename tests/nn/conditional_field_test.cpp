// Fourier time features, the class-conditional field (one-hot labels, the empty label), their
// backward passes against finite differences, classifier-free guidance, and the conditional
// trainer on labelled data (condition dropout, each class on its own mode).

#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <numbers>
#include <type_traits>
#include <utility>
#include <vector>

#include <flowmatch/coupling/minibatch_ot.hpp>
#include <flowmatch/distribution/gaussian_mixture.hpp>
#include <flowmatch/distribution/standard_normal.hpp>
#include <flowmatch/nn/class_conditional_field.hpp>
#include <flowmatch/nn/concepts.hpp>
#include <flowmatch/nn/fourier_time_field.hpp>
#include <flowmatch/ode/classifier_free_guidance.hpp>
#include <flowmatch/ode/concepts.hpp>
#include <flowmatch/ode/euler_simulator.hpp>
#include <flowmatch/optim/adam.hpp>
#include <flowmatch/path/gaussian_conditional_path.hpp>
#include <flowmatch/schedule/linear_alpha.hpp>
#include <flowmatch/schedule/linear_beta.hpp>
#include <flowmatch/train/cfm_trainer.hpp>

#include "support/compare.hpp"
#include "support/gradient_check.hpp"
#include "support/stats.hpp"

// Each test file has its own namespace: in a unity build (FLOWMATCH_UNITY_TESTS) files share a
// translation unit, and their helpers must not collide (tests/CMakeLists.txt).
namespace FLOWMATCH_TEST_FILE_ID {

using namespace flowmatch;

static_assert(TrainableVectorField<FourierTimeVectorField<float>> && TrainableVectorField<FourierTimeVectorField<double>>);
static_assert(ODE<GuidedVectorFieldODE<ClassConditionalVectorField<float>>>);

namespace {

// Checks dL/dparameters for L = sum(C .* out) against five-point differences on every parameter.
template <class Forward, class Model>
double worst_gradient_error(Model& model, const Matrix<double>& c, Forward&& forward) {
  typename Model::Workspace ws;
  const Matrix<double>& out = forward(ws);
  const Matrix<double> grad_out = c;
  (void)out;
  model.backward(grad_out, ws);
  const Vector<double> analytic = model.gradients();
  double worst = 0.0;
  Vector<double>& p = model.parameters();
  for (Index i = 0; i < p.size(); ++i) {
    const double numeric = test::five_point_difference(
        [&] {
          typename Model::Workspace w;
          return (forward(w).array() * c.array()).sum();
        },
        p(i));
    const double a = analytic(i);
    worst = test::worse(worst, std::abs(a - numeric) < 1e-10 ? 0.0 : test::relative_error(a, numeric, 1e-4));
  }
  return worst;
}

}  // namespace

TEST_CASE("Fourier time features are sin and cos of pi 2^k t", "[nn][fourier]") {
  const FourierTimeEmbedding e{3};
  CHECK(e.rows() == 6);
  Matrix<double> out(8, 2);
  out.setConstant(7.0);
  e.write(0.3, out, 1, 1);
  for (Index k = 0; k < 3; ++k) {
    const double w = std::numbers::pi * std::pow(2.0, double(k)) * 0.3;
    CHECK(out(1 + 2 * k, 1) == Approx(std::sin(w)));
    CHECK(out(2 + 2 * k, 1) == Approx(std::cos(w)));
  }
  CHECK(out(0, 1) == 7.0);
  CHECK(out(7, 1) == 7.0);
  CHECK(out(1, 0) == 7.0);
}

TEST_CASE("FourierTimeVectorField is its MLP on [x; fourier(t); t], with an exact backward pass", "[nn][fourier]") {
  FourierTimeVectorField<double> field(2, 3, {7, 5}, 4);
  CHECK(field.network().input_dim() == 2 + 6);
  CHECK(field.dim() == 2);
  Rng rng(1);
  Matrix<double> x(2, 5), c(2, 5);
  RowVector<double> t(5);
  rng.fill_normal(x);
  rng.fill_normal(c);
  rng.fill_uniform(t);
  Matrix<double> features(8, 5);
  features.topRows(2) = x;
  for (Index j = 0; j < 5; ++j) field.embedding().write(t(j), features, 2, j);
  const Matrix<double> expected = field.network()(features, t);
  Matrix<double> out(2, 5);
  FourierTimeVectorField<double>::Workspace ws;
  field.forward(x, t, out, ws);
  CHECK(test::max_abs(out - expected) < 1e-13);
  const double worst = worst_gradient_error(field, c, [&](auto& w) -> const Matrix<double>& { return field.forward_train(x, t, w); });
  CHECK(worst < 1e-6);
  CHECK_THROWS_AS(FourierTimeVectorField<float>(2, -1, {4}), InvalidArgument);
  CHECK_THROWS_AS(FourierTimeVectorField<float>(0, 2, {4}), InvalidArgument);
}

TEST_CASE("ClassConditionalVectorField: one-hot labels, the empty label, exact backward pass", "[nn][conditional]") {
  ClassConditionalVectorField<double> field(2, 3, {6}, 2, 2);  // 3 classes, 2 frequencies
  CHECK(field.num_classes() == 3);
  CHECK(field.empty_label() == 3);
  CHECK(field.network().input_dim() == 2 + 4 + 3);
  Rng rng(2);
  Matrix<double> x(2, 4), c(2, 4);
  rng.fill_normal(x);
  rng.fill_normal(c);
  Vector<Index> labels(4);
  labels << 0, 2, 3, 1;
  Matrix<double> features = Matrix<double>::Zero(9, 4);
  features.topRows(2) = x;
  for (Index j = 0; j < 4; ++j) {
    field.embedding().write(0.4, features, 2, j);
    if (labels(j) < 3) features(6 + labels(j), j) = 1.0;
  }
  const Matrix<double> expected = field.network()(features, 0.4);
  Matrix<double> out(2, 4);
  ClassConditionalVectorField<double>::Workspace ws;
  field.forward(x, 0.4, labels, out, ws);
  CHECK(test::max_abs(out - expected) < 1e-13);
  // Different labels give different fields.
  Vector<Index> other = labels;
  other(0) = 1;
  Matrix<double> out2(2, 4);
  field.forward(x, 0.4, other, out2, ws);
  CHECK(test::max_abs(out2.col(0) - out.col(0)) > 1e-6);
  CHECK(test::max_abs(out2.rightCols(3) - out.rightCols(3)) == 0.0);
  const double worst =
      worst_gradient_error(field, c, [&](auto& w) -> const Matrix<double>& { return field.forward_train(x, 0.4, labels, w); });
  CHECK(worst < 1e-6);
}

TEST_CASE("ClassConditionalVectorField refuses unknown or negative labels", "[nn][conditional][errors]") {
  const ClassConditionalVectorField<float> field(2, 3, {4});
  Matrix<float> x = Matrix<float>::Zero(2, 3), out(2, 3);
  ClassConditionalVectorField<float>::Workspace ws;
  Vector<Index> labels(3);
  labels << 0, -1, 2;
  CHECK_THROWS_AS(field.forward(x, 0.5, labels, out, ws), InvalidArgument);
  CHECK_THROWS_WITH(field.forward(x, 0.5, labels, out, ws), Catch::Contains("'labels[1]' = -1") && Catch::Contains("[0, 2]"));
  labels << 0, 1, 4;
  CHECK_THROWS_WITH(field.forward(x, 0.5, labels, out, ws), Catch::Contains("'labels[2]' = 4"));
  Vector<Index> short_labels(2);
  short_labels << 0, 1;
  CHECK_THROWS_AS(field.forward(x, 0.5, short_labels, out, ws), DimensionMismatch);
  CHECK_THROWS_AS(ClassConditionalVectorField<float>(2, 0, {4}), InvalidArgument);
}

TEST_CASE("Guided drift: w = 0 is the conditional model, else (1 + w) u(y) - w u(empty)", "[ode][guidance]") {
  const ClassConditionalVectorField<double> field(2, 4, {8, 8}, 3);
  Rng rng(3);
  Matrix<double> x(2, 6);
  rng.fill_normal(x);
  Vector<Index> labels(6);
  labels << 0, 1, 2, 3, 0, 4;  // the last column: the empty label itself
  ClassConditionalVectorField<double>::Workspace ws;
  Matrix<double> cond(2, 6), uncond(2, 6), out(2, 6);
  field.forward(x, 0.7, labels, cond, ws);
  field.forward(x, 0.7, Vector<Index>::Constant(6, 4), uncond, ws);
  GuidedVectorFieldODE ode(field, labels, 0.0);
  ode.drift(x, 0.7, out);
  CHECK(out == cond);  // bit for bit
  for (double w : {0.5, 1.0, 3.0, -0.5}) {
    ode.set_guidance(w);
    ode.drift(x, 0.7, out);
    CHECK(test::max_abs(out - ((1.0 + w) * cond - w * uncond)) < 1e-12);
  }
  CHECK(test::max_abs(out.col(5) - cond.col(5)) < 1e-12);  // guiding the empty label changes nothing
  CHECK_THROWS_WITH(ode.set_guidance(std::numeric_limits<double>::infinity()), Catch::Contains("'guidance' = inf"));
  CHECK_THROWS_AS(GuidedVectorFieldODE(field, labels, std::nan("")), InvalidArgument);
  Matrix<double> wide(2, 7);
  wide.setZero();
  Matrix<double> wide_out(2, 7);
  CHECK_THROWS_AS(ode.drift(wide, 0.5, wide_out), DimensionMismatch);
}

TEST_CASE("Conditional trainer: label dropout rate, and each class's samples on its own mode", "[train][conditional]") {
  const GaussianMixture data = GaussianMixture::symmetric_2D(4, 0.3, 3.0);
  const GaussianConditionalPath path(data, LinearAlpha{}, LinearBeta{});
  ClassConditionalVectorField<float> model(2, 4, {64, 64}, 5);
  Adam<float> adam(3e-3);
  TrainerOptions options;
  options.condition_dropout = 0.25;
  CFMTrainer trainer(path, model, adam, 6, options);
  CHECK(trainer.options().condition_dropout == 0.25);
  Index dropped = 0, total = 0;
  const std::vector<double> losses = trainer.train(1500, 256, [&](const TrainProgress&) {
    const ConditionBatch<float>& c = trainer.last_batch().condition;
    REQUIRE(c.kind == ConditionKind::Label);
    for (Index j = 0; j < c.present.size(); ++j) dropped += c.present(j) == 0.0f;
    total += c.present.size();
  });
  CHECK(std::abs(double(dropped) - 0.25 * double(total)) <= test::kSigmas * test::binomial_sd(double(total), 0.25));
  CHECK(losses.back() < losses.front());
  // Sample 200 points per class with guidance 1: each class lands on its own mode.
  const Index per_class = 200;
  Vector<Index> labels(4 * per_class);
  for (Index j = 0; j < labels.size(); ++j) labels(j) = j / per_class;
  Rng rng(7);
  Matrix<float> x(2, labels.size());
  StandardNormal(2).sample(rng, x);
  GuidedVectorFieldODE ode(model, labels, 1.0);
  EulerSimulator sim(ode);
  sim.simulate_inplace(x, linspace(0.0, 1.0, 51));
  for (Index k = 0; k < 4; ++k) {
    Index own = 0;
    for (Index j = k * per_class; j < (k + 1) * per_class; ++j) {
      Index best = 0;
      double best_d = std::numeric_limits<double>::infinity();
      for (Index m = 0; m < 4; ++m) {
        const double d = (x.col(j).cast<double>() - data.means().col(m)).squaredNorm();
        if (d < best_d) best_d = d, best = m;
      }
      own += best == k;
    }
    INFO("class " << k << ": " << own << " of " << per_class << " on its mode");
    CHECK(own >= 0.95 * per_class);
  }
}

TEST_CASE("Conditional training refuses a bad dropout, a class-count mismatch and data of another kind", "[train][conditional][errors]") {
  const GaussianConditionalPath path(GaussianMixture::symmetric_2D(4, 0.3, 3.0), LinearAlpha{}, LinearBeta{});
  ClassConditionalVectorField<float> model(2, 4, {8});
  ClassConditionalVectorField<float> three(2, 3, {8});
  Adam<float> adam;
  TrainerOptions options;
  options.condition_dropout = 1.0;
  CHECK_THROWS_AS(CFMTrainer(path, model, adam, 0, options), InvalidArgument);
  options.condition_dropout = -0.1;
  CHECK_THROWS_WITH(CFMTrainer(path, model, adam, 0, options), Catch::Contains("'condition_dropout' = -0.1"));
  options.condition_dropout = 0.1;
  CHECK_THROWS_AS(CFMTrainer(path, three, adam, 0, options), DimensionMismatch);
  // Dropout needs a conditional model; a conditional model needs conditional data of its kind.
  MLPVectorField<float> plain(2, {8});
  CHECK_THROWS_WITH(CFMTrainer(path, plain, adam, 0, options), Catch::Contains("needs a conditional model"));
  const GaussianConditionalPath unlabelled(StandardNormal(2), LinearAlpha{}, LinearBeta{});
  CHECK_THROWS_WITH(CFMTrainer(unlabelled, model, adam, 0), Catch::Contains("data distribution has none"));
  ConditionalVectorField<float> vector_model(2, ConditionKind::Vector, 3, {8});
  CHECK_THROWS_WITH(CFMTrainer(path, vector_model, adam, 0), Catch::Contains("the path's data have 'labels'"));
  // A minibatch OT coupling reorders the data without their conditions: such batches carry none.
  const GaussianConditionalPath ot(GaussianMixture::symmetric_2D(4, 0.3, 3.0), LinearAlpha{}, LinearBeta{},
                                   StandardNormal(2), MinibatchOTCoupling());
  CHECK_THROWS_WITH(CFMTrainer(ot, model, adam, 0), Catch::Contains("carry none"));
}

TEST_CASE("The embedded fields' fused loss and gradient equal forward_train then backward", "[nn][fourier][conditional]") {
  Rng rng(9);
  Matrix<double> x(2, 40), target(2, 40);
  RowVector<double> t(40);
  rng.fill_normal(x);
  rng.fill_normal(target);
  rng.fill_uniform(t);
  const auto reference = [&](auto& model, auto&& forward_train) {
    typename std::decay_t<decltype(model)>::Workspace ws;
    const Matrix<double>& out = forward_train(ws);
    const Matrix<double> diff = out - target;
    const double loss = diff.squaredNorm() / double(diff.size());
    model.backward((2.0 / double(diff.size())) * diff, ws);
    return std::pair<double, Vector<double>>(loss, model.gradients());
  };
  FourierTimeVectorField<double> fourier(2, 3, {16, 16}, 1);
  const auto [loss_f, grad_f] = reference(fourier, [&](auto& ws) -> const Matrix<double>& { return fourier.forward_train(x, t, ws); });
  FourierTimeVectorField<double>::Workspace wf;
  CHECK(fourier.mse_loss_and_gradient(x, t, target, wf) == Approx(loss_f).epsilon(1e-12));
  CHECK(test::max_abs(fourier.gradients() - grad_f) < 1e-12);
  ClassConditionalVectorField<double> cond(2, 3, {16}, 2, 2);
  Vector<Index> labels(40);
  for (Index j = 0; j < 40; ++j) labels(j) = j % 4;  // 3 is the empty label
  const auto [loss_c, grad_c] = reference(cond, [&](auto& ws) -> const Matrix<double>& { return cond.forward_train(x, t, labels, ws); });
  ClassConditionalVectorField<double>::Workspace wc;
  CHECK(cond.mse_loss_and_gradient(x, t, labels, target, wc) == Approx(loss_c).epsilon(1e-12));
  CHECK(test::max_abs(cond.gradients() - grad_c) < 1e-12);
}

TEST_CASE("ConditionalVectorField with context vectors: [x; fourier(t); present * c; 1 - present; t]", "[nn][conditional]") {
  ConditionalVectorField<double> field(2, ConditionKind::Vector, 3, {7}, 4, 2);  // 3-D contexts, 2 frequencies
  CHECK(field.condition_kind() == ConditionKind::Vector);
  CHECK(field.condition_dim() == 3);
  CHECK(field.num_classes() == 0);
  CHECK(field.network().input_dim() == 2 + 4 + 3 + 1);
  Rng rng(5);
  Matrix<double> x(2, 4);
  rng.fill_normal(x);
  ConditionBatch<double> c;
  c.set_context(3, 4);
  rng.fill_normal(c.context);
  c.present << 1, 0, 1, 0;
  Matrix<double> features = Matrix<double>::Zero(10, 4);
  features.topRows(2) = x;
  for (Index j = 0; j < 4; ++j) {
    field.embedding().write(0.3, features, 2, j);
    if (c.present(j) == 1.0) features.col(j).segment(6, 3) = c.context.col(j);
    else features(9, j) = 1.0;  // "no condition" flag; the context is zeroed
  }
  const Matrix<double> expected = field.network()(features, 0.3);
  Matrix<double> out(2, 4);
  ConditionalVectorField<double>::Workspace ws;
  field.forward(x, 0.3, c, out, ws);
  CHECK(test::max_abs(out - expected) < 1e-13);
  // A dropped column ignores its context entirely.
  ConditionBatch<double> other = c;
  other.context.col(1).setConstant(50.0);
  other.context.col(0).setConstant(50.0);
  Matrix<double> out2(2, 4);
  field.forward(x, 0.3, other, out2, ws);
  CHECK(out2.col(1) == out.col(1));
  CHECK(test::max_abs(out2.col(0) - out.col(0)) > 1e-6);
  // Wrong kind, wrong size, presence not 0/1.
  ConditionBatch<double> labels;
  labels.set_labels(4);
  labels.labels.setZero();
  CHECK_THROWS_WITH(field.forward(x, 0.3, labels, out, ws), Catch::Contains("kind 'vector'"));
  ConditionBatch<double> narrow;
  narrow.set_context(2, 4);
  CHECK_THROWS_AS(field.forward(x, 0.3, narrow, out, ws), DimensionMismatch);
  other.present(2) = 0.5;
  CHECK_THROWS_WITH(field.forward(x, 0.3, other, out, ws), Catch::Contains("present[2]"));
  Vector<Index> raw(4);
  raw.setZero();
  CHECK_THROWS_WITH(field.forward(x, 0.3, raw, out, ws), Catch::Contains("takes context vectors"));
  CHECK_THROWS_AS(ConditionalVectorField<double>(2, ConditionKind::None, 3, {4}), InvalidArgument);
  CHECK_THROWS_AS(ConditionalVectorField<double>(2, ConditionKind::Vector, 0, {4}), InvalidArgument);
}

TEST_CASE("ConditionalVectorField: the parameter gradient equals central differences, for labels and vectors",
          "[nn][conditional][gradient]") {
  Rng rng(11);
  Matrix<double> x(2, 6), weights(2, 6);
  RowVector<double> t(6);
  rng.fill_normal(x);
  rng.fill_normal(weights);
  rng.fill_uniform(t);
  for (const ConditionKind kind : {ConditionKind::Label, ConditionKind::Vector}) {
    INFO("condition " << condition_kind_name(kind));
    ConditionalVectorField<double, SiLU> field(2, kind, 3, {6, 5}, 7, 2);
    ConditionBatch<double> c;
    if (kind == ConditionKind::Label) {
      c.set_labels(6);
      c.labels << 0, 1, 2, 0, 1, 2;
    } else {
      c.set_context(3, 6);
      rng.fill_normal(c.context);
    }
    c.present << 1, 1, 0, 1, 0, 1;
    // L = sum(weights .* u(x, t | c)).
    typename ConditionalVectorField<double, SiLU>::Workspace ws;
    field.forward_train(x, t, c, ws);
    field.backward(weights, ws);
    const Vector<double> analytic = field.gradients();
    const auto loss = [&] {
      Matrix<double> out(2, 6);
      typename ConditionalVectorField<double, SiLU>::Workspace w;
      field.forward(x, t, c, out, w);
      return (out.array() * weights.array()).sum();
    };
    double worst = 0.0;
    Vector<double>& p = field.parameters();
    for (Index i = 0; i < p.size(); ++i)
      worst = test::worse(worst, test::relative_error(analytic(i), test::central_difference(loss, p(i), 1e-6), 1e-6));
    INFO("worst relative error " << worst << " over " << p.size() << " parameters");
    CHECK(worst < 1e-5);
    // The fused loss agrees with forward_train + backward.
    Matrix<double> target(2, 6);
    rng.fill_normal(target);
    const Matrix<double> diff = field.forward_train(x, t, c, ws) - target;
    field.backward((2.0 / double(diff.size())) * diff, ws);
    const Vector<double> g = field.gradients();
    CHECK(field.mse_loss_and_gradient(x, t, c, target, ws) == Approx(diff.squaredNorm() / double(diff.size())).epsilon(1e-12));
    CHECK(test::max_abs(field.gradients() - g) < 1e-12);
  }
}

TEST_CASE("Guided drift with context vectors: (1 + w) u(x | c) - w u(x | none)", "[ode][guidance]") {
  const ConditionalVectorField<double> field(2, ConditionKind::Vector, 2, {8, 8}, 3, 1);
  Rng rng(4);
  Matrix<double> x(2, 5), context(2, 5);
  rng.fill_normal(x);
  rng.fill_normal(context);
  ConditionBatch<double> c;
  c.set_context(2, 5);
  c.context = context;
  ConditionBatch<double> none = c;
  none.present.setZero();
  ConditionalVectorField<double>::Workspace ws;
  Matrix<double> cond(2, 5), uncond(2, 5), out(2, 5);
  field.forward(x, 0.6, c, cond, ws);
  field.forward(x, 0.6, none, uncond, ws);
  GuidedVectorFieldODE ode(field, context, 0.0);
  CHECK(ode.condition().kind == ConditionKind::Vector);
  ode.drift(x, 0.6, out);
  CHECK(out == cond);
  ode.set_guidance(2.0);
  ode.drift(x, 0.6, out);
  CHECK(test::max_abs(out - (3.0 * cond - 2.0 * uncond)) < 1e-12);
  CHECK(test::max_abs(uncond - cond) > 1e-6);  // the flag row makes "none" a different input
}

TEST_CASE("Fourier and conditional fields save their settings and refuse another field's state", "[nn][conditional][state]") {
  ConditionalVectorField<float> labels(2, ConditionKind::Label, 4, {8}, 1, 3);
  StateDict dict;
  save_state_parts(dict, labels);
  const StateReader r(dict, "mem", "model.");
  CHECK(r.text("type") == "conditional_field");
  CHECK(r.integer("dim") == 2);
  CHECK(r.integer("num_frequencies") == 3);
  CHECK(r.text("condition") == "labels");
  CHECK(r.integer("num_classes") == 4);
  ClassConditionalVectorField<float> same(2, 4, {8}, 9, 3);
  CHECK_NOTHROW(load_state_parts(dict, "mem", same));
  ClassConditionalVectorField<float> five(2, 5, {8}, 9, 3);
  CHECK_THROWS_WITH(load_state_parts(dict, "mem", five), Catch::Contains("num_classes = 4"));
  ConditionalVectorField<float> vec(2, ConditionKind::Vector, 4, {8}, 1, 3);
  CHECK_THROWS_WITH(load_state_parts(dict, "mem", vec), Catch::Contains("condition kind 'labels'"));
  ClassConditionalVectorField<float> freq(2, 4, {8}, 9, 2);
  CHECK_THROWS_AS(load_state_parts(dict, "mem", freq), CheckpointMismatchError);

  StateDict vdict;
  save_state_parts(vdict, vec);
  CHECK(*vdict.find_attribute("model.condition") == "vector");
  CHECK(*vdict.find_attribute("model.condition_dim") == "4");
  FourierTimeVectorField<float> fourier(2, 3, {8});
  StateDict fdict;
  save_state_parts(fdict, fourier);
  CHECK(*fdict.find_attribute("model.type") == "fourier_time_field");
  CHECK(*fdict.find_attribute("model.num_frequencies") == "3");
  CHECK_THROWS_WITH(load_state_parts(fdict, "mem", labels), Catch::Contains("model type 'fourier_time_field'"));
  if constexpr (Stateful<MLPVectorField<float>>) {
    // With the network's own state: the weights round-trip.
    ClassConditionalVectorField<float> copy(2, 4, {8}, 77, 3);
    REQUIRE(copy.parameters() != labels.parameters());
    load_state_parts(dict, "mem", copy);
    CHECK(copy.parameters() == labels.parameters());
  }
}

}  // namespace FLOWMATCH_TEST_FILE_ID
