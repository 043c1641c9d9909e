// The 2-D table of Tong et al. (2023, "Improving and generalizing flow-based generative models
// with minibatch optimal transport"), reproduced with flowmatch under torchcfm's runner protocol,
// beside the paper's OT-CFM row; then our few-step rows on the same models.
//
// Protocol (torchcfm runner: configs/experiment/cfm.yaml, model/otcfm.yaml, cfm_module.py):
//   network   [x, t] -> 64 -> 64 -> 64 -> 2, SELU, PyTorch's nn.Linear initialisation
//   training  AdamW lr 1e-3, weight decay 1e-5; 1000 epochs of the 10000 training points in
//             shuffled batches of 512 (the last one short: 20 steps an epoch; twodim drops it:
//             19); each batch x0 ~ N(0, I) (twodim: a batch of moons), paired with the data
//             batch by the exact OT plan (ot_sampler "exact": pot.emd, then batch-size pairs
//             drawn from the plan with replacement) for OT-CFM, independently for I-CFM;
//             t ~ U(0, 1), x = t x1 + (1 - t) x0 + 0.1 eps, target x1 - x0, mean squared error
//   selection every 10 epochs the validation loss (the same loss on the 1000 validation points);
//             the test uses the weights of the lowest one (ModelCheckpoint monitor val/loss)
//   test      100 Euler steps from 1000 fresh N(0, I) points (twodim: from the first 512 test
//             moons, its test loader's one full batch) to t = 1; W2 = sqrt(exact OT cost) against
//             the 1000 test points (twodim: the first 512); NPE = |PE - W2(x0, x1)^2| / W2(x0, x1)^2
//             with PE the path energy along the Euler trajectories
// The exact plan is computed by our auction solver (ot/auction.hpp, within 1e-7 of the optimal
// cost's range) instead of the network simplex; a plan of a square problem with uniform weights
// is a permutation, and drawing pairs from it with replacement is drawing rows uniformly.
//
// Our rows, on the OT-CFM model of each run: AB2 / midpoint / Euler at 1-8 NFE; reflow (a model
// trained on 10000 pairs (x0, ODE(x0)) of that model, uniform t) at 1-4 Euler steps; its
// distillation to one step (the same pairs, t = 0); MeanFlow (a second model trained from scratch
// with the MeanFlow identity on the same data and budget) at 1 and 2 steps.
//
//   otcfm_table [--seeds 5] [--tasks moons,scurve,gaussians,twodim] [--epochs 1000] [--out DIR]
//   otcfm_table --summarize log1.txt log2.txt ...   (the table from the RUN lines of earlier runs)

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include <flowmatch.hpp>

#include "cli.hpp"
#include "csv_out.hpp"
#include "datasets.hpp"
#include "plot.hpp"

namespace fm = flowmatch;
namespace plt = flowmatch::plot;
using otcfm::Task;

namespace {

using Model = fm::MLPVectorField<float, fm::SELU>;
using ODE = fm::LearnedVectorFieldODE<Model>;
using Clock = std::chrono::steady_clock;

struct Options {
  long long seeds = 5, first_seed = 42, epochs = 1000, val_every = 10, batch = 512, threads = 1;
  long long pairs = 10000, reflow_steps = 20000, meanflow_steps = 20000;
  double sigma = 0.1, meanflow_power = 0.0;
  std::vector<std::string> tasks{"moons", "scurve", "gaussians", "twodim"};
  std::vector<std::string> methods{"data", "otcfm", "icfm"};
  bool extras = true, meanflow = true;
  std::string out = FLOWMATCH_DEFAULT_OUT;
  std::vector<std::string> summarize;
};

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// ---------------------------------------------------------------------------------------------
// The runner's conditional path: an epoch of shuffled batches, minibatch OT (or independent)
// pairs, a noisy straight bridge. A ConditionalPath (CFMTrainer trains on it); its state (the
// epoch's order and position) is mutable, as one trainer owns one path.

/// Fills batch (x, t, u) from source points x0 and data points x1 (2 x n each, paired by
/// column): with `ot`, first re-pairs them by the exact OT plan, drawing n pairs from it with
/// replacement (torchcfm's OTPlanSampler); then x = t x1 + (1 - t) x0 + sigma eps, u = x1 - x0.
class Bridge {
 public:
  Bridge(bool ot, double sigma) : ot_(ot), sigma_(sigma) {}

  template <fm::Real S>
  void fill(fm::Rng& rng, const fm::Matrix<double>& x0, const fm::Matrix<double>& x1, fm::TrainingBatch<S>& b) const {
    const fm::Index n = x0.cols();
    if (ot_) ot_coupling_.compute_pairing(rng, x0, x1, match_);  // the auction uses no random numbers
    b.condition.clear();
    for (fm::Index j = 0; j < n; ++j) {
      fm::Index i0 = j, i1 = j;
      if (ot_) {
        i0 = static_cast<fm::Index>(rng.below(static_cast<std::uint64_t>(n)));
        i1 = match_[static_cast<std::size_t>(i0)];
      }
      const double t = rng.uniform();
      b.t(j) = static_cast<S>(t);
      for (fm::Index d = 0; d < x0.rows(); ++d) {
        const double a = x0(d, i0), z = x1(d, i1);
        b.z(d, j) = static_cast<S>(z);
        b.x(d, j) = static_cast<S>(t * z + (1.0 - t) * a + sigma_ * rng.normal());
        b.u(d, j) = static_cast<S>(z - a);
      }
    }
  }

 private:
  bool ot_;
  double sigma_;
  fm::MinibatchOTCoupling ot_coupling_{0.05, 1024, fm::MinibatchOTCoupling::Method::auction};  // its buffers are mutable
  mutable std::vector<fm::Index> match_;
};

class EpochPath {
 public:
  EpochPath(const Task& task, bool ot, double sigma, fm::Index batch)
      : task_(&task), bridge_(ot, sigma), batch_(batch) {}

  fm::Index dim() const { return 2; }
  /// Steps in one epoch: ceil(10000 / batch), or floor for twodim (drop_last).
  fm::Index steps_per_epoch() const {
    const fm::Index n = task_->train.cols();
    return task_->gaussian_source ? (n + batch_ - 1) / batch_ : n / batch_;
  }
  /// The size of the next batch (the last of an epoch may be short).
  fm::Index next_batch_size() const { return std::min(batch_, task_->train.cols() - cursor_); }

  template <fm::Real S>
  void sample_training_batch(fm::Rng& rng, fm::TrainingBatch<S>& b) const {
    const fm::Index n = b.size(), total = task_->train.cols();
    if (cursor_ == 0 || cursor_ + n > total) start_epoch(rng);
    x0_.resize(2, n);
    x1_.resize(2, n);
    for (fm::Index j = 0; j < n; ++j) {
      x1_.col(j) = task_->train.col(order_[static_cast<std::size_t>(cursor_ + j)]);
      if (task_->gaussian_source) {
        x0_(0, j) = rng.normal();
        x0_(1, j) = rng.normal();
      } else {
        x0_.col(j) = task_->src_train.col(src_order_[static_cast<std::size_t>(cursor_ + j)]);
      }
    }
    cursor_ += n;
    const fm::Index kept = task_->gaussian_source ? total : (total / batch_) * batch_;
    if (cursor_ >= kept) cursor_ = 0;
    bridge_.fill(rng, x0_, x1_, b);
  }

  const Bridge& bridge() const { return bridge_; }

 private:
  void start_epoch(fm::Rng& rng) const {
    const auto shuffle = [&](std::vector<fm::Index>& o) {
      o.resize(static_cast<std::size_t>(task_->train.cols()));
      for (std::size_t k = 0; k < o.size(); ++k) o[k] = static_cast<fm::Index>(k);
      for (std::size_t k = o.size() - 1; k > 0; --k) std::swap(o[k], o[rng.below(k + 1)]);
    };
    shuffle(order_);
    if (!task_->gaussian_source) shuffle(src_order_);  // its own loader, shuffled on its own
    cursor_ = 0;
  }

  const Task* task_;
  Bridge bridge_;
  fm::Index batch_;
  mutable std::vector<fm::Index> order_, src_order_;
  mutable fm::Index cursor_ = 0;
  mutable fm::Matrix<double> x0_, x1_;
};

// ---------------------------------------------------------------------------------------------

/// The validation loss: the training loss on the validation points in loader order (batches of
/// `batch`, the last short; twodim: full batches only), averaged over points.
double validation_loss(const Model& model, const Task& task, const Bridge& bridge, fm::Index batch, fm::Rng& rng) {
  const fm::Index total = task.val.cols();
  const fm::Index end = task.gaussian_source ? total : (total / batch) * batch;
  double sum = 0.0;
  fm::Index count = 0;
  Model::Workspace ws;
  for (fm::Index start = 0; start < end; start += batch) {
    const fm::Index n = std::min(batch, end - start);
    fm::Matrix<double> x0(2, n);
    if (task.gaussian_source)
      for (fm::Index j = 0; j < n; ++j) x0(0, j) = rng.normal(), x0(1, j) = rng.normal();
    else
      x0 = task.src_val.middleCols(start, n);
    const fm::Matrix<double> x1 = task.val.middleCols(start, n);
    fm::TrainingBatch<float> b(2, n);
    bridge.fill(rng, x0, x1, b);
    fm::Matrix<float> out(2, n);
    model.forward(b.x, b.t, out, ws);
    sum += static_cast<double>((out - b.u).squaredNorm()) / 2.0;
    count += n;
  }
  return sum / static_cast<double>(count);
}

struct TestSet {
  fm::Matrix<double> x0, target;  ///< source points to push, target points to score against
};

TestSet test_set(const Task& task, long long seed) {
  TestSet s;
  if (task.gaussian_source) {
    fm::Rng rng(static_cast<std::uint64_t>(seed) * 7919u + 17u);
    s.x0.resize(2, task.test.cols());
    for (fm::Index j = 0; j < s.x0.cols(); ++j) s.x0(0, j) = rng.normal(), s.x0(1, j) = rng.normal();
    s.target = task.test;
  } else {
    s.x0 = task.src_test.leftCols(512);
    s.target = task.test.leftCols(512);
  }
  return s;
}

struct Trained {
  Model model;
  double best_val = 0.0;
  long long best_epoch = 0, steps = 0;
  double seconds = 0.0;
};

Trained train_cfm(const Task& task, bool ot, long long seed, const Options& opt) {
  const auto t0 = Clock::now();
  fm::Rng init(static_cast<std::uint64_t>(seed));
  Trained out{Model(2, {64, 64, 64}, init)};
  Model model = out.model;
  fm::AdamW<float> adamw(1e-3, 1e-5);
  EpochPath path(task, ot, opt.sigma, static_cast<fm::Index>(opt.batch));
  fm::CFMTrainer trainer(path, model, adamw, static_cast<std::uint64_t>(seed) + 1000u);
  fm::Rng val_rng(static_cast<std::uint64_t>(seed) + 2000u);
  out.best_val = std::numeric_limits<double>::infinity();
  const fm::Index per_epoch = trainer.path().steps_per_epoch();
  for (long long epoch = 1; epoch <= opt.epochs; ++epoch) {
    for (fm::Index k = 0; k < per_epoch; ++k) trainer.step(trainer.path().next_batch_size());
    if (epoch % opt.val_every == 0 || epoch == opt.epochs) {
      const double v = validation_loss(model, task, path.bridge(), static_cast<fm::Index>(opt.batch), val_rng);
      if (v < out.best_val) {
        out.best_val = v;
        out.best_epoch = epoch;
        out.model.parameters() = model.parameters();
      }
    }
  }
  out.steps = trainer.steps_done();
  out.seconds = seconds_since(t0);
  return out;
}

struct Row {
  std::string method;
  long long nfe;
  double w2, npe;  ///< npe < 0: not measured
};

void write_csv(const std::filesystem::path& file, const fm::Matrix<double>& x) {
  std::ofstream f(file);
  f << "x,y\n";
  f.precision(9);
  for (fm::Index j = 0; j < x.cols(); ++j) f << x(0, j) << ',' << x(1, j) << '\n';
  if (!f) throw fm::Error("otcfm_table: cannot write " + file.string());
}

/// Samples with a fixed stepper over `nfe` evaluations (nfe / stages uniform steps).
fm::Matrix<double> sample(const Model& model, const std::string& solver, long long nfe, const fm::Matrix<double>& x0) {
  ODE ode(model);
  fm::Matrix<float> x = x0.cast<float>();
  fm::visit_stepper<float>(solver, [&]<class St>(std::type_identity<St>) {
    fm::ODESimulator<ODE, St> sim(ode);
    sim.simulate_inplace(x, static_cast<fm::Index>(nfe / St::stages));
  });
  return x.cast<double>();
}

struct Straightness {
  std::string task;
  double before = 0.0, after = 0.0;
  std::vector<fm::Matrix<double>> teacher_traj, reflow_traj;
};

struct RunContext {
  const Options& opt;
  std::filesystem::path out;
  std::vector<std::tuple<std::string, std::string, long long, double, double>> runs;  ///< task, method, nfe, w2, npe
  std::vector<Straightness> straight;
};

void report(RunContext& ctx, const Task& task, long long seed, const std::string& method, long long nfe,
            const fm::Matrix<double>& x, const fm::Matrix<double>& target, double npe, bool write = true) {
  const double w2 = fm::wasserstein2(x, target);
  std::printf("RUN task=%s method=%s seed=%lld nfe=%lld w2=%.4f npe=%.4f\n", task.name.c_str(), method.c_str(), seed, nfe,
              w2, npe);
  std::fflush(stdout);
  ctx.runs.emplace_back(task.name, method, nfe, w2, npe);
  if (write) write_csv(ctx.out / (task.name + "_" + method + "_seed" + std::to_string(seed) + ".csv"), x);
}

std::vector<fm::Matrix<double>> euler_trajectory(const Model& model, const fm::Matrix<double>& x0, fm::Index steps) {
  ODE ode(model);
  fm::ODESimulator<ODE, fm::EulerStepper<float>> sim(ode);
  const fm::Vector<double> ts = fm::uniform_time_grid(steps);
  std::vector<fm::Matrix<double>> out;
  for (const fm::Matrix<float>& m : sim.simulate_with_trajectory(x0.cast<float>(), ts)) out.push_back(m.cast<double>());
  return out;
}

/// MeanFlow: a model of the average velocity, trained from scratch on the same data (tasks from
/// N(0, I) only), sampled in 1 and 2 steps.
void run_meanflow(RunContext& ctx, const Task& task, long long seed, const TestSet& test) {
  const Options& opt = ctx.opt;
  const auto tm = Clock::now();
  fm::Rng mf_init(static_cast<std::uint64_t>(seed) + 6000u);
  fm::MeanFlowField<float, fm::SELU> mf(2, {64, 64, 64}, mf_init);
  fm::AdamW<float> a(1e-3, 1e-5);
  fm::MeanFlowOptions mo;
  mo.adaptive_power = opt.meanflow_power;
  fm::MeanFlowTrainer mtr(fm::Empirical(task.train), mf, a, static_cast<std::uint64_t>(seed) + 7000u, mo);
  for (long long k = 0; k < opt.meanflow_steps; ++k) mtr.step(static_cast<fm::Index>(opt.batch));
  std::fprintf(stderr, "[%s meanflow seed %lld] %.0f s\n", task.name.c_str(), seed, seconds_since(tm));
  const std::string name = opt.meanflow_power == 0.0 ? "meanflow" : "meanflow-p" + fm::detail::to_string_value(opt.meanflow_power);
  for (long long nfe : {1, 2}) {
    fm::Matrix<float> x = test.x0.cast<float>();
    fm::mean_flow_sample(mf, x, static_cast<fm::Index>(nfe));
    report(ctx, task, seed, name, nfe, x.cast<double>(), test.target, -1, nfe == 1);
  }
}

void run_task_seed(RunContext& ctx, const Task& task, long long seed) {
  const Options& opt = ctx.opt;
  const TestSet test = test_set(task, seed);
  write_csv(ctx.out / (task.name + "_target_seed" + std::to_string(seed) + ".csv"), test.target);
  const double w2_source = fm::wasserstein2(test.x0, test.target);
  for (const std::string& method : opt.methods) {
    if (method == "meanflow") {
      if (task.gaussian_source) run_meanflow(ctx, task, seed, test);
      continue;
    }
    if (method == "data") {  // a perfect model: fresh points from the data's own law
      fm::Rng rng(static_cast<std::uint64_t>(seed) * 104729u + 5u);
      report(ctx, task, seed, "data", 0, task.draw(test.target.cols(), rng), test.target, -1, false);
      continue;
    }
    const bool ot = method == "otcfm";
    const Trained t = train_cfm(task, ot, seed, opt);
    std::fprintf(stderr, "[%s %s seed %lld] %lld steps in %.0f s, best val loss %.4f at epoch %lld\n", task.name.c_str(),
                 method.c_str(), seed, t.steps, t.seconds, t.best_val, t.best_epoch);
    const fm::PathStatistics ps = fm::path_statistics(t.model, test.x0, 100);
    const double npe = fm::normalized_path_energy(ps.path_energy, w2_source);
    report(ctx, task, seed, method, 100, ps.x1, test.target, npe);
    if (!ot || !opt.extras) continue;

    // Few-step samplers on the same model.
    for (long long nfe : {1, 2, 4, 8}) report(ctx, task, seed, "otcfm-euler", nfe, sample(t.model, "euler", nfe, test.x0), test.target, -1, false);
    for (long long nfe : {2, 4, 8}) {
      report(ctx, task, seed, "otcfm-midpoint", nfe, sample(t.model, "midpoint", nfe, test.x0), test.target, -1, false);
      report(ctx, task, seed, "otcfm-ab2", nfe, sample(t.model, "ab2", nfe, test.x0), test.target, -1, false);
    }

    // Reflow and one-step distillation from pairs (x0, ODE(x0)) of this model.
    const auto tr = Clock::now();
    fm::Rng pair_rng(static_cast<std::uint64_t>(seed) + 3000u);
    fm::Matrix<double> px0(2, opt.pairs);
    if (task.gaussian_source) {
      for (fm::Index j = 0; j < px0.cols(); ++j) px0(0, j) = pair_rng.normal(), px0(1, j) = pair_rng.normal();
    } else {
      for (fm::Index j = 0; j < px0.cols(); ++j)
        px0.col(j) = task.src_train.col(static_cast<fm::Index>(pair_rng.below(static_cast<std::uint64_t>(task.src_train.cols()))));
    }
    const fm::PairedCoupling pairs = fm::reflow_pairs<fm::RK4Stepper>(t.model, px0, 25);
    Model reflowed = t.model, distilled = t.model;  // both start from the teacher's weights
    {
      fm::AdamW<float> a(1e-3, 1e-5);
      fm::CFMTrainer tr2(fm::PairedPath<>(pairs), reflowed, a, static_cast<std::uint64_t>(seed) + 4000u);
      for (long long k = 0; k < opt.reflow_steps; ++k) tr2.step(static_cast<fm::Index>(opt.batch));
    }
    {
      fm::AdamW<float> a(1e-3, 1e-5);
      using Path = fm::PairedPath<fm::LinearAlpha, fm::LinearBeta, fm::ConstantTime>;
      fm::CFMTrainer tr3(Path(pairs, {}, {}, fm::ConstantTime(0.0)), distilled, a, static_cast<std::uint64_t>(seed) + 5000u);
      for (long long k = 0; k < opt.reflow_steps; ++k) tr3.step(static_cast<fm::Index>(opt.batch));
    }
    const fm::PathStatistics rs = fm::path_statistics(reflowed, test.x0, 100);
    std::fprintf(stderr, "[%s reflow seed %lld] %.0f s; straightness %.4f -> %.4f\n", task.name.c_str(), seed,
                 seconds_since(tr), ps.straightness, rs.straightness);
    report(ctx, task, seed, "reflow", 100, rs.x1, test.target, fm::normalized_path_energy(rs.path_energy, w2_source), false);
    for (long long nfe : {1, 2, 4}) report(ctx, task, seed, "reflow-euler", nfe, sample(reflowed, "euler", nfe, test.x0), test.target, -1, nfe == 1);
    report(ctx, task, seed, "distill", 1, sample(distilled, "euler", 1, test.x0), test.target, -1, true);
    if (seed == opt.first_seed) {
      Straightness s{task.name, ps.straightness, rs.straightness, {}, {}};
      const fm::Matrix<double> few = test.x0.leftCols(48);
      s.teacher_traj = euler_trajectory(t.model, few, 20);
      s.reflow_traj = euler_trajectory(reflowed, few, 20);
      ctx.straight.push_back(std::move(s));
    }

    if (opt.meanflow && task.gaussian_source) run_meanflow(ctx, task, seed, test);
  }
}

// ---------------------------------------------------------------------------------------------
// The table.

struct Cell {
  std::vector<double> w2, npe;
};

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}
/// Sample standard deviation (n - 1); 0 for one value.
double stddev(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

using Key = std::tuple<std::string, long long>;  // method, nfe

void print_table(const std::vector<std::tuple<std::string, std::string, long long, double, double>>& runs,
                 const std::filesystem::path& out) {
  std::vector<std::string> tasks;
  std::vector<Key> rows;
  std::map<std::pair<Key, std::string>, Cell> cells;
  for (const auto& [task, method, nfe, w2, npe] : runs) {
    if (std::find(tasks.begin(), tasks.end(), task) == tasks.end()) tasks.push_back(task);
    const Key k{method, nfe};
    if (std::find(rows.begin(), rows.end(), k) == rows.end()) rows.push_back(k);
    Cell& c = cells[{k, task}];
    c.w2.push_back(w2);
    if (npe >= 0) c.npe.push_back(npe);
  }
  std::map<std::string, std::pair<double, double>> paper;
  for (const std::string& name : tasks) {
    const Task t = otcfm::make_task(name);
    paper[name] = {t.paper_w2, t.paper_w2_std};
  }
  std::printf("\nW2 to the test points, mean +- std (sample std over seeds; n = seeds), and NPE where measured\n\n| method | NFE |");
  for (const auto& t : tasks) std::printf(" %s |", t.c_str());
  std::printf("\n|---|---:|");
  for (std::size_t k = 0; k < tasks.size(); ++k) std::printf("---|");
  std::printf("\n| OT-CFM, paper (Tong et al. Table 2) | 100 |");
  for (const auto& t : tasks) std::printf(" %.3f +- %.3f |", paper[t].first, paper[t].second);
  std::printf("\n");
  for (const Key& k : rows) {
    std::printf("| %s | %lld |", std::get<0>(k).c_str(), std::get<1>(k));
    for (const auto& t : tasks) {
      const auto it = cells.find({k, t});
      if (it == cells.end()) {
        std::printf(" - |");
        continue;
      }
      const Cell& c = it->second;
      std::printf(" %.3f +- %.3f", mean(c.w2), stddev(c.w2));
      if (!c.npe.empty()) std::printf(" (NPE %.3f)", mean(c.npe));
      std::printf(" [%zu] |", c.w2.size());
    }
    std::printf("\n");
  }
  std::printf("\n");
  for (const Key& k : rows)
    for (const auto& t : tasks) {
      const auto it = cells.find({k, t});
      if (it == cells.end()) continue;
      const Cell& c = it->second;
      std::printf("RESULT task=%s method=%s nfe=%lld w2=%.4f w2_std=%.4f npe=", t.c_str(), std::get<0>(k).c_str(),
                  std::get<1>(k), mean(c.w2), stddev(c.w2));
      if (c.npe.empty()) std::printf("n/a\n");
      else std::printf("%.4f\n", mean(c.npe));
    }
  // Bars: OT-CFM within the paper's mean + std; one step within 1.5x OT-CFM at 100 Euler steps.
  std::printf("\n");
  for (const auto& t : tasks) {
    const auto it = cells.find({Key{"otcfm", 100}, t});
    if (it == cells.end()) continue;
    const double ours = mean(it->second.w2), bar = paper[t].first + paper[t].second;
    std::printf("bar %s: OT-CFM %.3f vs paper mean + std %.3f: %s\n", t.c_str(), ours, bar, ours <= bar ? "met" : "NOT met");
    for (const char* one : {"distill", "meanflow", "reflow-euler"}) {
      const auto jt = cells.find({Key{one, 1}, t});
      if (jt == cells.end()) continue;
      const double w = mean(jt->second.w2);
      std::printf("bar %s: %s at 1 NFE %.3f vs 1.5 x OT-CFM %.3f: %s\n", t.c_str(), one, w, 1.5 * ours,
                  w <= 1.5 * ours ? "met" : "NOT met");
    }
  }

  // NFE against W2, one panel per task.
  if (out.empty()) return;
  // The table as CSV (docs/outputs.md): the paper's row, then one row per RESULT line.
  fm::examples::Csv results({"task", "method", "nfe", "w2_mean", "w2_std", "npe_mean", "seeds"});
  for (const auto& t : tasks) results.row(t, "otcfm_paper", 100, paper[t].first, paper[t].second, "", "");
  for (const Key& k : rows)
    for (const auto& t : tasks) {
      const auto it = cells.find({k, t});
      if (it == cells.end()) continue;
      const Cell& c = it->second;
      if (c.npe.empty())
        results.row(t, std::get<0>(k), std::get<1>(k), mean(c.w2), stddev(c.w2), "", c.w2.size());
      else
        results.row(t, std::get<0>(k), std::get<1>(k), mean(c.w2), stddev(c.w2), mean(c.npe), c.w2.size());
    }
  results.save(out / "results.csv");
  std::printf("wrote %s\n", (out / "results.csv").string().c_str());
  plt::Figure fig(1, static_cast<int>(tasks.size()), 470, 520);
  fig.set_title("W2 to the test points against NFE, mean over seeds");
  for (std::size_t c = 0; c < tasks.size(); ++c) {
    plt::Axes& ax = fig.at(0, static_cast<int>(c));
    ax.set_title(tasks[c]).set_xlabel("log2 NFE").set_ylabel("W2").set_grid(true).set_aspect_equal(false);
    std::vector<std::string> methods;
    for (const Key& k : rows)
      if (std::find(methods.begin(), methods.end(), std::get<0>(k)) == methods.end()) methods.push_back(std::get<0>(k));
    double top = paper[tasks[c]].first * 2;
    for (std::size_t m = 0; m < methods.size(); ++m) {
      std::vector<double> xs, ys;
      for (const Key& k : rows) {
        if (std::get<0>(k) != methods[m]) continue;
        const auto it = cells.find({k, tasks[c]});
        if (it == cells.end()) continue;
        xs.push_back(std::log2(static_cast<double>(std::get<1>(k))));
        ys.push_back(mean(it->second.w2));
      }
      if (xs.empty()) continue;
      if (methods[m] == "data") {  // no network: a level, not a point
        ax.line(std::vector<double>{0.0, 7.0}, std::vector<double>{ys[0], ys[0]}, plt::black, 1.0, 1.0, "fresh data (perfect model)");
        top = std::max(top, ys[0]);
        continue;
      }
      for (double y : ys) top = std::max(top, std::min(y, 4.0 * paper[tasks[c]].first));
      if (xs.size() > 1) ax.line(xs, ys, plt::tab10(static_cast<long long>(m)), 1.8, 1.0, methods[m]);
      ax.scatter(xs, ys, plt::tab10(static_cast<long long>(m)), 4.0, 1.0, xs.size() > 1 ? std::string{} : methods[m]);
    }
    const double p = paper[tasks[c]].first;
    ax.line(std::vector<double>{0.0, 7.0}, std::vector<double>{p, p}, plt::grey, 1.0, 1.0, "paper OT-CFM");
    ax.set_xlim(-0.3, 7.0).set_ylim(0.0, top * 1.9).legend(true);  // headroom: the legend sits above the data
  }
  fig.save_png((out / "nfe_vs_w2.png").string());
  std::printf("\nwrote %s\n", (out / "nfe_vs_w2.png").string().c_str());
}

void draw_straightness(const std::vector<Straightness>& st, const std::vector<Task>& tasks, const std::filesystem::path& out) {
  if (st.empty()) return;
  plt::Figure fig(static_cast<int>(st.size()), 2, 380, 380);
  fig.set_title("Euler trajectories before and after reflow (S: straightness)");
  for (std::size_t r = 0; r < st.size(); ++r) {
    double bound = 4.0;
    for (const Task& t : tasks)
      if (t.name == st[r].task) bound = t.plot_bound;
    for (int c = 0; c < 2; ++c) {
      const auto& traj = c == 0 ? st[r].teacher_traj : st[r].reflow_traj;
      char title[160];
      std::snprintf(title, sizeof title, "%s, %s: S = %.4f", st[r].task.c_str(), c == 0 ? "OT-CFM" : "reflowed",
                    c == 0 ? st[r].before : st[r].after);
      plt::Axes& ax = fig.at(static_cast<int>(r), c);
      ax.set_xlim(-bound, bound).set_ylim(-bound, bound).set_aspect_equal(true).set_title(title);
      const fm::Index nt = static_cast<fm::Index>(traj.size());
      for (fm::Index j = 0; j < traj.front().cols(); ++j) {
        Eigen::VectorXd px(nt), py(nt);
        for (fm::Index k = 0; k < nt; ++k) px(k) = traj[static_cast<std::size_t>(k)](0, j), py(k) = traj[static_cast<std::size_t>(k)](1, j);
        ax.line(px, py, plt::tab10(j % 10), 1.0, 0.8);
        ax.scatter(px.tail(1), py.tail(1), plt::red, 1.8, 1.0);
      }
    }
  }
  fig.save_png((out / "straightness.png").string());
  std::printf("wrote %s\n", (out / "straightness.png").string().c_str());
}

int summarize(const Options& opt) {
  std::vector<std::tuple<std::string, std::string, long long, double, double>> runs;
  for (const std::string& file : opt.summarize) {
    std::ifstream f(file);
    if (!f) throw fm::Error("otcfm_table: cannot read " + file);
    for (std::string line; std::getline(f, line);) {
      if (line.rfind("RUN ", 0) != 0) continue;
      std::map<std::string, std::string> kv;
      std::istringstream is(line.substr(4));
      for (std::string item; is >> item;) {
        const auto eq = item.find('=');
        if (eq != std::string::npos) kv[item.substr(0, eq)] = item.substr(eq + 1);
      }
      runs.emplace_back(kv["task"], kv["method"], std::stoll(kv["nfe"]), std::stod(kv["w2"]), std::stod(kv["npe"]));
    }
  }
  if (runs.empty()) throw fm::InvalidArgument("otcfm_table: no RUN lines in the --summarize files");
  std::filesystem::create_directories(opt.out);
  print_table(runs, opt.out);
  return 0;
}

int run(const Options& opt) {
  fm::set_num_threads(static_cast<int>(opt.threads));
  if (!opt.summarize.empty()) return summarize(opt);
  for (const auto& m : opt.methods)
    if (m != "otcfm" && m != "icfm" && m != "data" && m != "meanflow")
      throw fm::InvalidArgument("otcfm_table: unknown method '" + m + "' (known: otcfm, icfm, data, meanflow)");
  std::filesystem::create_directories(opt.out);
  RunContext ctx{opt, opt.out, {}, {}};
  std::vector<Task> tasks;
  for (const auto& name : opt.tasks) tasks.push_back(otcfm::make_task(name));
  const auto t0 = Clock::now();
  // Seed-major: after each seed the table so far is printed, so a long run can be read early.
  for (long long s = 0; s < opt.seeds; ++s) {
    const long long seed = opt.first_seed + s;
    for (const Task& task : tasks) run_task_seed(ctx, task, seed);
    std::fprintf(stderr, "seed %lld done after %.0f s\n", seed, seconds_since(t0));
    if (s + 1 < opt.seeds) print_table(ctx.runs, {});
  }
  print_table(ctx.runs, ctx.out);
  draw_straightness(ctx.straight, tasks, ctx.out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"The OT-CFM paper's 2-D table (Tong et al. 2023) under torchcfm's protocol, with few-step rows"};
  app.add_option("--seeds", opt.seeds, "training seeds (the paper: 5)")->check(fm::examples::at_least(1))->capture_default_str();
  app.add_option("--first-seed", opt.first_seed, "the first seed (torchcfm: 42..46)")->capture_default_str();
  app.add_option("--tasks", opt.tasks, "tasks: moons, scurve, gaussians, twodim")->delimiter(',')->capture_default_str();
  app.add_option("--methods", opt.methods,
                 "methods: otcfm (with our rows unless --extras false), icfm, data (fresh draws from the data's law: a "
                 "perfect model), meanflow (alone)")->delimiter(',')->capture_default_str();
  app.add_option("--epochs", opt.epochs, "training epochs (torchcfm: 1000)")->check(fm::examples::at_least(1))->capture_default_str();
  app.add_option("--val-every", opt.val_every, "epochs between validations")->check(fm::examples::at_least(1))->capture_default_str();
  app.add_option("--batch", opt.batch, "batch size")->check(fm::examples::at_least(2))->capture_default_str();
  app.add_option("--sigma", opt.sigma, "bridge noise sigma")->check(fm::examples::positive_finite())->capture_default_str();
  app.add_option("--pairs", opt.pairs, "reflow pairs")->check(fm::examples::at_least(1))->capture_default_str();
  app.add_option("--reflow-steps", opt.reflow_steps, "training steps of the reflow and distilled models")->check(fm::examples::at_least(1))->capture_default_str();
  app.add_option("--meanflow-steps", opt.meanflow_steps, "training steps of the MeanFlow model")->check(fm::examples::at_least(1))->capture_default_str();
  app.add_option("--extras", opt.extras, "our few-step rows (multistep, reflow, distillation, MeanFlow)")->capture_default_str();
  app.add_option("--meanflow", opt.meanflow, "the MeanFlow row with otcfm's extras")->capture_default_str();
  app.add_option("--meanflow-power", opt.meanflow_power, "MeanFlow's adaptive loss weight power p (the paper: 1)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--threads", opt.threads, "threads")->check(fm::examples::at_least(1))->capture_default_str();
  app.add_option("--out", opt.out, "output folder")->capture_default_str();
  app.add_option("--summarize", opt.summarize, "print the table from the RUN lines of these logs instead of training");
  return fm::examples::parse_and_run(app, argc, argv, "otcfm_table", [&] { return run(opt); });
}
