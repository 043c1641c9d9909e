/// posterior: flow matching posterior estimation (FMPE) on the sbibm benchmark, the whole protocol
/// for one task and one simulation budget:
///   simulate N pairs (theta ~ prior, x ~ simulator(theta)), train a FlowPosterior, then for each
///   of the task's 10 observations draw 10,000 posterior samples (rejecting any outside the
///   prior's support, as sbibm does for NPE), write them to DIR/obs<k>.csv, and compute C2ST
///   against the reference posterior samples (sbibm's protocol, metrics/c2st.hpp).
/// Prints one line per observation and a last line
///   RESULT task=NAME simulations=N c2st=<mean> c2st_sd=<sd> train_s=<s> sample_s=<s>
/// (c2st_sd: the standard deviation over the observations, n - 1; train_s: simulating and
/// training; sample_s: drawing the samples of all observations, C2ST excluded). A figure,
/// DIR/marginals_obs<k>.png, shows the pairwise marginals of our samples over the reference's.
/// `--task all` runs every task, each into DIR/<task>/.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <flowmatch/io/atomic_file.hpp>
#include <flowmatch/sbi.hpp>

#include "cli.hpp"
#include "plot.hpp"

namespace fm = flowmatch;
namespace fs = std::filesystem;

#ifndef FLOWMATCH_SBIBM_DIR
#define FLOWMATCH_SBIBM_DIR "examples/posterior/sbibm"
#endif

namespace {

struct Options {
  std::string task;
  long long simulations = 10000;
  std::string out = FLOWMATCH_DEFAULT_OUT;
  std::string data = FLOWMATCH_SBIBM_DIR;
  long long threads = std::max(1u, std::thread::hardware_concurrency());
  long long seed = 0;
  long long samples = 10000;
  std::vector<long long> observations{1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  long long plot_observation = 1;
  bool c2st = true;
  // The estimator's settings (PosteriorOptions); 0 or empty = the defaults below.
  std::vector<long long> hidden;
  double time_exponent = -1;
  double time_uniform = -1;
  double ema = -1;
  long long batch = 0;
  double lr = 0;
  long long patience = 0;
  long long max_epochs = 0;
  double max_seconds = 0;
  long long ode_steps = 0;
  bool verbose = false;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The estimator's settings for a budget of n simulations: the defaults of PosteriorOptions, a
// smaller batch for small budgets (more steps per epoch), a shorter patience and a 300 s training
// budget above 20,000 simulations, then whatever the command line set.
fm::sbi::PosteriorOptions estimator_options(const Options& opt, long long n) {
  fm::sbi::PosteriorOptions o;
  o.seed = static_cast<std::uint64_t>(opt.seed);
  o.batch_size = n <= 2000 ? 64 : n <= 20000 ? 128 : 256;
  if (n > 20000) {  // large budgets: epochs are long, so fewer of them without progress; 5 minutes at most
    o.patience = 20;
    o.lr_patience = 6;
    o.max_seconds = 300;
  }
  if (!opt.hidden.empty()) o.hidden.assign(opt.hidden.begin(), opt.hidden.end());
  if (opt.time_exponent >= 0) o.time_exponent = opt.time_exponent;
  if (opt.time_uniform >= 0) o.time_uniform_weight = opt.time_uniform;
  if (opt.ema >= 0) o.ema_decay = opt.ema;
  if (opt.batch > 0) o.batch_size = opt.batch;
  if (opt.lr > 0) o.learning_rate = opt.lr;
  if (opt.patience > 0) o.patience = opt.patience;
  if (opt.max_epochs > 0) o.max_epochs = opt.max_epochs;
  if (opt.max_seconds > 0) o.max_seconds = opt.max_seconds;
  if (opt.ode_steps > 0) o.ode_steps = opt.ode_steps;
  return o;
}

void write_samples(const fs::path& file, const fm::Matrix<double>& s) {
  std::ostringstream os;
  for (fm::Index i = 0; i < s.rows(); ++i) os << (i ? "," : "") << "theta" << i;
  os << "\n";
  char buf[64];
  for (fm::Index j = 0; j < s.cols(); ++j) {
    for (fm::Index i = 0; i < s.rows(); ++i) {
      std::snprintf(buf, sizeof buf, "%s%.9g", i ? "," : "", s(i, j));
      os << buf;
    }
    os << "\n";
  }
  const std::string text = os.str();
  fm::detail::write_file_atomically(file, std::vector<unsigned char>(text.begin(), text.end()), "posterior");
}

// Pairwise marginals of the first up to 5 coordinates (1,000 samples of each set): below the
// diagonal our samples (blue) drawn over the reference's (grey), above it the same pairs with the
// reference drawn over ours, so that neither hides the other; histograms of both on the diagonal.
void plot_marginals(const fs::path& file, const std::string& title, const fm::Matrix<double>& ours,
                    const fm::Matrix<double>& reference) {
  const int d = static_cast<int>(std::min<fm::Index>(5, ours.rows()));
  const fm::Index n = std::min<fm::Index>({1000, ours.cols(), reference.cols()});
  const fm::plot::Color grey{120, 120, 120}, blue = fm::plot::tab10(0);
  fm::plot::Figure fig(d, d, 260, 260);
  fig.set_title(title);
  for (int r = 0; r < d; ++r)
    for (int c = 0; c < d; ++c) fig.at(r, c).set_aspect_equal(false);  // each panel its own scales
  std::vector<std::pair<double, double>> lim(static_cast<std::size_t>(d));
  for (int i = 0; i < d; ++i) {  // limits: 0.5% and 99.5% quantiles of both sets, padded
    std::vector<double> v;
    for (fm::Index j = 0; j < reference.cols(); ++j) v.push_back(reference(i, j));
    for (fm::Index j = 0; j < ours.cols(); ++j) v.push_back(ours(i, j));
    std::sort(v.begin(), v.end());
    const double lo = v[v.size() / 200], hi = v[v.size() - 1 - v.size() / 200], pad = 0.1 * (hi - lo + 1e-12);
    lim[static_cast<std::size_t>(i)] = {lo - pad, hi + pad};
  }
  for (int i = 0; i < d; ++i) {
    const auto [lo, hi] = lim[static_cast<std::size_t>(i)];
    const int bins = 40;
    std::vector<double> centre(bins), h_ref(bins, 0.0), h_ours(bins, 0.0);
    for (int b = 0; b < bins; ++b) centre[static_cast<std::size_t>(b)] = lo + (b + 0.5) * (hi - lo) / bins;
    const auto fill = [&](const fm::Matrix<double>& m, std::vector<double>& h) {
      for (fm::Index j = 0; j < m.cols(); ++j) {
        const int b = static_cast<int>(std::floor((m(i, j) - lo) / (hi - lo) * bins));
        if (b >= 0 && b < bins) h[static_cast<std::size_t>(b)] += 1.0 / static_cast<double>(m.cols());
      }
    };
    fill(reference, h_ref);
    fill(ours, h_ours);
    fig.at(i, i).set_xlim(lo, hi).set_xlabel("theta" + std::to_string(i));
    fig.at(i, i).line(centre, h_ref, grey, 2.0, 1.0).line(centre, h_ours, blue, 2.0, 1.0);
  }
  for (int r = 0; r < d; ++r)
    for (int c = 0; c < d; ++c) {
      if (r == c) continue;
      auto& ax = fig.at(r, c);
      ax.set_xlim(lim[static_cast<std::size_t>(c)].first, lim[static_cast<std::size_t>(c)].second);
      ax.set_ylim(lim[static_cast<std::size_t>(r)].first, lim[static_cast<std::size_t>(r)].second);
      ax.set_xlabel("theta" + std::to_string(c)).set_ylabel("theta" + std::to_string(r));
      const bool legend = r == 0 && c == 1;
      if (r > c) {
        ax.scatter(reference.row(c).head(n), reference.row(r).head(n), grey, 1.5, 0.35);
        ax.scatter(ours.row(c).head(n), ours.row(r).head(n), blue, 1.5, 0.35);
      } else {
        ax.scatter(ours.row(c).head(n), ours.row(r).head(n), blue, 1.5, 0.35, legend ? "flowmatch" : "");
        ax.scatter(reference.row(c).head(n), reference.row(r).head(n), grey, 1.5, 0.35, legend ? "reference" : "");
        if (legend) ax.legend(true);
      }
    }
  fig.save_png(file.string());
}

struct CellResult {
  double c2st_mean = 0, c2st_sd = 0, train_s = 0, sample_s = 0;
};

template <fm::sbi::Task T>
CellResult run_task(const T& task, const Options& opt, const fs::path& out_dir) {
  fs::create_directories(out_dir);
  const std::string name(task.name());
  const fm::Index n = static_cast<fm::Index>(opt.simulations);
  fm::Rng rng(static_cast<std::uint64_t>(opt.seed) * 1000003ULL + 17);

  // The observations first: a missing data folder fails before any training.
  std::vector<fm::Vector<double>> observations;
  for (long long k : opt.observations)
    observations.push_back(fm::sbi::load_observation(opt.data, name, static_cast<int>(k)));

  // Simulate and train.
  const auto t_train = std::chrono::steady_clock::now();
  fm::Matrix<double> theta(task.theta_dim(), n), x;
  task.sample_prior(rng, theta);
  task.simulate(rng, theta, x);
  const double sim_s = seconds_since(t_train);
  fm::sbi::FlowPosterior<float> posterior(task.theta_dim(), task.x_dim(), estimator_options(opt, n));
  const fm::sbi::FitReport fit = posterior.fit(theta, x, [&](const fm::sbi::EpochProgress& p) {
    if (opt.verbose && (p.epoch % 10 == 0 || p.epoch == 1))
      std::printf("  epoch %lld train %.5f validation %.5f lr %.2g (%.1f s)\n", p.epoch, p.train_loss,
                  p.validation_loss, p.learning_rate, p.seconds);
  });
  const double train_s = seconds_since(t_train);
  std::printf("task=%s simulations=%lld simulate_s=%.2f epochs=%lld best_epoch=%lld steps=%lld validation_loss=%.5f "
              "stopped_early=%d train_s=%.2f\n",
              name.c_str(), static_cast<long long>(n), sim_s, fit.epochs, fit.best_epoch, fit.steps,
              fit.best_validation_loss, fit.stopped_early ? 1 : 0, train_s);
  std::fflush(stdout);

  CellResult cell;
  cell.train_s = train_s;
  std::vector<double> scores;
  fm::C2STOptions c2st_options;
  c2st_options.threads = static_cast<int>(opt.threads);
  for (std::size_t i = 0; i < observations.size(); ++i) {
    const long long k = opt.observations[i];
    const fm::Vector<double>& x_o = observations[i];
    fm::Matrix<double> samples;
    const auto t_sample = std::chrono::steady_clock::now();
    const fm::sbi::SupportReport support = posterior.sample_in_support(
        x_o, static_cast<fm::Index>(opt.samples), rng,
        [&](const auto& v) { return task.in_support(v); }, samples);
    const double sample_s = seconds_since(t_sample);
    cell.sample_s += sample_s;
    write_samples(out_dir / ("obs" + std::to_string(k) + ".csv"), samples);
    double score = std::nan("");
    double c2st_s = 0;
    fm::Matrix<double> reference;
    if (opt.c2st || k == opt.plot_observation) {
      fm::Rng ref_rng(1000 + static_cast<std::uint64_t>(k));
      reference = fm::sbi::reference_samples(opt.data, name, static_cast<int>(k), ref_rng, 10000);
    }
    if (opt.c2st) {
      const auto t_c2st = std::chrono::steady_clock::now();
      score = fm::c2st(reference, samples, c2st_options);
      c2st_s = seconds_since(t_c2st);
      scores.push_back(score);
    }
    std::printf("obs=%lld c2st=%.4f rejected=%lld sample_s=%.2f c2st_s=%.2f\n", k, score, support.rejected, sample_s,
                c2st_s);
    std::fflush(stdout);
    if (k == opt.plot_observation) {
      const fs::path png = out_dir / ("marginals_obs" + std::to_string(k) + ".png");
      plot_marginals(png, name + ", x_o " + std::to_string(k) + ", " + std::to_string(n) +
                              " sims: flowmatch (blue), reference (grey)",
                     samples, reference);
    }
  }
  if (!scores.empty()) {
    cell.c2st_mean = std::accumulate(scores.begin(), scores.end(), 0.0) / static_cast<double>(scores.size());
    double ss = 0;
    for (double s : scores) ss += (s - cell.c2st_mean) * (s - cell.c2st_mean);
    cell.c2st_sd = scores.size() > 1 ? std::sqrt(ss / static_cast<double>(scores.size() - 1)) : 0.0;
  } else {
    cell.c2st_mean = cell.c2st_sd = std::nan("");
  }
  std::printf("RESULT task=%s simulations=%lld c2st=%.4f c2st_sd=%.4f train_s=%.2f sample_s=%.2f\n", name.c_str(),
              static_cast<long long>(n), cell.c2st_mean, cell.c2st_sd, cell.train_s, cell.sample_s);
  std::fflush(stdout);
  return cell;
}

int run(const Options& opt) {
  if (opt.simulations < 2)
    fm::detail::throw_invalid("posterior", "--simulations", opt.simulations, "needs at least 2 simulations");
  for (long long k : opt.observations)
    if (k < 1 || k > 10) fm::detail::throw_invalid("posterior", "--observations", k, "observations are numbered 1..10");
  fm::set_num_threads(static_cast<int>(opt.threads));
  std::vector<std::string> tasks;
  if (opt.task == "all") {
    for (std::string_view t : fm::sbi::task_names()) tasks.emplace_back(t);
  } else {
    fm::sbi::visit_task(opt.task, [](const auto&) {});  // an unknown name throws, listing the valid ones
    tasks.push_back(opt.task);
  }
  for (const std::string& t : tasks) {
    const fs::path dir = opt.task == "all" ? fs::path(opt.out) / t : fs::path(opt.out);
    fm::sbi::visit_task(t, [&](const auto& task) { run_task(task, opt, dir); });
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"posterior: flow matching posterior estimation on an sbibm task (simulate, train, sample, C2ST)"};
  app.add_option("--task", opt.task, "gaussian_linear, two_moons, gaussian_mixture, slcp, bernoulli_glm, or all")
      ->required();
  app.add_option("--simulations", opt.simulations, "simulation budget N")->capture_default_str();
  app.add_option("--out", opt.out, "output folder")->capture_default_str();
  app.add_option("--data", opt.data, "the sbibm data folder (observations, reference samples)")->capture_default_str();
  app.add_option("--threads", opt.threads, "threads")->check(fm::examples::at_least(1))->capture_default_str();
  app.add_option("--seed", opt.seed, "random seed")->capture_default_str();
  app.add_option("--samples", opt.samples, "posterior samples per observation")
      ->check(fm::examples::at_least(1))
      ->capture_default_str();
  app.add_option("--observations", opt.observations, "which observations (1..10)")->capture_default_str();
  app.add_option("--plot-observation", opt.plot_observation, "the observation of the marginals figure (0: none)")
      ->capture_default_str();
  app.add_flag("!--no-c2st", opt.c2st, "skip C2ST");
  app.add_option("--hidden", opt.hidden, "hidden widths (default 256 256 256 256)");
  app.add_option("--time-exponent", opt.time_exponent, "PowerTime exponent a, p(t) ~ t^a (default 1)");
  app.add_option("--time-uniform", opt.time_uniform, "PowerTime's uniform weight w (default 0)");
  app.add_option("--ema", opt.ema, "EMA decay of the parameters (0: none)");
  app.add_option("--batch", opt.batch, "batch size (default by budget: 64 / 128 / 256)");
  app.add_option("--lr", opt.lr, "Adam learning rate (default 1e-3)");
  app.add_option("--patience", opt.patience, "early-stopping patience in epochs (default 25; 20 above 20,000 simulations)");
  app.add_option("--max-epochs", opt.max_epochs, "most epochs (default 2000)");
  app.add_option("--max-seconds", opt.max_seconds, "training time budget in seconds (default: none up to 20,000 simulations, else 300)");
  app.add_option("--ode-steps", opt.ode_steps, "RK4 steps when sampling (default 16)");
  app.add_flag("--verbose", opt.verbose, "print the losses every 10 epochs");
  return fm::examples::parse_and_run(app, argc, argv, "posterior", [&] { return run(opt); });
}
