// Demo / visual check for flowmatch::plot (built only with
// -DFLOWMATCH_PLOT_BUILD_DEMO=ON).  Usage: flowmatch_plot_demo [n_points] [out.png]
// Writes a 1x3 figure: a Gaussian-mixture log-density heatmap with a colour
// bar, samples scattered over the density, and straight probability paths.
#include "plot.hpp"
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <numbers>
#include <random>
namespace fp = flowmatch::plot;
int main(int argc, char** argv) {
  const double mu[3][2] = {{-2.0, -1.0}, {2.0, -1.0}, {0.0, 2.0}};
  const double sig = 0.6;
  auto logp = [&](double x, double y) {
    double acc = 0;
    for (auto& m : mu)
      acc += std::exp(-((x - m[0]) * (x - m[0]) + (y - m[1]) * (y - m[1])) / (2 * sig * sig)) / (2 * std::numbers::pi * sig * sig * 3);
    return std::log(acc);
  };
  const int n = 200;
  const Eigen::VectorXd g = Eigen::VectorXd::LinSpaced(n, -4, 4);
  Eigen::MatrixXd L(n, n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) L(i, j) = logp(g(j), g(i));
  std::mt19937 rng(1);
  std::normal_distribution<double> N(0, 1);
  std::uniform_int_distribution<int> K(0, 2);
  const int np = argc > 1 ? std::atoi(argv[1]) : 2000;
  Eigen::VectorXf px(np), py(np);
  for (int i = 0; i < np; ++i) {
    const int k = K(rng);
    px(i) = float(mu[k][0] + sig * N(rng));
    py(i) = float(mu[k][1] + sig * N(rng));
  }
  const auto t0 = std::chrono::steady_clock::now();
  fp::Figure fig(1, 3, 400, 400);
  fig.set_title("Gaussian mixture: density, samples and probability paths");
  fig.at(0, 0).set_xlim(-4, 4).set_ylim(-4, 4).set_title("log p(x)").set_xlabel("x\xE2\x82\x81").set_ylabel("x\xE2\x82\x82")
      .heatmap(L, fp::Colormap::Viridis, 1.0, true, std::pair{-12.0, 0.0}).set_colorbar_label("log density");
  fig.at(0, 1).set_xlim(-4, 4).set_ylim(-4, 4).set_title("samples over density").set_xlabel("x\xE2\x82\x81")
      .heatmap(L, fp::Colormap::Magma, 1.0, false, std::pair{-12.0, 0.0})
      .scatter(px, py, fp::white, 1.5, 0.5, "samples").legend();
  auto& ax = fig.at(0, 2);
  ax.set_xlim(-4, 4).set_ylim(-4, 4).set_title("x\xE2\x82\x9C = (1 \xE2\x88\x92 t) x\xE2\x82\x80 + t x\xE2\x82\x81").set_xlabel("x\xE2\x82\x81").set_grid();
  Eigen::VectorXd sx(12), sy(12), ex(12), ey(12);
  for (int k = 0; k < 12; ++k) {
    sx(k) = 1.2 * N(rng), sy(k) = 1.2 * N(rng);
    const auto& m = mu[k % 3];
    ex(k) = m[0] + sig * N(rng), ey(k) = m[1] + sig * N(rng);
    const Eigen::VectorXd t = Eigen::VectorXd::LinSpaced(2, 0, 1);
    ax.line((sx(k) + (ex(k) - sx(k)) * t.array()).matrix(), (sy(k) + (ey(k) - sy(k)) * t.array()).matrix(),
            fp::tab10(k % 3), 1.5, 0.8, k < 3 ? "to mode " + std::to_string(k + 1) : "");
  }
  ax.scatter(sx, sy, fp::grey, 3.0, 1.0, "x\xE2\x82\x80 ~ N(0, I)");
  ax.scatter(ex, ey, fp::black, 3.0, 1.0, "x\xE2\x82\x81 ~ data");
  ax.text(-3.8, 3.5, "t: 0 \xE2\x86\x92 1", fp::dark_grey).legend(true, fp::LegendLoc::LowerRight);
  fig.save_png(argc > 2 ? argv[2] : "plot_demo.png");
  const auto t1 = std::chrono::steady_clock::now();
  std::cout << "render+save " << std::chrono::duration<double>(t1 - t0).count() << " s, truetype=" << fig.uses_truetype() << "\n";
}
