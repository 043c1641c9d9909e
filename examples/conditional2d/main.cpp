// conditional2d: a class-conditional flow on a labelled 2-D Gaussian mixture (class = mode),
// trained by CFMTrainer on batches that carry each sample's label, with condition dropout,
// sampled with classifier-free guidance u = (1 + w) u(x, t | y) - w u(x, t | empty) for several
// guidance weights w: one figure per w, and a table of how many samples of each class land on
// their own mode; the drawn points (samples.csv, means.csv) and the table (guidance.csv) as CSV
// beside the figures (docs/outputs.md).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <flowmatch.hpp>

#include "cli.hpp"
#include "csv_out.hpp"
#include "plot.hpp"
#include "progress.hpp"

namespace fm = flowmatch;
namespace plt = flowmatch::plot;

namespace {

struct Options : fm::examples::CommonOptions {
  Options() : CommonOptions{.steps = 4000, .batch = 256, .lr = 2e-3, .hidden = {128, 128, 128}} {}
  double dropout = 0.2;
  long long modes = 6;
  double mode_std = 0.9;
  double radius = 4.0;
  long long frequencies = 4;
  long long per_class = 300;
  long long nfe = 100;
  std::vector<double> guidance{0.0, 1.0, 3.0};
};

constexpr double kBound = 9.0;

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

int run(const Options& opt) {
  fm::set_num_threads(static_cast<int>(opt.threads));
  const std::filesystem::path out_dir(opt.out);
  std::filesystem::create_directories(out_dir);
  const auto seed = static_cast<std::uint64_t>(opt.seed);
  const fm::Index classes = opt.modes;
  const fm::GaussianMixture data = fm::GaussianMixture::symmetric_2D(classes, opt.mode_std, opt.radius);
  const fm::GaussianConditionalPath path(data, fm::LinearAlpha{}, fm::LinearBeta{});
  std::vector<fm::Index> hidden(opt.hidden.begin(), opt.hidden.end());
  fm::ClassConditionalVectorField<float, fm::SiLU> model(2, classes, hidden, seed, opt.frequencies);
  fm::ScheduledOptimizer adam(fm::Adam<float>(opt.lr), fm::WarmupCosineLR(std::min(200LL, opt.steps - 1), opt.steps));
  fm::TrainerOptions options;
  options.condition_dropout = opt.dropout;  // trains u(x, t | empty) too, for guidance
  fm::CFMTrainer trainer(path, model, adam, seed + 1, options);  // the batches carry the mixture's labels
  std::printf("conditional2d: %lld modes (std %g, radius %g) = classes, %lld steps, batch %lld, lr %g (cosine), "
              "label dropout %g, %lld Fourier frequencies, %lld parameters, %d thread(s), seed %lld\n",
              opt.modes, opt.mode_std, opt.radius, opt.steps, opt.batch, opt.lr, opt.dropout, opt.frequencies,
              static_cast<long long>(model.num_parameters()), fm::num_threads(), opt.seed);
  fm::examples::ProgressReporter progress(1000);
  const auto start = std::chrono::steady_clock::now();
  trainer.train(opt.steps, opt.batch, [&](const fm::TrainProgress& p) { progress(p); });
  const double train_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // The same noise for every guidance weight: per_class samples of each class.
  const fm::Index n = classes * opt.per_class;
  fm::Vector<fm::Index> labels(n);
  for (fm::Index j = 0; j < n; ++j) labels(j) = j / opt.per_class;
  fm::Rng rng(seed + 2);
  fm::Matrix<float> x0(2, n);
  fm::StandardNormal(2).sample(rng, x0);
  const fm::Vector<double> ts = fm::linspace(0.0, 1.0, opt.nfe + 1);

  std::printf("\ntrained in %.1f s; %lld samples per class, %lld Euler steps:\n\n", train_s, opt.per_class, opt.nfe);
  std::printf("| guidance w | on own mode | mean distance to own mode | mean log-density under p_data |\n|---:|---:|---:|---:|\n");
  // The unconditional model (every label empty) first, then each w.
  std::vector<std::string> titles;
  std::vector<fm::Matrix<float>> results;
  fm::examples::Csv table({"set", "guidance", "on_own_mode_percent", "mean_distance_to_own_mode", "mean_log_density",
                           "modes_covered"});
  {
    fm::GuidedVectorFieldODE ode(model, fm::Vector<fm::Index>::Constant(n, model.empty_label()), 0.0);
    fm::EulerSimulator sim(ode);
    fm::Matrix<float> x = x0;
    sim.simulate_inplace(x, ts);
    const auto covered = static_cast<long long>(data.modes_covered(x));
    const double log_density = data.log_density(x).mean();
    std::printf("| unconditional | (%lld of %lld modes covered) | | %.3f |\n", covered, opt.modes, log_density);
    table.row("unconditional", "", "", "", log_density, covered);
    titles.push_back("unconditional (empty label)");
    results.push_back(std::move(x));
  }
  for (double w : opt.guidance) {
    fm::GuidedVectorFieldODE ode(model, labels, w);
    fm::EulerSimulator sim(ode);
    fm::Matrix<float> x = x0;
    sim.simulate_inplace(x, ts);
    if (!x.allFinite()) throw fm::NumericalError("non-finite samples at guidance " + fmt("%g", w));
    fm::Index own = 0;
    double dist = 0.0;
    for (fm::Index j = 0; j < n; ++j) {
      fm::Index best = 0;
      double best_d = std::numeric_limits<double>::infinity();
      for (fm::Index k = 0; k < classes; ++k) {
        const double d = (x.col(j).cast<double>() - data.means().col(k)).squaredNorm();
        if (d < best_d) best_d = d, best = k;
      }
      own += best == labels(j);
      dist += std::sqrt((x.col(j).cast<double>() - data.means().col(labels(j))).squaredNorm()) / static_cast<double>(n);
    }
    const double own_percent = 100.0 * static_cast<double>(own) / static_cast<double>(n);
    const double log_density = data.log_density(x).mean();
    std::printf("| %g | %.1f%% | %.3f | %.3f |\n", w, own_percent, dist, log_density);
    table.row("guided", w, own_percent, dist, log_density, "");
    titles.push_back("guidance w = " + fmt("%g", w));
    results.push_back(std::move(x));
  }

  // One figure per guidance weight, and all of them side by side.
  const auto draw = [&](plt::Axes& ax, std::size_t r) {
    ax.set_xlim(-kBound, kBound).set_ylim(-kBound, kBound).set_aspect_equal(true).set_title(titles[r]);
    const bool unconditional = r == 0;
    for (fm::Index k = 0; k < classes; ++k) {
      const fm::Index c0 = k * opt.per_class;
      ax.scatter(results[r].row(0).segment(c0, opt.per_class), results[r].row(1).segment(c0, opt.per_class),
                 unconditional ? plt::grey : plt::tab10(k), 1.8, 0.7);
      ax.scatter(data.means().row(0).segment(k, 1), data.means().row(1).segment(k, 1), plt::black, 4.0, 1.0);
    }
  };
  std::vector<std::string> written;
  for (std::size_t r = 0; r < results.size(); ++r) {
    plt::Figure fig(1, 1, 520, 520);
    draw(fig.at(0, 0), r);
    const std::string name = r == 0 ? "unconditional.png" : "guidance_w" + fmt("%g", opt.guidance[r - 1]) + ".png";
    fig.save_png((out_dir / name).string());
    written.push_back(name);
  }
  plt::Figure all(1, static_cast<int>(results.size()), 340, 340);
  all.set_title("Class-conditional flow, colour = class label; black: the mixture's means");
  for (std::size_t r = 0; r < results.size(); ++r) draw(all.at(0, static_cast<int>(r)), r);
  all.save_png((out_dir / "conditional2d.png").string());

  // The figures' points: every set's samples with the class it was asked for (none for the
  // unconditional set, drawn grey), the mixture's means (black), and the table.
  fm::examples::Csv samples({"set", "guidance", "label", "x", "y"});
  for (fm::Index j = 0; j < n; ++j) samples.row("unconditional", "", "", results[0](0, j), results[0](1, j));
  for (std::size_t r = 1; r < results.size(); ++r)
    samples.labelled_samples(results[r], labels, {"guided", fm::examples::csv_number(opt.guidance[r - 1])});
  fm::examples::Csv means({"label", "x", "y"});
  means.labelled_samples(data.means(), fm::Vector<fm::Index>::LinSpaced(classes, 0, classes - 1));
  samples.save(out_dir / "samples.csv");
  means.save(out_dir / "means.csv");
  table.save(out_dir / "guidance.csv");
  std::printf("\nwrote %s/{conditional2d.png", out_dir.string().c_str());
  for (const auto& w : written) std::printf(", %s", w.c_str());
  std::printf(", samples.csv, means.csv, guidance.csv}\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"conditional2d: class-conditional flow matching with classifier-free guidance"};
  fm::examples::add_common_options(app, opt, {.lr = "peak Adam learning rate"});
  app.add_option("--dropout", opt.dropout, "label dropout probability")->check(CLI::Range(0.0, 0.999))->capture_default_str();
  app.add_option("--modes", opt.modes, "mixture modes = classes")->check(fm::examples::at_least(1))->capture_default_str();
  app.add_option("--mode-std", opt.mode_std, "std of each mode")->check(fm::examples::positive_finite())->capture_default_str();
  app.add_option("--frequencies", opt.frequencies, "Fourier time frequencies (0: raw t only)")->check(fm::examples::at_least(0))->capture_default_str();
  app.add_option("--guidance", opt.guidance, "guidance weights w")->capture_default_str();
  app.add_option("--per-class", opt.per_class, "samples per class")->check(fm::examples::at_least(1))->capture_default_str();
  app.add_option("--nfe", opt.nfe, "Euler steps")->check(fm::examples::at_least(1))->capture_default_str();
  return fm::examples::parse_and_run(app, argc, argv, "conditional2d", [&] { return run(opt); });
}
