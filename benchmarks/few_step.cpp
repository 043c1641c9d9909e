// Few-step sampling on the reference workload (issue 17): Euler, midpoint, Heun and the multistep
// AB2 and AB3 at 2, 4, 8 and 16 NFE, on the uniform grid, SD3-shifted grids and the EDM grid.
//
//   build/benchmarks/flowmatch_few_step [--steps 5000] [--samples 1000] [--seed 0] [--threads 1]
//                                       [--shifts 1.5,3,0.5] [--profile 1] [--likelihood 1]
//
// Trains the reference model once (11-mode Gaussian mixture, alpha_t = t, beta_t = sqrt(1 - t),
// MLP [x, t] -> 1024 -> 16 -> 2 with SiLU, Adam 1e-3, batch 1000, as examples/solvers does), then
// for every solver, NFE and grid samples from the same x0 ~ N(0, I) and prints two scores:
// - RMS distance to a converged solution from the same x0 (RK4 with 2048 uniform steps; its own
//   distance to dopri5 at rtol = atol = 1e-6 is printed as the reference's error): the solver's
//   error, free of the model's and of sampling noise;
// - exact W2 (metrics/distances.hpp) to as many fresh target samples, next to the W2 between two
//   independent target sets (the sampling-noise floor).
// A solver with s stages makes NFE / s steps; a grid of n steps is uniform_time_grid(n),
// shifted_time_grid(n, s) or edm_time_grid(n) (ode/time_grids.hpp).
// --likelihood 1 also samples with log-densities in one pass and checks them against log_likelihood().
// --profile 1 also prints where the flow is hard: RMS |u| and RMS |du/dt| (the total derivative
// along the converged paths) on 20 intervals of [0, 1], and how each solver's error grows along
// the way at 4 and 8 NFE on the uniform and s = 3 grids (RMS distance to the converged state at
// each grid point).

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <flowmatch.hpp>

namespace fm = flowmatch;

namespace {

using Model = fm::MLPVectorField<float, fm::SiLU>;
using ODE = fm::LearnedVectorFieldODE<Model>;

struct Options {
  long long steps = 5000, samples = 1000, seed = 0, threads = 1, profile = 0, likelihood = 0;
  std::vector<double> shifts{1.5, 3.0, 0.5};  ///< SD3 shifts s: > 1 more steps near noise (t = 0), < 1 near data
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view key = argv[i];
    if (i + 1 >= argc) throw fm::InvalidArgument("few_step: option " + std::string(key) + " needs a value");
    const std::string value = argv[++i];
    if (key == "--steps") o.steps = std::stoll(value);
    else if (key == "--samples") o.samples = std::stoll(value);
    else if (key == "--seed") o.seed = std::stoll(value);
    else if (key == "--threads") o.threads = std::stoll(value);
    else if (key == "--profile") o.profile = std::stoll(value);
    else if (key == "--likelihood") o.likelihood = std::stoll(value);
    else if (key == "--shifts") {
      o.shifts.clear();
      std::stringstream ss(value);
      for (std::string item; std::getline(ss, item, ',');) o.shifts.push_back(std::stod(item));
    } else {
      throw fm::InvalidArgument("few_step: unknown option " + std::string(key) +
                                " (known: --steps, --samples, --seed, --threads, --shifts, --profile, --likelihood)");
    }
  }
  if (o.steps < 0 || o.samples < 2 || o.threads < 1) throw fm::InvalidArgument("few_step: bad --steps, --samples or --threads");
  return o;
}

struct Grid {
  std::string name;
  fm::Vector<double> (*make)(fm::Index, double);
  double parameter;
};

fm::Vector<double> uniform(fm::Index n, double) { return fm::uniform_time_grid(n); }
fm::Vector<double> shifted(fm::Index n, double s) { return fm::shifted_time_grid(n, s); }
fm::Vector<double> edm(fm::Index n, double) { return fm::edm_time_grid(n); }

struct Score {
  double rms = -1.0, w2 = -1.0;  ///< -1: the samples are not finite
};

double rms_distance(const fm::Matrix<float>& x, const fm::Matrix<double>& reference) {
  return std::sqrt((x.cast<double>() - reference).colwise().squaredNorm().mean());
}

template <class St>
Score run(ODE& ode, const fm::Matrix<float>& x0, const fm::Vector<double>& ts, const fm::Matrix<double>& reference,
          const fm::Matrix<float>& target) {
  fm::ODESimulator<ODE, St> sim(ode);
  fm::Matrix<float> x = x0;
  sim.simulate_inplace(x, ts);
  if (!x.allFinite()) return {};
  return {rms_distance(x, reference), fm::wasserstein2(x, target)};
}

double rms_distance(const fm::Matrix<float>& a, const fm::Matrix<float>& b) {
  return std::sqrt((a - b).cast<double>().colwise().squaredNorm().mean());
}

// Prints one table row: St's RMS distance to the converged states `ref` (at the points of `ts`)
// at each point of its own grid (NFE / stages steps, the same shift), "-" where it has none.
template <class St>
void error_row(ODE& ode, const fm::Matrix<float>& x0, const std::vector<fm::Matrix<float>>& ref, const fm::Vector<double>& ts,
               long long nfe, double shift) {
  const fm::Vector<double> own = fm::shifted_time_grid(nfe / St::stages, shift);
  fm::ODESimulator<ODE, St> sim(ode);
  const std::vector<fm::Matrix<float>> traj = sim.simulate_with_trajectory(x0, own);
  std::printf("| %s |", std::string(St::name).c_str());
  for (fm::Index k = 1; k < ts.size(); ++k) {
    fm::Index j = 1;
    while (j < own.size() && std::abs(own(j) - ts(k)) > 1e-12) ++j;
    if (j == own.size()) std::printf(" - |");
    else std::printf(" %.3f |", rms_distance(traj[static_cast<std::size_t>(j)], ref[static_cast<std::size_t>(k)]));
  }
  std::printf("\n");
}

void profile(ODE& ode, const fm::Matrix<float>& x0) {
  const fm::Index n = x0.cols();
  fm::Matrix<float> x = x0, u0(2, n), u1(2, n);
  fm::Dopri5Stepper<float> dopri(1e-7, 1e-7);
  std::printf("\nAlong the converged paths (dopri5, 1e-7): RMS |u| at the start of each interval, RMS |du/dt| over it\n\n");
  std::printf("| t | RMS abs(u) | RMS abs(du/dt) |\n|---|---:|---:|\n");
  for (int k = 0; k < 20; ++k) {
    const double a = k / 20.0, b = (k + 1) / 20.0;
    ode.drift(x, a, u0);
    dopri.advance(ode, x, a, b);
    ode.drift(x, b, u1);
    std::printf("| %.2f-%.2f | %.2f | %.2f |\n", a, b, std::sqrt(u0.cast<double>().colwise().squaredNorm().mean()),
                rms_distance(u1, u0) / (b - a));
  }
  for (const long long nfe : {4LL, 8LL})
    for (const double s : {1.0, 3.0}) {
      const fm::Vector<double> ts = fm::shifted_time_grid(nfe, s);
      std::vector<fm::Matrix<float>> ref{x0};
      for (fm::Index k = 0; k + 1 < ts.size(); ++k) {
        fm::Matrix<float> y = ref.back();
        dopri.advance(ode, y, ts(k), ts(k + 1));
        ref.push_back(y);
      }
      std::printf("\n%lld NFE, shift %g: RMS distance to the converged state along the way, at t =\n\n| |", nfe, s);
      for (fm::Index k = 1; k < ts.size(); ++k) std::printf(" %.3f |", ts(k));
      std::printf("\n|---|");
      for (fm::Index k = 1; k < ts.size(); ++k) std::printf("---:|");
      std::printf("\n");
      error_row<fm::EulerStepper<float>>(ode, x0, ref, ts, nfe, s);
      error_row<fm::MidpointStepper<float>>(ode, x0, ref, ts, nfe, s);
      error_row<fm::HeunStepper<float>>(ode, x0, ref, ts, nfe, s);
      error_row<fm::AdamsBashforth2Stepper<float>>(ode, x0, ref, ts, nfe, s);
      error_row<fm::AdamsBashforth3Stepper<float>>(ode, x0, ref, ts, nfe, s);
    }
}

int run_all(const Options& opt) {
  using Clock = std::chrono::steady_clock;
  fm::set_num_threads(static_cast<int>(opt.threads));
  const fm::Gaussian p_init = fm::Gaussian::standard(2, 1.0);
  const fm::GaussianMixture p_data = fm::GaussianMixture::symmetric_2D(11, 1.0, 10.0);
  const fm::GaussianConditionalPath path(p_data, fm::LinearAlpha{}, fm::SquareRootBeta{});
  const auto seed = static_cast<std::uint64_t>(opt.seed);
  Model model(2, {1024, 16}, seed);
  fm::Adam<float> adam(1e-3);
  fm::CFMTrainer trainer(path, model, adam, seed + 1);
  const auto t_train = Clock::now();
  trainer.train(opt.steps, 1000);
  std::printf("few_step: trained %lld steps (batch 1000, seed %lld, %d thread(s)) in %.1f s\n", opt.steps, opt.seed,
              fm::num_threads(), std::chrono::duration<double>(Clock::now() - t_train).count());

  fm::Rng rng(seed + 2);
  const fm::Matrix<float> x0 = p_init.sample<float>(opt.samples, rng);
  const fm::Matrix<float> target = p_data.sample<float>(opt.samples, rng);
  const fm::Matrix<float> target2 = p_data.sample<float>(opt.samples, rng);
  ODE ode(model);
  fm::Matrix<float> ref = x0;
  fm::ODESimulator<ODE, fm::RK4Stepper<float>>(ode).simulate_inplace(ref, 0.0, 1.0, 2048);
  const fm::Matrix<double> reference = ref.cast<double>();
  fm::Matrix<float> dopri = x0;
  fm::Dopri5Stepper<float> dp(1e-6, 1e-6);
  const fm::Index dopri_nfe = dp.advance(ode, dopri, 0.0, 1.0);
  std::printf("reference: RK4, 2048 uniform steps; its RMS distance to dopri5 (rtol = atol = 1e-6, %lld NFE): %.2e\n",
              static_cast<long long>(dopri_nfe), rms_distance(dopri, reference));
  std::printf("W2 of the reference samples to the target samples: %.4f; between two target sets of %lld (noise floor): %.4f\n",
              fm::wasserstein2(ref, target), opt.samples, fm::wasserstein2(target, target2));

  std::vector<Grid> grids{{"uniform", uniform, 0.0}};
  for (double s : opt.shifts) {
    char name[64];
    std::snprintf(name, sizeof name, "shifted s=%.4g", s);
    grids.push_back({name, shifted, s});
  }
  grids.push_back({"edm rho=7", edm, 0.0});
  const std::vector<std::string> solvers{"euler", "midpoint", "heun", "ab2", "ab3"};
  const std::vector<long long> nfes{2, 4, 8, 16};

  for (const Grid& g : grids) {
    std::printf("\n%s grid: RMS to reference / W2 to target\n\n| NFE |", g.name.c_str());
    for (const auto& s : solvers) std::printf(" %s |", s.c_str());
    std::printf("\n|---:|");
    for (std::size_t k = 0; k < solvers.size(); ++k) std::printf("---:|");
    std::printf("\n");
    for (long long nfe : nfes) {
      std::printf("| %lld |", nfe);
      for (const auto& s : solvers)
        fm::visit_stepper<float>(s, [&]<class St>(std::type_identity<St>) {
          const Score r = run<St>(ode, x0, g.make(static_cast<fm::Index>(nfe / St::stages), g.parameter), reference, target);
          if (r.rms < 0) std::printf(" diverged |");
          else std::printf(" %.3g / %.3f |", r.rms, r.w2);
        });
      std::printf("\n");
      std::fflush(stdout);
    }
  }
  if (opt.profile != 0) profile(ode, x0);
  if (opt.likelihood != 0) {
    // Samples with their log-densities in one forward pass (RK4, 100 steps, exact divergence),
    // against log_likelihood() run backwards from those samples.
    fm::MLPJacobian<float, fm::SiLU> jac(model);
    fm::ExactDivergence div(jac);
    const auto t0 = Clock::now();
    const auto s = fm::sample_with_log_likelihood(div, p_init, x0, 100);
    const double forward_s = std::chrono::duration<double>(Clock::now() - t0).count();
    const auto t1 = Clock::now();
    const auto back = fm::log_likelihood(div, p_init, s.x1, 100);
    const double backward_s = std::chrono::duration<double>(Clock::now() - t1).count();
    std::printf("\nlog-likelihood while sampling (%lld points, RK4 100 steps, exact divergence): %.2f s, NFE %ld, mean %.4f\n"
                "log_likelihood() backwards from those samples: %.2f s, mean %.4f; largest difference %.3g\n",
                opt.samples, forward_s, static_cast<long>(s.nfe), s.mean(), backward_s, back.mean(),
                (s.log_density - back.log_density).cwiseAbs().maxCoeff());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run_all(parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "few_step: %s\n", e.what());
    return 1;
  }
}
