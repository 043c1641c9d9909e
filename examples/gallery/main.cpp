// gallery: one flow-matching model per toy data set (moons, circles, checkerboard, 8 gaussians,
// Swiss roll, and an empirical data set read from a CSV file), each trained from N(0, I) on the
// straight path (Adam with warm-up and cosine decay, EMA of the weights), sampled with 100 Euler steps; one PNG grid of target vs generated, and the exact W2
// of each generated sample to a fresh target sample. Writes the drawn points (samples.csv) and the
// table (w2.csv) beside the figure (docs/outputs.md).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numbers>
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
  Options() : CommonOptions{.steps = 10000, .batch = 256, .lr = 2e-3, .hidden = {128, 128, 128}} {}
  long long warmup = 200;
  double ema = 0.999;
  long long samples = 1000;
  long long nfe = 100;
  bool ot = false;
  std::string csv;  // empty: write and read a heart-shaped data set
};

constexpr double kBound = 4.0;

struct Result {
  std::string key;  // the data set's name in the CSV files
  std::string name;
  fm::Matrix<float> target, generated;
  double w2 = 0.0, floor_w2 = 0.0, seconds = 0.0;
};

// A heart curve, 16 sin^3 s, 13 cos s - 5 cos 2s - 2 cos 3s - cos 4s, scaled by 1/6: 400 points,
// written as a CSV file with a header (what a user's data set would look like).
void write_heart_csv(const std::filesystem::path& file) {
  std::ofstream os(file);
  if (!os) throw fm::Error("cannot open '" + file.string() + "' for writing");
  os << "x,y\n";
  for (int k = 0; k < 400; ++k) {
    const double s = 2.0 * std::numbers::pi * k / 400.0;
    const double x = 16.0 * std::pow(std::sin(s), 3);
    const double y = 13.0 * std::cos(s) - 5.0 * std::cos(2 * s) - 2.0 * std::cos(3 * s) - std::cos(4 * s);
    os << x / 6.0 << ',' << y / 6.0 + 0.5 << '\n';
  }
}

template <class Data>
Result run_one(const Options& opt, const std::string& key, const std::string& name, const Data& data) {
  std::printf("%s:\n", name.c_str());
  std::vector<fm::Index> hidden(opt.hidden.begin(), opt.hidden.end());
  const auto seed = static_cast<std::uint64_t>(opt.seed);
  fm::MLPVectorField<float, fm::SiLU> model(2, hidden, seed);
  // The training features compose with the trainer: a warm-up + cosine learning rate around
  // Adam, and an EMA of the weights (updated in the callback) used for sampling.
  fm::ScheduledOptimizer adam(fm::Adam<float>(opt.lr), fm::WarmupCosineLR(std::min(opt.warmup, opt.steps - 1), opt.steps));
  fm::ExponentialMovingAverage<float> ema(opt.ema);
  fm::examples::ProgressReporter progress(5000);
  const auto start = std::chrono::steady_clock::now();
  const auto progress_cb = [&](const fm::TrainProgress& p) {
    ema.update(model.parameters());
    progress(p);
  };
  if (opt.ot) {
    fm::CFMTrainer trainer(fm::GaussianConditionalPath(data, fm::LinearAlpha{}, fm::LinearBeta{}, fm::StandardNormal(2),
                                                       fm::MinibatchOTCoupling{}),
                           model, adam, seed + 1);
    trainer.train(opt.steps, opt.batch, progress_cb);
  } else {
    fm::CFMTrainer trainer(fm::GaussianConditionalPath(data, fm::LinearAlpha{}, fm::LinearBeta{}), model, adam, seed + 1);
    trainer.train(opt.steps, opt.batch, progress_cb);
  }
  Result r{key, name, {}, {}, 0.0, 0.0, 0.0};
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fm::Rng rng(seed + 2);
  r.target.resize(2, opt.samples);
  data.sample(rng, r.target);
  fm::Matrix<float> other(2, opt.samples);
  data.sample(rng, other);
  r.generated.resize(2, opt.samples);
  fm::StandardNormal(2).sample(rng, r.generated);
  ema.copy_to(model.parameters());
  fm::LearnedVectorFieldODE ode(model);
  fm::EulerSimulator simulator(ode);
  simulator.simulate_inplace(r.generated, fm::linspace(0.0, 1.0, opt.nfe + 1));
  if (!r.generated.allFinite()) throw fm::NumericalError("non-finite samples for " + name);
  r.w2 = fm::wasserstein2(r.generated, r.target);
  r.floor_w2 = fm::wasserstein2(other, r.target);
  return r;
}

int run(const Options& opt) {
  fm::set_num_threads(static_cast<int>(opt.threads));
  const std::filesystem::path out_dir(opt.out);
  std::filesystem::create_directories(out_dir);
  std::string csv = opt.csv;
  if (csv.empty()) {
    csv = (out_dir / "heart.csv").string();
    write_heart_csv(csv);
  }
  const fm::Empirical empirical = fm::Empirical::from_csv(csv, 2);  // a CSV of another dimension throws here
  std::printf("gallery: %lld steps per data set, batch %lld, lr %g (warm-up %lld, cosine), EMA %g, %s coupling, %lld Euler steps, %d thread(s), seed %lld\n",
              opt.steps, opt.batch, opt.lr, opt.warmup, opt.ema, opt.ot ? "minibatch-OT" : "independent", opt.nfe, fm::num_threads(), opt.seed);

  std::vector<Result> results;
  results.push_back(run_one(opt, "moons", "moons", fm::Moons(0.08, 2.0)));
  results.push_back(run_one(opt, "circles", "circles", fm::Circles(0.5, 0.04, 3.0)));
  results.push_back(run_one(opt, "checkerboard", "checkerboard", fm::Checkerboard(4, 1.5)));
  results.push_back(run_one(opt, "8gaussians", "8 gaussians", fm::eight_gaussians(2.8, 0.2)));
  results.push_back(run_one(opt, "swissroll", "swiss roll", fm::SwissRoll(0.4, 0.22)));
  results.push_back(run_one(opt, "empirical", "empirical (" + std::filesystem::path(csv).filename().string() + ")", empirical));

  std::printf("\n| data set | train s | W2 generated vs target | W2 floor (two target samples) |\n|---|---:|---:|---:|\n");
  for (const Result& r : results) std::printf("| %s | %.1f | %.3f | %.3f |\n", r.name.c_str(), r.seconds, r.w2, r.floor_w2);

  // The figure's points (top row: target, bottom row: generated) and the table.
  fm::examples::Csv samples({"dataset", "kind", "x", "y"});
  fm::examples::Csv table({"dataset", "train_s", "w2", "floor_w2"});
  for (const Result& r : results) {
    samples.samples(r.target, {r.key, "target"}).samples(r.generated, {r.key, "generated"});
    table.row(r.key, r.seconds, r.w2, r.floor_w2);
  }
  samples.save(out_dir / "samples.csv");
  table.save(out_dir / "w2.csv");

  plt::Figure fig(2, static_cast<int>(results.size()), 300, 300);
  fig.set_title("Toy data sets: target (top) and generated from N(0, I), " + std::to_string(opt.nfe) + " Euler steps (bottom)");
  for (std::size_t c = 0; c < results.size(); ++c) {
    const Result& r = results[c];
    for (int row = 0; row < 2; ++row) {
      const fm::Matrix<float>& x = row == 0 ? r.target : r.generated;
      char title[160];
      if (row == 0)
        std::snprintf(title, sizeof title, "%s", r.name.c_str());
      else
        std::snprintf(title, sizeof title, "generated (W2 %.2f)", r.w2);
      fig.at(row, static_cast<int>(c))
          .set_xlim(-kBound, kBound)
          .set_ylim(-kBound, kBound)
          .set_aspect_equal(true)
          .set_title(title)
          .scatter(x.row(0), x.row(1), row == 0 ? plt::grey : plt::tab10(static_cast<long long>(c)), 1.4, 0.7);
    }
  }
  fig.save_png((out_dir / "gallery.png").string());
  std::printf("wrote %s/{gallery.png, samples.csv, w2.csv}\n", out_dir.string().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"gallery: train and sample a flow on each toy data set"};
  fm::examples::add_common_options(app, opt, {.steps = "training steps per data set", .lr = "peak Adam learning rate (linear warm-up, then cosine decay to 0)"});
  app.add_option("--warmup", opt.warmup, "warm-up steps")->check(fm::examples::at_least(0))->capture_default_str();
  app.add_option("--ema", opt.ema, "EMA decay of the weights used for sampling (0: last weights)")->check(CLI::Range(0.0, 0.999999))->capture_default_str();
  app.add_option("--samples", opt.samples, "samples drawn and scored per data set")->check(fm::examples::at_least(2))->capture_default_str();
  app.add_option("--nfe", opt.nfe, "Euler steps for sampling")->check(fm::examples::at_least(1))->capture_default_str();
  app.add_flag("--ot", opt.ot, "train with the minibatch-OT coupling instead of the independent one");
  app.add_option("--csv", opt.csv, "CSV file (one 2-D point per line) for the empirical data set; default: a heart")->check(CLI::ExistingFile);
  return fm::examples::parse_and_run(app, argc, argv, "gallery", [&] { return run(opt); });
}
