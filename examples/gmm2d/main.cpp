// gmm2d: the reference workload, end to end. Trains a flow-matching model on an 11-mode Gaussian
// mixture on a circle (alpha_t = t, beta_t = sqrt(1 - t), MLP [x, t] -> 1024 -> 16 -> 2 with SiLU,
// Adam), samples it with Euler, scores the samples against the known target and draws the
// reference implementation's figures.

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <flowmatch.hpp>
#include <flowmatch/io/checkpoint.hpp>
#include <flowmatch/train/periodic_checkpoint.hpp>

#include "cli.hpp"
#include "csv_out.hpp"
#include "mpi_job.hpp"
#include "plot.hpp"
#include "progress.hpp"
#include "training.hpp"

namespace fm = flowmatch;
namespace plt = flowmatch::plot;

namespace {

struct Options : fm::examples::CommonOptions {
  long long samples = 1000;
  long long time_points = 300;
  long long trajectories = 40;
  std::string save;                 // checkpoint written after training
  std::string resume;               // checkpoint to continue from
  long long checkpoint_every = 0;   // periodic checkpoints into checkpoint_dir (0: none)
  std::string checkpoint_dir;       // default: <out>/checkpoints
  long long checkpoint_keep = 3;
  std::string optimizer = "adam";   // adam | adamw | sgd
  double weight_decay = 1e-2;       // AdamW's decoupled weight decay (PyTorch's default)
  double momentum = 0.9;            // SGD's momentum
  long long warmup = 0;             // warm-up steps, then cosine decay to 0 at --steps (0: constant lr)
  double ema = 0.0;                 // decay of the EMA of the weights used for sampling (0: no EMA)
  long long schedule_steps = 0;     // length of the cosine schedule (0: --steps; a resumed run keeps its file's)
};

// Ctrl-C: the handler only sets this flag; the training callback sees it and stops training, and
// run() then writes a final checkpoint. A second Ctrl-C ends the process at once.
std::atomic<bool> stop_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free);

extern "C" void on_sigint(int) {
  stop_requested.store(true);
  std::signal(SIGINT, SIG_DFL);
}

constexpr double kBound = 15.0;  // the reference workload's plotting bounds: [-15, 15]^2
constexpr int kGrid = 240;       // heatmap resolution

// log-density of `dist` on a kGrid x kGrid grid over [-kBound, kBound]^2 (row = y, col = x).
template <class Dist>
Eigen::MatrixXd log_density_grid(const Dist& dist) {
  fm::Matrix<double> pts(2, kGrid * kGrid);
  for (int i = 0; i < kGrid; ++i)
    for (int j = 0; j < kGrid; ++j) {
      pts(0, i * kGrid + j) = -kBound + (j + 0.5) * 2.0 * kBound / kGrid;
      pts(1, i * kGrid + j) = -kBound + (i + 0.5) * 2.0 * kBound / kGrid;
    }
  const fm::Vector<double> lp = dist.log_density(pts);
  Eigen::MatrixXd grid(kGrid, kGrid);
  for (int i = 0; i < kGrid; ++i)
    for (int j = 0; j < kGrid; ++j) grid(i, j) = lp(i * kGrid + j);
  return grid;
}

plt::Axes& square_axes(plt::Axes& ax, const std::string& title) {
  return ax.set_xlim(-kBound, kBound).set_ylim(-kBound, kBound).set_title(title).set_aspect_equal(true);
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// samples.csv (x,y) and losses.csv (step,loss), in full precision (docs/outputs.md).
void write_samples_csv(const std::filesystem::path& file, const fm::Matrix<float>& x) {
  fm::examples::Csv csv({"x", "y"});
  csv.samples(x);
  csv.save(file);
}

void write_losses_csv(const std::filesystem::path& file, const std::vector<double>& losses) {
  fm::examples::Csv csv({"step", "loss"});
  for (std::size_t k = 0; k < losses.size(); ++k) csv.row(k + 1, losses[k]);
  csv.save(file);
}

// Peak resident set size of this process so far, in MiB (Linux reports ru_maxrss in KiB).
double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  const auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  return *mid;
}

// The EMA of the weights when --ema is given (examples/common/training.hpp, shared with the
// flowmatch program).
using fm::examples::OptionalEma;

// What training hands to sampling and the report.
struct Trained {
  fm::MLPVectorField<float, fm::SiLU> model;  // the EMA weights with --ema
  std::vector<double> losses;
  double train_s = 0.0, ms_step = 0.0;
  double checkpoint_loss = 0.0;  // with no step to train: the resumed model's loss on one fresh batch
};

using Model = fm::MLPVectorField<float, fm::SiLU>;

// --resume: the run's settings are the file's (architecture, optimizer and its hyper-parameters,
// warm-up and schedule length, EMA), whatever the flags say; the file is fully checked here and
// again when it is loaded.
void adopt_checkpoint_settings(Options& opt, std::vector<fm::Index>& hidden) {
  const fm::StateDict dict = fm::read_checkpoint(opt.resume);
  const fm::StateReader r(dict, opt.resume);
  const auto refuse = [&](const std::string& why) {
    throw fm::Error("'" + opt.resume + "' is not a gmm2d training checkpoint: " + why);
  };
  if (!r.has_attribute("model.type") || r.text("model.type") != "mlp_vector_field" ||
      r.text("model.scalar") != "float" || r.text("model.activation") != "silu")
    refuse("it holds no float SiLU MLP vector field");
  const std::vector<long long> widths = r.integers("model.widths");
  if (widths.size() < 2 || widths.front() != 3 || widths.back() != 2) refuse("the MLP is not 3-...-2");
  hidden.assign(widths.begin() + 1, widths.end() - 1);
  if (!r.has_attribute("trainer.steps_done")) refuse("it holds no trainer state (saved from a model alone)");
  fm::StateReader o = r.scope("optimizer");
  opt.warmup = 0;
  if (o.text("type") == "scheduled") {
    const fm::StateReader schedule = o.scope("schedule");
    if (schedule.text("type") != "warmup_cosine") refuse("its learning-rate schedule is not warm-up + cosine");
    opt.warmup = schedule.integer("warmup_steps");
    opt.schedule_steps = schedule.integer("total_steps");
    o = o.scope("inner");
  }
  opt.optimizer = o.text("type");
  if (opt.optimizer == "adamw") opt.weight_decay = o.real("weight_decay");
  else if (opt.optimizer == "sgd") opt.momentum = o.real("momentum");
  else if (opt.optimizer != "adam") refuse("its optimizer '" + opt.optimizer + "' is not adam, adamw or sgd");
  opt.ema = r.has_attribute("ema.decay") ? r.real("ema.decay") : 0.0;
}

// Calls f(optimizer) with the optimizer the options name, wrapped in a warm-up + cosine schedule
// when --warmup > 0.
template <class F>
Trained with_optimizer(const Options& opt, F&& f) {
  const auto go = [&](auto inner) {
    if (opt.warmup == 0) return f(std::move(inner));
    const long long total = opt.schedule_steps > 0 ? opt.schedule_steps : opt.steps;
    return f(fm::ScheduledOptimizer(std::move(inner), fm::WarmupCosineLR(opt.warmup, total)));
  };
  if (opt.optimizer == "adam") return go(fm::Adam<float>(opt.lr));
  if (opt.optimizer == "adamw") return go(fm::AdamW<float>(opt.lr, opt.weight_decay));
  return go(fm::SGD<float>(opt.lr, opt.momentum));
}

template <class Opt>
Trained train(const Options& opt, const fm::examples::Job& job, const std::vector<fm::Index>& hidden, Opt optimizer,
              bool& interrupted) {
  const fm::GaussianConditionalPath path(fm::GaussianMixture::symmetric_2D(11, 1.0, 10.0), fm::LinearAlpha{},
                                         fm::SquareRootBeta{});
  const auto seed = static_cast<std::uint64_t>(opt.seed);
  Model model(2, hidden, seed);
  // A CFMTrainer, or under mpirun a DataParallelTrainer over every rank (--batch is the global batch).
  auto trainer = job.make_trainer(path, model, optimizer, seed + 1);
  OptionalEma ema;
  if (opt.ema > 0.0) ema.average.emplace(opt.ema);
  // Every checkpoint holds the trainer (model, optimizer, step count, generator) and the EMA.
  const auto ema_part = fm::state_part("ema", ema);
  if (!opt.resume.empty()) {
    job.load(opt.resume, trainer, ema_part);
    std::printf("gmm2d: resumed from '%s' at step %lld (%s, learning rate %g%s)\n", opt.resume.c_str(),
                trainer.steps_done(), opt.optimizer.c_str(), optimizer.learning_rate(),
                ema.average ? ", with EMA" : "");
  }
  const long long steps_to_run = std::max(0LL, opt.steps - trainer.steps_done());
  if (steps_to_run == 0 && !opt.resume.empty())
    std::printf("gmm2d: '%s' is already at step %lld (--steps %lld): nothing to train; sampling its model\n",
                opt.resume.c_str(), trainer.steps_done(), opt.steps);
  else if (steps_to_run == 0)
    std::printf("gmm2d: --steps 0: nothing to train; sampling the initial model\n");

  std::printf("gmm2d: %lld steps, batch %lld, %s lr %g%s%s, MLP 3-", opt.steps, opt.batch, opt.optimizer.c_str(),
              opt.lr, opt.warmup > 0 ? (", warm-up " + std::to_string(opt.warmup) + " + cosine").c_str() : "",
              ema.average ? (", EMA " + fm::detail::format_real(opt.ema)).c_str() : "");
  for (auto h : hidden) std::printf("%lld-", static_cast<long long>(h));
  std::printf("2 (%lld parameters), %d thread(s)%s, seed %lld\n", static_cast<long long>(model.num_parameters()),
              fm::num_threads(), job.size() > 1 ? (" x " + std::to_string(job.size()) + " MPI ranks").c_str() : "",
              opt.seed);

  std::vector<double> step_seconds;
  step_seconds.reserve(static_cast<std::size_t>(steps_to_run));
  fm::examples::ProgressReporter progress(500);
  const std::filesystem::path out_dir(opt.out);
  const std::filesystem::path checkpoint_dir =
      opt.checkpoint_dir.empty() ? out_dir / "checkpoints" : std::filesystem::path(opt.checkpoint_dir);
  std::optional<fm::PeriodicCheckpoint<decltype(trainer), fm::NamedPart<OptionalEma>>> checkpoints;
  if (opt.checkpoint_every > 0)
    checkpoints.emplace(trainer, checkpoint_dir, opt.checkpoint_every, static_cast<int>(opt.checkpoint_keep), "gmm2d",
                        ema_part);
  double last = 0.0;
  stop_requested.store(false);
  std::signal(SIGINT, on_sigint);
  const auto t_train = std::chrono::steady_clock::now();
  Trained out{model, {}, 0.0, 0.0, 0.0};
  out.losses = trainer.train(
      steps_to_run, opt.batch,
      [&](const fm::TrainProgress& p) {
        step_seconds.push_back(p.seconds - last);
        last = p.seconds;
        progress(p);
      },
      [&](const fm::TrainProgress& p) {
        if (ema.average) ema.average->update(model.parameters());
        if (checkpoints) (*checkpoints)(p);
        return !job.any(stop_requested.load());  // every rank stops at the same step
      });
  out.train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_train).count();
  interrupted = job.any(stop_requested.load());
  std::signal(SIGINT, SIG_DFL);
  // The final checkpoint: --save, or on Ctrl-C wherever the periodic ones go (or <out>/interrupted.safetensors).
  std::filesystem::path final_checkpoint;
  if (!opt.save.empty()) {
    final_checkpoint = opt.save;
    job.save(final_checkpoint, trainer, ema_part);
  } else if (interrupted) {
    final_checkpoint = checkpoints ? checkpoints->save_now() : out_dir / "interrupted.safetensors";
    if (!checkpoints) job.save(final_checkpoint, trainer, ema_part);
  }
  if (!final_checkpoint.empty()) {
    std::printf("checkpoint at step %lld written to %s\n", trainer.steps_done(), final_checkpoint.string().c_str());
  }
  if (interrupted) {
    std::printf("\ngmm2d: interrupted at step %lld of %lld; continue with --resume %s\n", trainer.steps_done(),
                opt.steps, final_checkpoint.string().c_str());
    return out;
  }
  if (out.losses.empty()) {
    // Nothing trained: the loss the RESULT line reports is the model's on one fresh batch (its
    // gradient is computed and dropped: no update), from a generator of its own.
    fm::Rng eval_rng(seed + 3);
    if constexpr (requires { trainer.inner(); }) out.checkpoint_loss = trainer.inner().loss_and_gradient(opt.batch, eval_rng);
    else out.checkpoint_loss = trainer.loss_and_gradient(opt.batch, eval_rng);
  }
  const std::size_t warmup = std::min<std::size_t>(20, step_seconds.size() / 2);
  out.ms_step = 1e3 * median(std::vector<double>(step_seconds.begin() + static_cast<std::ptrdiff_t>(warmup), step_seconds.end()));
  out.model = model;
  if (ema.average && ema.average->updates() > 0) ema.average->copy_to(out.model.parameters());  // sample with the averaged weights
  return out;
}

int run(Options opt, const fm::examples::Job& job) {
  using Clock = std::chrono::steady_clock;
  fm::set_num_threads(static_cast<int>(opt.threads));
  const std::filesystem::path out_dir(opt.out);
  if (job.is_root()) std::filesystem::create_directories(out_dir);

  // ---------------------------------------------------------------- the reference workload's objects
  const fm::Gaussian p_init = fm::Gaussian::standard(2, 1.0);
  const fm::GaussianMixture p_data = fm::GaussianMixture::symmetric_2D(11, 1.0, 10.0);
  const fm::GaussianConditionalPath path(p_data, fm::LinearAlpha{}, fm::SquareRootBeta{});
  std::vector<fm::Index> hidden(opt.hidden.begin(), opt.hidden.end());
  if (!opt.resume.empty()) adopt_checkpoint_settings(opt, hidden);
  if (opt.warmup > 0 && opt.warmup >= (opt.schedule_steps > 0 ? opt.schedule_steps : opt.steps))
    throw fm::InvalidArgument("--warmup " + std::to_string(opt.warmup) + " must be below --steps " +
                              std::to_string(opt.steps));
  const auto seed = static_cast<std::uint64_t>(opt.seed);

  // ---------------------------------------------------------------- training
  bool interrupted = false;
  const Trained trained =
      with_optimizer(opt, [&](auto optimizer) { return train(opt, job, hidden, std::move(optimizer), interrupted); });
  if (interrupted) return 130;
  // Under mpirun, rank 0 alone samples, scores, draws and writes.
  if (!job.is_root()) return 0;
  const Model& model = trained.model;
  const std::vector<double>& losses = trained.losses;
  const double train_s = trained.train_s, ms_step = trained.ms_step;
  double final_loss = 0.0;
  const std::size_t tail = std::min<std::size_t>(100, losses.size());
  for (std::size_t k = losses.size() - tail; k < losses.size(); ++k) final_loss += losses[k] / static_cast<double>(tail);
  if (losses.empty()) final_loss = trained.checkpoint_loss;

  // ---------------------------------------------------------------- sampling
  fm::Rng rng(seed + 2);
  const fm::Matrix<float> x0 = p_init.sample<float>(opt.samples, rng);
  const fm::Vector<double> ts = fm::linspace(0.0, 1.0, opt.time_points);
  fm::LearnedVectorFieldODE ode(model);
  fm::EulerSimulator simulator(ode);
  // One pass over the grid, in segments, keeping the batch at t = 0, 1/3, 2/3 and 1 for the figure
  // (segment by segment is the same Euler steps as one simulate over the whole grid).
  const fm::Index steps = opt.time_points - 1;
  const std::vector<fm::Index> snapshot_at{0, std::lround(static_cast<double>(steps) / 3.0),
                                           std::lround(2.0 * static_cast<double>(steps) / 3.0), steps};
  std::vector<fm::Matrix<float>> snapshots{x0};
  fm::Matrix<float> x1 = x0;
  const auto t_sample = Clock::now();
  for (std::size_t k = 1; k < snapshot_at.size(); ++k) {
    simulator.simulate_inplace(x1, ts.segment(snapshot_at[k - 1], snapshot_at[k] - snapshot_at[k - 1] + 1));
    snapshots.push_back(x1);
  }
  const double sample_s = std::chrono::duration<double>(Clock::now() - t_sample).count();
  if (!x1.allFinite()) throw fm::NumericalError("the generated samples contain non-finite values");

  const double mean_log_density = p_data.log_density(x1).mean();
  const fm::Index modes_covered = p_data.modes_covered(x1, 0.02, 3.0);
  const fm::Matrix<float> reference = p_data.sample<float>(opt.samples, rng);
  const double reference_log_density = p_data.log_density(reference).mean();

  write_samples_csv(out_dir / "samples.csv", x1);
  write_losses_csv(out_dir / "losses.csv", losses);

  // ---------------------------------------------------------------- figures
  const Eigen::MatrixXd lp_init = log_density_grid(p_init);
  const Eigen::MatrixXd lp_data = log_density_grid(p_data);
  // Heatmaps clipped from below so the mixture's modes, not its far tails, set the colour range.
  const std::pair<double, double> data_range{lp_data.maxCoeff() - 12.0, lp_data.maxCoeff()};
  const std::pair<double, double> init_range{lp_init.maxCoeff() - 12.0, lp_init.maxCoeff()};
  {
    plt::Figure fig(1, 3, 420, 420);
    fig.set_title("Initial and target distributions: log-density");
    square_axes(fig.at(0, 0), "p_init = N(0, I)").heatmap(lp_init, plt::Colormap::Reds, 1.0, true, init_range);
    square_axes(fig.at(0, 1), "p_data: 11-mode mixture").heatmap(lp_data, plt::Colormap::Blues, 1.0, true, data_range);
    square_axes(fig.at(0, 2), "both, overlaid")
        .heatmap(lp_init, plt::Colormap::Reds, 1.0, false, init_range)
        .heatmap(lp_data, plt::Colormap::Blues, 0.55, false, data_range);
    fig.save_png((out_dir / "target_vs_init.png").string());
  }
  {
    // Samples of p_t(. | z) for one z ~ p_data at several t: from N(0, I) at t = 0 to z at t = 1.
    fm::Matrix<double> z(2, 1);
    path.sample_conditioning_variable(rng, z);
    const fm::Index n = 500;
    const fm::Matrix<double> zs = z.replicate(1, n);
    plt::Figure fig(1, 1, 640, 600);
    fig.set_title("Conditional path p_t(x | z) = N(t z, (1 - t) I)");
    plt::Axes& ax = square_axes(fig.at(0, 0), "one z, 500 samples per t");
    ax.heatmap(lp_data, plt::Colormap::Greys, 0.5, false, data_range);
    const std::vector<double> times{0.0, 0.25, 0.5, 0.75, 0.9, 1.0};
    fm::Matrix<double> xt(2, n);
    for (std::size_t k = 0; k < times.size(); ++k) {
      path.sample_conditional_path(zs, times[k], rng, xt);
      ax.scatter(xt.row(0), xt.row(1), plt::tab10(static_cast<int>(k)), 2.0, 0.6, "t = " + fixed(times[k], 2));
    }
    ax.scatter(z.row(0), z.row(1), plt::Color{255, 0, 0}, 6.0, 1.0, "z");
    ax.legend(true);
    fig.save_png((out_dir / "conditional_path.png").string());
  }
  {
    // Trajectories only for the columns drawn.
    const fm::Index drawn = std::min<fm::Index>(opt.trajectories, opt.samples);
    const std::vector<fm::Matrix<float>> traj =
        drawn > 0 ? simulator.simulate_with_trajectory(x0.leftCols(drawn), ts) : std::vector<fm::Matrix<float>>{};
    plt::Figure fig(1, 5, 360, 360);
    fig.set_title("Generated samples (Euler, " + std::to_string(opt.time_points - 1) +
                  " steps) over the target log-density");
    const std::vector<std::string> names{"t = 0", "t = 1/3", "t = 2/3", "t = 1"};
    for (std::size_t k = 0; k < snapshots.size(); ++k) {
      plt::Axes& ax = square_axes(fig.at(0, static_cast<int>(k)), names[k]);
      ax.heatmap(lp_data, plt::Colormap::Blues, 1.0, false, data_range);
      ax.scatter(snapshots[k].row(0), snapshots[k].row(1), plt::Color{0, 0, 0}, 1.6, 0.7);
    }
    plt::Axes& ax = square_axes(fig.at(0, 4), std::to_string(drawn) + " trajectories");
    ax.heatmap(lp_data, plt::Colormap::Blues, 1.0, false, data_range);
    const fm::Index nt = static_cast<fm::Index>(traj.size());
    Eigen::VectorXd px(nt), py(nt);
    for (fm::Index j = 0; j < drawn; ++j) {
      for (fm::Index k = 0; k < nt; ++k) {
        px(k) = traj[static_cast<std::size_t>(k)](0, j);
        py(k) = traj[static_cast<std::size_t>(k)](1, j);
      }
      ax.line(px, py, plt::tab10(static_cast<int>(j % 10)), 1.2, 0.85);
      ax.scatter(px.tail(1), py.tail(1), plt::Color{0, 0, 0}, 2.5, 1.0);
    }
    fig.save_png((out_dir / "generated.png").string());
  }

  // ---------------------------------------------------------------- report
  std::printf("training:  %.2f s, median %.3f ms/step\n", train_s, ms_step);
  std::printf("sampling:  %lld samples x %lld Euler steps in %.3f s\n", opt.samples, opt.time_points - 1, sample_s);
  if (losses.empty())
    std::printf("final loss: no step trained; the model's loss on one fresh batch of %lld: %.4f\n", opt.batch,
                final_loss);
  else
    std::printf("final loss (mean of the last %zu steps): %.4f\n", tail, final_loss);
  std::printf("mean log-density of the samples under p_data: %.4f (fresh samples of p_data: %.4f)\n",
              mean_log_density, reference_log_density);
  std::printf("modes covered (>= 2%% of samples within 3 std): %lld of %lld\n",
              static_cast<long long>(modes_covered), static_cast<long long>(p_data.nmodes()));
  const double peak_rss = peak_rss_mib();
  std::printf("peak resident memory: %.1f MiB\n", peak_rss);
  std::printf("wrote %s/{samples.csv, losses.csv, target_vs_init.png, conditional_path.png, generated.png}\n",
              out_dir.string().c_str());
  std::printf("RESULT threads=%d ranks=%d steps_trained=%zu train_s=%.3f ms_step=%.4f sample_s=%.4f final_loss=%.5f "
              "mean_log_density=%.4f modes_covered=%lld peak_rss_mb=%.1f\n",
              fm::num_threads(), job.size(), losses.size(), train_s, ms_step, sample_s, final_loss, mean_log_density,
              static_cast<long long>(modes_covered), peak_rss);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  fm::examples::Job job(argc, argv);  // MPI, when built with it
  Options opt;
  opt.threads = job.default_threads();
  CLI::App app{"gmm2d: train and sample the reference flow-matching workload (11-mode Gaussian mixture)"};
  fm::examples::add_common_options(app, opt, {.steps = "training steps in all (a resumed run continues up to this count)", .min_steps = 0, .seed = "random seed (model init, training batches, sampling)"});
  app.add_option("--samples", opt.samples, "number of generated samples")->check(fm::examples::at_least(1))->capture_default_str();
  app.add_option("--time-points", opt.time_points, "Euler time grid points on [0, 1] (steps + 1)")->check(fm::examples::at_least(2))->capture_default_str();
  app.add_option("--trajectories", opt.trajectories, "trajectories drawn in generated.png")->check(fm::examples::at_least(0))->capture_default_str();
  app.add_option("--optimizer", opt.optimizer, "adam, adamw (decoupled weight decay) or sgd (with momentum)")
      ->check(CLI::IsMember({"adam", "adamw", "sgd"}))->capture_default_str();
  app.add_option("--weight-decay", opt.weight_decay, "AdamW's weight decay (with --optimizer adamw)")
      ->check(CLI::Range(0.0, 1e6))->capture_default_str();
  app.add_option("--momentum", opt.momentum, "SGD's momentum (with --optimizer sgd)")
      ->check(CLI::Range(0.0, 0.999999))->capture_default_str();
  app.add_option("--warmup", opt.warmup, "linear warm-up steps, then cosine decay to 0 at --steps (0: constant learning rate)")
      ->check(fm::examples::at_least(0))->capture_default_str();
  app.add_option("--ema", opt.ema, "sample with an exponential moving average of the weights of this decay (0: none)")
      ->check(CLI::Range(0.0, 0.999999999))->capture_default_str();
  app.add_option("--save", opt.save,
                 "write a training checkpoint here after training (safetensors: model, optimizer, schedule, EMA, step, generator)");
  app.add_option("--resume", opt.resume,
                 "continue from this checkpoint: its architecture, optimizer, schedule and EMA, exactly (--steps is the total)");
  app.add_option("--checkpoint-every", opt.checkpoint_every, "write a checkpoint every N steps (0: never)")
      ->check(fm::examples::at_least(0))->capture_default_str();
  app.add_option("--checkpoint-dir", opt.checkpoint_dir, "folder of the periodic checkpoints (default: OUT/checkpoints)");
  app.add_option("--checkpoint-keep", opt.checkpoint_keep, "periodic checkpoints kept (the newest)")
      ->check(fm::examples::at_least(1))->capture_default_str();
  return fm::examples::parse_and_run(app, argc, argv, "gmm2d",
                                     [&] { return job.guard("gmm2d", [&] { return run(opt, job); }); });
}
