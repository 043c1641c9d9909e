// Heap allocations on the hot paths: after one warm-up call, a training step, an Euler step (and a
// whole simulate_inplace) and an MLP forward pass with a reused workspace allocate nothing; C2ST
// allocates per fold, so its count does not grow with the number of epochs.
//
// This file replaces the global operator new / new[] / delete / delete[] (every sized, aligned and
// nothrow variant) with counting versions, and on glibc also interposes malloc, calloc, realloc,
// posix_memalign, aligned_alloc, memalign, valloc and pvalloc: Eigen allocates its matrices with
// std::malloc, not operator new, so counting operator new alone would miss them. Such replacements
// are program-wide, which is why this file is its own test binary (tests/CMakeLists.txt).
//
// Finding an allocation: run the binary with FLOWMATCH_ALLOC_TRACE=1 and every allocation made
// while a measurement is armed prints a backtrace to stderr (function names come from the binary's
// exported symbols; `addr2line -C -f -i -e flowmatch_alloc_tests ADDRESS` gives file and line).
// Or, in gdb: `break flowmatch_alloc_test_armed_allocation` and `bt`.

#include "support/allocation_counter.hpp"

#include <flowmatch/evaluation.hpp>
#include <flowmatch/nn/unet_vector_field.hpp>

// ------------------------------------------------------------------------------------------------
// The tests.
using namespace flowmatch;
using alloc_count::count_allocations;
using alloc_count::Counts;

namespace {

struct ThreadsGuard {
  int saved = num_threads();
  ~ThreadsGuard() { set_num_threads(saved); }
};

// The reference workload's objects (examples/gmm2d): 11-mode mixture, alpha_t = t, beta_t = sqrt(1 - t),
// MLP 3-1024-16-2 with SiLU, Adam.
using SeedModel = MLPVectorField<float, SiLU>;
constexpr Index kSeedBatch = 1000;

SeedModel seed_model() { return SeedModel(2, {1024, 16}, 0); }

// A model that has taken a few training steps (so sampling runs on non-trivial weights).
void train_a_little(SeedModel& model) {
  Adam<float> adam(1e-3);
  CFMTrainer trainer(GaussianConditionalPath(GaussianMixture::symmetric_2D(11, 1.0, 10.0), LinearAlpha{},
                                             SquareRootBeta{}),
                     model, adam, 1);
  trainer.train(3, 256);
}

}  // namespace

TEST_CASE("allocation counter: allocating calls are counted (control)", "[alloc]") {
  ThreadsGuard guard;
  set_num_threads(1);
  SeedModel model = seed_model();
  Rng rng(7);
  const Matrix<float> x = Gaussian::standard(2, 1.0).sample<float>(kSeedBatch, rng);

  // A std::vector goes through operator new.
  const Counts vec = count_allocations([&] {
    std::vector<double> v(1000, 1.0);
    asm volatile("" : : "r"(v.data()) : "memory");
  });
  INFO("std::vector: operator new " << vec.operator_new << ", malloc " << vec.malloc);
  CHECK(vec.operator_new >= 1);

  // MLPVectorField::operator() builds a workspace (std::vectors: operator new) and returns a new
  // Eigen matrix (Eigen: malloc).
  Matrix<float> out;
  const Counts call = count_allocations([&] { out = model(x, 0.5); });
  INFO("MLPVectorField::operator(): operator new " << call.operator_new << ", malloc " << call.malloc);
  CHECK(call.total() > 0);
  CHECK(call.operator_new > 0);
#if FLOWMATCH_ALLOC_TEST_COUNTS_MALLOC
  CHECK(call.malloc > 0);

  // EulerSimulator::simulate returns a new matrix: at least one Eigen (malloc) allocation.
  LearnedVectorFieldODE ode(model);
  EulerSimulator simulator(ode);
  const Vector<double> ts = linspace(0.0, 1.0, 11);
  simulator.step(out, 0.0, 0.1);  // warm-up, as in the other tests
  Matrix<float> x1;
  const Counts sim = count_allocations([&] { x1 = simulator.simulate(x, ts); });
  INFO("EulerSimulator::simulate: operator new " << sim.operator_new << ", malloc " << sim.malloc);
  CHECK(sim.malloc > 0);
#else
  WARN("malloc is not interposed on this C library: only operator new is counted");
#endif
}

TEST_CASE("CFMTrainer::step on the reference workload allocates nothing after the first step", "[alloc][train]") {
  ThreadsGuard guard;
  for (const int threads : {1, 2}) {
    set_num_threads(threads);
    SeedModel model = seed_model();
    Adam<float> adam(1e-3);
    CFMTrainer trainer(GaussianConditionalPath(GaussianMixture::symmetric_2D(11, 1.0, 10.0), LinearAlpha{},
                                               SquareRootBeta{}),
                       model, adam, 1);
    trainer.step(kSeedBatch);  // warm-up: sizes the batch, the workspace, Adam's moments, starts the thread pool
    for (int k = 0; k < 3; ++k) {
      double loss = 0.0;
      const Counts c = count_allocations([&] { loss = trainer.step(kSeedBatch); });
      INFO("threads " << threads << ", step " << k + 2 << ": operator new " << c.operator_new << ", malloc "
                      << c.malloc << " (loss " << loss << ")");
      CHECK(c.total() == 0);
    }
  }
}

TEST_CASE("Training steps with another source, an OT coupling, labels or context vectors allocate nothing after the first step",
          "[alloc][train][coupling]") {
  ThreadsGuard guard;
  set_num_threads(1);
  const GaussianMixture data = GaussianMixture::symmetric_2D(8, 0.3, 4.0);
  MLPVectorField<float, SiLU> model(2, {32, 32}, 0);
  Adam<float> adam(1e-3);
  const auto check_steps = [](auto& trainer, Index batch, const char* what) {
    trainer.step(batch);  // warm-up: sizes every buffer
    for (int k = 0; k < 2; ++k) {
      const Counts c = count_allocations([&] { trainer.step(batch); });
      INFO(what << ", step " << k + 2 << ": operator new " << c.operator_new << ", malloc " << c.malloc);
      CHECK(c.total() == 0);
    }
  };
  CFMTrainer exact(GaussianConditionalPath(data, LinearAlpha{}, LinearBeta{}, StandardNormal(2), MinibatchOTCoupling()),
                   model, adam, 1);
  check_steps(exact, 128, "exact OT coupling");
  CFMTrainer sinkhorn(GaussianConditionalPath(data, LinearAlpha{}, LinearBeta{}, Gaussian::standard(2),
                                              MinibatchOTCoupling(0.1, 64)),
                      model, adam, 2);
  check_steps(sinkhorn, 128, "Sinkhorn OT coupling");
  ClassConditionalVectorField<float, SiLU> conditional(2, 8, {32}, 0, 3);
  Adam<float> adam2(1e-3);
  TrainerOptions dropout;
  dropout.condition_dropout = 0.2;
  CFMTrainer labelled(GaussianConditionalPath(data, LinearAlpha{}, LinearBeta{}), conditional, adam2, 3, dropout);
  check_steps(labelled, 128, "class-conditional training");
  // Vector conditions from an Empirical with a context matrix, with every guard on.
  Matrix<double> points(2, 256), context(3, 256);
  Rng data_rng(4);
  data_rng.fill_normal(points);
  data_rng.fill_normal(context);
  ConditionalVectorField<float, SiLU> vector_model(2, ConditionKind::Vector, 3, {32}, 0, 2);
  Adam<float> adam3(1e-3);
  TrainerOptions guarded = dropout;
  guarded.check_gradient = true;
  guarded.max_grad_norm = 1e-3;
  guarded.on_non_finite = NonFinitePolicy::SkipBatch;
  CFMTrainer vector_trainer(GaussianConditionalPath(Empirical::with_context(points, context), LinearAlpha{}, LinearBeta{}),
                            vector_model, adam3, 4, guarded);
  check_steps(vector_trainer, 128, "vector-conditional training with guards");
  CHECK(vector_trainer.last_batch().condition.kind == ConditionKind::Vector);
  Matrix<float> guide_context = Matrix<float>::Ones(3, 64);
  GuidedVectorFieldODE vector_ode(vector_model, guide_context, 1.5);
  EulerSimulator vector_sim(vector_ode);
  Matrix<float> xv = Matrix<float>::Ones(2, 64);
  vector_sim.step(xv, 0.0, 0.1);
  const Counts cv = count_allocations([&] { vector_sim.step(xv, 0.1, 0.1); });
  CHECK(cv.total() == 0);
  Vector<Index> labels = Vector<Index>::LinSpaced(64, 0, 7);
  GuidedVectorFieldODE ode(conditional, labels, 2.0);
  EulerSimulator sim(ode);
  Matrix<float> x = Matrix<float>::Ones(2, 64);
  sim.step(x, 0.0, 0.1);
  const Counts c = count_allocations([&] { sim.step(x, 0.1, 0.1); });
  CHECK(c.total() == 0);
}

TEST_CASE("CFMTrainer::step with the gradient check and clipping by norm allocates nothing after the first step",
          "[alloc][train][guards]") {
  ThreadsGuard guard;
  for (const int threads : {1, 2}) {
    set_num_threads(threads);
    SeedModel model = seed_model();
    Adam<float> adam(1e-3);
    TrainerOptions options;
    options.check_gradient = true;
    options.max_grad_norm = 1e-3;  // small enough that every step clips
    options.on_non_finite = NonFinitePolicy::SkipBatch;
    CFMTrainer trainer(GaussianConditionalPath(GaussianMixture::symmetric_2D(11, 1.0, 10.0), LinearAlpha{},
                                               SquareRootBeta{}),
                       model, adam, 1, options);
    trainer.step(kSeedBatch);  // warm-up
    for (int k = 0; k < 3; ++k) {
      double loss = 0.0;
      const Counts c = count_allocations([&] { loss = trainer.step(kSeedBatch); });
      INFO("threads " << threads << ", guarded step " << k + 2 << ": operator new " << c.operator_new << ", malloc "
                      << c.malloc << " (loss " << loss << ")");
      CHECK(c.total() == 0);
    }
    CHECK(trainer.clipped_steps() == 4);
  }
}

TEST_CASE("EulerSimulator::step and simulate_inplace on a learned vector field allocate nothing after the first step",
          "[alloc][ode]") {
  ThreadsGuard guard;
  SeedModel model = seed_model();
  train_a_little(model);
  const Vector<double> ts = linspace(0.0, 1.0, 300);  // the reference workload's grid: 299 Euler steps
  for (const int threads : {1, 2}) {
    set_num_threads(threads);
    for (const Index n : {kSeedBatch, Index{100000}}) {
      Rng rng(11);
      Matrix<float> x = Gaussian::standard(2, 1.0).sample<float>(n, rng);
      LearnedVectorFieldODE ode(model);
      EulerSimulator simulator(ode);
      simulator.step(x, 0.0, 1.0 / 299.0);  // warm-up
      const Counts steps = count_allocations([&] {
        for (Index k = 1; k < 4; ++k) simulator.step(x, ts(k), ts(k + 1) - ts(k));
      });
      INFO("threads " << threads << ", batch " << n << ", 3 x EulerSimulator::step: operator new "
                      << steps.operator_new << ", malloc " << steps.malloc);
      CHECK(steps.total() == 0);
      if (n == kSeedBatch) {  // a whole simulation at the reference workload's size (299 steps)
        const Counts whole = count_allocations([&] { simulator.simulate_inplace(x, ts); });
        INFO("threads " << threads << ", batch " << n << ", simulate_inplace over 300 points: operator new "
                        << whole.operator_new << ", malloc " << whole.malloc);
        CHECK(whole.total() == 0);
      }
      CHECK(x.allFinite());
    }
  }
}

TEST_CASE("Midpoint Heun RK4 AB2 AB3 and Dopri5 steps on a learned vector field allocate nothing after the first step",
          "[alloc][ode]") {
  ThreadsGuard guard;
  SeedModel model = seed_model();
  train_a_little(model);
  using S = SeedModel::Scalar;
  for (const int threads : {1, 2}) {
    set_num_threads(threads);
    Rng rng(12);
    const Matrix<S> x0 = Gaussian::standard(2, 1.0).sample<S>(kSeedBatch, rng);
    LearnedVectorFieldODE ode(model);
    const auto check_fixed = [&](auto stepper, const char* name) {
      auto sim = ODESimulator<decltype(ode), decltype(stepper)>(ode, stepper);
      Matrix<S> x = x0;
      sim.step(x, 0.0, 0.1);  // warm-up: sizes the stage buffers
      const Counts steps = count_allocations([&] {
        for (int k = 1; k < 4; ++k) sim.step(x, 0.1 * k, 0.1);
      });
      const Counts whole = count_allocations([&] { sim.simulate_inplace(x, 0.0, 1.0, 20); });
      INFO(name << ", threads " << threads << ": 3 steps " << steps.total() << ", 20-step simulate_inplace "
                << whole.total() << " allocations");
      CHECK(steps.total() == 0);
      CHECK(whole.total() == 0);
      CHECK(x.allFinite());
    };
    check_fixed(MidpointStepper<S>{}, "midpoint");
    check_fixed(HeunStepper<S>{}, "heun");
    check_fixed(RK4Stepper<S>{}, "rk4");
    check_fixed(AdamsBashforth2Stepper<S>{}, "ab2");  // history rotated by swaps, also across simulate's reset
    check_fixed(AdamsBashforth3Stepper<S>{}, "ab3");
    Dopri5Stepper<S> dopri(1e-4, 1e-4);
    Matrix<S> x = x0;
    dopri.advance(ode, x, 0.0, 0.5);  // warm-up
    x = x0;
    const Counts adaptive = count_allocations([&] { dopri.advance(ode, x, 0.0, 0.99); });
    INFO("dopri5, threads " << threads << ": " << adaptive.total() << " allocations over " << dopri.stats().accepted
                            << " accepted and " << dopri.stats().rejected << " rejected steps");
    CHECK(adaptive.total() == 0);
    CHECK(dopri.stats().accepted > 1);
  }
}

TEST_CASE("Euler-Maruyama steps of the Langevin flow SDE on a learned vector field allocate nothing after the first",
          "[alloc][sde]") {
  ThreadsGuard guard;
  SeedModel model = seed_model();
  train_a_little(model);
  using S = SeedModel::Scalar;
  for (const int threads : {1, 2}) {
    set_num_threads(threads);
    Rng rng(13);
    Matrix<S> x = Gaussian::standard(2, 1.0).sample<S>(kSeedBatch, rng);
    LangevinFlowSDE<SeedModel, LinearAlpha, SquareRootBeta> sde(model, 0.5);
    EulerMaruyamaSimulator em(sde);
    em.step(x, 0.0, 0.01, rng);  // warm-up
    const Counts steps = count_allocations([&] { em.simulate_inplace(x, 0.01, 0.99, 20, rng); });
    INFO("threads " << threads << ": 20 Euler-Maruyama steps, " << steps.total() << " allocations");
    CHECK(steps.total() == 0);
    CHECK(x.allFinite());
  }
}

TEST_CASE("MLPVectorField::forward with a reused workspace allocates nothing", "[alloc][nn]") {
  ThreadsGuard guard;
  const SeedModel model = seed_model();
  for (const int threads : {1, 2}) {
    set_num_threads(threads);
    Rng rng(3);
    const Matrix<float> x = Gaussian::standard(2, 1.0).sample<float>(kSeedBatch, rng);
    RowVector<float> t(kSeedBatch);
    rng.fill_uniform(t);
    Matrix<float> out(2, kSeedBatch);
    SeedModel::Workspace ws;
    model.forward(x, 0.25, out, ws);  // warm-up
    const Counts scalar_t = count_allocations([&] {
      for (int k = 0; k < 3; ++k) model.forward(x, 0.25 + 0.1 * k, out, ws);
    });
    INFO("threads " << threads << ", forward with one t: operator new " << scalar_t.operator_new << ", malloc "
                    << scalar_t.malloc);
    CHECK(scalar_t.total() == 0);
    const Counts column_t = count_allocations([&] { model.forward(x, t, out, ws); });
    INFO("threads " << threads << ", forward with a t per column: operator new " << column_t.operator_new
                    << ", malloc " << column_t.malloc);
    CHECK(column_t.total() == 0);
    CHECK(out.allFinite());
  }
}

TEST_CASE("Training steps and forward passes of wider and deeper networks allocate nothing either", "[alloc][train]") {
  ThreadsGuard guard;
  struct Shape {
    Index dim;
    std::vector<Index> hidden;
  };
  // Products bigger than Eigen's stack-allocation limit are split into pieces (mlp_vector_field.hpp).
  for (const Shape& shape : {Shape{2, {256, 256, 256}}, Shape{2, {512, 2048, 16}}, Shape{256, {1024, 16}}, Shape{2, {4096, 16}}}) {
    for (const int threads : {1, 2}) {
      set_num_threads(threads);
      MLPVectorField<float, SiLU> model(shape.dim, shape.hidden, 3);
      Matrix<double> means = Matrix<double>::Zero(shape.dim, 4);
      means.row(0) = Eigen::RowVector4d(-5, 5, 0, 0);
      Adam<float> adam(1e-3);
      CFMTrainer trainer(GaussianConditionalPath(GaussianMixture(means, Matrix<double>::Ones(shape.dim, 4), Vector<double>::Ones(4)),
                                                 LinearAlpha{}, LinearBeta{}),
                         model, adam, 1);
      trainer.step(256);
      const Counts c = count_allocations([&] { trainer.step(256); });
      Rng rng(2);
      Matrix<float> x(shape.dim, 256), out(shape.dim, 256);
      rng.fill_normal(x);
      MLPVectorField<float, SiLU>::Workspace ws;
      model.forward(x, 0.5, out, ws);
      const Counts f = count_allocations([&] { model.forward(x, 0.5, out, ws); });
      INFO("dim " << shape.dim << ", " << shape.hidden.size() << " hidden layers (first " << shape.hidden[0]
                  << "), threads " << threads << ": step " << c.total() << ", forward " << f.total());
      CHECK(c.total() == 0);
      CHECK(f.total() == 0);
    }
  }
}

TEST_CASE("MLPClassifier: training step and logits and features and predict allocate nothing after the first call",
          "[alloc][classifier]") {
  ThreadsGuard guard;
  // 784 inputs: image-sized, the portable path with products split into pieces; 5 inputs with
  // {32, 16}: the AVX-512 kernels' shapes where the CPU has them.
  struct Shape {
    Index input;
    std::vector<Index> hidden;
  };
  for (const Shape& shape : {Shape{784, {256, 128}}, Shape{5, {32, 16}}}) {
    for (const int threads : {1, 2}) {
      set_num_threads(threads);
      MLPClassifier<float> clf(shape.input, 10, shape.hidden, 3);
      Adam<float> adam(1e-3);
      Rng rng(2);
      Matrix<float> x(shape.input, 128), logits(10, 128), features(clf.feature_dim(), 128);
      rng.fill_normal(x);
      Eigen::VectorXi y(128), predicted(128);
      for (Index j = 0; j < 128; ++j) y(j) = static_cast<int>(j % 10);
      MLPClassifier<float>::Workspace ws;
      auto step = [&] {
        clf.loss_and_gradient(x, y, ws);
        adam.step(clf.parameters(), clf.gradients());
      };
      step();
      clf.logits(x, logits, ws);
      clf.features(x, features, ws);
      clf.predict(x, predicted, ws);
      const Counts s = count_allocations(step);
      const Counts l = count_allocations([&] { clf.logits(x, logits, ws); });
      const Counts f = count_allocations([&] { clf.features(x, features, ws); });
      const Counts p = count_allocations([&] { clf.predict(x, predicted, ws); });
      Matrix<float> grad(10, 128);
      const Counts ce = count_allocations([&] { softmax_cross_entropy(logits, y, grad); });
      INFO("input " << shape.input << ", threads " << threads << ": step " << s.total() << ", logits " << l.total()
                    << ", features " << f.total() << ", predict " << p.total() << ", softmax_cross_entropy "
                    << ce.total());
      CHECK(s.total() == 0);
      CHECK(l.total() == 0);
      CHECK(f.total() == 0);
      CHECK(p.total() == 0);
      CHECK(ce.total() == 0);
    }
  }
}

TEST_CASE("C2ST allocates per fold, never per epoch or minibatch", "[alloc][c2st]") {
  Rng rng(5);
  Matrix<float> x(3, 300), y(3, 300);
  rng.fill_normal(x);
  rng.fill_normal(y);
  y.row(0).array() += 1.0f;
  for (int threads : {1, 2}) {
    C2STOptions o;
    o.threads = threads;
    o.n_iter_no_change = 1000;  // train exactly max_epochs epochs
    o.max_epochs = 2;
    (void)c2st(x, y, o);  // warm-up: starts the pool's workers
    const Counts two = count_allocations([&] { (void)c2st(x, y, o); });
    o.max_epochs = 7;
    const Counts seven = count_allocations([&] { (void)c2st(x, y, o); });
    INFO("threads " << threads << ": 2 epochs " << two.total() << ", 7 epochs " << seven.total());
    CHECK(seven.total() == two.total());
  }
}

TEST_CASE("Few-step training: weighted times, paired (reflow) paths and MeanFlow steps allocate nothing after the first",
          "[alloc][train][meanflow]") {
  ThreadsGuard guard;
  const GaussianMixture data = GaussianMixture::symmetric_2D(4, 0.5, 3.0);
  for (const int threads : {1, 2}) {
    set_num_threads(threads);
    // A weighted logit-normal density (the forward_train/backward route of the trainer).
    const auto weight = [](double t) { return 1.0 / (1.0 - t + 0.05); };
    using Time = WeightedTime<LogitNormalTime, decltype(weight)>;
    MLPVectorField<float> m1(2, {64, 64}, 1);
    Adam<float> a1(1e-3);
    CFMTrainer weighted(GaussianConditionalPath<LinearAlpha, LinearBeta, GaussianMixture, StandardNormal,
                                                IndependentCoupling, Time>(data, LinearAlpha{}, LinearBeta{},
                                                                           StandardNormal(2), IndependentCoupling{},
                                                                           Time(LogitNormalTime(), weight, "w")),
                        m1, a1, 1);
    // A paired path (reflow pairs).
    Rng rng(3);
    Matrix<double> x0(2, 300), x1(2, 300);
    Gaussian::standard(2, 1.0).sample(rng, x0);
    data.sample(rng, x1);
    MLPVectorField<float> m2(2, {64, 64}, 2);
    Adam<float> a2(1e-3);
    CFMTrainer paired(PairedPath<>(PairedCoupling(x0, x1)), m2, a2, 2);
    // MeanFlow.
    MeanFlowField<float> m3(2, {64, 64}, 3);
    Adam<float> a3(1e-3);
    MeanFlowTrainer mean_flow(data, m3, a3, 3);
    weighted.step(256);
    paired.step(256);
    mean_flow.step(256);
    for (int k = 0; k < 3; ++k) {
      const Counts cw = count_allocations([&] { weighted.step(256); });
      const Counts cp = count_allocations([&] { paired.step(256); });
      const Counts cm = count_allocations([&] { mean_flow.step(256); });
      INFO("threads " << threads << ", step " << k + 2 << ": weighted " << cw.total() << ", paired " << cp.total()
                      << ", MeanFlow " << cm.total());
      CHECK(cw.total() == 0);
      CHECK(cp.total() == 0);
      CHECK(cm.total() == 0);
    }
  }
}

TEST_CASE("UNetVectorField: training steps and guided sampling steps allocate nothing after the first", "[alloc][unet]") {
  ThreadsGuard guard;
  // 8 x 8 images of two classes; widths that are multiples of 8, so that the direct convolution
  // kernels run where they are compiled in (and the portable im2col path otherwise).
  Rng data_rng(5);
  Matrix<double> images(64, 64);
  data_rng.fill_normal(images);
  Vector<Index> classes(64);
  for (Index j = 0; j < 64; ++j) classes(j) = j % 2;
  UNetOptions options;
  options.channels = 1;
  options.height = 8;
  options.width = 8;
  options.widths = {8, 16};
  options.groups = 4;
  options.embedding = 16;
  options.frequencies = 4;
  options.attention = 2;  // the middle's self-attention (4 x 4 pixels) and its second residual block
  options.dropout = 0.1;  // masks drawn in every training step
  UNetVectorField<float> unet(options, ConditionKind::Label, 2, 0);
  Adam<float> adam(1e-3);
  TrainerOptions dropout;
  dropout.condition_dropout = 0.2;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    CFMTrainer trainer(GaussianConditionalPath(Empirical::with_labels(images, classes, 2), LinearAlpha{}, LinearBeta{}),
                       unet, adam, 6, dropout);
    trainer.step(32);  // warm-up: sizes every buffer
    for (int k = 0; k < 2; ++k) {
      const Counts c = count_allocations([&] { trainer.step(32); });
      INFO(threads << " threads, step " << k + 2 << ": operator new " << c.operator_new << ", malloc " << c.malloc);
      CHECK(c.total() == 0);
    }
    Vector<Index> labels(16);
    for (Index j = 0; j < 16; ++j) labels(j) = j % 2;
    GuidedVectorFieldODE ode(unet, labels, 2.0);
    auto sim = ODESimulator<decltype(ode), MidpointStepper<float>>(ode, MidpointStepper<float>{});
    Matrix<float> x = Matrix<float>::Ones(64, 16);
    sim.step(x, 0.0, 0.1);
    const Counts c = count_allocations([&] { sim.step(x, 0.1, 0.1); });
    INFO(threads << " threads, a guided midpoint step: operator new " << c.operator_new << ", malloc " << c.malloc);
    CHECK(c.total() == 0);
  }
}
