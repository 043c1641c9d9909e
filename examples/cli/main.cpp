// flowmatch: the command-line program. Train a flow-matching model on a CSV or .npy data set,
// sample it, score it, and inspect the model file, with no C++ to write.
//
//   flowmatch train  --data FILE --out MODEL [--steps --batch --lr --hidden --activation --schedule
//                    --coupling --optimizer --warmup --ema --threads --seed --condition-columns --resume]
//   flowmatch sample MODEL --out FILE [--n N --seed S | --x0 FILE] [--solver --steps] [--condition --guidance]
//   flowmatch loglik MODEL --data FILE [--out FILE] [--hutchinson P] [--solver --steps]
//   flowmatch eval   SAMPLES REFERENCE [--n N --seed S]
//   flowmatch info   MODEL
//   flowmatch import FILE.safetensors --activation NAME --out MODEL   (with io/torch_import.hpp)
//
// The model file is a checkpoint (safetensors) holding the trainer (model, optimizer with its
// schedule, step count, generator), the EMA of the weights, and a "cli" part with what sampling
// needs: architecture, activation, schedule, the data's standardization (mean, std) and the
// condition columns. It is also the resume point of an interrupted run.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include <flowmatch.hpp>
#include <flowmatch/io/checkpoint.hpp>
#include <flowmatch/io/npy.hpp>
#include <flowmatch/nn/conditional_field.hpp>
#include <flowmatch/nn/mlp_from_state.hpp>
#include <flowmatch/nn/mlp_jacobian.hpp>
#include <flowmatch/ode/dopri5.hpp>
#include <flowmatch/ode/log_likelihood.hpp>
#include <flowmatch/ode/stepper_registry.hpp>
#if __has_include(<flowmatch/io/torch_import.hpp>)
#include <flowmatch/io/torch_import.hpp>
#define FLOWMATCH_CLI_HAS_IMPORT 1
#endif

#include "cli.hpp"
#include "mpi_job.hpp"
#include "progress.hpp"
#include "training.hpp"

namespace fm = flowmatch;
namespace ex = flowmatch::examples;

namespace {

using fm::Index;
using fm::Matrix;
using fm::Vector;

// The MPI job (examples/common/mpi_job.hpp): one rank without mpirun. Under mpirun, `train` is
// data-parallel over every rank (--batch is the global batch), `sample` and `loglik` spread their
// points over the ranks, and rank 0 alone prints and writes.
const ex::Job* job = nullptr;

// ------------------------------------------------------------------------------------------------
// Data files.

bool has_extension(const std::string& file, const char* ext) {
  std::string e = std::filesystem::path(file).extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return e == ext;
}

// d x n, one sample per column, from a .npy file or a CSV file (with or without a header).
Matrix<double> read_points(const std::string& file) {
  if (!std::filesystem::exists(file)) throw fm::Error("'" + file + "': no such file");
  if (has_extension(file, ".npy")) return fm::read_npy<double>(file);
  return fm::read_csv<double>(file);
}

// Writes a d x n matrix as rows: .npy by the extension, else CSV (header x0,x1,... unless `names`).
template <class D>
void write_points(const std::string& file, const Eigen::MatrixBase<D>& x, const std::vector<std::string>& names = {}) {
  if (has_extension(file, ".npy")) {
    fm::write_npy(file, x.template cast<double>().eval(), false);
    return;
  }
  std::ofstream os(file);
  if (!os) throw fm::Error("'" + file + "': cannot open for writing");
  for (Index i = 0; i < x.rows(); ++i) {
    if (i) os << ',';
    os << (names.empty() ? "x" + std::to_string(i) : names[static_cast<std::size_t>(i)]);
  }
  os << '\n';
  os.precision(9);
  for (Index j = 0; j < x.cols(); ++j) {
    for (Index i = 0; i < x.rows(); ++i) {
      if (i) os << ',';
      os << static_cast<double>(x(i, j));
    }
    os << '\n';
  }
  if (!os) throw fm::Error("'" + file + "': error while writing");
}

// ------------------------------------------------------------------------------------------------
// Run-time choices behind one type each, so that only the activation and the conditioning
// multiply the instantiations.

// The alpha/beta schedules by name: "linear" (alpha = t, beta = 1 - t) or "cosine".
struct NamedAlpha {
  bool cosine = false;
  double value(double t) const { return cosine ? fm::CosineAlpha{}.value(t) : t; }
  double derivative(double t) const { return cosine ? fm::CosineAlpha{}.derivative(t) : 1.0; }
};
struct NamedBeta {
  bool cosine = false;
  double value(double t) const { return cosine ? fm::CosineBeta{}.value(t) : 1.0 - t; }
  double derivative(double t) const { return cosine ? fm::CosineBeta{}.derivative(t) : -1.0; }
};

// Independent pairs, or minibatch optimal transport.
struct NamedCoupling {
  std::optional<fm::MinibatchOTCoupling> ot;
  template <class D0, class D1>
  void pair(fm::Rng& rng, const Eigen::MatrixBase<D0>& x0, const Eigen::MatrixBase<D1>& x1) const {
    if (ot) ot->pair(rng, x0, x1);
  }
};

// Adam, AdamW or SGD, always with a linear warm-up then cosine decay to 0 at the last step.
class NamedOptimizer {
 public:
  using Scalar = float;
  using Sched = fm::WarmupCosineLR;

  NamedOptimizer(const std::string& name, double lr, long long warmup, long long total)
      : v_(make(name, lr, Sched(warmup, total))) {}
  void step(Vector<float>& p, const Vector<float>& g) {
    std::visit([&](auto& o) { o.step(p, g); }, v_);
  }
  void reset(Index n) {
    std::visit([&](auto& o) { o.reset(n); }, v_);
  }
  double learning_rate() const {
    return std::visit([](const auto& o) { return o.learning_rate(); }, v_);
  }
  void set_learning_rate(double lr) {
    std::visit([&](auto& o) { o.set_learning_rate(lr); }, v_);
  }
  long long steps_taken() const {
    return std::visit([](const auto& o) { return static_cast<long long>(o.steps_taken()); }, v_);
  }
  void save_state(fm::StateWriter& w) const {
    std::visit([&](const auto& o) { o.save_state(w); }, v_);
  }
  void load_state(const fm::StateReader& r) {
    std::visit([&](auto& o) { o.load_state(r); }, v_);
  }

 private:
  using Variant = std::variant<fm::ScheduledOptimizer<fm::Adam<float>, Sched>,
                               fm::ScheduledOptimizer<fm::AdamW<float>, Sched>, fm::ScheduledOptimizer<fm::SGD<float>, Sched>>;
  static Variant make(const std::string& name, double lr, const Sched& s) {
    if (name == "adam") return Variant(std::in_place_index<0>, fm::Adam<float>(lr), s);
    if (name == "adamw") return Variant(std::in_place_index<1>, fm::AdamW<float>(lr, 1e-2), s);
    if (name == "sgd") return Variant(std::in_place_index<2>, fm::SGD<float>(lr, 0.9), s);
    throw fm::InvalidArgument("--optimizer '" + name + "' is not adam, adamw or sgd");
  }
  Variant v_;
};

// ------------------------------------------------------------------------------------------------
// The model file's "cli" part.

struct ModelMeta {
  long long dim = 0, condition_dim = 0, frequencies = 4;
  std::vector<long long> hidden;
  std::string activation = "silu", schedule = "linear", coupling = "indep", optimizer = "adam";
  double lr = 0, ema = 0;
  long long warmup = 0, total_steps = 0, batch = 0, seed = 0;
  double condition_dropout = 0.1;
  std::vector<long long> condition_columns;
  std::string data;
  Vector<double> mean, sd, cond_mean, cond_std;

  void save_state(fm::StateWriter& w) const {
    w.text("type", "flowmatch_cli_model");
    w.integer("version", 1);
    w.integer("dim", dim);
    w.integer("condition_dim", condition_dim);
    w.integer("frequencies", frequencies);
    w.integers("hidden", hidden);
    w.text("activation", activation);
    w.text("schedule", schedule);
    w.text("coupling", coupling);
    w.text("optimizer", optimizer);
    w.real("lr", lr);
    w.real("ema", ema);
    w.integer("warmup", warmup);
    w.integer("total_steps", total_steps);
    w.integer("batch", batch);
    w.integer("seed", seed);
    w.real("condition_dropout", condition_dropout);
    w.integers("condition_columns", condition_columns);
    w.text("data", data);
    w.vector("mean", mean);
    w.vector("std", sd);
    if (condition_dim > 0) {
      w.vector("cond_mean", cond_mean);
      w.vector("cond_std", cond_std);
    }
  }
  void load_state(const fm::StateReader& r) {
    r.expect_text("type", "flowmatch_cli_model", "model file type");
    dim = r.integer("dim");
    condition_dim = r.integer("condition_dim");
    frequencies = r.integer("frequencies");
    if (dim < 1 || condition_dim < 0 || frequencies < 0) r.fail("holds a bad dim, condition_dim or frequencies");
    hidden = r.integers("hidden");
    activation = r.text("activation");
    schedule = r.text("schedule");
    coupling = r.text("coupling");
    optimizer = r.text("optimizer");
    lr = r.real("lr");
    ema = r.real("ema");
    warmup = r.integer("warmup");
    total_steps = r.integer("total_steps");
    batch = r.integer("batch");
    seed = r.integer("seed");
    condition_dropout = r.real("condition_dropout");
    condition_columns = r.integers("condition_columns");
    data = r.text("data");
    mean = r.finite_vector<double>("mean", "data mean", dim);
    sd = r.finite_vector<double>("std", "data std", dim);
    if (condition_dim > 0) {
      cond_mean = r.finite_vector<double>("cond_mean", "condition mean", condition_dim);
      cond_std = r.finite_vector<double>("cond_std", "condition std", condition_dim);
    }
  }
  std::string architecture() const {
    std::string s = std::to_string(dim + 1 + (condition_dim > 0 ? 2 * frequencies + condition_dim + 1 : 0));
    for (long long h : hidden) {
      s += '-';
      s += std::to_string(h);
    }
    s += '-';
    s += std::to_string(dim);
    return s;
  }
};

// Calls f(model) with a freshly initialised model of the file's (or the options') architecture:
// MLPVectorField<float, Act> without conditions, ConditionalVectorField<float, Act> (context
// vectors) with them. The activation comes by name through visit_mlp_activation.
template <class F>
int with_model(const ModelMeta& m, F&& f) {
  const std::vector<Index> hidden(m.hidden.begin(), m.hidden.end());
  const auto seed = static_cast<std::uint64_t>(m.seed);
  return fm::visit_mlp_activation(
      m.activation,
      [&](auto act) -> int {
        using Act = decltype(act);
        if (m.condition_dim == 0) {
          fm::MLPVectorField<float, Act> model(m.dim, hidden, seed);
          return f(model);
        }
        fm::ConditionalVectorField<float, Act> model(m.dim, fm::ConditionKind::Vector, m.condition_dim, hidden, seed,
                                                     m.frequencies);
        return f(model);
      },
      "--activation");
}

// Whether `name` is an activation visit_mlp_activation knows; a clear error otherwise.
void check_activation(const std::string& name) {
  try {
    fm::visit_mlp_activation(name, [](auto) { return 0; });
  } catch (const fm::Error&) {
    throw fm::InvalidArgument("unknown --activation '" + name + "' (known: " + std::string(fm::kBuiltinActivationNames) +
                              ")");
  }
}

struct LoadedModel {
  fm::StateDict dict;
  ModelMeta meta;
};

LoadedModel read_model_file(const std::string& file) {
  if (!std::filesystem::exists(file)) throw fm::Error("'" + file + "': no such model file");
  LoadedModel out{fm::read_checkpoint(file), {}};
  const fm::StateReader r(out.dict, file);
  if (!r.has_attribute("cli.type")) throw fm::Error("'" + file + "' is not a flowmatch model file (no 'cli' part)");
  out.meta.load_state(r.scope("cli"));
  return out;
}

// Loads the weights used for sampling into `model`: the EMA of the weights when the file has one.
template <class Model>
void load_sampling_weights(const LoadedModel& lm, const std::string& file, Model& model) {
  const fm::StateReader r(lm.dict, file);
  model.load_state(r.scope("model"));
  if (r.has_attribute("ema.decay")) {
    fm::ExponentialMovingAverage<float> ema(r.real("ema.decay"));
    ema.load_state(r.scope("ema"));
    if (ema.updates() > 0) ema.copy_to(model.parameters());
  }
}

// ------------------------------------------------------------------------------------------------
// train

std::atomic<bool> stop_requested{false};
extern "C" void on_sigint(int) {
  stop_requested.store(true);
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the process at once
}

struct TrainOptions {
  std::string data, out, resume, schedule = "linear", coupling = "indep", optimizer = "adam", activation = "silu";
  long long steps = 20000, batch = 1000, warmup = 500, seed = 0, threads = 1, frequencies = 4;
  double lr = 2e-3, ema = 0.999, dropout = 0.1;
  std::vector<long long> hidden{1024, 16}, condition_columns;
  long long stop_after = 0;  // stop as Ctrl-C does after this many steps of this run (0: never)
  bool quiet = false;
  bool warmup_given = false;  // --warmup on the command line; else min(500, steps / 10)
};

// Splits the rows named by `columns` (negative: from the end) off `all` into `cond`.
void split_columns(const Matrix<double>& all, const std::vector<long long>& columns, Matrix<double>& points,
                   Matrix<double>& cond, const std::string& file) {
  const Index d = all.rows();
  std::vector<bool> is_cond(static_cast<std::size_t>(d), false);
  std::vector<Index> cidx;
  for (long long c : columns) {
    const long long k = c < 0 ? c + d : c;
    if (k < 0 || k >= d)
      throw fm::InvalidArgument("--condition-columns " + std::to_string(c) + ": '" + file + "' has " +
                                std::to_string(d) + " columns");
    if (is_cond[static_cast<std::size_t>(k)]) throw fm::InvalidArgument("--condition-columns names column " + std::to_string(k) + " twice");
    is_cond[static_cast<std::size_t>(k)] = true;
    cidx.push_back(k);
  }
  if (static_cast<Index>(cidx.size()) >= d)
    throw fm::InvalidArgument("--condition-columns leaves no data column in '" + file + "'");
  points.resize(d - static_cast<Index>(cidx.size()), all.cols());
  cond.resize(static_cast<Index>(cidx.size()), all.cols());
  Index r = 0;
  for (Index i = 0; i < d; ++i)
    if (!is_cond[static_cast<std::size_t>(i)]) points.row(r++) = all.row(i);
  for (std::size_t k = 0; k < cidx.size(); ++k) cond.row(static_cast<Index>(k)) = all.row(cidx[k]);
}

void standardize_stats(const Matrix<double>& x, Vector<double>& mean, Vector<double>& sd) {
  mean = x.rowwise().mean();
  sd = ((x.colwise() - mean).array().square().rowwise().sum() / static_cast<double>(x.cols())).sqrt().matrix();
  for (Index i = 0; i < sd.size(); ++i)
    if (!(sd(i) > 1e-12)) sd(i) = 1.0;  // a constant column stays as is
}

template <class Model>
int train_model(Model& model, ModelMeta& meta, const TrainOptions& opt, const Matrix<double>& points,
                const Matrix<double>& cond) {
  constexpr bool conditional = fm::TrainableConditionalField<Model>;
  NamedOptimizer optimizer(meta.optimizer, meta.lr, meta.warmup, meta.total_steps);
  const NamedAlpha alpha{meta.schedule == "cosine"};
  const NamedBeta beta{meta.schedule == "cosine"};
  // Standardized data.
  const Matrix<double> z = (points.colwise() - meta.mean).array().colwise() / meta.sd.array();
  ex::OptionalEma ema;
  if (meta.ema > 0.0) ema.average.emplace(meta.ema);
  const auto ema_part = fm::state_part("ema", ema);
  const auto seed = static_cast<std::uint64_t>(meta.seed);

  const auto run = [&](auto& trainer) -> int {
    if (!opt.resume.empty()) {
      job->load(opt.resume, trainer, ema_part);
      std::printf("flowmatch train: resumed from '%s' at step %lld of %lld\n", opt.resume.c_str(),
                  trainer.steps_done(), meta.total_steps);
    }
    std::printf("flowmatch train: %lld points of dimension %lld%s, MLP %s %s (%lld parameters), %s schedule, %s "
                "coupling, %s lr %g (warm-up %lld + cosine), EMA %g, batch %lld, %lld steps, %d thread(s) x %d rank(s), seed %lld\n",
                static_cast<long long>(points.cols()), meta.dim,
                meta.condition_dim > 0 ? (" + " + std::to_string(meta.condition_dim) + " condition columns").c_str() : "",
                meta.architecture().c_str(), meta.activation.c_str(), static_cast<long long>(model.num_parameters()),
                meta.schedule.c_str(), meta.coupling.c_str(), meta.optimizer.c_str(), meta.lr, meta.warmup, meta.ema,
                meta.batch, meta.total_steps, fm::num_threads(), job->size(), meta.seed);
    const long long to_run = std::max(0LL, meta.total_steps - trainer.steps_done());
    ex::ProgressReporter progress(opt.quiet ? (1LL << 60) : 1000);
    stop_requested.store(false);
    std::signal(SIGINT, on_sigint);
    std::vector<double> losses = trainer.train(
        to_run, meta.batch, [&](const fm::TrainProgress& p) { if (!opt.quiet) progress(p); },
        [&](const fm::TrainProgress& p) {
          if (ema.average) ema.average->update(model.parameters());
          if (opt.stop_after > 0 && p.step >= opt.stop_after) stop_requested.store(true);
          return !job->any(stop_requested.load());  // every rank stops at the same step
        });
    std::signal(SIGINT, SIG_DFL);
    job->save(opt.out, trainer, fm::state_part("cli", meta), ema_part);
    if (job->any(stop_requested.load())) {
      std::printf("\nflowmatch train: interrupted at step %lld of %lld; saved to %s\n"
                  "resume with: flowmatch train --data %s --out %s --resume %s\n",
                  trainer.steps_done(), meta.total_steps, opt.out.c_str(), opt.data.c_str(), opt.out.c_str(),
                  opt.out.c_str());
      return 130;
    }
    double tail = 0.0;
    const std::size_t k = std::min<std::size_t>(100, losses.size());
    for (std::size_t i = losses.size() - k; i < losses.size(); ++i) tail += losses[i] / static_cast<double>(k);
    if (k > 0) std::printf("flowmatch train: final loss (mean of the last %zu steps) %.4f\n", k, tail);
    std::printf("flowmatch train: wrote %s (step %lld)\n", opt.out.c_str(), trainer.steps_done());
    return 0;
  };

  if constexpr (conditional) {
    const Matrix<double> c = (cond.colwise() - meta.cond_mean).array().colwise() / meta.cond_std.array();
    const fm::GaussianConditionalPath<NamedAlpha, NamedBeta, fm::Empirical> path(fm::Empirical::with_context(z, c),
                                                                                  alpha, beta);
    fm::TrainerOptions to;
    to.condition_dropout = meta.condition_dropout;
    auto trainer = job->make_trainer(path, model, optimizer, seed + 1, to);
    return run(trainer);
  } else {
    NamedCoupling coupling;
    if (meta.coupling == "ot") coupling.ot.emplace();
    const fm::GaussianConditionalPath<NamedAlpha, NamedBeta, fm::Empirical, fm::StandardNormal, NamedCoupling> path(
        fm::Empirical(z), alpha, beta, fm::StandardNormal(meta.dim), coupling);
    auto trainer = job->make_trainer(path, model, optimizer, seed + 1);
    return run(trainer);
  }
}

int cmd_train(TrainOptions opt) {
  fm::set_num_threads(static_cast<int>(opt.threads));
  ModelMeta meta;
  if (!opt.resume.empty()) {
    meta = read_model_file(opt.resume).meta;
    if (opt.steps != meta.total_steps) {
      // --steps may not change the length of the learning-rate schedule of a resumed run.
      std::printf("flowmatch train: --resume continues the file's run of %lld steps\n", meta.total_steps);
    }
  } else {
    check_activation(opt.activation);
    if (!opt.warmup_given) opt.warmup = std::min(opt.warmup, opt.steps / 10);
    if (opt.warmup >= opt.steps)
      throw fm::InvalidArgument("--warmup " + std::to_string(opt.warmup) + " must be below --steps " +
                                std::to_string(opt.steps));
    meta.hidden = opt.hidden;
    meta.activation = opt.activation;
    meta.schedule = opt.schedule;
    meta.coupling = opt.coupling;
    meta.optimizer = opt.optimizer;
    meta.lr = opt.lr;
    meta.ema = opt.ema;
    meta.warmup = opt.warmup;
    meta.total_steps = opt.steps;
    meta.batch = opt.batch;
    meta.seed = opt.seed;
    meta.frequencies = opt.frequencies;
    meta.condition_dropout = opt.dropout;
    meta.condition_columns = opt.condition_columns;
    meta.data = opt.data;
  }
  const Matrix<double> all = read_points(opt.data);
  Matrix<double> points, cond;
  split_columns(all, meta.condition_columns, points, cond, opt.data);
  if (!opt.resume.empty()) {
    if (points.rows() != meta.dim)
      throw fm::DimensionMismatch("'" + opt.data + "' has " + std::to_string(points.rows()) +
                                  " data columns, the model in '" + opt.resume + "' has dimension " +
                                  std::to_string(meta.dim));
  } else {
    meta.dim = points.rows();
    meta.condition_dim = cond.rows();
    if (meta.condition_dim > 0 && meta.coupling == "ot")
      throw fm::InvalidArgument("--coupling ot cannot be used with --condition-columns (it pairs across conditions)");
    standardize_stats(points, meta.mean, meta.sd);
    if (meta.condition_dim > 0) standardize_stats(cond, meta.cond_mean, meta.cond_std);
  }
  if (points.cols() < 2) throw fm::InvalidArgument("'" + opt.data + "' holds fewer than 2 points");
  return with_model(meta, [&](auto& model) { return train_model(model, meta, opt, points, cond); });
}

// ------------------------------------------------------------------------------------------------
// sample

struct SampleOptions {
  std::string model, out, x0, solver = "heun";
  long long n = 1000, seed = 0, steps = 100, threads = 1;
  std::vector<double> condition;
  double guidance = 0.0;
};

void check_solver(const std::string& name) {
  if (name != "dopri5" && !fm::is_stepper_name(name))
    throw fm::InvalidArgument("unknown --solver '" + name + "' (known: " + fm::stepper_name_list() + ", dopri5)");
}

// Integrates x from t = 0 to 1 with the solver by name (`steps`: steps of a fixed-step solver).
template <class ODE>
void integrate(ODE& ode, Matrix<float>& x, const std::string& solver, Index steps) {
  if (solver == "dopri5") {
    fm::Dopri5Stepper<float> st;
    st.advance(ode, x, 0.0, 1.0);
    return;
  }
  fm::visit_stepper<float>(solver, [&]<class St>(std::type_identity<St>) {
    fm::ODESimulator<ODE, St>(ode).simulate_inplace(x, 0.0, 1.0, steps);
  });
}

int cmd_sample(const SampleOptions& opt) {
  fm::set_num_threads(static_cast<int>(opt.threads));
  check_solver(opt.solver);
  const LoadedModel lm = read_model_file(opt.model);
  const ModelMeta& m = lm.meta;
  Matrix<float> x;
  if (!opt.x0.empty()) {
    const Matrix<double> x0 = read_points(opt.x0);
    if (x0.rows() != m.dim)
      throw fm::DimensionMismatch("--x0 '" + opt.x0 + "' has dimension " + std::to_string(x0.rows()) +
                                  ", the model has dimension " + std::to_string(m.dim));
    x = x0.cast<float>();
  } else {
    fm::Rng rng(static_cast<std::uint64_t>(opt.seed));
    x.resize(m.dim, opt.n);
    fm::StandardNormal(m.dim).sample(rng, x);
  }
  if (m.condition_dim == 0 && !opt.condition.empty())
    throw fm::InvalidArgument("--condition given, but the model in '" + opt.model + "' takes no condition");
  if (m.condition_dim > 0 && static_cast<Index>(opt.condition.size()) != m.condition_dim)
    throw fm::DimensionMismatch("--condition needs " + std::to_string(m.condition_dim) + " values for the model in '" +
                                opt.model + "', got " + std::to_string(opt.condition.size()));
  return with_model(m, [&](auto& model) -> int {
    using Model = std::remove_cvref_t<decltype(model)>;
    load_sampling_weights(lm, opt.model, model);
    // Under mpirun the points are spread over the ranks and gathered on rank 0 (with a fixed-step
    // solver each sample is the one a single process computes; dopri5 adapts its steps to each
    // rank's part).
    x = job->map_columns(x, m.dim, [&](const Matrix<float>& part) {
      Matrix<float> y = part;
      if (y.cols() == 0) return y;
      if constexpr (fm::TrainableConditionalField<Model>) {
        Matrix<float> ctx(m.condition_dim, y.cols());
        for (Index i = 0; i < m.condition_dim; ++i)
          ctx.row(i).setConstant(static_cast<float>((opt.condition[static_cast<std::size_t>(i)] - m.cond_mean(i)) / m.cond_std(i)));
        fm::GuidedVectorFieldODE ode(model, ctx, opt.guidance);
        integrate(ode, y, opt.solver, opt.steps);
      } else {
        fm::LearnedVectorFieldODE ode(model);
        integrate(ode, y, opt.solver, opt.steps);
      }
      return y;
    });
    if (!job->is_root()) return 0;
    if (!x.allFinite()) throw fm::NumericalError("the samples contain non-finite values");
    const Matrix<double> out = (x.cast<double>().array().colwise() * m.sd.array()).colwise() + m.mean.array();
    write_points(opt.out, out);
    std::printf("flowmatch sample: wrote %lld samples of dimension %lld to %s (%s, %lld steps)\n",
                static_cast<long long>(out.cols()), m.dim, opt.out.c_str(), opt.solver.c_str(), opt.steps);
    return 0;
  });
}

// ------------------------------------------------------------------------------------------------
// loglik

struct LoglikOptions {
  std::string model, data, out, solver = "rk4";
  long long steps = 50, hutchinson = 0, seed = 0, threads = 1;
};

int cmd_loglik(const LoglikOptions& opt) {
  fm::set_num_threads(static_cast<int>(opt.threads));
  if (opt.solver == "dopri5" || !fm::is_stepper_name(opt.solver))
    throw fm::InvalidArgument("unknown --solver '" + opt.solver + "' for loglik (known: " + fm::stepper_name_list() + ")");
  const LoadedModel lm = read_model_file(opt.model);
  const ModelMeta& m = lm.meta;
  if (m.condition_dim > 0) throw fm::InvalidArgument("loglik: the model in '" + opt.model + "' is conditional; only unconditional models are supported");
  const Matrix<double> data = read_points(opt.data);
  if (data.rows() != m.dim)
    throw fm::DimensionMismatch("'" + opt.data + "' has dimension " + std::to_string(data.rows()) +
                                ", the model has dimension " + std::to_string(m.dim));
  const Matrix<double> z = (data.colwise() - m.mean).array().colwise() / m.sd.array();
  const double log_jac = m.sd.array().log().sum();
  return with_model(m, [&](auto& model) -> int {
    using Model = std::remove_cvref_t<decltype(model)>;
    if constexpr (fm::TrainableConditionalField<Model>) {
      return 1;  // refused above
    } else {
      load_sampling_weights(lm, opt.model, model);
      using Act = typename Model::activation_type;
      fm::MLPJacobian<float, Act> jac(model);
      fm::Rng rng(static_cast<std::uint64_t>(opt.seed));
      const fm::StandardNormal p0(m.dim);
      Vector<double> lp;
      fm::visit_stepper<float>(opt.solver, [&]<class St>(std::type_identity<St>) {
        if (opt.hutchinson > 0) {
          fm::HutchinsonDivergence<fm::MLPJacobian<float, Act>> div(jac, opt.hutchinson);
          lp = fm::log_likelihood(div, p0, z.cast<float>(), opt.steps, &rng, St{}).log_density;
        } else {
          fm::ExactDivergence<fm::MLPJacobian<float, Act>> div(jac);
          lp = fm::log_likelihood(div, p0, z.cast<float>(), opt.steps, &rng, St{}).log_density;
        }
      });
      lp.array() -= log_jac;
      if (!opt.out.empty()) write_points(opt.out, lp.transpose(), {"log_likelihood"});
      std::printf("flowmatch loglik: %lld points, mean log-likelihood %.6f (%s divergence, %s, %lld steps)%s%s\n",
                  static_cast<long long>(lp.size()), lp.mean(),
                  opt.hutchinson > 0 ? ("Hutchinson, " + std::to_string(opt.hutchinson) + " probe(s)").c_str() : "exact",
                  opt.solver.c_str(), opt.steps, opt.out.empty() ? "" : "; per-point values in ", opt.out.c_str());
      return 0;
    }
  });
}

// ------------------------------------------------------------------------------------------------
// eval

struct EvalOptions {
  std::string samples, reference;
  long long n = 2000, seed = 0, projections = 256, threads = 1;
};

Matrix<double> subsample(const Matrix<double>& x, Index n, fm::Rng& rng) {
  if (x.cols() == n) return x;
  // A uniform subset of n columns (partial Fisher-Yates).
  std::vector<Index> idx(static_cast<std::size_t>(x.cols()));
  for (Index i = 0; i < x.cols(); ++i) idx[static_cast<std::size_t>(i)] = i;
  Matrix<double> out(x.rows(), n);
  for (Index i = 0; i < n; ++i) {
    const auto j = static_cast<std::size_t>(i) + static_cast<std::size_t>(rng.below(static_cast<std::uint64_t>(x.cols() - i)));
    std::swap(idx[static_cast<std::size_t>(i)], idx[j]);
    out.col(i) = x.col(idx[static_cast<std::size_t>(i)]);
  }
  return out;
}

int cmd_eval(const EvalOptions& opt) {
  fm::set_num_threads(static_cast<int>(opt.threads));
  const Matrix<double> a = read_points(opt.samples), b = read_points(opt.reference);
  if (a.rows() != b.rows())
    throw fm::DimensionMismatch("'" + opt.samples + "' has dimension " + std::to_string(a.rows()) + ", '" +
                                opt.reference + "' has " + std::to_string(b.rows()));
  const Index n = std::min<Index>({opt.n, a.cols(), b.cols()});
  fm::Rng rng(static_cast<std::uint64_t>(opt.seed));
  const Matrix<double> x = subsample(a, n, rng), y = subsample(b, n, rng);
  const double w2 = fm::wasserstein2(x, y);
  const double sw = fm::sliced_wasserstein(x, y, opt.projections, rng);
  // RBF bandwidths relative to the reference's spread.
  const double s = std::sqrt(((y.colwise() - y.rowwise().mean()).array().square().sum()) / static_cast<double>(y.size()));
  const double mmd2 = fm::mmd_rbf(x, y, {0.1 * s, 0.5 * s, s, 2 * s});
  const double energy = fm::energy_distance(x, y);
  std::printf("points %lld (of %lld and %lld), dimension %lld\n", static_cast<long long>(n),
              static_cast<long long>(a.cols()), static_cast<long long>(b.cols()), static_cast<long long>(a.rows()));
  std::printf("w2 %.6f\nsliced_w2 %.6f\nmmd2_rbf %.6g\nenergy %.6g\n", w2, sw, mmd2, energy);
  return 0;
}

// ------------------------------------------------------------------------------------------------
// info

int cmd_info(const std::string& file) {
  const LoadedModel lm = read_model_file(file);
  const ModelMeta& m = lm.meta;
  const fm::StateReader r(lm.dict, file);
  return with_model(m, [&](auto& model) -> int {
    std::printf("model file     %s\n", file.c_str());
    std::printf("architecture   MLP %s, activation %s%s\n", m.architecture().c_str(), m.activation.c_str(),
                m.condition_dim > 0 ? (", conditional on " + std::to_string(m.condition_dim) + " context column(s), " +
                                       std::to_string(m.frequencies) + " Fourier time frequencies")
                                          .c_str()
                                    : "");
    std::printf("parameters     %lld\n", static_cast<long long>(model.num_parameters()));
    std::printf("dimension      %lld\n", m.dim);
    std::printf("schedule       %s\ncoupling       %s\n", m.schedule.c_str(), m.coupling.c_str());
    if (m.optimizer == "none") {  // written by `flowmatch import`: weights only, no training state
      std::printf("training       none here: imported from '%s' (flowmatch import)\n", m.data.c_str());
    } else {
      std::printf("optimizer      %s, lr %g, warm-up %lld + cosine, batch %lld\n", m.optimizer.c_str(), m.lr, m.warmup,
                  m.batch);
      std::printf("training       step %lld of %lld, seed %lld, data '%s'\n",
                  r.has_attribute("trainer.steps_done") ? r.integer("trainer.steps_done") : 0LL, m.total_steps, m.seed,
                  m.data.c_str());
    }
    std::printf("ema            %s\n", r.has_attribute("ema.decay")
                                           ? ("decay " + r.text("ema.decay") + ", " + r.text("ema.updates") + " updates (used for sampling)").c_str()
                                           : "none");
    std::string mean, sd;
    for (Index i = 0; i < m.dim; ++i) {
      if (i > 0) {
        mean += ' ';
        sd += ' ';
      }
      mean += fm::detail::format_real(m.mean(i));
      sd += fm::detail::format_real(m.sd(i));
    }
    std::printf("data mean      %s\ndata std       %s\n", mean.c_str(), sd.c_str());
    if (m.condition_dim > 0) {
      std::string cc;
      for (long long c : m.condition_columns) {
        if (!cc.empty()) cc += ',';
        cc += std::to_string(c);
      }
      std::printf("condition      columns %s\n", cc.c_str());
    }
    return 0;
  });
}

// ------------------------------------------------------------------------------------------------
// import

#ifdef FLOWMATCH_CLI_HAS_IMPORT
// A PyTorch MLP vector field (state dict in safetensors) as a model file: the network under
// "model", and a "cli" part with no standardization (mean 0, std 1) and no training state.
int cmd_import(const std::string& file, const std::string& out, const std::string& activation, bool time_first) {
  check_activation(activation);
  if (!std::filesystem::exists(file)) throw fm::Error("'" + file + "': no such file");
  fm::TorchImportOptions options;
  options.activation = activation;
  options.time_first = time_first;
  return fm::visit_torch_mlp<float>(file, options, [&](auto model) -> int {
    ModelMeta meta;
    meta.dim = static_cast<long long>(model.dim());
    meta.condition_dim = 0;
    meta.frequencies = 0;
    for (const auto h : model.hidden_widths()) meta.hidden.push_back(static_cast<long long>(h));
    meta.activation = activation;
    meta.optimizer = "none";
    meta.data = file;
    meta.mean = Vector<double>::Zero(meta.dim);
    meta.sd = Vector<double>::Ones(meta.dim);
    fm::save_checkpoint(out, fm::state_part("cli", meta), fm::state_part("model", model));
    std::printf("flowmatch import: wrote %s (MLP %s %s, %lld parameters, from %s)\n", out.c_str(),
                meta.architecture().c_str(), activation.c_str(), static_cast<long long>(model.num_parameters()),
                file.c_str());
    return 0;
  });
}
#endif

}  // namespace

int main(int argc, char** argv) {
  const ex::Job mpi_job(argc, argv);  // MPI, when built with it
  job = &mpi_job;
  CLI::App app{"flowmatch: train flow-matching models on CSV or .npy data, sample them, score them"};
  app.require_subcommand(1);
  const long long cores = mpi_job.default_threads();

  TrainOptions topt;
  topt.threads = cores;
  auto* train = app.add_subcommand("train", "train a model on a data set (CSV with or without header, or .npy)");
  train->add_option("--data", topt.data, "data file: one point per row (CSV or .npy)")->required();
  train->add_option("--out", topt.out, "model file to write (safetensors)")->required();
  train->add_option("--steps", topt.steps, "training steps")->check(ex::at_least(1))->capture_default_str();
  train->add_option("--batch", topt.batch, "batch size")->check(ex::at_least(1))->capture_default_str();
  train->add_option("--lr", topt.lr, "peak learning rate")->check(ex::positive_finite())->capture_default_str();
  train->add_option("--hidden", topt.hidden, "hidden layer widths")->check(ex::at_least(1))->capture_default_str();
  train->add_option("--activation", topt.activation,
                    "activation (" + std::string(fm::kBuiltinActivationNames) + ")")->capture_default_str();
  train->add_option("--schedule", topt.schedule, "linear (alpha = t, beta = 1 - t) or cosine")
      ->check(CLI::IsMember({"linear", "cosine"}))->capture_default_str();
  train->add_option("--coupling", topt.coupling, "indep or ot (minibatch optimal transport)")
      ->check(CLI::IsMember({"indep", "ot"}))->capture_default_str();
  train->add_option("--optimizer", topt.optimizer, "adam, adamw or sgd")
      ->check(CLI::IsMember({"adam", "adamw", "sgd"}))->capture_default_str();
  CLI::Option* warmup_option =
      train->add_option("--warmup", topt.warmup, "linear warm-up steps, then cosine decay to 0 (default: 500, at most a tenth of --steps)")
          ->check(ex::at_least(0))->capture_default_str();
  train->add_option("--ema", topt.ema, "decay of the EMA of the weights used for sampling (0: none)")
      ->check(CLI::Range(0.0, 0.999999999))->capture_default_str();
  train->add_option("--threads", topt.threads, "threads")->check(ex::at_least(1))->capture_default_str();
  train->add_option("--seed", topt.seed, "random seed")->capture_default_str();
  train->add_option("--condition-columns", topt.condition_columns,
                    "0-based columns (negative: from the end) holding each point's condition vector");
  train->add_option("--condition-dropout", topt.dropout, "probability of dropping the condition (for guidance)")
      ->check(CLI::Range(0.0, 0.999))->capture_default_str();
  train->add_option("--resume", topt.resume, "continue the run saved in this model file");
  train->add_flag("--quiet", topt.quiet, "no progress output");
  train->add_option("--stop-after", topt.stop_after, "stop after this many steps as Ctrl-C does (for tests)")
      ->check(ex::at_least(0));

  SampleOptions sopt;
  sopt.threads = cores;
  auto* sample = app.add_subcommand("sample", "generate samples from a model file");
  sample->add_option("model", sopt.model, "model file")->required();
  sample->add_option("--out", sopt.out, "output file (.npy or CSV by the extension)")->required();
  auto* n_opt = sample->add_option("--n", sopt.n, "number of samples")->check(ex::at_least(1))->capture_default_str();
  sample->add_option("--seed", sopt.seed, "random seed of the noise")->capture_default_str();
  sample->add_option("--x0", sopt.x0, "start from these noise points instead (CSV or .npy)")->excludes(n_opt);
  sample->add_option("--solver", sopt.solver, fm::stepper_name_list() + " (fixed steps) or dopri5 (adaptive)")->capture_default_str();
  sample->add_option("--steps", sopt.steps, "steps of a fixed-step solver")->check(ex::at_least(1))->capture_default_str();
  sample->add_option("--condition", sopt.condition, "the condition vector (conditional models)");
  sample->add_option("--guidance", sopt.guidance, "classifier-free guidance weight w")->capture_default_str();
  sample->add_option("--threads", sopt.threads, "threads")->check(ex::at_least(1))->capture_default_str();

  LoglikOptions lopt;
  lopt.threads = cores;
  auto* loglik = app.add_subcommand("loglik", "log-likelihood of each point under a model");
  loglik->add_option("model", lopt.model, "model file")->required();
  loglik->add_option("--data", lopt.data, "points (CSV or .npy)")->required();
  loglik->add_option("--out", lopt.out, "per-point log-likelihoods (CSV or .npy)");
  loglik->add_option("--hutchinson", lopt.hutchinson, "Hutchinson probes (0: exact divergence)")
      ->check(ex::at_least(0))->capture_default_str();
  loglik->add_option("--solver", lopt.solver, fm::stepper_name_list())->capture_default_str();
  loglik->add_option("--steps", lopt.steps, "solver steps")->check(ex::at_least(1))->capture_default_str();
  loglik->add_option("--seed", lopt.seed, "seed of the Hutchinson probes")->capture_default_str();
  loglik->add_option("--threads", lopt.threads, "threads")->check(ex::at_least(1))->capture_default_str();

  EvalOptions eopt;
  eopt.threads = cores;
  auto* eval = app.add_subcommand("eval", "distances between two point sets: exact W2, sliced W2, MMD, energy");
  eval->add_option("samples", eopt.samples, "first point set (CSV or .npy)")->required();
  eval->add_option("reference", eopt.reference, "second point set (CSV or .npy)")->required();
  eval->add_option("--n", eopt.n, "points drawn from each set (exact W2: at most 5000)")
      ->check(CLI::Range(1LL, 5000LL))->capture_default_str();
  eval->add_option("--seed", eopt.seed, "seed of the subsets and the projections")->capture_default_str();
  eval->add_option("--projections", eopt.projections, "sliced W2 projections")->check(ex::at_least(1))->capture_default_str();
  eval->add_option("--threads", eopt.threads, "threads")->check(ex::at_least(1))->capture_default_str();

  std::string info_file;
  auto* info = app.add_subcommand("info", "what a model file holds");
  info->add_option("model", info_file, "model file")->required();

  std::string import_file, import_out, import_activation;
  bool import_time_first = false;
  auto* import = app.add_subcommand("import", "convert a PyTorch MLP (safetensors) into a model file");
  import->add_option("file", import_file, "PyTorch state dict in safetensors")->required();
  import->add_option("--activation", import_activation, "the activation between the Linear layers (the file does not record it)")->required();
  import->add_option("--out", import_out, "model file to write")->required();
  import->add_flag("--time-first", import_time_first, "the network's input is [t, x] instead of [x, t]");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "flowmatch: error: %s\n", e.what());
    return e.get_exit_code() != 0 ? e.get_exit_code() : 2;
  }
  try {
    if (*train) {
      topt.warmup_given = warmup_option->count() > 0;
      return mpi_job.guard("flowmatch", [&] { return cmd_train(topt); });
    }
    if (*sample) return mpi_job.guard("flowmatch", [&] { return cmd_sample(sopt); });
    // The other commands are rank 0's alone under mpirun.
    if (!mpi_job.is_root()) return 0;
    if (*loglik) return cmd_loglik(lopt);
    if (*eval) return cmd_eval(eopt);
    if (*info) return cmd_info(info_file);
    if (*import) {
#ifdef FLOWMATCH_CLI_HAS_IMPORT
      return cmd_import(import_file, import_out, import_activation, import_time_first);
#else
      // Wired against io/torch_import.hpp (visit_torch_mlp) of the importer branch: this build
      // lacks that header (TODO(lead): drop this branch once it is merged).
      throw fm::Error("import is not available in this build (needs flowmatch/io/torch_import.hpp)");
#endif
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flowmatch: error: %s\n", e.what());
    return 1;
  }
  return 1;
}
