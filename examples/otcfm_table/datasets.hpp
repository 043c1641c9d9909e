#pragma once
// The four 2-D tasks of Tong et al. (2023, "Improving and generalizing flow-based generative
// models with minibatch optimal transport", TMLR 2024), Table 2, as torchcfm's runner builds them
// (runner/src/datamodules: SKLearnDataModule, TorchDynDataModule, two_dim.py). The same
// distributions and sizes (our generator, not numpy's: the same laws, other draws):
//
//   moons      N(0, I) -> sklearn make_moons(noise 0.05) * 2, x -= 1 (points on a regular grid of
//              angles, half per moon, then Gaussian noise)
//   scurve     N(0, I) -> sklearn make_s_curve(noise 0.05), coordinates (0, 2) * 1.5
//   gaussians  N(0, I) -> torchdyn's 8 Gaussians: radius 5, std 1, N / 8 points each, + 1e-4 noise
//   twodim     two_dim.py "moon-8gaussians": make_moons(noise 0.1) standardised by the scalar
//              mean and std of all coordinates, * 7  ->  8 Gaussians of radius 4, std 0.5, * 3
//
// torchcfm draws every data set once (seed 42, whatever the training seed) and splits it
// 10000 / 1000 / 1000 by one fixed permutation (torch.Generator().manual_seed(42)): so do we.

#include <cmath>
#include <functional>
#include <numbers>
#include <string>
#include <utility>
#include <vector>

#include <flowmatch.hpp>

namespace otcfm {

namespace fm = flowmatch;

/// sklearn.datasets.make_moons(n, shuffle=True, noise): n / 2 points on the upper moon at
/// evenly spaced angles, the rest on the lower one, shuffled, plus N(0, noise^2) per coordinate.
inline fm::Matrix<double> make_moons(fm::Index n, double noise, fm::Rng& rng) {
  const fm::Index n_out = n / 2, n_in = n - n_out;
  fm::Matrix<double> x(2, n);
  const auto angle = [](fm::Index k, fm::Index count) {
    return count > 1 ? std::numbers::pi * static_cast<double>(k) / static_cast<double>(count - 1) : 0.0;
  };
  for (fm::Index k = 0; k < n_out; ++k) {
    x(0, k) = std::cos(angle(k, n_out));
    x(1, k) = std::sin(angle(k, n_out));
  }
  for (fm::Index k = 0; k < n_in; ++k) {
    x(0, n_out + k) = 1.0 - std::cos(angle(k, n_in));
    x(1, n_out + k) = 1.0 - std::sin(angle(k, n_in)) - 0.5;
  }
  for (fm::Index k = n - 1; k > 0; --k) x.col(k).swap(x.col(static_cast<fm::Index>(rng.below(static_cast<std::uint64_t>(k + 1)))));
  for (fm::Index j = 0; j < n; ++j)
    for (fm::Index i = 0; i < 2; ++i) x(i, j) += noise * rng.normal();
  return x;
}

/// sklearn.datasets.make_s_curve(n, noise), coordinates 0 and 2: t = 3 pi (u - 1/2),
/// (sin t, 2 v, sign(t) (cos t - 1)) plus N(0, noise^2) on each of the three coordinates.
inline fm::Matrix<double> make_s_curve_xz(fm::Index n, double noise, fm::Rng& rng) {
  fm::Matrix<double> x(2, n);
  for (fm::Index j = 0; j < n; ++j) {
    const double t = 3.0 * std::numbers::pi * (rng.uniform() - 0.5);
    (void)rng.uniform();  // the y coordinate 2 v, dropped
    x(0, j) = std::sin(t) + noise * rng.normal();
    (void)rng.normal();  // y's noise
    x(1, j) = (t > 0 ? 1.0 : (t < 0 ? -1.0 : 0.0)) * (std::cos(t) - 1.0) + noise * rng.normal();
  }
  return x;
}

/// torchdyn ToyDataset.generate_gaussians(n_samples = per, n_gaussians = 8, radius, std, noise):
/// component i centred at radius (cos, sin)(2 pi (i + 1) / 8), `per` points each (covariance
/// std * I: torchdyn passes std as the covariance; std = 1 here, so both readings agree).
inline fm::Matrix<double> torchdyn_gaussians(fm::Index per, double radius, double std_gaussians, double noise,
                                             fm::Rng& rng) {
  fm::Matrix<double> x(2, 8 * per);
  for (fm::Index i = 0; i < 8; ++i) {
    const double a = 2.0 * std::numbers::pi * static_cast<double>(i + 1) / 8.0;
    for (fm::Index k = 0; k < per; ++k) {
      const fm::Index j = i * per + k;
      x(0, j) = radius * std::cos(a) + std::sqrt(std_gaussians) * rng.normal() + noise * rng.normal();
      x(1, j) = radius * std::sin(a) + std::sqrt(std_gaussians) * rng.normal() + noise * rng.normal();
    }
  }
  return x;
}

/// two_dim.py "8gaussians": a random one of 8 centres of radius 4 (the unit circle's points at
/// multiples of 45 degrees), std 0.5, all times 3.
inline fm::Matrix<double> two_dim_8gaussians(fm::Index n, fm::Rng& rng) {
  fm::Matrix<double> x(2, n);
  for (fm::Index j = 0; j < n; ++j) {
    const double px = 0.5 * rng.normal(), py = 0.5 * rng.normal();
    const double a = std::numbers::pi / 4.0 * static_cast<double>(rng.below(8));
    x(0, j) = 3.0 * (px + 4.0 * std::cos(a));
    x(1, j) = 3.0 * (py + 4.0 * std::sin(a));
  }
  return x;
}

/// two_dim.py "moon": make_moons(noise 0.1), minus the mean of all coordinates, divided by their
/// standard deviation (unbiased, as torch's .std()), times 7.
inline fm::Matrix<double> two_dim_moon(fm::Index n, fm::Rng& rng) {
  fm::Matrix<double> x = make_moons(n, 0.1, rng);
  const double mean = x.mean();
  const double var = (x.array() - mean).square().sum() / static_cast<double>(x.size() - 1);
  return ((x.array() - mean) / std::sqrt(var) * 7.0).matrix();
}

/// One task: its splits (train, val, test: 10000 / 1000 / 1000 columns), and for twodim the
/// source's splits; the paper's OT-CFM W2 (mean, std over 5 seeds).
struct Task {
  std::string name;
  bool gaussian_source = true;
  fm::Matrix<double> train, val, test;            ///< target
  fm::Matrix<double> src_train, src_val, src_test;  ///< source (twodim only)
  double paper_w2 = 0.0, paper_w2_std = 0.0;
  double plot_bound = 4.0;
  /// n fresh target points from the generator's law (the "data" row: what a perfect model scores).
  std::function<fm::Matrix<double>(fm::Index, fm::Rng&)> draw;
};

inline constexpr fm::Index kTrain = 10000, kVal = 1000, kTest = 1000;

/// Columns of `all` split by a fixed permutation from `rng`.
inline void split(const fm::Matrix<double>& all, fm::Rng& rng, fm::Matrix<double>& train, fm::Matrix<double>& val,
                  fm::Matrix<double>& test) {
  std::vector<fm::Index> order(static_cast<std::size_t>(all.cols()));
  for (std::size_t k = 0; k < order.size(); ++k) order[k] = static_cast<fm::Index>(k);
  for (std::size_t k = order.size() - 1; k > 0; --k) std::swap(order[k], order[rng.below(k + 1)]);
  const auto take = [&](fm::Index from, fm::Index count) {
    fm::Matrix<double> m(all.rows(), count);
    for (fm::Index j = 0; j < count; ++j) m.col(j) = all.col(order[static_cast<std::size_t>(from + j)]);
    return m;
  };
  train = take(0, kTrain);
  val = take(kTrain, kVal);
  test = take(kTrain + kVal, kTest);
}

/// The task by name (moons, scurve, gaussians, twodim); throws for another name.
inline Task make_task(const std::string& name) {
  constexpr fm::Index n = kTrain + kVal + kTest;
  fm::Rng data_rng(42);   // one data set for every training seed, as torchcfm
  fm::Rng split_rng(42);  // one split permutation, reused for a source and its target
  Task task;
  task.name = name;
  fm::Matrix<double> all;
  if (name == "moons") {
    task.draw = [](fm::Index m, fm::Rng& rng) {
      fm::Matrix<double> x = make_moons(m, 0.05, rng) * 2.0;
      x.row(0).array() -= 1.0;
      return x;
    };
    all = task.draw(n, data_rng);
    task.paper_w2 = 0.130, task.paper_w2_std = 0.016, task.plot_bound = 3.5;
  } else if (name == "scurve") {
    task.draw = [](fm::Index m, fm::Rng& rng) { return fm::Matrix<double>(make_s_curve_xz(m, 0.05, rng) * 1.5); };
    all = task.draw(n, data_rng);
    task.paper_w2 = 0.144, task.paper_w2_std = 0.028, task.plot_bound = 3.5;
  } else if (name == "gaussians") {
    // Fresh draws: m / 8 points a component (the data set's equal counts), shuffled.
    task.draw = [](fm::Index m, fm::Rng& rng) {
      fm::Matrix<double> x = torchdyn_gaussians(m / 8, 5.0, 1.0, 1e-4, rng);
      for (fm::Index k = x.cols() - 1; k > 0; --k) x.col(k).swap(x.col(static_cast<fm::Index>(rng.below(static_cast<std::uint64_t>(k + 1)))));
      return x;
    };
    all = torchdyn_gaussians(n / 8, 5.0, 1.0, 1e-4, data_rng);
    task.paper_w2 = 0.303, task.paper_w2_std = 0.043, task.plot_bound = 8.5;
  } else if (name == "twodim") {
    task.gaussian_source = false;
    const fm::Matrix<double> source = two_dim_moon(n, data_rng);
    split(source, split_rng, task.src_train, task.src_val, task.src_test);
    split_rng.seed(42);
    task.draw = [](fm::Index m, fm::Rng& rng) { return two_dim_8gaussians(m, rng); };
    all = task.draw(n, data_rng);
    task.paper_w2 = 0.601, task.paper_w2_std = 0.027, task.plot_bound = 18.0;
  } else {
    throw fm::InvalidArgument("otcfm_table: unknown task '" + name + "' (known: moons, scurve, gaussians, twodim)");
  }
  split(all, split_rng, task.train, task.val, task.test);
  return task;
}

}  // namespace otcfm
