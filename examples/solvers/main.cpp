// solvers: trains the reference workload once (11-mode Gaussian mixture, alpha_t = t, beta_t = sqrt(1 - t),
// MLP [x, t] -> 1024 -> 16 -> 2), then samples it with every ODE solver at a range of NFE (drift
// evaluations) and scores each run by the exact W2 distance to fresh target samples; also the
// model's log-likelihood of held-out target samples next to their true log-density. Writes every
// run's samples, the target samples and the tables as CSV beside the figure (docs/outputs.md).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <thread>
#include <type_traits>
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
  long long samples = 1000;
  long long heldout = 1000;
  long long likelihood_steps = 100;
  long long probes = 1;
};

using Model = fm::MLPVectorField<float, fm::SiLU>;
using ODE = fm::LearnedVectorFieldODE<Model>;

struct Run {
  std::string solver;
  long long nfe = 0;
  double w2 = 0.0;   ///< exact W2 to fresh target samples
  double rms = 0.0;  ///< RMS distance to the reference solution from the same x0 (the solver's own error)
  double ms = 0.0;
  fm::Matrix<float> x;  ///< the samples
};

// The samples' scores: W2 to the target samples, RMS distance to the reference solution.
Run score(std::string solver, long long nfe, double ms, const fm::Matrix<float>& x, const fm::Matrix<float>& target,
          const fm::Matrix<double>& reference) {
  if (!x.allFinite()) return {std::move(solver), nfe, -1.0, -1.0, ms, x};
  const double rms = std::sqrt((x.cast<double>() - reference).colwise().squaredNorm().mean());
  return {std::move(solver), nfe, fm::wasserstein2(x, target), rms, ms, x};
}

template <class St>
Run run_fixed(ODE& ode, const fm::Matrix<float>& x0, const fm::Matrix<float>& target, const fm::Matrix<double>& reference,
              long long nfe) {
  using Clock = std::chrono::steady_clock;
  fm::ODESimulator<ODE, St> sim(ode);
  fm::Matrix<float> x = x0;
  const auto start = Clock::now();
  const fm::Index used = sim.simulate_inplace(x, 0.0, 1.0, nfe / St::stages);
  const double ms = 1e3 * std::chrono::duration<double>(Clock::now() - start).count();
  return score(std::string(St::name), static_cast<long long>(used), ms, x, target, reference);
}

Run run_dopri(ODE& ode, const fm::Matrix<float>& x0, const fm::Matrix<float>& target, const fm::Matrix<double>& reference,
              double tol) {
  using Clock = std::chrono::steady_clock;
  fm::Dopri5Stepper<float> dopri(tol, tol);
  fm::Matrix<float> x = x0;
  const auto start = Clock::now();
  const fm::Index nfe = dopri.advance(ode, x, 0.0, 1.0);
  const double ms = 1e3 * std::chrono::duration<double>(Clock::now() - start).count();
  return score("dopri5", static_cast<long long>(nfe), ms, x, target, reference);
}

int run(const Options& opt) {
  using Clock = std::chrono::steady_clock;
  fm::set_num_threads(static_cast<int>(opt.threads));
  const std::filesystem::path out_dir(opt.out);
  std::filesystem::create_directories(out_dir);

  const fm::Gaussian p_init = fm::Gaussian::standard(2, 1.0);
  const fm::GaussianMixture p_data = fm::GaussianMixture::symmetric_2D(11, 1.0, 10.0);
  const fm::GaussianConditionalPath path(p_data, fm::LinearAlpha{}, fm::SquareRootBeta{});
  std::vector<fm::Index> hidden(opt.hidden.begin(), opt.hidden.end());
  const auto seed = static_cast<std::uint64_t>(opt.seed);
  Model model(2, hidden, seed);
  fm::Adam<float> adam(opt.lr);
  fm::CFMTrainer trainer(path, model, adam, seed + 1);
  std::printf("solvers: training %lld steps, batch %lld, %d thread(s), seed %lld\n", opt.steps, opt.batch,
              fm::num_threads(), opt.seed);
  fm::examples::ProgressReporter progress(1000);
  const auto t_train = Clock::now();
  trainer.train(opt.steps, opt.batch, [&](const fm::TrainProgress& p) { progress(p); });
  std::printf("training: %.1f s\n", std::chrono::duration<double>(Clock::now() - t_train).count());

  fm::Rng rng(seed + 2);
  const fm::Matrix<float> x0 = p_init.sample<float>(opt.samples, rng);
  const fm::Matrix<float> target = p_data.sample<float>(opt.samples, rng);
  const fm::Matrix<float> target2 = p_data.sample<float>(opt.samples, rng);
  const double floor_w2 = fm::wasserstein2(target, target2);
  ODE ode(model);
  // Reference solution from the same x0: RK4 with 1024 steps (4096 NFE).
  fm::Matrix<float> ref_f = x0;
  fm::ODESimulator<ODE, fm::RK4Stepper<float>>(ode).simulate_inplace(ref_f, 0.0, 1.0, 1024);
  const fm::Matrix<double> reference = ref_f.cast<double>();

  const std::vector<long long> nfes{1, 2, 4, 8, 16, 32, 64, 128};
  // Every fixed-step stepper of the registry (ode/stepper_registry.hpp), at each NFE it can spend.
  const auto names = fm::stepper_names();
  const std::vector<std::string> fixed(names.begin(), names.end());
  std::vector<Run> runs;
  for (long long nfe : nfes)
    for (const std::string& name : fixed)
      fm::visit_stepper<float>(name, [&]<class St>(std::type_identity<St>) {
        if (nfe >= St::stages) runs.push_back(run_fixed<St>(ode, x0, target, reference, nfe));
      });
  std::vector<Run> adaptive;
  for (double tol : {1e-1, 1e-2, 1e-3, 1e-4, 1e-5}) adaptive.push_back(run_dopri(ode, x0, target, reference, tol));

  std::printf("\nW2 to %lld fresh target samples (exact assignment) / sampling time in ms, %lld samples from N(0, I)\n",
              opt.samples, opt.samples);
  std::printf("W2 between two independent sets of %lld target samples (the sampling-noise floor): %.4f\n\n", opt.samples,
              floor_w2);
  const auto table = [&](bool w2) {
    std::printf("| NFE |");
    for (const auto& s : fixed) std::printf(" %-19s |", s.c_str());
    std::printf("\n|----:|");
    for (std::size_t k = 0; k < fixed.size(); ++k) std::printf("--------------------:|");
    std::printf("\n");
    for (long long nfe : nfes) {
      std::printf("| %3lld |", nfe);
      for (const auto& s : fixed) {
        const auto it = std::find_if(runs.begin(), runs.end(), [&](const Run& r) { return r.solver == s && r.nfe == nfe; });
        if (it == runs.end()) std::printf(" %19s |", "-");
        else if (w2) std::printf(" %7.4f / %6.1f ms |", it->w2, it->ms);
        else std::printf(" %19.2e |", it->rms);
      }
      std::printf("\n");
    }
  };
  table(true);
  std::printf("\nRMS distance to the reference solution from the same x0 (RK4, 1024 steps): the solver's own error\n\n");
  table(false);
  std::printf("\n| dopri5 rtol = atol | NFE | W2 | RMS to reference | ms |\n|---:|---:|---:|---:|---:|\n");
  const std::vector<double> tols{1e-1, 1e-2, 1e-3, 1e-4, 1e-5};
  for (std::size_t k = 0; k < adaptive.size(); ++k)
    std::printf("| %g | %lld | %.4f | %.2e | %.1f |\n", tols[k], adaptive[k].nfe, adaptive[k].w2, adaptive[k].rms,
                adaptive[k].ms);

  {
    plt::Figure fig(1, 2, 620, 500);
    fig.set_title("ODE solvers on the trained reference-workload model: quality against drift evaluations (NFE)");
    plt::Axes& a_w2 = fig.at(0, 0);
    plt::Axes& a_rms = fig.at(0, 1);
    a_w2.set_xlabel("log2 NFE").set_ylabel("W2 to target samples").set_title("W2 to fresh target samples").set_grid(true);
    a_rms.set_xlabel("log2 NFE").set_ylabel("log10 RMS error").set_title("RMS distance to a reference solution").set_grid(true);
    double top = floor_w2;
    const auto add = [&](const std::vector<Run>& rs, const std::string& name, long long colour, bool lines) {
      std::vector<double> xs, ys, ls;
      for (const Run& r : rs)
        if (r.solver == name && r.w2 >= 0 && r.nfe <= 256) {
          xs.push_back(std::log2(static_cast<double>(r.nfe)));
          ys.push_back(r.w2);
          ls.push_back(std::log10(std::max(r.rms, 1e-12)));
          top = std::max(top, r.w2);
        }
      const std::string label = lines ? name : name + " (rtol 1e-1..1e-5)";
      if (lines) {
        a_w2.line(xs, ys, plt::tab10(colour), 2.0, 1.0, label);
        a_rms.line(xs, ls, plt::tab10(colour), 2.0, 1.0, label);
      }
      a_w2.scatter(xs, ys, plt::tab10(colour), lines ? 3.5 : 5.0, 1.0, lines ? std::string{} : label);
      a_rms.scatter(xs, ls, plt::tab10(colour), lines ? 3.5 : 5.0, 1.0, lines ? std::string{} : label);
    };
    for (std::size_t k = 0; k < fixed.size(); ++k) add(runs, fixed[k], static_cast<long long>(k), true);
    add(adaptive, "dopri5", static_cast<long long>(fixed.size()), false);  // a colour no fixed stepper has
    a_w2.line(std::vector<double>{0.0, 8.0}, std::vector<double>{floor_w2, floor_w2}, plt::Color{120, 120, 120}, 1.0, 1.0,
              "target vs target");
    a_w2.set_xlim(-0.2, 8.2).set_ylim(0.0, std::min(top, 8.0) * 1.05).legend(true);
    a_rms.set_xlim(-0.2, 8.2).legend(true, plt::LegendLoc::UpperRight);
    fig.save_png((out_dir / "nfe_vs_w2.png").string());
  }

  // Log-likelihood of held-out target samples by the instantaneous change of variables.
  const fm::Matrix<float> heldout = p_data.sample<float>(opt.heldout, rng);
  fm::MLPJacobian<float, fm::SiLU> jac(model);
  fm::ExactDivergence exact(jac);
  const auto t_ll = Clock::now();
  const fm::LogLikelihoodResult<float> ll = fm::log_likelihood(exact, p_init, heldout, opt.likelihood_steps);
  const double ll_s = std::chrono::duration<double>(Clock::now() - t_ll).count();
  fm::HutchinsonDivergence hutch(jac, opt.probes, fm::ProbeKind::rademacher);
  const auto t_h = Clock::now();
  const fm::LogLikelihoodResult<float> llh = fm::log_likelihood(hutch, p_init, heldout, opt.likelihood_steps, &rng);
  const double llh_s = std::chrono::duration<double>(Clock::now() - t_h).count();
  const double truth = fm::mean_log_density(p_data, heldout);
  std::printf("\nlog-likelihood of %lld held-out target samples (RK4, %lld steps backwards from t = 1):\n", opt.heldout,
              opt.likelihood_steps);
  std::printf("  model, exact divergence:          %.4f  (%.2f s)\n", ll.mean(), ll_s);
  std::printf("  model, Hutchinson (%lld probe%s):    %.4f  (%.2f s)\n", opt.probes, opt.probes == 1 ? "" : "s", llh.mean(), llh_s);
  std::printf("  true mean log-density (p_data):   %.4f\n", truth);

  // The data: every run's samples (from the same x0), the target samples they are scored against,
  // the tables (the figure's points; an empty w2 and rms: the run diverged) and the log-likelihoods.
  fm::examples::Csv samples({"solver", "rtol", "nfe", "x", "y"});
  fm::examples::Csv scores({"solver", "rtol", "nfe", "w2", "rms_to_reference", "ms", "floor_w2"});
  const auto add_run = [&](const Run& r, const std::string& rtol) {
    samples.samples(r.x, {r.solver, rtol, std::to_string(r.nfe)});
    if (r.w2 >= 0)
      scores.row(r.solver, rtol, r.nfe, r.w2, r.rms, r.ms, floor_w2);
    else
      scores.row(r.solver, rtol, r.nfe, "", "", r.ms, floor_w2);
  };
  for (const Run& r : runs) add_run(r, "");
  for (std::size_t k = 0; k < adaptive.size(); ++k) add_run(adaptive[k], fm::examples::csv_number(tols[k]));
  fm::examples::Csv target_csv({"x", "y"});
  target_csv.samples(target);
  fm::examples::Csv likelihood({"estimator", "mean_log_likelihood", "seconds", "heldout", "steps", "probes"});
  likelihood.row("exact_divergence", ll.mean(), ll_s, opt.heldout, opt.likelihood_steps, "");
  likelihood.row("hutchinson", llh.mean(), llh_s, opt.heldout, opt.likelihood_steps, opt.probes);
  likelihood.row("true_log_density", truth, "", opt.heldout, "", "");
  samples.save(out_dir / "samples.csv");
  target_csv.save(out_dir / "target.csv");
  scores.save(out_dir / "nfe_vs_w2.csv");
  likelihood.save(out_dir / "log_likelihood.csv");
  std::printf("wrote %s/{nfe_vs_w2.png, samples.csv, target.csv, nfe_vs_w2.csv, log_likelihood.csv}\n",
              out_dir.string().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  CLI::App app{"solvers: sample quality (exact W2) of every ODE solver against NFE, and the model's log-likelihood"};
  fm::examples::add_common_options(app, opt, {.min_steps = 0});
  app.add_option("--samples", opt.samples, "samples per solver run (and fresh target samples for W2)")->check(fm::examples::at_least(1))->capture_default_str();
  app.add_option("--heldout", opt.heldout, "held-out target samples for the log-likelihood")->check(fm::examples::at_least(1))->capture_default_str();
  app.add_option("--likelihood-steps", opt.likelihood_steps, "RK4 steps of the log-likelihood integration")->check(fm::examples::at_least(1))->capture_default_str();
  app.add_option("--probes", opt.probes, "Hutchinson probes per sample")->check(fm::examples::at_least(1))->capture_default_str();
  return fm::examples::parse_and_run(app, argc, argv, "solvers", [&] { return run(opt); });
}
