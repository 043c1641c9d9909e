// couplings: independent vs minibatch optimal-transport (OT-CFM) couplings. Trains the same model
// with each coupling on two problems (8 gaussians -> moons, and the reference workload's N(0, I) -> 11-mode
// mixture), on the straight path x_t = t x1 + (1 - t) x0, then samples each with Euler at
// NFE = 1, 2, 4, 8, 100 and prints the exact W2 distance of the samples to a fresh target sample.
// OT pairs cross less, so the learned flow is straighter and few-step sampling is better.
// Writes the samples of every NFE, the target sample, the drawn trajectories and the table as CSV
// beside the figure (docs/outputs.md).

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
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
  Options() : CommonOptions{.steps = 3000, .batch = 256, .hidden = {128, 128, 128}} {}
  long long samples = 1000;
  long long trajectories = 60;
};

const std::vector<int> kNfes{1, 2, 4, 8, 100};

using Model = fm::MLPVectorField<float, fm::SiLU>;

struct Trained {
  std::string coupling;
  Model model;
  double seconds = 0.0;
  double final_loss = 0.0;
  std::vector<double> w2;  // one per NFE
  std::vector<fm::Matrix<float>> samples;  // one per NFE
  std::vector<fm::Matrix<float>> trajectory;  // 100 Euler steps, for the drawn columns
};

// Trains a fresh model on `path` (same initial weights and batch seed for every coupling).
template <class Path>
Trained train(const Options& opt, const Path& path, const std::string& name) {
  std::vector<fm::Index> hidden(opt.hidden.begin(), opt.hidden.end());
  const auto seed = static_cast<std::uint64_t>(opt.seed);
  Trained t{name, Model(2, hidden, seed), 0.0, 0.0, {}, {}, {}};
  fm::Adam<float> adam(opt.lr);
  fm::CFMTrainer trainer(path, t.model, adam, seed + 1);
  fm::examples::ProgressReporter progress(1000);
  const auto start = std::chrono::steady_clock::now();
  const std::vector<double> losses = trainer.train(opt.steps, opt.batch, [&](const fm::TrainProgress& p) { progress(p); });
  t.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::size_t tail = std::min<std::size_t>(100, losses.size());
  for (std::size_t k = losses.size() - tail; k < losses.size(); ++k) t.final_loss += losses[k] / static_cast<double>(tail);
  return t;
}

void evaluate(Trained& t, const fm::Matrix<float>& x0, const fm::Matrix<float>& target, fm::Index drawn) {
  fm::LearnedVectorFieldODE ode(t.model);
  fm::EulerSimulator simulator(ode);
  for (int nfe : kNfes) {
    fm::Matrix<float> x = x0;
    simulator.simulate_inplace(x, fm::linspace(0.0, 1.0, nfe + 1));
    if (!x.allFinite()) throw fm::NumericalError("non-finite samples for " + t.coupling);
    t.w2.push_back(fm::wasserstein2(x, target));
    t.samples.push_back(std::move(x));
  }
  t.trajectory = simulator.simulate_with_trajectory(x0.leftCols(drawn), fm::linspace(0.0, 1.0, 101));
}

struct Problem {
  std::string key;  // the problem's name in the CSV files
  std::string name;
  double bound;
  fm::Matrix<float> x0, target;
  std::vector<Trained> runs;
  double floor_w2 = 0.0;  // W2 between two independent target samples: the best reachable
};

template <class Source, class Data>
Problem run_problem(const Options& opt, const std::string& key, const std::string& name, double bound,
                    const Source& source, const Data& data) {
  std::printf("\n== %s ==\n", name.c_str());
  Problem p{key, name, bound, {}, {}, {}, 0.0};
  fm::Rng rng(static_cast<std::uint64_t>(opt.seed) + 100);
  p.x0.resize(2, opt.samples);
  p.target.resize(2, opt.samples);
  fm::Matrix<float> other(2, opt.samples);
  source.sample(rng, p.x0);
  data.sample(rng, p.target);
  data.sample(rng, other);
  p.floor_w2 = fm::wasserstein2(other, p.target);
  const fm::Index drawn = std::min<fm::Index>(opt.trajectories, opt.samples);
  {
    std::printf("independent coupling:\n");
    const fm::GaussianConditionalPath path(data, fm::LinearAlpha{}, fm::LinearBeta{}, source, fm::IndependentCoupling{});
    p.runs.push_back(train(opt, path, "independent"));
  }
  {
    std::printf("minibatch OT coupling (exact assignment, batch %lld):\n", opt.batch);
    const fm::GaussianConditionalPath path(data, fm::LinearAlpha{}, fm::LinearBeta{}, source, fm::MinibatchOTCoupling{});
    p.runs.push_back(train(opt, path, "minibatch OT"));
  }
  for (Trained& t : p.runs) evaluate(t, p.x0, p.target, drawn);
  return p;
}

plt::Axes& square(plt::Axes& ax, double bound, const std::string& title) {
  return ax.set_xlim(-bound, bound).set_ylim(-bound, bound).set_aspect_equal(true).set_title(title);
}

void draw(const std::vector<Problem>& problems, const std::filesystem::path& file) {
  plt::Figure fig(static_cast<int>(problems.size()), 4, 360, 360);
  fig.set_title("Independent vs minibatch-OT coupling: 100-step trajectories, and samples at NFE = 2");
  for (std::size_t r = 0; r < problems.size(); ++r) {
    const Problem& p = problems[r];
    for (std::size_t c = 0; c < p.runs.size(); ++c) {
      const Trained& t = p.runs[c];
      plt::Axes& ax = square(fig.at(static_cast<int>(r), static_cast<int>(c)), p.bound, p.name + ": " + t.coupling);
      ax.scatter(p.target.row(0), p.target.row(1), plt::light_grey, 1.5, 0.8);
      const fm::Index nt = static_cast<fm::Index>(t.trajectory.size());
      Eigen::VectorXd px(nt), py(nt);
      for (fm::Index j = 0; j < t.trajectory.front().cols(); ++j) {
        for (fm::Index k = 0; k < nt; ++k) {
          px(k) = t.trajectory[static_cast<std::size_t>(k)](0, j);
          py(k) = t.trajectory[static_cast<std::size_t>(k)](1, j);
        }
        ax.line(px, py, plt::tab10(j % 10), 1.0, 0.8);
        ax.scatter(px.head(1), py.head(1), plt::black, 1.8, 1.0);
        ax.scatter(px.tail(1), py.tail(1), plt::red, 1.8, 1.0);
      }
      const fm::Matrix<float>& s2 = t.samples[1];  // NFE = 2
      char title[128];
      std::snprintf(title, sizeof title, "%s, NFE 2 (W2 %.2f)", t.coupling.c_str(), t.w2[1]);
      plt::Axes& bx = square(fig.at(static_cast<int>(r), static_cast<int>(2 + c)), p.bound, title);
      bx.scatter(p.target.row(0), p.target.row(1), plt::light_grey, 1.5, 0.8);
      bx.scatter(s2.row(0), s2.row(1), c == 0 ? plt::blue : plt::orange, 1.6, 0.7);
    }
  }
  fig.save_png(file.string());
}

int run(const Options& opt) {
  fm::set_num_threads(static_cast<int>(opt.threads));
  const std::filesystem::path out_dir(opt.out);
  std::filesystem::create_directories(out_dir);
  std::printf("couplings: %lld steps, batch %lld, lr %g, MLP 3-", opt.steps, opt.batch, opt.lr);
  for (auto h : opt.hidden) std::printf("%lld-", h);
  std::printf("2, %d thread(s), seed %lld, W2 on %lld samples\n", fm::num_threads(), opt.seed, opt.samples);

  std::vector<Problem> problems;
  problems.push_back(run_problem(opt, "8gaussians_to_moons", "8 gaussians -> moons", 6.0, fm::eight_gaussians(4.0, 0.3), fm::Moons(0.1, 3.0)));
  problems.push_back(run_problem(opt, "normal_to_11modes", "N(0, I) -> 11-mode mixture", 15.0, fm::StandardNormal(2),
                                 fm::GaussianMixture::symmetric_2D(11, 1.0, 10.0)));

  std::printf("\nW2 of %lld Euler samples to %lld target samples (exact assignment):\n\n", opt.samples, opt.samples);
  std::printf("| problem | coupling | train s | NFE 1 | NFE 2 | NFE 4 | NFE 8 | NFE 100 |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|---:|\n");
  for (const Problem& p : problems) {
    for (const Trained& t : p.runs) {
      std::printf("| %s | %s | %.1f |", p.name.c_str(), t.coupling.c_str(), t.seconds);
      for (double w : t.w2) std::printf(" %.3f |", w);
      std::printf("\n");
    }
  }
  std::printf("\nfloor (W2 between two target samples of %lld):", opt.samples);
  for (const Problem& p : problems) std::printf("  %s %.3f;", p.name.c_str(), p.floor_w2);
  std::printf("\n");
  draw(problems, out_dir / "couplings.png");

  // The data: every NFE's samples (the figure shows NFE 2), the target sample (grey), the drawn
  // trajectories, and the table.
  // Couplings by their names in lower case, spaces as '_': independent, minibatch_ot.
  const auto key = [](std::string name) {
    for (char& c : name) c = c == ' ' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return name;
  };
  std::vector<std::string> w2_columns{"problem", "coupling", "train_s"};
  for (int nfe : kNfes) w2_columns.push_back("w2_nfe" + std::to_string(nfe));
  w2_columns.push_back("floor_w2");
  fm::examples::Csv samples({"problem", "coupling", "nfe", "x", "y"});
  fm::examples::Csv target({"problem", "x", "y"});
  fm::examples::Csv trajectories({"problem", "coupling", "trajectory", "t", "x", "y"});
  fm::examples::Csv table(w2_columns);
  for (const Problem& p : problems) {
    target.samples(p.target, {p.key});
    for (const Trained& t : p.runs) {
      const std::string coupling = key(t.coupling);
      for (std::size_t k = 0; k < kNfes.size(); ++k) samples.samples(t.samples[k], {p.key, coupling, std::to_string(kNfes[k])});
      const std::size_t nt = t.trajectory.size();  // 101 time points, t = k / 100
      for (fm::Index j = 0; j < t.trajectory.front().cols(); ++j)
        for (std::size_t k = 0; k < nt; ++k)
          trajectories.row(p.key, coupling, j, static_cast<double>(k) / static_cast<double>(nt - 1), t.trajectory[k](0, j),
                           t.trajectory[k](1, j));
      std::vector<double> numbers{t.seconds};
      numbers.insert(numbers.end(), t.w2.begin(), t.w2.end());
      numbers.push_back(p.floor_w2);
      table.row_values({p.key, coupling}, numbers);
    }
  }
  samples.save(out_dir / "samples.csv");
  target.save(out_dir / "target.csv");
  trajectories.save(out_dir / "trajectories.csv");
  table.save(out_dir / "w2.csv");
  std::printf("wrote %s/{couplings.png, samples.csv, target.csv, trajectories.csv, w2.csv}\n", out_dir.string().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"couplings: independent vs minibatch-OT coupling, W2 at few Euler steps"};
  fm::examples::add_common_options(app, opt, {.steps = "training steps per model"});
  app.add_option("--samples", opt.samples, "samples for W2 (exact assignment: O(n^3))")->check(fm::examples::at_least(2))->capture_default_str();
  app.add_option("--trajectories", opt.trajectories, "trajectories drawn per panel")->check(fm::examples::at_least(1))->capture_default_str();
  return fm::examples::parse_and_run(app, argc, argv, "couplings", [&] { return run(opt); });
}
